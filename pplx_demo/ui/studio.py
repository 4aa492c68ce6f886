"""Event handlers of the studio: each turns widget values into domain calls and results into views.

No retrieval logic here: the corpus workflow is `pplx_demo.workflows`, search is `SearchService`,
evaluation is `evaluate.runner`. This module resolves who is calling (session key), checks they may
see the corpus, holds the heavy-work semaphore, bridges progress bars and returns small view
dataclasses whose field names are component names (`ui/binding.py` turns them into Gradio outputs).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pplx_demo import charts, workflows
from pplx_demo.config import Settings
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.beir_zip import load_beir_zip
from pplx_demo.evaluate.contextual import DEFAULT_QUERY, contextual_demo
from pplx_demo.evaluate.datasets import XQUAD_LANGUAGES, RetrievalDataset, load_xquad, qrels_from_file, \
    queries_from_file
from pplx_demo.evaluate.runner import EvalReport
from pplx_demo.evaluate.runs import run_corpus_evaluation, run_evaluation, run_variant_pair
from pplx_demo.index import IndexConfig, warm_up
from pplx_demo.ingest.crawler import CrawlOptions, crawl
from pplx_demo.ingest.worker import load_files_isolated
from pplx_demo.models import MODELS, STAND_IN_KEY, ModelHub
from pplx_demo.models.registry import default_chunking
from pplx_demo.search import SearchService, response_payload
from pplx_demo.sessions import Sessions, new_session_key
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter, format_duration
from pplx_demo.ui import about, views
from pplx_demo.ui.choices import (AUTO_EMBED_SECONDS, CONFIG_CHOICES, DEFAULT_CONFIGS, HISTORY_RUNS, MAX_RESCORE_MULTIPLIER,
                                  MAX_TOP_K, PAIR_CHUNK_TOKENS, SIZES, VARIANTS, DEFAULT_EVAL_QUERIES, ModelChoices,
                                  configs_for, encoder_args, example_questions, model_key_for, variant_choices,
                                  variant_keys_for, whole_number)
from pplx_demo.ui.errors import user_errors
from pplx_demo.ui.outputs import (CompareCharts, CorpusAdded, DatasetControls, EvalResults, ModelControls,
                                  SearchResults, SessionStarted, Stopped, path_of, progress_bridge, stats_html,
                                  truncation_notice)
from pplx_demo.ui.eval_view import EvalView, eval_charts, eval_frame, eval_status, eval_tables
from pplx_demo.ui.gpu import gpu_loader
from pplx_demo.ui.views import plural

log = logging.getLogger(__name__)


class Studio:
    """Everything the UI calls, bound to one store; one instance per app."""

    def __init__(self, settings: Settings, auto_embed_seconds: float = AUTO_EMBED_SECONDS) -> None:
        self.settings = settings
        self.auto_embed_seconds = float(auto_embed_seconds)
        self.store = Store(settings.db_path)
        self.models = ModelHub(settings)
        # Encoders come wrapped so that only their forward passes are ZeroGPU tasks.
        self.encoder = gpu_loader(self.models)
        self.search_service = SearchService(self.store, self.encoder, settings=settings)
        self.sessions = Sessions(self.store, settings.private_corpus_idle_s)
        self.meter = ThroughputMeter()
        self._heavy = threading.BoundedSemaphore(max(1, settings.heavy_concurrency))
        self._cancel: dict[str, threading.Event] = {}
        self._cancel_lock = threading.Lock()
        self._availability: dict[str, Any] = {}
        self._embedded: set[tuple[int, int, str, str]] = set()  # (corpus, revision, cache key, variant) ready
        self.sample_corpus_id: Any = None
        self.sample_seconds: float | None = None  # how long the first start took to load the sample

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> None:
        """Compile the scan kernels, check which models are available, make sure the sample is embedded."""
        log.info("scan kernels ready in %.1f s", warm_up(self.settings.kernels))
        if not self._availability:
            with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:  # hub checks time out in parallel
                found = list(pool.map(self.models.availability, MODELS))
            self._availability = {a.key: a for a in found}
        self._sweep(force=True)
        if self.sample_corpus_id is None:
            start = time.perf_counter()
            encoder = self.encoder(STAND_IN_KEY, "standard")
            with self._heavy:
                self.sample_corpus_id, _ = workflows.ensure_sample(self.store, encoder, meter=self.meter)
            self.sample_seconds = time.perf_counter() - start
            log.info("sample corpus ready in %.1f s", self.sample_seconds)

    # ------------------------------------------------------------------ model controls

    def model_available(self, key: str) -> Any:
        a = self._availability.get(key)
        if a is None:
            a = self._availability[key] = self.models.availability(key)
        return a

    def model_choices(self, model_size: str) -> ModelChoices:
        sizes = []
        for label, size in SIZES:
            ok = any(self.model_available(model_key_for(size, v)).available for v in VARIANTS)
            sizes.append((label if ok else f"{label} (not available here)", size))
        return ModelChoices(sizes=sizes, variants=variant_choices(model_size))

    def default_model(self) -> tuple[str, str]:
        for size in ("0.6B", "4B"):
            if self.model_available(model_key_for(size, "standard")).available:
                return size, "standard"
        return "stand-in", "standard"

    def model_note(self, model_size: str, variant: str) -> str:
        key = model_key_for(model_size, variant)
        spec, a = MODELS[key], self.model_available(key)
        if not a.available:
            return views.notice_html(f"{spec.display_name} is not available here: {a.reason}. "
                                     f"To enable it: {a.how_to_enable}.", "warn")
        kind = "info" if spec.is_pplx else "warn"
        extra = "" if spec.is_pplx else " Results from it are labelled as such, never as pplx-embed."
        if variant == "contextual":
            extra += (" Late chunking: each chunk is embedded in the context of its whole document"
                      + ("." if spec.is_pplx else "; this model was not trained for it, so it shows the "
                         "mechanism, not pplx-embed-context's gain."))
        return views.notice_html(f"Using {spec.display_name}: {spec.dim}-d, {spec.params} parameters "
                                 f"({a.reason}).{extra}", kind)

    def chunking_for(self, model_size: str, variant: str) -> tuple[int, int, int]:
        """(default chunk tokens, default overlap, largest chunk the model reads) for the controls.

        Available models are asked (the window depends on the device and its settings); for one that
        cannot be loaded here, its context capped by this machine's setting is the best guess.
        """
        key, enc_variant = encoder_args(model_size, variant)
        if self.model_available(key).available:
            return workflows.default_sizes(self.encoder(key, enc_variant))
        budget = min(MODELS[key].max_context, self.settings.max_tokens_cpu)
        size, overlap = default_chunking(key, variant)
        size = min(size, budget)
        return size, min(overlap, size // 4), budget

    def matryoshka_choices(self, model_size: str, variant: str) -> list[tuple[str, str]]:
        spec = MODELS[model_key_for(model_size, variant)]
        return [("full", "full")] + [(f"{d}", str(d)) for d in spec.matryoshka_dims if d < spec.dim]

    def chunk_sliders(self, model_size: str, variant: str) -> tuple[Any, Any]:
        size, overlap, budget = self.chunking_for(model_size, variant)
        return (gr.update(value=size, maximum=budget),
                gr.update(value=overlap, maximum=max(1, min(budget // 2, 1024))))

    def pair_chunk_max(self, model_size: str) -> int:
        """Largest chunk the late-chunking pair may use: what both variants of the model read."""
        try:
            return min(self.chunking_for(model_size, v)[2] for v in VARIANTS)
        except DemoError:
            return PAIR_CHUNK_TOKENS

    def on_model_change(self, model_size: str, variant: str) -> ModelControls:
        ok = self.model_available(model_key_for(model_size, variant)).available
        dims = self.matryoshka_choices(model_size, variant)
        view = ModelControls(self.model_note(model_size, variant), gr.update(choices=variant_choices(model_size)),
                             matryoshka=gr.update(choices=dims, value="full"),
                             eval_dims=gr.update(choices=[d for d in dims if d[1] != "full"], value=[]))
        if ok:
            view.chunk_tokens, view.overlap_tokens = self.chunk_sliders(model_size, variant)
            view.pair_chunks = gr.update(maximum=min(512, self.pair_chunk_max(model_size)))
        for name in ("search_btn", "ingest_btn", "crawl_btn", "eval_btn", "late_btn"):
            setattr(view, name, gr.update(interactive=ok))
        return view

    # ------------------------------------------------------------------ evaluation controls

    @functools.cache  # noqa: B019 - one Studio per process; the files never change while running
    def xquad_query_counts(self) -> dict[str, int]:
        """Judged questions per XQuAD language, read from the data (the query slider's maximum)."""
        return {lang: len(load_xquad(lang).judged_queries()) for lang in XQUAD_LANGUAGES}

    def max_queries_for(self, dataset: str, languages: Sequence[str] | None) -> int:
        if dataset == "xquad":
            counts = self.xquad_query_counts()
            return max([counts[lang] for lang in (languages or []) if lang in counts] or counts.values())
        return self.settings.max_queries

    def on_dataset_change(self, dataset: str, languages: list[str] | None) -> DatasetControls:
        """Show only the inputs the chosen kind of labelled data needs; the query slider's maximum."""
        xquad, beir, own = dataset == "xquad", dataset == "beir", dataset == "corpus"
        top = self.max_queries_for(dataset, languages)
        return DatasetControls(gr.update(visible=xquad), gr.update(visible=xquad), gr.update(visible=beir),
                               gr.update(visible=own), gr.update(visible=own),
                               gr.update(maximum=top, visible=not own))

    # ------------------------------------------------------------------ sessions and corpora

    def _who(self, session_key: str | None, request: gr.Request | None) -> tuple[str, str]:
        self._sweep()
        return self.sessions.resolve(session_key, getattr(request, "session_hash", None))

    def start_session(self, stored_key: Any, request: gr.Request) -> SessionStarted:
        """On page load: reuse the key kept in this browser, or mint one."""
        key = stored_key if isinstance(stored_key, str) and stored_key else new_session_key()
        try:
            _, owner = self.sessions.resolve(key, None)
        except DemoError:  # a corrupted stored key: start a fresh private space
            key = new_session_key()
            _, owner = self.sessions.resolve(key, None)
        self._sweep()
        return SessionStarted(key, key, self._corpus_dropdown(owner), self._corpora_frame(owner))

    def _sweep(self, force: bool = False) -> None:
        """Delete idle private corpora (rate-limited) and drop their cached indexes."""
        for corpus_id in self.sessions.sweep(force=force) or []:
            self.search_service.forget(corpus_id)
            log.info("private corpus %s expired", corpus_id)

    def _corpus_dropdown(self, owner: str, selected: Any = None) -> Any:
        corpora = self.store.list_corpora(owner)
        choices = [(f"{c.name} · {plural(c.n_chunks, 'chunk')} · {'shared' if c.owner is None else 'private'}",
                    str(c.id)) for c in corpora]
        value = str(selected) if selected is not None else (choices[0][1] if choices else None)
        if selected is None and self.sample_corpus_id is not None:
            value = str(self.sample_corpus_id)
        return gr.update(choices=choices, value=value)

    def _corpora_frame(self, owner: str) -> pd.DataFrame:
        rows = [{"id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "languages": ", ".join(c.languages), "visibility": "shared (read-only)" if c.owner is None
                 else "private to you"}
                for c in self.store.list_corpora(owner)]
        return pd.DataFrame(rows, columns=["id", "name", "documents", "chunks", "languages", "visibility"])

    def _corpus_for(self, corpus_ref: Any, owner: str) -> Any:
        """The corpus if this session may use it; the same error whether it is missing or someone else's."""
        text = "" if corpus_ref is None else str(corpus_ref).strip()
        if not text:
            raise DemoError("Choose a corpus first (the Corpus tab lists the ones you can search).", field="corpus")
        try:
            corpus_id = int(text)
        except ValueError:
            raise DemoError(f"unknown corpus {text!r}: pass its corpus_id, the number that /ingest, /crawl and "
                            "/corpora return (names are not unique).", field="corpus") from None
        try:
            c = self.store.check_access(corpus_id, owner)
        except DemoError:
            raise DemoError(f"There is no corpus {corpus_id} in this session: it may have expired after "
                            f"{self.settings.private_corpus_idle_s / 60:g} idle minutes, or belong to another "
                            "session.", field="corpus") from None
        if c.owner is not None:
            self.store.touch_corpus(corpus_id)
        return c

    def embed_button_label(self, corpus: Any, model_size: str, variant: str, session_key: str,
                           request: gr.Request) -> Any:
        """'Embed “my notes” now with all-MiniLM-L6-v2': the button names what it will do."""
        try:
            _, owner = self._who(session_key, request)
            c = self._corpus_for(corpus, owner)
            model = charts.short_model_name(MODELS[model_key_for(model_size, variant)].display_name)
        except DemoError:
            return gr.update(value="Embed the corpus chosen in Search now", interactive=False)
        return gr.update(value=f"Embed “{c.name}” now with {model}", interactive=True)

    @user_errors
    def corpora(self, session_key: str, request: gr.Request) -> list[dict]:
        """The corpora this session may search: the shared sample plus its own private ones."""
        _, owner = self._who(session_key, request)
        return [{"corpus_id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "tokens": c.n_tokens, "languages": c.languages, "shared": c.owner is None}
                for c in self.store.list_corpora(owner)]

    # ------------------------------------------------------------------ heavy work

    def _cancel_event(self, key: str) -> threading.Event:
        with self._cancel_lock:
            ev = self._cancel.get(key)
            if ev is None or ev.is_set():
                ev = self._cancel[key] = threading.Event()
            return ev

    def stop(self, session_key: str, request: gr.Request) -> Stopped:
        key, _ = self._who(session_key, request)
        with self._cancel_lock:
            ev = self._cancel.get(key)
        if ev is not None:
            ev.set()
        return Stopped(views.notice_html("Stopped. Nothing half-done was kept.", "warn"), gr.update(visible=False))

    def _embed(self, corpus_id: int, encoder: Any, progress: gr.Progress | None,
               cancel: threading.Event | None) -> workflows.EmbedOutcome:
        """Embed what is missing of a corpus under the heavy-work semaphore."""
        with self._heavy:
            return workflows.embed(self.store, corpus_id, encoder, meter=self.meter, cancel=cancel,
                                   progress=progress_bridge(progress, f"Embedding with {encoder.name}"))

    def _plan(self, chunk_tokens: Any, overlap_tokens: Any, encoder: Any) -> workflows.ChunkingPlan:
        size = None if chunk_tokens in (None, "") else whole_number(chunk_tokens, "chunk size", 1, 10**6)
        overlap = None if overlap_tokens in (None, "") else whole_number(overlap_tokens, "overlap", 0, 10**6)
        return workflows.plan_chunking(encoder, size, overlap)

    def _add_corpus(self, name: str, documents: list[Any], problems: list[tuple[str, str]], source: str,
                    encoder: Any, plan: workflows.ChunkingPlan, key: str, owner: str,
                    progress: gr.Progress | None, cancel: threading.Event) -> CorpusAdded:
        built = workflows.build_corpus(self.store, name, documents, encoder, plan, owner=owner, source=source,
                                       progress=progress_bridge(progress, "Chunking"), cancel=cancel)
        problems = problems + built.rejected
        stats = built.stats
        estimate = self.meter.estimate(encoder, stats.tokens)
        model = charts.short_model_name(encoder.name)
        added = (f"Added “{name}”: {plural(stats.documents, 'document')}, {plural(stats.chunks, 'chunk')}"
                 + (f"; {plural(len(problems), 'file or page', 'files or pages')} not loaded" if problems else "")
                 + ".")
        truncated = 0
        if estimate.seconds <= self.auto_embed_seconds:
            outcome = self._embed(built.corpus_id, encoder, progress, cancel)
            truncated = outcome.truncated
            status = views.notice_html(f"{added} Embedded with {model} in {outcome.seconds:.1f} s "
                                       f"(estimated {format_duration(estimate.seconds)}).")
            status += truncation_notice(outcome.truncation)
        else:
            t = estimate.throughput
            status = views.notice_html(
                f"{added} Embedding its {plural(stats.tokens, 'token')} with {model} will take about "
                f"{format_duration(estimate.seconds)} (measured {t.tokens_per_s:,.0f} tokens/s on this machine, "
                f"{t.source}). Press “Embed “{name}” now”, or search it: the first search embeds it.", "warn")
        handle = {"corpus_id": built.corpus_id, "session_key": key, "name": name, "documents": stats.documents,
                  "chunks": stats.chunks, "tokens": stats.tokens, "languages": stats.languages,
                  "model": encoder.name, "chunk_tokens": plan.chunk_tokens, "overlap_tokens": plan.overlap_tokens,
                  "estimated_embedding_seconds": round(estimate.seconds, 2), "truncated": truncated,
                  "rejected": [{"name": n, "reason": r} for n, r in problems]}
        frame = pd.DataFrame(problems, columns=["file / page", "why it was not loaded"])
        return CorpusAdded(handle, status, stats_html(name, stats, encoder.name, plan), frame,
                           self._corpus_dropdown(owner, built.corpus_id), self._corpora_frame(owner), key)

    # ------------------------------------------------------------------ API endpoints

    @user_errors
    def ingest(self, files: list[str] | None, corpus_name: str | None = None, model_size: str = "stand-in",
               variant: str = "standard", chunk_tokens: float | None = None, overlap_tokens: float | None = None,
               session_key: str | None = None, request: gr.Request = None,
               progress: gr.Progress = gr.Progress()) -> CorpusAdded:
        """Upload files into a new private corpus (chunked with the chosen model's tokenizer and embedded)."""
        key, owner = self._who(session_key, request)
        encoder = self.encoder(*encoder_args(model_size, variant))
        plan = self._plan(chunk_tokens, overlap_tokens, encoder)
        paths = [path_of(f) for f in (files or [])]
        if not paths:
            raise DemoError("Choose at least one file to upload.", field="files")
        names = [Path(p).name for p in paths]
        report = load_files_isolated(paths, self.settings, display_names=names)  # parsed in a worker process
        problems = [(r.name, r.reason) for r in report.rejected]
        if not report.documents:
            detail = "; ".join(f"{n}: {r}" for n, r in problems[:5]) or "no text found"
            raise DemoError(f"No document could be read ({detail}).", field="files")
        name = (corpus_name or "").strip() or (names[0] if len(names) == 1 else f"{len(names)} uploaded files")
        return self._add_corpus(name, report.documents, problems, "upload", encoder, plan, key, owner, progress,
                                self._cancel_event(key))

    @user_errors
    def crawl(self, url: str, max_pages: float = 20, max_depth: float = 1, same_host: bool = True,
              corpus_name: str | None = None, model_size: str = "stand-in", variant: str = "standard",
              chunk_tokens: float | None = None, overlap_tokens: float | None = None, session_key: str | None = None,
              request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> CorpusAdded:
        """Crawl a site (within the limits) into a new private corpus."""
        key, owner = self._who(session_key, request)
        encoder = self.encoder(*encoder_args(model_size, variant))
        plan = self._plan(chunk_tokens, overlap_tokens, encoder)
        urls = [u for u in (url or "").split() if u]
        pages = whole_number(max_pages, "max_pages", 1, self.settings.crawl_max_pages)
        depth = whole_number(max_depth, "max_depth", 0, self.settings.crawl_max_depth)
        options = CrawlOptions.from_settings(self.settings, max_pages=pages, max_depth=depth, same_host=bool(same_host))
        cancel = self._cancel_event(key)
        report = crawl(urls, options, progress=progress_bridge(progress, "Crawling"), cancel=cancel)
        problems = list(report.failed) + list(report.skipped)
        if report.stopped:
            problems.insert(0, ("(crawl)", f"stopped early: {report.stopped}"))
        if not report.documents:
            detail = "; ".join(f"{u}: {r}" for u, r in problems[:3]) or "no pages with text"
            setting, _ = next(iter(report.hints.values()), (None, None))  # what would let a refused page in
            raise DemoError(f"The crawl found no documents ({detail}).", field="url", setting=setting)
        name = (corpus_name or "").strip() or urls[0]
        return self._add_corpus(name, report.documents, problems, "crawl", encoder, plan, key, owner, progress,
                                cancel)

    @user_errors
    def embed(self, corpus: str, model_size: str = "stand-in", variant: str = "standard",
              session_key: str | None = None, request: gr.Request = None,
              progress: gr.Progress = gr.Progress()) -> str:
        """Embed a corpus with the chosen model now (otherwise the first search does it)."""
        key, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        encoder = self.encoder(*encoder_args(model_size, variant))
        outcome = self._embed(c.id, encoder, progress, self._cancel_event(key))
        model = charts.short_model_name(encoder.name)
        if not outcome.embedded:
            return views.notice_html(f"“{c.name}” was already embedded with {model}.")
        return (views.notice_html(f"“{c.name}”: embedded {plural(outcome.embedded, 'chunk')} with {encoder.name} in "
                                  f"{outcome.seconds:.1f} s.") + truncation_notice(outcome.truncation))

    @user_errors
    def search(self, corpus: str, query: str, model_size: str = "stand-in", variant: str = "standard",
               configurations: list[str] | None = None, top_k: float = 10, rescore_multiplier: float = 4,
               matryoshka: str = "full", session_key: str | None = None, history: list | None = None,
               request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> SearchResults:
        """Search one corpus with every ticked configuration; one ranked column per configuration."""
        key, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        if not (query or "").strip():
            raise DemoError("Type a query first.", field="query")
        k = whole_number(top_k, "top_k", 1, MAX_TOP_K)
        mult = whole_number(rescore_multiplier, "rescore_multiplier", 1, MAX_RESCORE_MULTIPLIER)
        configs = configs_for(list(DEFAULT_CONFIGS) if configurations is None else configurations, matryoshka, mult)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = self.encoder(model_key, enc_variant)
        ready = (c.id, c.revision, str(encoder.cache_key), str(encoder.variant))
        outcome = None
        if ready not in self._embedded:  # first search of this corpus with this model: may embed (heavy, stoppable)
            outcome = self._embed(c.id, encoder, progress, self._cancel_event(key))
            self._embedded.add(ready)
        response = self.search_service.search(c.id, model_key, enc_variant, configs, query.strip(), k)
        if outcome is not None and outcome.embedded:
            response = replace(response, embedded_now=outcome.embedded, truncated_now=outcome.truncated)
        runs = list(history or [])[-(HISTORY_RUNS - 1):] + [response]
        html = views.results_html(response, query, "float32", self._search_notices(response, encoder, configs))
        return SearchResults(html, response_payload(response), runs)

    def _search_notices(self, response: Any, encoder: Any, configs: list[IndexConfig]) -> list[tuple[str, str]]:
        notices = []
        model = charts.short_model_name(encoder.name)
        if response.embedded_now:
            notices.append((f"This search first embedded {plural(response.embedded_now, 'chunk')} of the corpus with "
                            f"{model} (done once; later searches reuse them).", "info"))
        if response.truncated_now:
            report = workflows.truncation_report(encoder, response.truncated_now, response.embedded_now)
            notices.append((f"{plural(report.truncated, 'chunk')} of this corpus "
                            f"{'is' if report.truncated == 1 else 'are'} longer than {model} reads "
                            f"({report.budget_tokens} tokens) and were cut: their ends are not searchable.", "warn"))
        truncated_dims = sorted({cfg.dim for cfg in configs if cfg.dim is not None and cfg.dim < encoder.dim})
        if truncated_dims and not encoder.is_pplx:
            notices.append((f"{model} was not trained for Matryoshka truncation: at "
                            f"{', '.join(str(d) for d in truncated_dims)} of its {encoder.dim} dimensions these "
                            "columns show what cutting a vector does to a model without that training, not what "
                            "pplx-embed (trained for it) does.", "warn"))
        return notices

    def compare_charts(self, history: list | None, last_eval: Any) -> CompareCharts:
        runs = list(history or [])
        last = runs[-1] if runs else None
        quality = last_eval.points() if last_eval is not None else []
        frontier = last_eval.frontier() if last_eval is not None else []
        return CompareCharts(charts.latency_figure(runs), charts.storage_figure(last),
                             charts.quality_bytes_figure(quality, "ndcg@10", frontier),
                             charts.score_distribution_figure(last))

    @user_errors
    def evaluate(self, dataset: str = "xquad", languages: list[str] | None = None,
                 query_language: str | None = None, beir_zip: str | None = None, queries_file: str | None = None,
                 qrels_file: str | None = None, max_queries: float = DEFAULT_EVAL_QUERIES,
                 model_size: str = "stand-in", variant: str = "standard", configurations: list[str] | None = None,
                 matryoshka_sizes: list[str] | None = None, late_chunking_pair: bool = False,
                 pair_chunk_tokens: float = PAIR_CHUNK_TOKENS, corpus: str | None = None,
                 session_key: str | None = None, request: gr.Request = None,
                 progress: gr.Progress = gr.Progress()) -> EvalResults:
        """Quality of every ticked configuration on labelled data: XQuAD (the default; needs no files),
        an uploaded BEIR zip, or a corpus of yours with uploaded queries and qrels. With
        `late_chunking_pair`, the same chunks are also embedded with late chunking."""
        key, owner = self._who(session_key, request)
        model_key, enc_variant = encoder_args(model_size, variant)
        names = list(CONFIG_CHOICES) if configurations is None else [str(n) for n in configurations]
        dims: list[str | None] = ["full", *[d for d in (matryoshka_sizes or []) if d != "full"]]
        configs = list(dict.fromkeys(c for d in dims for c in configs_for(names, d, 4)))
        n = whole_number(max_queries, "max_queries", 1, self.max_queries_for(dataset, languages or ["en"]))
        bridge = progress_bridge(progress, "Embedding the evaluation data")
        cancel = self._cancel_event(key)
        common = dict(progress=bridge, encoder_loader=self.encoder, kernels=self.settings.kernels, cancel=cancel)
        pair_chunking = None
        if late_chunking_pair:
            size = whole_number(pair_chunk_tokens, "pair_chunk_tokens", 8, 10**6)
            workflows.plan_chunking(self.encoder(*variant_keys_for(model_size)[1]), size, 0)  # one clear error
            pair_chunking = (size, 0)
        available: dict[str, int] = {}
        reports: list[EvalReport] = []

        def run(data: RetrievalDataset, **kwargs: Any) -> None:
            if pair_chunking is None:
                reports.append(run_evaluation(self.store, data, model_key, enc_variant, configs, **common, **kwargs))
            else:
                (standard_key, _), _ = variant_keys_for(model_size)
                reports.extend(run_variant_pair(self.store, data, standard_key, configs, chunking=pair_chunking,
                                                **common, **kwargs))

        with self._heavy:
            if dataset == "xquad":
                langs = ["en"] if languages is None else list(languages)
                if not langs:
                    raise DemoError("Tick at least one XQuAD language.", field="languages")
                qlang = None if query_language in (None, "", "same as corpus") else query_language
                for lang in langs:
                    full = load_xquad(lang, qlang)
                    available[full.name] = len(full.judged_queries())
                    run(full.sample(n))
            elif dataset == "beir":
                if not beir_zip:
                    raise DemoError("Upload a BEIR folder as a zip (corpus.jsonl, queries.jsonl, qrels/test.tsv).",
                                    field="beir_zip")
                full = load_beir_zip(path_of(beir_zip), self.settings)
                available[full.name] = len(full.judged_queries())
                run(full.sample(n), owner=owner)
            elif dataset == "corpus":
                c = self._corpus_for(corpus, owner)
                if not queries_file or not qrels_file:
                    raise DemoError("Upload a queries file (jsonl or tsv) and a qrels file (tsv) for this corpus.",
                                    field="queries_file")
                queries = queries_from_file(path_of(queries_file), limits=self.settings)
                qrels = qrels_from_file(path_of(qrels_file))
                keys = [(model_key, enc_variant)] if pair_chunking is None else list(variant_keys_for(model_size))
                for key_, var in keys:
                    reports.append(run_corpus_evaluation(self.store, c.id, queries, qrels, key_, var, configs,
                                                         owner=owner, **common))
            else:
                raise DemoError(f"Unknown labelled data {dataset!r}: use 'xquad', 'beir' or 'corpus'.",
                                field="dataset")
        quality, per_language = eval_charts(reports)
        return EvalResults(eval_status(reports, available), eval_tables(reports, available), eval_frame(reports),
                           quality, per_language, EvalView(reports))

    @user_errors
    def late_chunking_demo(self, query: str = DEFAULT_QUERY, model_size: str = "stand-in",
                           request: gr.Request = None) -> str:
        """The Berlin article's sentences ranked for `query` with independent chunks and with late chunking."""
        (standard_key, _), _ = variant_keys_for(model_size)
        for key, _ in variant_keys_for(model_size):
            a = self.model_available(key)
            if not a.available:
                raise DemoError(f"{MODELS[key].display_name} is not available here: {a.reason}. "
                                f"To enable it: {a.how_to_enable}.", field="model_size")
        with self._heavy:
            demo = contextual_demo(self.store, standard_key, (query or "").strip(), encoder_loader=self.encoder)
        caveat = "" if MODELS[standard_key].is_pplx else (
            f"{charts.short_model_name(demo.model_name)} was not trained for late chunking (pplx-embed-context-v1 "
            "is): this shows the mechanism, not pplx-embed's gain.")
        return views.contextual_html(demo, caveat)

    # ------------------------------------------------------------------ texts

    def example_queries(self) -> list[str]:
        return example_questions()

    def xquad_languages(self) -> tuple[str, ...]:
        return XQUAD_LANGUAGES

    def sample_note(self) -> str:
        corpus = self.store.get_corpus(self.sample_corpus_id) if self.sample_corpus_id is not None else None
        return about.sample_note(corpus)

    def about_markdown(self) -> str:
        return about.about_markdown([self.model_available(k) for k in MODELS], self.settings.models_dir,
                                    self.settings.private_corpus_idle_s)
