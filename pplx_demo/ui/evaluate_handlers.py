"""The Evaluate tab's handlers: quality on labelled data (with paired bootstrap intervals), the cost vs
quality sweep with its recommendation, and the late-chunking illustration.

A mixin of `Studio`. Evaluations and sweeps are heavy jobs: they hold a heavy-work slot, report
progress and stop when the session's Stop is pressed (the runner checks the cancel event).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pplx_demo import charts, workflows
from pplx_demo.charts_quality import sweep_bytes_figure, sweep_multiplier_figure
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.beir_zip import load_beir_zip
from pplx_demo.evaluate.contextual import DEFAULT_QUERY, contextual_demo
from pplx_demo.evaluate.datasets import RetrievalDataset, load_xquad, qrels_from_file, queries_from_file
from pplx_demo.evaluate.runner import EvalReport
from pplx_demo.evaluate.runs import run_corpus_evaluation, run_evaluation, run_variant_pair
from pplx_demo.evaluate.sweep import MULTIPLIERS, sweep_configs, sweep_from_report
from pplx_demo.models import MODELS
from pplx_demo.ui import views
from pplx_demo.ui.choices import (CONFIG_CHOICES, DEFAULT_EVAL_QUERIES, PAIR_CHUNK_TOKENS, QUALITY_FLOOR,
                                  QUALITY_METRIC, configs_for, encoder_args, variant_keys_for, whole_number)
from pplx_demo.ui.errors import user_errors
from pplx_demo.ui.eval_view import (EvalView, confidence_of, eval_charts, eval_frame, eval_status, eval_tables,
                                    sweep_status, sweep_table)
from pplx_demo.ui.outputs import EvalResults, SweepResults, path_of, progress_bridge


@dataclass
class Source:
    """One set of labelled data: a dataset (XQuAD, BEIR) or a stored corpus with uploaded queries and qrels."""

    dataset: RetrievalDataset | None = None
    corpus_id: int | None = None
    queries: dict[str, str] | None = None
    qrels: dict[str, dict[str, int]] | None = None
    available: int = 0  # judged queries before sampling


class EvaluateHandlers:
    """evaluate, sweep, late_chunking_demo (mixin; `self` is the Studio)."""

    settings: Any
    store: Any
    history: Any

    def _sources(self, dataset: str, languages: list[str] | None, query_language: str | None, beir_zip: Any,
                 queries_file: Any, qrels_file: Any, n: int, corpus: Any, owner: str) -> Iterator[Source]:
        if dataset == "xquad":
            langs = ["en"] if languages is None else list(languages)
            if not langs:
                raise DemoError("Tick at least one XQuAD language.", field="languages")
            qlang = None if query_language in (None, "", "same as corpus") else query_language
            for lang in langs:
                full = load_xquad(lang, qlang)
                yield Source(full.sample(n), available=len(full.judged_queries()))
        elif dataset == "beir":
            if not beir_zip:
                raise DemoError("Upload a BEIR folder as a zip (corpus.jsonl, queries.jsonl, qrels/test.tsv).",
                                field="beir_zip")
            full = load_beir_zip(path_of(beir_zip), self.settings)
            yield Source(full.sample(n), available=len(full.judged_queries()))
        elif dataset == "corpus":
            c = self._corpus_for(corpus, owner)  # type: ignore[attr-defined]
            if not queries_file or not qrels_file:
                raise DemoError("Upload a queries file (jsonl or tsv) and a qrels file (tsv) for this corpus.",
                                field="queries_file")
            yield Source(corpus_id=c.id, queries=queries_from_file(path_of(queries_file), limits=self.settings),
                         qrels=qrels_from_file(path_of(qrels_file)))
        else:
            raise DemoError(f"Unknown labelled data {dataset!r}: use 'xquad', 'beir' or 'corpus'.", field="dataset")

    @user_errors
    def evaluate(self, dataset: str = "xquad", languages: list[str] | None = None,
                 query_language: str | None = None, beir_zip: str | None = None, queries_file: str | None = None,
                 qrels_file: str | None = None, max_queries: float = DEFAULT_EVAL_QUERIES,
                 model_size: str = "stand-in", variant: str = "standard", configurations: list[str] | None = None,
                 matryoshka_sizes: list[str] | None = None, late_chunking_pair: bool = False,
                 pair_chunk_tokens: float = PAIR_CHUNK_TOKENS, corpus: str | None = None,
                 session_key: str | None = None, runtime: str = "torch", request: gr.Request = None,
                 progress: gr.Progress = gr.Progress()) -> EvalResults:
        """Quality of every ticked configuration on labelled data: XQuAD (the default; needs no files),
        an uploaded BEIR zip, or a corpus of yours with uploaded queries and qrels. With
        `late_chunking_pair`, the same chunks are also embedded with late chunking. Every % of float32
        comes with its paired bootstrap 95% interval."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        model_key, enc_variant = encoder_args(model_size, variant)
        names = list(CONFIG_CHOICES) if configurations is None else [str(n) for n in configurations]
        dims: list[str | None] = ["full", *[d for d in (matryoshka_sizes or []) if d != "full"]]
        configs = list(dict.fromkeys(c for d in dims
                                     for c in configs_for(names, d, 4, self.settings.hybrid_rrf_k)))
        n = whole_number(max_queries, "max_queries", 1, self.max_queries_for(dataset, languages or ["en"]))  # type: ignore[attr-defined]
        loader = self.loader(runtime)  # type: ignore[attr-defined]
        common = dict(progress=progress_bridge(progress, "Embedding the evaluation data"), encoder_loader=loader,
                      kernels=self.settings.kernels, cancel=self._cancel_event(key))  # type: ignore[attr-defined]
        pair_chunking = None
        if late_chunking_pair:
            size = whole_number(pair_chunk_tokens, "pair_chunk_tokens", 8, 10**6)
            workflows.plan_chunking(loader(*variant_keys_for(model_size)[1]), size, 0)  # one clear error
            pair_chunking = (size, 0)
        available: dict[str, int] = {}
        reports: list[EvalReport] = []
        with self.jobs.heavy():  # type: ignore[attr-defined]
            for src in self._sources(dataset, languages, query_language, beir_zip, queries_file, qrels_file, n,
                                     corpus, owner):
                if src.dataset is not None:
                    available[src.dataset.name] = src.available
                    extra = {"owner": owner} if dataset == "beir" else {}
                    if pair_chunking is None:
                        reports.append(run_evaluation(self.store, src.dataset, model_key, enc_variant, configs,
                                                      **common, **extra))
                    else:
                        (standard_key, _), _ = variant_keys_for(model_size)
                        reports.extend(run_variant_pair(self.store, src.dataset, standard_key, configs,
                                                        chunking=pair_chunking, **common, **extra))
                else:
                    keys = [(model_key, enc_variant)] if pair_chunking is None else list(variant_keys_for(model_size))
                    for key_, var in keys:
                        reports.append(run_corpus_evaluation(self.store, src.corpus_id, src.queries, src.qrels, key_,
                                                             var, configs, owner=owner, **common))
        s = self.settings
        confidence = confidence_of(reports, s.confidence_resamples, s.confidence_seed)
        view = EvalView(reports, confidence)
        self.history.set_eval(owner, view)
        quality, per_language = eval_charts(view)
        return EvalResults(eval_status(reports, available),
                           eval_tables(reports, available, confidence, s.confidence_resamples, s.confidence_seed),
                           eval_frame(reports, confidence), quality, per_language)

    @user_errors
    def sweep(self, dataset: str = "xquad", languages: list[str] | None = None, query_language: str | None = None,
              beir_zip: str | None = None, queries_file: str | None = None, qrels_file: str | None = None,
              max_queries: float = DEFAULT_EVAL_QUERIES, model_size: str = "stand-in", variant: str = "standard",
              quality_floor: float = QUALITY_FLOOR, corpus: str | None = None, session_key: str | None = None,
              runtime: str = "torch", request: gr.Request = None,
              progress: gr.Progress = gr.Progress()) -> SweepResults:
        """Quality against cost: binary + rescore at multipliers 1-16, asymmetric, and every precision at every
        Matryoshka size, each with its 95% interval; the cheapest configuration keeping `quality_floor` % of
        float32's nDCG@10 is recommended. One dataset (the first XQuAD language ticked)."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        floor = float(quality_floor)
        if not 50 <= floor <= 100:
            raise DemoError(f"quality_floor is a % of float32 from 50 to 100 (got {quality_floor!r})",
                            field="quality_floor")
        model_key, enc_variant = encoder_args(model_size, variant)
        n = whole_number(max_queries, "max_queries", 1, self.max_queries_for(dataset, languages or ["en"]))  # type: ignore[attr-defined]
        loader = self.loader(runtime)  # type: ignore[attr-defined]
        encoder = loader(model_key, enc_variant)
        configs = sweep_configs(int(encoder.dim), MULTIPLIERS)
        common = dict(progress=progress_bridge(progress, "Embedding the sweep's data"), encoder_loader=loader,
                      kernels=self.settings.kernels, cancel=self._cancel_event(key))  # type: ignore[attr-defined]
        with self.jobs.heavy():  # type: ignore[attr-defined]
            src = next(self._sources(dataset, (languages or ["en"])[:1], query_language, beir_zip, queries_file,
                                     qrels_file, n, corpus, owner))
            if src.dataset is not None:
                report = run_evaluation(self.store, src.dataset, model_key, enc_variant, configs, **common,
                                        **({"owner": owner} if dataset == "beir" else {}))
            else:
                report = run_corpus_evaluation(self.store, src.corpus_id, src.queries, src.qrels, model_key,
                                               enc_variant, configs, owner=owner, **common)
        s = self.settings
        result = sweep_from_report(report, multipliers=MULTIPLIERS, dims=list(dict.fromkeys(
            c.dim for c in configs if c.mode == "plain")), n_resamples=s.confidence_resamples, seed=s.confidence_seed)
        rec = result.recommend(floor / 100, QUALITY_METRIC)
        return SweepResults(sweep_status(result, floor), sweep_table(result), sweep_multiplier_figure(result),
                            sweep_bytes_figure(result, QUALITY_METRIC, rec))

    @user_errors
    def late_chunking_demo(self, query: str = DEFAULT_QUERY, model_size: str = "stand-in",
                           request: gr.Request = None) -> str:
        """The Berlin article's sentences ranked for `query` with independent chunks and with late chunking."""
        (standard_key, _), _ = variant_keys_for(model_size)
        for key, _ in variant_keys_for(model_size):
            a = self.model_available(key)  # type: ignore[attr-defined]
            if not a.available:
                raise DemoError(f"{MODELS[key].display_name} is not available here: {a.reason}. "
                                f"To enable it: {a.how_to_enable}.", field="model_size")
        with self.jobs.heavy():  # type: ignore[attr-defined]
            demo = contextual_demo(self.store, standard_key, (query or "").strip(), encoder_loader=self.encoder)  # type: ignore[attr-defined]
        caveat = "" if MODELS[standard_key].is_pplx else (
            f"{charts.short_model_name(demo.model_name)} was not trained for late chunking (pplx-embed-context-v1 "
            "is): this shows the mechanism, not pplx-embed's gain.")
        return views.contextual_html(demo, caveat)
