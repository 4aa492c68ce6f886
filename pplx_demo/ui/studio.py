"""Event handlers of the studio: each turns widget values into domain calls and results into views.

No retrieval logic here: models, store, chunking, search and evaluation are the domain modules';
this module resolves who is calling (session key), checks they may see the corpus, holds the
heavy-work semaphore, bridges progress bars, and formats what comes back.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pplx_demo import charts
from pplx_demo.config import Settings
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.evaluate.beir_zip import load_beir_zip
from pplx_demo.evaluate.datasets import RetrievalDataset, load_xquad, qrels_from_file, queries_from_file
from pplx_demo.evaluate.reproduction import load_reproduction
from pplx_demo.evaluate.runner import (EvalReport, is_eval_corpus, pareto_frontier, report_rows, run_corpus_evaluation,
                                       run_evaluation)
from pplx_demo.index import IndexConfig
from pplx_demo.ingest.chunking import chunk_text, default_chunking
from pplx_demo.ingest.crawler import CrawlOptions, crawl
from pplx_demo.ingest.formats import load_files
from pplx_demo.ingest.sample import SAMPLE_ATTRIBUTION, SAMPLE_CORPUS_NAME, sample_documents, sample_queries
from pplx_demo.models import MODELS, STAND_IN_KEY, availability, get_encoder, pplx_key
from pplx_demo.search import BASELINE, SearchService
from pplx_demo.sessions import Sessions, new_session_key
from pplx_demo.stats import CorpusStats, corpus_stats, document_language
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter
from pplx_demo.ui import views
from pplx_demo.ui.gpu import gpu_task

log = logging.getLogger(__name__)

SEARCH_CONCURRENCY = 4
QUALITY_METRIC = "ndcg@10"
AUTO_EMBED_SECONDS = 60.0  # embed right after ingestion when the estimate is below this
HISTORY_RUNS = 20
SAMPLE_LANGUAGE = "en"

# The configurations a user can tick, in display order; the first is the reference column.
CONFIG_CHOICES: tuple[str, ...] = ("float32", "int8", "binary", "binary + rescore", "binary asymmetric")
DEFAULT_CONFIGS: tuple[str, ...] = ("float32", "int8", "binary + rescore")
DATASET_CHOICES: tuple[tuple[str, str], ...] = (
    ("XQuAD (built in; 12 languages, cross-lingual)", "xquad"),
    ("BEIR folder (zip upload)", "beir"),
    ("The corpus chosen in Search + queries and qrels files", "corpus"),
)
SIZES: tuple[tuple[str, str], ...] = (("pplx-embed 0.6B", "0.6B"), ("pplx-embed 4B", "4B"),
                                      ("all-MiniLM-L6-v2 (offline stand-in)", "stand-in"))
VARIANT_LABELS = {"standard": "standard (pplx-embed-v1)", "contextual": "contextual (late chunking)"}


def model_key_for(model_size: str, variant: str) -> str:
    """Registry key for the Model and Variant controls."""
    if variant not in VARIANT_LABELS:
        raise DemoError(f"Unknown variant {variant!r}: use 'standard' or 'contextual'.")
    if model_size == "stand-in":
        return STAND_IN_KEY
    if model_size in ("0.6B", "4B"):
        return pplx_key(model_size, variant)  # type: ignore[arg-type]
    raise DemoError(f"Unknown model size {model_size!r}: use '0.6B', '4B' or 'stand-in'.")


def encoder_args(model_size: str, variant: str) -> tuple[str, str | None]:
    """(model_key, variant) for get_encoder: pplx checkpoints fix their variant, the stand-in takes it."""
    key = model_key_for(model_size, variant)
    return key, (variant if key == STAND_IN_KEY else None)


def configs_for(names: Sequence[str], matryoshka: str | int | None, rescore_multiplier: int) -> list[IndexConfig]:
    """IndexConfigs for the ticked configuration names, with the Matryoshka size applied to all."""
    if not names:
        raise DemoError("Tick at least one configuration to compare.")
    unknown = [n for n in names if n not in CONFIG_CHOICES]
    if unknown:
        raise DemoError(f"Unknown configuration {unknown[0]!r}: choose from {', '.join(CONFIG_CHOICES)}.")
    try:
        dim = None if matryoshka in (None, "", "full") else int(matryoshka)
        mult = int(rescore_multiplier)
    except (TypeError, ValueError):
        raise DemoError(f"Matryoshka size must be 'full' or a number of dimensions, and the rescore multiplier "
                        f"a whole number (got {matryoshka!r}, {rescore_multiplier!r}).") from None
    table = {
        "float32": IndexConfig("float32", dim=dim),
        "int8": IndexConfig("int8", dim=dim),
        "binary": IndexConfig("binary", dim=dim),
        "binary + rescore": IndexConfig("binary", "rescore", dim=dim, rescore_multiplier=mult),
        "binary asymmetric": IndexConfig("binary", "asymmetric", dim=dim),
    }
    ordered = [n for n in CONFIG_CHOICES if n in names]  # float32 first: it is the reference column
    return [table[n] for n in ordered]


@dataclass(frozen=True)
class ModelChoices:
    sizes: list[tuple[str, str]]
    variants: list[tuple[str, str]]


class UserError(gr.Error):
    """A DemoError shown to the user as it is (no stack trace in the log)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_exception=False)


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show DemoError messages in the UI / API; log anything else with its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DemoError as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}); the details are in the server log.") \
                from exc

    return wrapper


def _progress_bridge(progress: gr.Progress | None, desc: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress((done, max(total, 1)), desc=desc)

    return report


class Studio:
    """Everything the UI calls, bound to one store; one instance per app."""

    def __init__(self, settings: Settings, auto_embed_seconds: float = AUTO_EMBED_SECONDS) -> None:
        self.settings = settings
        self.auto_embed_seconds = float(auto_embed_seconds)
        settings.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path)
        self.search_service = SearchService(self.store)
        self.sessions = Sessions(self.store, settings.private_corpus_idle_s)
        self.meter = ThroughputMeter()
        self._heavy = threading.BoundedSemaphore(max(1, settings.heavy_concurrency))
        self._cancel: dict[str, threading.Event] = {}
        self._cancel_lock = threading.Lock()
        self._availability: dict[str, Any] = {}
        self._embedded: set[tuple[int, int, str, str]] = set()  # (corpus, revision, model, variant) ready
        self.sample_corpus_id: Any = None

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> None:
        """Check which models are available and make sure the shared sample corpus is embedded."""
        if not self._availability:
            with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:  # hub checks time out in parallel
                found = list(pool.map(lambda k: availability(k, self.settings), MODELS))
            self._availability = {a.key: a for a in found}
        self._sweep(force=True)
        if self.sample_corpus_id is None:
            self.sample_corpus_id = self._ensure_sample()

    def _ensure_sample(self) -> Any:
        found = self.store.find_corpus(SAMPLE_CORPUS_NAME, None)
        if found is not None:
            corpus_id = found.id
        else:
            docs = sample_documents((SAMPLE_LANGUAGE,))
            # The first paragraph of each article: 48 paragraphs, quick to embed on two CPU cores, and
            # they hold the answers to the example questions (sample_queries asks about them).
            docs = [d for d in docs if str(d.metadata.get("paragraph_id", "")).endswith("-0")]
            enc = get_encoder(STAND_IN_KEY, "standard")
            size, overlap = default_chunking(STAND_IN_KEY, "standard")
            chunks = [chunk_text(d.text, enc.tokenizer, size, overlap) for d in docs]
            corpus_id = self.store.add_corpus(SAMPLE_CORPUS_NAME, docs, chunks, owner=None,
                                              chunking={"chunk_tokens": size, "overlap_tokens": overlap,
                                                        "tokenizer": enc.name},
                                              source="sample")
        self._embed(corpus_id, get_encoder(STAND_IN_KEY, "standard"), None, None)
        return corpus_id

    # ------------------------------------------------------------------ model controls

    def model_available(self, key: str) -> Any:
        a = self._availability.get(key)
        if a is None:
            a = self._availability[key] = availability(key, self.settings)
        return a

    def model_choices(self) -> ModelChoices:
        sizes = []
        for label, size in SIZES:
            keys = [model_key_for(size, v) for v in VARIANT_LABELS]
            ok = any(self.model_available(k).available for k in keys)
            sizes.append((label if ok else f"{label} (not available here)", size))
        return ModelChoices(sizes=sizes, variants=[(lab, v) for v, lab in VARIANT_LABELS.items()])

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
        ctx = " Chunks are embedded in the context of their whole document." if variant == "contextual" else ""
        return views.notice_html(f"Using {spec.display_name}: {spec.dim}-d, {spec.params} parameters "
                                 f"({a.reason}).{ctx}{extra}", kind)

    def chunking_for(self, model_size: str, variant: str) -> tuple[int, int]:
        return default_chunking(model_key_for(model_size, variant), variant)

    def matryoshka_choices(self, model_size: str, variant: str) -> list[tuple[str, str]]:
        spec = MODELS[model_key_for(model_size, variant)]
        return [("full", "full")] + [(f"{d}", str(d)) for d in spec.matryoshka_dims if d < spec.dim]

    def on_dataset_change(self, dataset: str) -> tuple[Any, ...]:
        """Show only the inputs the chosen kind of labelled data needs."""
        xquad, beir, own = dataset == "xquad", dataset == "beir", dataset == "corpus"
        return (gr.update(visible=xquad), gr.update(visible=xquad), gr.update(visible=beir),
                gr.update(visible=own), gr.update(visible=own))

    def on_model_change(self, model_size: str, variant: str) -> tuple[Any, ...]:
        key = model_key_for(model_size, variant)
        ok = self.model_available(key).available
        size, overlap = self.chunking_for(model_size, variant)
        buttons = [gr.update(interactive=ok) for _ in range(4)]
        dims = self.matryoshka_choices(model_size, variant)
        return (self.model_note(model_size, variant), gr.update(value=size), gr.update(value=overlap),
                gr.update(choices=dims, value="full"), gr.update(choices=[d for d in dims if d[1] != "full"], value=[]),
                *buttons)

    # ------------------------------------------------------------------ sessions and corpora

    def _who(self, session_key: str | None, request: gr.Request | None) -> tuple[str, str]:
        self._sweep()
        return self.sessions.resolve(session_key, getattr(request, "session_hash", None))

    def start_session(self, stored_key: Any, request: gr.Request) -> tuple[Any, ...]:
        """On page load: reuse the key kept in this browser, or mint one."""
        key = stored_key if isinstance(stored_key, str) and stored_key else new_session_key()
        try:
            _, owner = self.sessions.resolve(key, None)
        except DemoError:  # a corrupted stored key: start a fresh private space
            key = new_session_key()
            _, owner = self.sessions.resolve(key, None)
        self._sweep()
        return key, key, self._corpus_dropdown(owner), self._corpora_frame(owner)

    def _sweep(self, force: bool = False) -> None:
        """Delete idle private corpora (rate-limited) and drop their cached indexes."""
        for corpus_id in self.sessions.sweep(force=force) or []:
            self.search_service.forget(corpus_id)
            log.info("private corpus %s expired", corpus_id)

    def _visible(self, owner: str) -> list[Any]:
        """Corpora this owner may use, without the datasets evaluation runs store for themselves."""
        return [c for c in self.store.list_corpora(owner) if not is_eval_corpus(c.name)]

    def _corpus_label(self, c: Any) -> str:
        scope = "shared" if c.owner is None else "private"
        return f"{c.name} · {c.n_chunks} chunks · {scope}"

    def _corpus_dropdown(self, owner: str, selected: Any = None) -> Any:
        corpora = self._visible(owner)
        choices = [(self._corpus_label(c), str(c.id)) for c in corpora]
        value = str(selected) if selected is not None else (choices[0][1] if choices else None)
        if selected is None and self.sample_corpus_id is not None:
            value = str(self.sample_corpus_id)
        return gr.update(choices=choices, value=value)

    def _corpora_frame(self, owner: str) -> pd.DataFrame:
        rows = [{"id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "visibility": "shared (read-only)" if c.owner is None else "private to you"}
                for c in self._visible(owner)]
        return pd.DataFrame(rows, columns=["id", "name", "documents", "chunks", "visibility"])

    def _corpus_for(self, corpus_ref: Any, owner: str) -> Any:
        """The corpus if this session may use it; the same error whether it is missing or someone else's."""
        try:
            corpus_id = int(str(corpus_ref).strip())
        except (TypeError, ValueError):
            raise DemoError("Choose a corpus first (the Corpus tab lists the ones you can search).") from None
        try:
            c = self.store.check_access(corpus_id, owner)
        except DemoError:
            raise DemoError(f"There is no corpus {corpus_id} in this session: it may have expired after "
                            f"{self.settings.private_corpus_idle_s / 60:g} idle minutes, or belong to another "
                            "session.") from None
        if c.owner is not None:
            self.store.touch_corpus(corpus_id)
        return c

    @_user_errors
    def corpora(self, session_key: str, request: gr.Request) -> list[dict]:
        """The corpora this session may search: the shared sample plus its own private ones."""
        _, owner = self._who(session_key, request)
        return [{"corpus_id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "tokens": c.n_tokens, "languages": c.languages, "shared": c.owner is None}
                for c in self._visible(owner)]

    # ------------------------------------------------------------------ heavy work

    def _cancel_event(self, key: str) -> threading.Event:
        with self._cancel_lock:
            ev = self._cancel.get(key)
            if ev is None or ev.is_set():
                ev = self._cancel[key] = threading.Event()
            return ev

    def stop(self, session_key: str, request: gr.Request) -> str:
        key, _ = self._who(session_key, request)
        with self._cancel_lock:
            ev = self._cancel.get(key)
        if ev is not None:
            ev.set()
        return views.notice_html("Stopped. Nothing half-done was kept.", "warn")

    def _embed(self, corpus_id: int, encoder: Any, progress: gr.Progress | None,
               cancel: threading.Event | None) -> tuple[float, int]:
        """Embed what is missing of a corpus under the heavy-work semaphore: (seconds, chunks embedded)."""
        with self._heavy:
            start = time.perf_counter()
            matrix = _run_embedding(self.store, corpus_id, encoder,
                                    _progress_bridge(progress, f"Embedding with {encoder.name}"), cancel)
            seconds = time.perf_counter() - start
        if matrix.embedded_now:
            table_tokens = self.store.get_corpus(corpus_id).n_tokens
            share = matrix.embedded_now / max(1, len(matrix.chunk_ids))
            self.meter.record(encoder, int(table_tokens * share), seconds)
        return seconds, int(matrix.embedded_now)

    def _add_corpus(self, name: str, documents: list[Any], problems: list[tuple[str, str]], source: str,
                    model_size: str, variant: str, chunk_tokens: int, overlap_tokens: int, key: str, owner: str,
                    progress: gr.Progress | None, cancel: threading.Event) -> tuple[Any, ...]:
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = get_encoder(model_key, enc_variant)
        chunk_tokens, overlap_tokens = int(chunk_tokens), int(overlap_tokens)
        chunks = []
        for i, doc in enumerate(documents):
            if cancel.is_set():
                raise Cancelled("Stopped before the corpus was stored; nothing was kept.")
            chunks.append(chunk_text(doc.text, encoder.tokenizer, chunk_tokens, overlap_tokens))
            if progress is not None:
                progress((i + 1, len(documents)), desc="Chunking")
        for doc in documents:  # record each document's language so the store can list it too
            if not doc.metadata.get("lang"):
                lang = document_language(doc)
                if lang:
                    doc.metadata["lang"] = lang
        stats = corpus_stats(documents, chunks)
        if stats.chunks == 0:
            raise DemoError("The documents hold no text to search.")
        corpus_id = self.store.add_corpus(name, documents, chunks, owner=owner, source=source,
                                          chunking={"chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens,
                                                    "tokenizer": encoder.name})
        estimate = self.meter.estimate(encoder, stats.tokens)
        if estimate.seconds <= self.auto_embed_seconds:
            seconds, _ = self._embed(corpus_id, encoder, progress, cancel)
            status = views.notice_html(f"Added {name!s} ({stats.chunks} chunks) and embedded it with "
                                       f"{encoder.name} in {seconds:.1f} s (estimated: {estimate.describe()}).")
        else:
            status = views.notice_html(f"Added {name!s} ({stats.chunks} chunks). Embedding will take "
                                       f"{estimate.describe()}. Press 'Embed the selected corpus now', or search: "
                                       "the first search embeds it.", "warn")
        handle = {"corpus_id": corpus_id, "session_key": key, "name": name, "documents": stats.documents,
                  "chunks": stats.chunks, "tokens": stats.tokens, "languages": stats.languages,
                  "model": encoder.name, "estimated_embedding_seconds": round(estimate.seconds, 2),
                  "rejected": [{"name": n, "reason": r} for n, r in problems]}
        log.info("corpus %s added: %d docs, %d chunks, %d rejected", corpus_id, stats.documents, stats.chunks,
                 len(problems))
        return (handle, status, _stats_markdown(stats, encoder.name), _problems_frame(problems),
                self._corpus_dropdown(owner, corpus_id), self._corpora_frame(owner), key)

    # ------------------------------------------------------------------ API endpoints

    @_user_errors
    def ingest(self, files: list[str] | None, corpus_name: str, model_size: str, variant: str, chunk_tokens: float,
               overlap_tokens: float, session_key: str, request: gr.Request,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Upload files into a new private corpus (chunked with the chosen model's tokenizer and embedded)."""
        key, owner = self._who(session_key, request)
        paths = [f if isinstance(f, str) else getattr(f, "path", str(f)) for f in (files or [])]
        if not paths:
            raise DemoError("Choose at least one file to upload.")
        names = [Path(p).name for p in paths]
        report = load_files(paths, self.settings, display_names=names)
        problems = [(r.name, r.reason) for r in report.rejected]
        if not report.documents:
            detail = "; ".join(f"{n}: {r}" for n, r in problems[:5]) or "no text found"
            raise DemoError(f"No document could be read ({detail}).")
        name = (corpus_name or "").strip() or (names[0] if len(names) == 1 else f"{len(names)} uploaded files")
        cancel = self._cancel_event(key)
        return self._add_corpus(name, report.documents, problems, "upload", model_size, variant, chunk_tokens,
                                overlap_tokens, key, owner, progress, cancel)

    @_user_errors
    def crawl(self, url: str, max_pages: float, max_depth: float, same_host: bool, corpus_name: str,
              model_size: str, variant: str, chunk_tokens: float, overlap_tokens: float, session_key: str,
              request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Crawl a site (within the limits) into a new private corpus."""
        key, owner = self._who(session_key, request)
        urls = [u for u in (url or "").split() if u]
        options = CrawlOptions.from_settings(self.settings, max_pages=min(int(max_pages), self.settings.crawl_max_pages),
                                             max_depth=min(int(max_depth), self.settings.crawl_max_depth),
                                             same_host=bool(same_host))
        cancel = self._cancel_event(key)
        report = crawl(urls, options, progress=_progress_bridge(progress, "Crawling"), cancel=cancel)
        problems = [(u, r) for u, r in report.failed] + [(u, r) for u, r in report.skipped]
        if report.stopped:
            problems.insert(0, ("(crawl)", f"stopped early: {report.stopped}"))
        if not report.documents:
            detail = "; ".join(f"{u}: {r}" for u, r in problems[:3]) or "no pages with text"
            raise DemoError(f"The crawl found no documents ({detail}).")
        name = (corpus_name or "").strip() or urls[0]
        return self._add_corpus(name, report.documents, problems, "crawl", model_size, variant, chunk_tokens,
                                overlap_tokens, key, owner, progress, cancel)

    @_user_errors
    def embed(self, corpus: str, model_size: str, variant: str, session_key: str, request: gr.Request,
              progress: gr.Progress = gr.Progress()) -> str:
        """Embed a corpus with the chosen model now (otherwise the first search does it)."""
        key, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = get_encoder(model_key, enc_variant)
        seconds, done = self._embed(c.id, encoder, progress, self._cancel_event(key))
        if not done:
            return views.notice_html(f"{c.name} was already embedded with {encoder.name}.")
        return views.notice_html(f"{c.name}: embedded {done} chunks with {encoder.name} in {seconds:.1f} s.")

    @_user_errors
    def search(self, corpus: str, query: str, model_size: str, variant: str, configurations: list[str],
               top_k: float, rescore_multiplier: float, matryoshka: str, session_key: str, history: list | None,
               request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[str, dict, list]:
        """Search one corpus with every ticked configuration; one ranked column per configuration."""
        _, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        if not (query or "").strip():
            raise DemoError("Type a query first.")
        configs = configs_for(configurations or [], matryoshka, int(rescore_multiplier))
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = get_encoder(model_key, enc_variant)
        ready = (c.id, c.revision, str(encoder.model_key), str(encoder.variant))
        if ready not in self._embedded:  # first search of this corpus with this model: may embed (heavy)
            self._embed(c.id, encoder, progress, None)
            self._embedded.add(ready)
        response = self.search_service.search(c.id, model_key, enc_variant, configs, query.strip(), int(top_k))
        runs = list(history or [])[-(HISTORY_RUNS - 1):] + [response]
        return views.results_html(response, query, BASELINE.label), _response_json(response, c), runs

    def compare_charts(self, history: list | None, last_eval: Any) -> tuple[Any, ...]:
        runs = list(history or [])
        last = runs[-1] if runs else None
        quality = last_eval.points() if last_eval is not None else []
        frontier = last_eval.frontier() if last_eval is not None else []
        return (charts.latency_figure([r.columns for r in runs]),
                charts.storage_figure(last.columns if last else [],
                                      last.columns[0].storage.n_vectors if last and last.columns else None),
                charts.quality_bytes_figure(quality, QUALITY_METRIC, frontier),
                charts.score_distribution_figure(last.columns if last else []))

    def empty_charts(self) -> tuple[Any, ...]:
        return (charts.latency_figure([]), charts.storage_figure([]), charts.quality_bytes_figure([], QUALITY_METRIC),
                charts.score_distribution_figure([]), charts.per_language_figure({}, QUALITY_METRIC))

    @_user_errors
    def evaluate(self, dataset: str, languages: list[str], query_language: str, beir_zip: str | None,
                 queries_file: str | None, qrels_file: str | None, max_queries: float, model_size: str,
                 variant: str, configurations: list[str], matryoshka_sizes: list[str], corpus: str,
                 session_key: str, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Quality of every ticked configuration on labelled data: XQuAD, an uploaded BEIR zip, or a
        corpus of yours with uploaded queries and qrels."""
        _, owner = self._who(session_key, request)
        model_key, enc_variant = encoder_args(model_size, variant)
        dims: list[str | None] = ["full", *[d for d in (matryoshka_sizes or []) if d != "full"]]
        configs = [c for d in dims for c in configs_for(configurations or [], d, 4)]
        bridge = _progress_bridge(progress, "Embedding the evaluation data")
        reports = []
        with self._heavy:
            if dataset == "xquad":
                if not languages:
                    raise DemoError("Tick at least one XQuAD language.")
                for lang in languages:
                    qlang = None if query_language in (None, "", "same as corpus") else query_language
                    data = _limit_queries(load_xquad(lang, qlang), int(max_queries))
                    reports.append(_run_gpu(run_evaluation, self.store, data, model_key, enc_variant, configs,
                                            progress=bridge))
            elif dataset == "beir":
                if not beir_zip:
                    raise DemoError("Upload a BEIR folder as a zip (corpus.jsonl, queries.jsonl, qrels/test.tsv).")
                data = _limit_queries(load_beir_zip(_path_of(beir_zip), self.settings), int(max_queries))
                reports.append(_run_gpu(run_evaluation, self.store, data, model_key, enc_variant, configs,
                                        progress=bridge, owner=owner))
            elif dataset == "corpus":
                c = self._corpus_for(corpus, owner)
                if not queries_file or not qrels_file:
                    raise DemoError("Upload a queries file (jsonl or tsv) and a qrels file (tsv) for this corpus.")
                queries = queries_from_file(_path_of(queries_file))
                qrels = qrels_from_file(_path_of(qrels_file))
                reports.append(_run_gpu(run_corpus_evaluation, self.store, c.id, queries, qrels, model_key,
                                        enc_variant, configs, progress=bridge, owner=owner))
            else:
                raise DemoError(f"Unknown labelled data {dataset!r}: use 'xquad', 'beir' or 'corpus'.")
        view = EvalView(reports)
        rows = [{"dataset": r.dataset, **{k: v for k, v in row.items() if k not in ("model", "variant")}}
                for r in reports for row in report_rows(r)]
        table = pd.DataFrame(rows)
        points = view.points()
        return (_eval_status(reports), table, charts.quality_bytes_figure(points, QUALITY_METRIC, view.frontier()),
                charts.per_language_figure({r.dataset: r.results for r in reports}, QUALITY_METRIC), view)

    # ------------------------------------------------------------------ texts

    def example_queries(self) -> list[str]:
        return sample_queries(SAMPLE_LANGUAGE, 8)

    def xquad_languages(self) -> tuple[str, ...]:
        from pplx_demo.evaluate.datasets import XQUAD_LANGUAGES  # noqa: PLC0415

        return XQUAD_LANGUAGES

    def sample_note(self) -> str:
        return (f"**{SAMPLE_CORPUS_NAME}** is shared by everyone, read-only, and already embedded with the "
                f"offline stand-in. Pick it in the Search tab.\n\n{SAMPLE_ATTRIBUTION}")

    def about_markdown(self) -> str:
        """Models, their published numbers, our reproduction and availability here, all read from data."""
        lines = ["## Models", "",
                 "| model | parameters | dimensions | context (tokens) | int8 | Matryoshka sizes | licence | "
                 "available here |", "|---|---|---|---|---|---|---|---|"]
        for key, spec in MODELS.items():
            a = self.model_available(key)
            dims = ", ".join(str(d) for d in spec.matryoshka_dims)
            lines.append(f"| {_md(spec.display_name)} | {spec.params} | {spec.dim} | {spec.max_context:,} | "
                         f"{spec.int8_scheme} | {dims} | {spec.licence} | {'yes' if a.available else '**no**'} |")
        lines += ["", "### Availability on this machine", ""]
        for key, spec in MODELS.items():
            a = self.model_available(key)
            if a.available:
                lines.append(f"- **{_md(spec.display_name)}**: available ({_md(a.reason)}).")
            else:
                lines.append(f"- **{_md(spec.display_name)}**: not available: {_md(a.reason)}. "
                             f"To enable it: {_md(a.how_to_enable)}.")
        lines += ["", "## Published results (from the model cards)", "", "| model | benchmark | score |", "|---|---|---|"]
        for spec in MODELS.values():
            for bench, score in spec.published.items():
                lines.append(f"| {_md(spec.display_name)} | {_md(bench)} | {score:g} |")
        lines += ["", "## Reproduced here", ""]
        rep = load_reproduction()
        if rep is None or not rep.rows:
            lines.append("No reproduction has been recorded yet (`python benchmarks/bench_eval.py` writes "
                         "`benchmarks/reproduction.json`).")
        else:
            lines += [f"Command: `{_md(rep.command)}` · machine: {_md(rep.machine)} · date: {_md(rep.date)}", "",
                      "| dataset | system | published | ours | difference | within tolerance |",
                      "|---|---|---|---|---|---|"]
            for row in rep.rows:
                lines.append(f"| {_md(row.dataset)} | {_md(row.system)} | {row.published:.1f} | {row.ours:.2f} | "
                             f"{row.delta:+.2f} | {'yes' if row.within else 'no'} (±{row.tolerance:g}) |")
            lines += [f"- {_md(n)}" for n in rep.notes]
        idle_min = self.settings.private_corpus_idle_s / 60
        lines += ["", "## How the numbers are made", "",
                  "- Storage per vector of d dimensions: float32 4·d bytes, int8 d bytes, binary d/8 bytes; "
                  "the studio reports the bytes the index arrays really hold, and projects them to 1M, 100M "
                  "and 1B vectors.",
                  "- Every column is compared with an exact float32 search of the same query: overlap@k is "
                  "the share of the float32 top-k it also finds, and each hit shows its float32 rank.",
                  "- pplx-embed int8 is the models' own tanh quantisation; the stand-in uses per-dimension "
                  "ranges calibrated on the corpus. Binary keeps the sign of each float coordinate; rescoring "
                  "re-ranks the binary candidates with int8 vectors.",
                  "", "## Privacy", "",
                  f"Files you upload and sites you crawl form private corpora that only your browser (or API "
                  f"session key) can list, search or evaluate. They are deleted after {idle_min:g} idle "
                  "minutes. The sample corpus is shared and read-only. Queries and document text are not "
                  "written to the logs.",
                  "", "## Data", "", SAMPLE_ATTRIBUTION]
        return "\n".join(lines)


@dataclass(frozen=True)
class QualityPoint:
    """One configuration's quality averaged over the datasets of an evaluation run (for the charts)."""

    label: str
    bytes_per_vector: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class EvalView:
    """The reports of the last evaluation of a session."""

    reports: list[EvalReport]

    def points(self) -> list[QualityPoint]:
        labels = list(dict.fromkeys(r.label for rep in self.reports for r in rep.results))
        out = []
        for label in labels:
            rs = [r for rep in self.reports for r in rep.results if r.label == label]
            metrics = {m: sum(r.metrics[m] for r in rs) / len(rs) for m in rs[0].metrics}
            out.append(QualityPoint(label, rs[0].bytes_per_vector, metrics))
        return out

    def frontier(self) -> list[str]:
        pts = self.points()
        return [pts[i].label for i in pareto_frontier([(p.bytes_per_vector, p.metrics[QUALITY_METRIC]) for p in pts])]


def _limit_queries(data: RetrievalDataset, n: int) -> RetrievalDataset:
    """The dataset with only its first `n` judged queries (all documents stay)."""
    keep = data.judged_queries()[: max(1, n)]
    if len(keep) == len(data.queries):
        return data
    return replace(data, queries={q: data.queries[q] for q in keep}, qrels={q: data.qrels[q] for q in keep})


def _run_gpu(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return gpu_task(duration=300)(fn)(*args, **kwargs)


def _path_of(upload: Any) -> str:
    return upload if isinstance(upload, str) else getattr(upload, "path", str(upload))


def _eval_status(reports: list[EvalReport]) -> str:
    parts = []
    for r in reports:
        bm25 = f"; BM25 ({r.bm25_setup}) nDCG@10 {100 * r.bm25[QUALITY_METRIC]:.1f}" if r.bm25 else ""
        parts.append(f"{r.dataset}: {r.n_queries} queries over {r.n_documents} documents ({r.n_chunks} chunks), "
                     f"{r.embedded_now} texts embedded now{bm25}")
    model = reports[0].model_name if reports else ""
    return views.notice_html(f"Evaluated with {model}. " + " · ".join(parts))


def _run_embedding(store: Any, corpus_id: Any, encoder: Any, progress: Callable[[int, int], None] | None,
                   cancel: threading.Event | None) -> Any:
    @gpu_task()
    def run() -> Any:
        return store.embeddings(corpus_id, encoder, progress=progress, cancel=cancel)

    return run()


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (escaped HTML, no pipes or newlines)."""
    return views.esc(text).replace("|", "\\|").replace("\n", " ")


def _stats_markdown(stats: CorpusStats, model_name: str) -> str:
    return views.corpus_stats_markdown({
        "documents": f"{stats.documents:,}", "chunks": f"{stats.chunks:,}", "tokens": f"{stats.tokens:,}",
        "characters": f"{stats.characters:,}", "languages": stats.languages_text(),
        "tokenizer": model_name})


def _problems_frame(problems: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(problems, columns=["file / page", "why it was not loaded"])


def _response_json(response: Any, corpus: Any) -> dict[str, Any]:
    return {
        "corpus_id": corpus.id, "model": response.model_name,
        "columns": [{
            "configuration": col.label, "model": response.model_name,
            "timings_ms": {k: round(v, 3) for k, v in col.timings_ms.items()},
            "overlap_at_k": col.overlap_at_k, "rank_correlation": col.rank_correlation,
            "bytes_per_vector": col.storage.bytes_per_vector, "index_bytes": col.storage.index_nbytes,
            "ratio_vs_float32": col.storage.ratio_vs_float32, "projections": col.storage.projections,
            "hits": [{"rank": h.rank, "score": round(float(h.score), 6), "title": h.title, "uri": h.uri,
                      "text": h.text, "float32_rank": h.baseline_rank} for h in col.hits],
        } for col in response.columns],
    }
