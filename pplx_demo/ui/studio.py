"""Event handlers of the studio: each turns widget values into domain calls and results into views.

No retrieval logic here: models, store, chunking, search and evaluation are the domain modules';
this module resolves who is calling (session key), checks they may see the corpus, holds the
heavy-work semaphore, bridges progress bars, and formats what comes back.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from pplx_demo import charts
from pplx_demo.config import Settings
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.evaluate.beir_zip import load_beir_zip
from pplx_demo.evaluate.contextual import DEFAULT_QUERY, DEMO_QUERIES, contextual_demo
from pplx_demo.evaluate.datasets import XQUAD_LANGUAGES, RetrievalDataset, load_xquad, qrels_from_file, \
    queries_from_file
from pplx_demo.evaluate.reproduction import load_reproduction
from pplx_demo.evaluate.runner import (EvalReport, is_eval_corpus, pareto_frontier, report_rows, report_warnings,
                                       run_corpus_evaluation, run_evaluation, run_variant_pair, variant_keys)
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.ingest.chunking import chunk_text, default_chunking, encoder_token_budget, validate_chunking
from pplx_demo.ingest.crawler import CrawlOptions, crawl
from pplx_demo.ingest.formats import load_files
from pplx_demo.ingest.sample import (SAMPLE_ATTRIBUTION, SAMPLE_CORPUS_NAME, STARTER_LANGUAGES, sample_queries,
                                     starter_documents)
from pplx_demo.models import MODELS, STAND_IN_KEY, availability, pplx_key
from pplx_demo.search import BASELINE, SearchService
from pplx_demo.sessions import Sessions, new_session_key
from pplx_demo.stats import CorpusStats, corpus_stats, document_language
from pplx_demo.storage import storage_report
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter, format_duration
from pplx_demo.ui import views
from pplx_demo.ui.gpu import gpu_encoder
from pplx_demo.ui.views import plural

log = logging.getLogger(__name__)

SEARCH_CONCURRENCY = 4
QUALITY_METRIC = "ndcg@10"
AUTO_EMBED_SECONDS = 60.0  # embed right after ingestion when the estimate is below this
HISTORY_RUNS = 20
MAX_TOP_K = 50
MAX_RESCORE_MULTIPLIER = 10
EVAL_SEED = 0  # the evaluation's query sample is random but repeatable
SMALL_EVAL = 100  # fewer queries than this: the numbers are mostly noise, and the studio says so
DEFAULT_EVAL_QUERIES = 300
PAIR_CHUNK_TOKENS = 64  # late chunking needs several chunks per document: XQuAD paragraphs are ~150 tokens

# The configurations a user can tick, in display order; the first is the reference column.
CONFIG_CHOICES: tuple[str, ...] = ("float32", "int8", "binary", "binary + rescore", "binary asymmetric")
DEFAULT_CONFIGS: tuple[str, ...] = ("float32", "int8", "binary", "binary + rescore")
DATASET_CHOICES: tuple[tuple[str, str], ...] = (
    ("XQuAD (built in; 12 languages, cross-lingual)", "xquad"),
    ("BEIR folder (zip upload)", "beir"),
    ("The corpus chosen in Search + queries and qrels files", "corpus"),
)
SIZES: tuple[tuple[str, str], ...] = (("pplx-embed 0.6B", "0.6B"), ("pplx-embed 4B", "4B"),
                                      ("all-MiniLM-L6-v2 (offline stand-in)", "stand-in"))
VARIANTS = ("standard", "contextual")


def model_key_for(model_size: str, variant: str) -> str:
    """Registry key for the Model and Variant controls."""
    if variant not in VARIANTS:
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


def variant_choices(model_size: str) -> list[tuple[str, str]]:
    """The Variant radio's labels, naming the model that each choice really runs."""
    if model_size == "stand-in":
        name = charts.short_model_name(MODELS[STAND_IN_KEY].display_name)
        return [(f"standard ({name})", "standard"), (f"late chunking ({name}, not trained for it)", "contextual")]
    return [(f"standard ({MODELS[model_key_for(model_size, 'standard')].display_name})", "standard"),
            (f"late chunking ({MODELS[model_key_for(model_size, 'contextual')].display_name})", "contextual")]


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


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]; DemoError naming the parameter otherwise (3.0 is fine, 2.5 is not)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or not low <= number <= high:
        raise DemoError(f"{name} must be a whole number from {low} to {high} (got {value!r}).")
    return int(number)


def sample_queries_of(data: RetrievalDataset, n: int, seed: int = EVAL_SEED) -> RetrievalDataset:
    """The dataset with a seeded random sample of `n` of its judged queries (all documents stay).

    Random, not the first n: files are ordered by article, so a prefix covers a few topics only.
    """
    judged = data.judged_queries()
    if n >= len(judged):
        keep = judged
    else:
        picked = set(random.Random(seed).sample(judged, max(1, n)))
        keep = [q for q in judged if q in picked]  # file order, for stable tables
    if len(keep) == len(data.queries):
        return data
    return replace(data, queries={q: data.queries[q] for q in keep}, qrels={q: data.qrels[q] for q in keep})


def app_wording(reason: str) -> str:
    """A domain message reworded for the app: name the server setting, not a CLI flag."""
    reason = re.sub(r"\s*\(\s*allow_private\s*/\s*--allow-private\s*\)|\s*\(?--allow-private\)?",
                    " with the server setting PPLX_DEMO_ALLOW_PRIVATE=1", reason)
    return re.sub(r"\s*\(--[a-z][a-z-]*\)", "", reason)  # other CLI options mean nothing in the app


@dataclass(frozen=True)
class ModelChoices:
    sizes: list[tuple[str, str]]
    variants: list[tuple[str, str]]


@dataclass(frozen=True)
class EmbedOutcome:
    """What one embedding job did: seconds, chunks embedded now, chunks the encoder cut, corpus chunks."""

    seconds: float
    embedded: int
    truncated: int
    chunks: int


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
        # Encoders come wrapped so that only their forward passes are ZeroGPU tasks.
        self.search_service = SearchService(self.store, encoder_loader=gpu_encoder)
        self.sessions = Sessions(self.store, settings.private_corpus_idle_s)
        self.meter = ThroughputMeter()
        self._heavy = threading.BoundedSemaphore(max(1, settings.heavy_concurrency))
        self._cancel: dict[str, threading.Event] = {}
        self._cancel_lock = threading.Lock()
        self._availability: dict[str, Any] = {}
        self._embedded: set[tuple[int, int, str, str]] = set()  # (corpus, revision, model, variant) ready
        self.sample_corpus_id: Any = None
        self.sample_seconds: float | None = None  # how long the first start took to load the sample

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> None:
        """Check which models are available and make sure the shared sample corpus is embedded."""
        if not self._availability:
            with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:  # hub checks time out in parallel
                found = list(pool.map(lambda k: availability(k, self.settings), MODELS))
            self._availability = {a.key: a for a in found}
        self._sweep(force=True)
        if self.sample_corpus_id is None:
            start = time.perf_counter()
            self.sample_corpus_id = self._ensure_sample()
            self.sample_seconds = time.perf_counter() - start
            log.info("sample corpus ready in %.1f s", self.sample_seconds)

    def _ensure_sample(self) -> Any:
        """The shared starter corpus (first paragraph of each XQuAD article in STARTER_LANGUAGES),
        stored and embedded with the stand-in; languages missing from an older store are added."""
        enc = gpu_encoder(STAND_IN_KEY, "standard")
        size, overlap = default_chunking(STAND_IN_KEY, "standard")
        found = self.store.find_corpus(SAMPLE_CORPUS_NAME, None)
        missing = [lang for lang in STARTER_LANGUAGES if found is None or lang not in found.languages]
        docs = starter_documents(missing) if missing else []
        chunks = [chunk_text(d.text, enc.tokenizer, size, overlap) for d in docs]
        if found is None:
            corpus_id = self.store.add_corpus(SAMPLE_CORPUS_NAME, docs, chunks, owner=None,
                                              chunking={"chunk_tokens": size, "overlap_tokens": overlap,
                                                        "tokenizer": enc.name},
                                              source="sample")
        else:
            corpus_id = found.id
            if docs:
                self.store.add_documents(corpus_id, docs, chunks)
        self._embed(corpus_id, enc, None, None)
        return corpus_id

    # ------------------------------------------------------------------ model controls

    def model_available(self, key: str) -> Any:
        a = self._availability.get(key)
        if a is None:
            a = self._availability[key] = availability(key, self.settings)
        return a

    def model_choices(self, model_size: str) -> ModelChoices:
        sizes = []
        for label, size in SIZES:
            keys = [model_key_for(size, v) for v in VARIANTS]
            ok = any(self.model_available(k).available for k in keys)
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

    def chunk_budget(self, model_size: str, variant: str) -> int:
        """Tokens of text one chunk may hold for this model: its window minus its special tokens.

        Available models are asked (the window depends on the device and its settings); for one that
        cannot be loaded here, its context capped by this machine's setting is the best guess.
        """
        key, enc_variant = encoder_args(model_size, variant)
        if self.model_available(key).available:
            return encoder_token_budget(gpu_encoder(key, enc_variant))
        spec = MODELS[key]
        return min(spec.max_context, self.settings.max_tokens_cpu)

    def chunking_for(self, model_size: str, variant: str) -> tuple[int, int, int]:
        """(default chunk tokens, default overlap, largest chunk the model reads) for the controls."""
        budget = self.chunk_budget(model_size, variant)
        size, overlap = default_chunking(model_key_for(model_size, variant), variant)
        size = min(size, budget)
        return size, min(overlap, size - 1), budget

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

    def on_model_change(self, model_size: str, variant: str) -> tuple[Any, ...]:
        key = model_key_for(model_size, variant)
        ok = self.model_available(key).available
        chunk, overlap = self.chunk_sliders(model_size, variant) if ok else (gr.update(), gr.update())
        pair = gr.update(maximum=min(512, self.pair_chunk_max(model_size))) if ok else gr.update()
        buttons = [gr.update(interactive=ok) for _ in range(5)]
        dims = self.matryoshka_choices(model_size, variant)
        return (self.model_note(model_size, variant), gr.update(choices=variant_choices(model_size)), chunk, overlap,
                gr.update(choices=dims, value="full"), gr.update(choices=[d for d in dims if d[1] != "full"], value=[]),
                pair, *buttons)

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

    def on_dataset_change(self, dataset: str, languages: list[str] | None) -> tuple[Any, ...]:
        """Show only the inputs the chosen kind of labelled data needs; the query slider's maximum."""
        xquad, beir, own = dataset == "xquad", dataset == "beir", dataset == "corpus"
        top = self.max_queries_for(dataset, languages)
        return (gr.update(visible=xquad), gr.update(visible=xquad), gr.update(visible=beir),
                gr.update(visible=own), gr.update(visible=own), gr.update(maximum=top, visible=not own))

    def on_pair_change(self, pair: bool) -> Any:
        return gr.update(visible=bool(pair))

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
        return f"{c.name} · {plural(c.n_chunks, 'chunk')} · {scope}"

    def _corpus_dropdown(self, owner: str, selected: Any = None) -> Any:
        corpora = self._visible(owner)
        choices = [(self._corpus_label(c), str(c.id)) for c in corpora]
        value = str(selected) if selected is not None else (choices[0][1] if choices else None)
        if selected is None and self.sample_corpus_id is not None:
            value = str(self.sample_corpus_id)
        return gr.update(choices=choices, value=value)

    def _corpora_frame(self, owner: str) -> pd.DataFrame:
        rows = [{"id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "languages": ", ".join(c.languages), "visibility": "shared (read-only)" if c.owner is None
                 else "private to you"}
                for c in self._visible(owner)]
        return pd.DataFrame(rows, columns=["id", "name", "documents", "chunks", "languages", "visibility"])

    def _corpus_for(self, corpus_ref: Any, owner: str) -> Any:
        """The corpus if this session may use it; the same error whether it is missing or someone else's."""
        text = "" if corpus_ref is None else str(corpus_ref).strip()
        if not text:
            raise DemoError("Choose a corpus first (the Corpus tab lists the ones you can search).")
        try:
            corpus_id = int(text)
        except ValueError:
            raise DemoError(f"unknown corpus {text!r}: pass its corpus_id, the number that /ingest, /crawl and "
                            "/corpora return (names are not unique).") from None
        try:
            c = self.store.check_access(corpus_id, owner)
        except DemoError:
            raise DemoError(f"There is no corpus {corpus_id} in this session: it may have expired after "
                            f"{self.settings.private_corpus_idle_s / 60:g} idle minutes, or belong to another "
                            "session.") from None
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

    def stop(self, session_key: str, request: gr.Request) -> tuple[str, Any]:
        key, _ = self._who(session_key, request)
        with self._cancel_lock:
            ev = self._cancel.get(key)
        if ev is not None:
            ev.set()
        return views.notice_html("Stopped. Nothing half-done was kept.", "warn"), gr.update(visible=False)

    def _embed(self, corpus_id: int, encoder: Any, progress: gr.Progress | None,
               cancel: threading.Event | None) -> EmbedOutcome:
        """Embed what is missing of a corpus under the heavy-work semaphore."""
        with self._heavy:
            start = time.perf_counter()
            matrix = self.store.embeddings(corpus_id, encoder, cancel=cancel,
                                           progress=_progress_bridge(progress, f"Embedding with {encoder.name}"))
            seconds = time.perf_counter() - start
        if matrix.embedded_now:
            table_tokens = self.store.get_corpus(corpus_id).n_tokens
            share = matrix.embedded_now / max(1, len(matrix.chunk_ids))
            self.meter.record(encoder, int(table_tokens * share), seconds)
        return EmbedOutcome(seconds, int(matrix.embedded_now), int(matrix.truncated_now), len(matrix.chunk_ids))

    def _chunking(self, chunk_tokens: Any, overlap_tokens: Any, model_size: str, variant: str,
                  encoder: Any) -> tuple[int, int]:
        """Whole-number chunk size and overlap that this encoder reads in full (DemoError if not)."""
        default_size, default_overlap, budget = self.chunking_for(model_size, variant)
        size = default_size if chunk_tokens in (None, "") else whole_number(chunk_tokens, "chunk size", 1, 10**6)
        overlap = default_overlap if overlap_tokens in (None, "") else whole_number(overlap_tokens, "overlap", 0,
                                                                                    10**6)
        validate_chunking(size, overlap, encoder)
        return size, overlap

    def _add_corpus(self, name: str, documents: list[Any], problems: list[tuple[str, str]], source: str,
                    encoder: Any, chunking: tuple[int, int], key: str, owner: str,
                    progress: gr.Progress | None, cancel: threading.Event) -> tuple[Any, ...]:
        chunk_tokens, overlap_tokens = chunking
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
        model = charts.short_model_name(encoder.name)
        added = (f"Added “{name}”: {plural(stats.documents, 'document')}, {plural(stats.chunks, 'chunk')}"
                 + (f"; {plural(len(problems), 'file or page', 'files or pages')} not loaded" if problems else "")
                 + ".")
        truncated = 0
        if estimate.seconds <= self.auto_embed_seconds:
            outcome = self._embed(corpus_id, encoder, progress, cancel)
            truncated = outcome.truncated
            status = views.notice_html(f"{added} Embedded with {model} in {outcome.seconds:.1f} s "
                                       f"(estimated {format_duration(estimate.seconds)}).")
            status += self._truncation_notice(outcome.truncated, outcome.embedded, encoder)
        else:
            t = estimate.throughput
            status = views.notice_html(
                f"{added} Embedding its {plural(stats.tokens, 'token')} with {model} will take about "
                f"{format_duration(estimate.seconds)} (measured {t.tokens_per_s:,.0f} tokens/s on this machine, "
                f"{t.source}). Press “Embed “{name}” now”, or search it: the first search embeds it.", "warn")
        handle = {"corpus_id": corpus_id, "session_key": key, "name": name, "documents": stats.documents,
                  "chunks": stats.chunks, "tokens": stats.tokens, "languages": stats.languages,
                  "model": encoder.name, "chunk_tokens": chunk_tokens, "overlap_tokens": overlap_tokens,
                  "estimated_embedding_seconds": round(estimate.seconds, 2), "truncated": truncated,
                  "rejected": [{"name": n, "reason": r} for n, r in problems]}
        log.info("corpus %s added: %d docs, %d chunks, %d rejected", corpus_id, stats.documents, stats.chunks,
                 len(problems))
        return (handle, status, _stats_html(name, stats, encoder.name, chunking), _problems_frame(problems),
                self._corpus_dropdown(owner, corpus_id), self._corpora_frame(owner), key)

    @staticmethod
    def _truncation_notice(truncated: int, embedded: int, encoder: Any) -> str:
        if not truncated:
            return ""
        return views.notice_html(
            f"{plural(truncated, 'chunk')} of the {plural(embedded, 'chunk')} embedded now "
            f"{'was' if truncated == 1 else 'were'} longer than {charts.short_model_name(encoder.name)} reads "
            f"({encoder_token_budget(encoder)} tokens) and cut: their ends are not searchable. Chunk the corpus "
            "smaller for this model.", "warn")

    # ------------------------------------------------------------------ API endpoints

    @_user_errors
    def ingest(self, files: list[str] | None, corpus_name: str | None = None, model_size: str = "stand-in",
               variant: str = "standard", chunk_tokens: float | None = None, overlap_tokens: float | None = None,
               session_key: str | None = None, request: gr.Request = None,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Upload files into a new private corpus (chunked with the chosen model's tokenizer and embedded)."""
        key, owner = self._who(session_key, request)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = gpu_encoder(model_key, enc_variant)
        chunking = self._chunking(chunk_tokens, overlap_tokens, model_size, variant, encoder)
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
        return self._add_corpus(name, report.documents, problems, "upload", encoder, chunking, key, owner, progress,
                                self._cancel_event(key))

    @_user_errors
    def crawl(self, url: str, max_pages: float = 20, max_depth: float = 1, same_host: bool = True,
              corpus_name: str | None = None, model_size: str = "stand-in", variant: str = "standard",
              chunk_tokens: float | None = None, overlap_tokens: float | None = None, session_key: str | None = None,
              request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Crawl a site (within the limits) into a new private corpus."""
        key, owner = self._who(session_key, request)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = gpu_encoder(model_key, enc_variant)
        chunking = self._chunking(chunk_tokens, overlap_tokens, model_size, variant, encoder)
        urls = [u for u in (url or "").split() if u]
        pages = whole_number(max_pages, "max_pages", 1, self.settings.crawl_max_pages)
        depth = whole_number(max_depth, "max_depth", 0, self.settings.crawl_max_depth)
        options = CrawlOptions.from_settings(self.settings, max_pages=pages, max_depth=depth, same_host=bool(same_host))
        cancel = self._cancel_event(key)
        try:
            report = crawl(urls, options, progress=_progress_bridge(progress, "Crawling"), cancel=cancel)
        except Cancelled:
            raise
        except DemoError as exc:
            raise DemoError(app_wording(str(exc))) from None
        problems = [(u, app_wording(r)) for u, r in report.failed] + [(u, app_wording(r)) for u, r in report.skipped]
        if report.stopped:
            problems.insert(0, ("(crawl)", f"stopped early: {app_wording(report.stopped)}"))
        if not report.documents:
            detail = "; ".join(f"{u}: {r}" for u, r in problems[:3]) or "no pages with text"
            raise DemoError(f"The crawl found no documents ({detail}).")
        name = (corpus_name or "").strip() or urls[0]
        return self._add_corpus(name, report.documents, problems, "crawl", encoder, chunking, key, owner, progress,
                                cancel)

    @_user_errors
    def embed(self, corpus: str, model_size: str = "stand-in", variant: str = "standard",
              session_key: str | None = None, request: gr.Request = None,
              progress: gr.Progress = gr.Progress()) -> str:
        """Embed a corpus with the chosen model now (otherwise the first search does it)."""
        key, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = gpu_encoder(model_key, enc_variant)
        outcome = self._embed(c.id, encoder, progress, self._cancel_event(key))
        model = charts.short_model_name(encoder.name)
        if not outcome.embedded:
            return views.notice_html(f"“{c.name}” was already embedded with {model}.")
        return (views.notice_html(f"“{c.name}”: embedded {plural(outcome.embedded, 'chunk')} with {encoder.name} in "
                                  f"{outcome.seconds:.1f} s.")
                + self._truncation_notice(outcome.truncated, outcome.embedded, encoder))

    @_user_errors
    def search(self, corpus: str, query: str, model_size: str = "stand-in", variant: str = "standard",
               configurations: list[str] | None = None, top_k: float = 10, rescore_multiplier: float = 4,
               matryoshka: str = "full", session_key: str | None = None, history: list | None = None,
               request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[str, dict, list]:
        """Search one corpus with every ticked configuration; one ranked column per configuration."""
        _, owner = self._who(session_key, request)
        c = self._corpus_for(corpus, owner)
        if not (query or "").strip():
            raise DemoError("Type a query first.")
        k = whole_number(top_k, "top_k", 1, MAX_TOP_K)
        mult = whole_number(rescore_multiplier, "rescore_multiplier", 1, MAX_RESCORE_MULTIPLIER)
        configs = configs_for(list(DEFAULT_CONFIGS) if configurations is None else configurations, matryoshka, mult)
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = gpu_encoder(model_key, enc_variant)
        ready = (c.id, c.revision, str(encoder.model_key), str(encoder.variant))
        outcome = None
        if ready not in self._embedded:  # first search of this corpus with this model: may embed (heavy)
            outcome = self._embed(c.id, encoder, progress, None)
            self._embedded.add(ready)
        response = self.search_service.search(c.id, model_key, enc_variant, configs, query.strip(), k)
        if outcome is not None and outcome.embedded:
            response = replace(response, embedded_now=outcome.embedded, truncated_now=outcome.truncated)
        runs = list(history or [])[-(HISTORY_RUNS - 1):] + [response]
        html = views.results_html(response, query, BASELINE.label, self._search_notices(response, encoder, configs))
        return html, _response_json(response, c), runs

    def _search_notices(self, response: Any, encoder: Any, configs: list[IndexConfig]) -> list[tuple[str, str]]:
        notices = []
        model = charts.short_model_name(encoder.name)
        if response.embedded_now:
            notices.append((f"This search first embedded {plural(response.embedded_now, 'chunk')} of the corpus with "
                            f"{model} (done once; later searches reuse them).", "info"))
        if response.truncated_now:
            notices.append((f"{plural(response.truncated_now, 'chunk')} of this corpus "
                            f"{'is' if response.truncated_now == 1 else 'are'} longer than {model} reads "
                            f"({encoder_token_budget(encoder)} tokens) and were cut: their ends are not searchable.",
                            "warn"))
        truncated_dims = sorted({cfg.dim for cfg in configs if cfg.dim is not None and cfg.dim < encoder.dim})
        if truncated_dims and not encoder.is_pplx:
            notices.append((f"{model} was not trained for Matryoshka truncation: at "
                            f"{', '.join(str(d) for d in truncated_dims)} of its {encoder.dim} dimensions these "
                            "columns "
                            "show what cutting a vector does to a model without that training, not what pplx-embed "
                            "(trained for it) does.", "warn"))
        return notices

    def compare_charts(self, history: list | None, last_eval: Any) -> tuple[Any, ...]:
        runs = list(history or [])
        last = runs[-1] if runs else None
        quality = last_eval.points() if last_eval is not None else []
        frontier = last_eval.frontier() if last_eval is not None else []
        return (charts.latency_figure(runs), charts.storage_figure(last),
                charts.quality_bytes_figure(quality, QUALITY_METRIC, frontier),
                charts.score_distribution_figure(last))

    def empty_charts(self) -> tuple[Any, ...]:
        return (charts.latency_figure([]), charts.storage_figure(None), charts.quality_bytes_figure([], QUALITY_METRIC),
                charts.score_distribution_figure(None), charts.per_language_figure({}, QUALITY_METRIC))

    @_user_errors
    def evaluate(self, dataset: str = "xquad", languages: list[str] | None = None,
                 query_language: str | None = None, beir_zip: str | None = None, queries_file: str | None = None,
                 qrels_file: str | None = None, max_queries: float = DEFAULT_EVAL_QUERIES,
                 model_size: str = "stand-in", variant: str = "standard", configurations: list[str] | None = None,
                 matryoshka_sizes: list[str] | None = None, late_chunking_pair: bool = False,
                 pair_chunk_tokens: float = PAIR_CHUNK_TOKENS, corpus: str | None = None,
                 session_key: str | None = None, request: gr.Request = None,
                 progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """Quality of every ticked configuration on labelled data: XQuAD (the default; needs no files),
        an uploaded BEIR zip, or a corpus of yours with uploaded queries and qrels. With
        `late_chunking_pair`, the same chunks are also embedded with late chunking."""
        _, owner = self._who(session_key, request)
        model_key, enc_variant = encoder_args(model_size, variant)
        dims: list[str | None] = ["full", *[d for d in (matryoshka_sizes or []) if d != "full"]]
        names = list(CONFIG_CHOICES) if configurations is None else configurations
        configs = [c for d in dims for c in configs_for(names, d, 4)]
        n = whole_number(max_queries, "max_queries", 1, self.max_queries_for(dataset, languages or ["en"]))
        bridge = _progress_bridge(progress, "Embedding the evaluation data")
        pair_chunking = None
        if late_chunking_pair:
            size = whole_number(pair_chunk_tokens, "pair_chunk_tokens", 8, 10**6)
            validate_chunking(size, 0, gpu_encoder(*variant_keys_for(model_size)[1]))
            pair_chunking = (size, 0)
        available: dict[str, int] = {}
        reports: list[EvalReport] = []

        def run(data: RetrievalDataset, **kwargs: Any) -> None:
            if pair_chunking is None:
                reports.append(run_evaluation(self.store, data, model_key, enc_variant, configs, progress=bridge,
                                              encoder_loader=gpu_encoder, **kwargs))
            else:
                reports.extend(self._variant_pair(data, model_size, configs, pair_chunking, bridge, **kwargs))

        with self._heavy:
            if dataset == "xquad":
                langs = ["en"] if languages is None else list(languages)
                if not langs:
                    raise DemoError("Tick at least one XQuAD language.")
                qlang = None if query_language in (None, "", "same as corpus") else query_language
                for lang in langs:
                    full = load_xquad(lang, qlang)
                    data = sample_queries_of(full, n)
                    available[data.name] = len(full.judged_queries())
                    run(data)
            elif dataset == "beir":
                if not beir_zip:
                    raise DemoError("Upload a BEIR folder as a zip (corpus.jsonl, queries.jsonl, qrels/test.tsv).")
                full = load_beir_zip(_path_of(beir_zip), self.settings)
                data = sample_queries_of(full, n)
                available[data.name] = len(full.judged_queries())
                run(data, owner=owner)
            elif dataset == "corpus":
                c = self._corpus_for(corpus, owner)
                if not queries_file or not qrels_file:
                    raise DemoError("Upload a queries file (jsonl or tsv) and a qrels file (tsv) for this corpus.")
                queries = queries_from_file(_path_of(queries_file), limits=self.settings)
                qrels = qrels_from_file(_path_of(qrels_file))
                keys = ([(model_key, enc_variant)] if pair_chunking is None else
                        list(variant_keys_for(model_size)))
                for key, var in keys:
                    reports.append(run_corpus_evaluation(self.store, c.id, queries, qrels, key, var, configs,
                                                         progress=bridge, owner=owner, encoder_loader=gpu_encoder))
            else:
                raise DemoError(f"Unknown labelled data {dataset!r}: use 'xquad', 'beir' or 'corpus'.")
        view = EvalView(reports)
        by_dataset: dict[str, list[Any]] = {}
        for r in reports:
            by_dataset.setdefault(r.dataset, []).extend(r.results)
        return (_eval_status(reports, available), _eval_tables(reports, available), _eval_frame(reports),
                charts.quality_bytes_figure(view.points(), QUALITY_METRIC, view.frontier()),
                charts.per_language_figure(by_dataset, QUALITY_METRIC), view)

    def _variant_pair(self, data: RetrievalDataset, model_size: str, configs: list[IndexConfig],
                      chunking: tuple[int, int], progress: Any, owner: str | None = None) -> list[EvalReport]:
        """runner.run_variant_pair with the studio's GPU-wrapped encoders."""
        (standard_key, _), _ = variant_keys_for(model_size)
        return list(run_variant_pair(self.store, data, standard_key, configs, chunking=chunking, progress=progress,
                                     owner=owner, encoder_loader=gpu_encoder))

    @_user_errors
    def late_chunking_demo(self, query: str = DEFAULT_QUERY, model_size: str = "stand-in",
                           request: gr.Request = None) -> str:
        """The Berlin article's sentences ranked for `query` with independent chunks and with late chunking."""
        (standard_key, _), _ = variant_keys_for(model_size)
        for key, _ in variant_keys_for(model_size):
            a = self.model_available(key)
            if not a.available:
                raise DemoError(f"{MODELS[key].display_name} is not available here: {a.reason}. "
                                f"To enable it: {a.how_to_enable}.")
        with self._heavy:
            demo = contextual_demo(self.store, standard_key, (query or "").strip(), encoder_loader=gpu_encoder)
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
        c = self.store.get_corpus(self.sample_corpus_id) if self.sample_corpus_id is not None else None
        size = f" ({plural(c.n_documents, 'paragraph')}, {plural(c.n_chunks, 'chunk')})" if c is not None else ""
        return (f"**{SAMPLE_CORPUS_NAME}**: the first paragraph of each XQuAD article in "
                f"{', '.join(STARTER_LANGUAGES)}{size}. It is shared by everyone, read-only, and already embedded "
                f"with the offline stand-in. Pick it in the Search tab; the example questions there are answered by "
                f"it.\n\n{SAMPLE_ATTRIBUTION}")

    def about_markdown(self) -> str:
        """Models, their published numbers, our reproduction and availability here, all read from data."""
        return "\n".join(_about_models() + self._about_availability() + _about_published() + _about_reproduction()
                         + _about_storage() + self._about_rest())

    def _about_availability(self) -> list[str]:
        lines = ["", "## Available on this machine", "", "| model | available | why |", "|---|---|---|"]
        missing = []
        for key, spec in MODELS.items():
            a = self.model_available(key)
            lines.append(f"| {_md(spec.display_name)} | {'yes' if a.available else '**no**'} | {_md(a.reason)} |")
            if not a.available:
                missing.append(spec)
        if missing:
            repos = ", ".join(f"`{s.hub_id}` ({s.weights_gb:g} GB)" for s in missing)
            parent = self.settings.models_dir or "a folder of your choice"
            lines += ["", "**How to enable the missing models** (" + repos + "): download a model's files "
                      "(config.json, tokenizer.json, the *.safetensors weights) into a folder named like the "
                      f"repository under {_md(parent)} and set `PPLX_DEMO_MODELS_DIR` to that parent folder; or run "
                      "`huggingface-cli download <repository>` on a machine that reaches the hub (the studio reads "
                      "the Hugging Face cache); on a Space, list the repositories under `preload_from_hub` in the "
                      "README's front matter. The 4B models need a GPU for practical speed."]
        return lines

    def _about_rest(self) -> list[str]:
        idle_min = self.settings.private_corpus_idle_s / 60
        return ["", "## How the numbers are made", "",
                "- Every column is compared with an exact float32 search of the same query: overlap@k is the share "
                "of the float32 top-k it also finds, and each hit shows its float32 rank.",
                "- pplx-embed int8 is the models' own tanh quantisation; the stand-in uses per-dimension ranges "
                "calibrated on the corpus. Binary keeps the sign of each float coordinate; rescoring re-ranks the "
                "binary candidates with the int8 vectors.",
                "- Evaluations use a seeded random sample of the queries (never the first ones in the file), and "
                "every metric is also given as % of the same model's float32 result.",
                "", "## Privacy", "",
                f"Files you upload and sites you crawl form private corpora that only your browser (or API "
                f"session key) can list, search or evaluate. They are deleted after {idle_min:g} idle "
                "minutes. The sample corpus is shared and read-only. Queries and document text are not "
                "written to the logs.",
                "", "## Data", "", SAMPLE_ATTRIBUTION]


def example_questions() -> list[str]:
    """Eight questions answerable from the starter corpus: half in its first language, the rest
    shared by the others, each language asking about different articles."""
    counts = [8 - 2 * (len(STARTER_LANGUAGES) - 1)] + [2] * (len(STARTER_LANGUAGES) - 1)
    picks: list[str] = []
    for lang, count in zip(STARTER_LANGUAGES, counts):
        picks.extend(sample_queries(lang, 8)[len(picks):len(picks) + count])
    return picks


def variant_keys_for(model_size: str) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """((key, variant) standard, (key, variant) late chunking) for get_encoder, for a model size."""
    standard_key, contextual_key = variant_keys(model_key_for(model_size, "standard"))
    if standard_key == contextual_key:  # one checkpoint, two ways of encoding (the stand-in)
        return (standard_key, "standard"), (contextual_key, "contextual")
    return (standard_key, None), (contextual_key, None)


@dataclass(frozen=True)
class QualityPoint:
    """One configuration's quality averaged over the datasets of an evaluation run (for the charts)."""

    label: str
    bytes_per_vector: int
    metrics: dict[str, float]
    model_name: str


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
            out.append(QualityPoint(label, rs[0].bytes_per_vector, metrics, rs[0].model_name))
        return out

    def frontier(self) -> list[str]:
        pts = self.points()
        return [pts[i].label for i in pareto_frontier([(p.bytes_per_vector, p.metrics[QUALITY_METRIC]) for p in pts])]


def _path_of(upload: Any) -> str:
    return upload if isinstance(upload, str) else getattr(upload, "path", str(upload))


def _eval_status(reports: list[EvalReport], available: dict[str, int]) -> str:
    models = list(dict.fromkeys(r.model_name for r in reports))
    parts, small = [], []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        rs = [r for r in reports if r.dataset == dataset]
        r = rs[0]
        of = available.get(dataset)
        sample = (f"{plural(r.n_queries, 'query', 'queries')} of {of:,} (random sample, seed {EVAL_SEED})"
                  if of and of > r.n_queries else plural(r.n_queries, "query", "queries"))
        embedded = sum(x.embedded_now for x in rs)
        bm25 = f"; BM25 nDCG@10 {100 * r.bm25[QUALITY_METRIC]:.1f}" if r.bm25 else ""
        parts.append(f"{dataset}: {sample} over {plural(r.n_documents, 'document')} "
                     f"({plural(r.n_chunks, 'chunk')}), {plural(embedded, 'text')} embedded now{bm25}")
        if r.n_queries < SMALL_EVAL:
            small.append((dataset, r.n_queries))
    html = views.notice_html(f"Evaluated with {' and '.join(models)}. " + " · ".join(parts) + ".")
    untrained = [r for r in reports if not getattr(MODELS.get(r.model_key), "is_pplx", False)
                 and any(x.config.dim is not None for x in r.results)]
    if untrained:
        html += views.notice_html(f"{charts.short_model_name(untrained[0].model_name)} was not trained for Matryoshka "
                                  "truncation: its @d rows show what cutting vectors does to a model without that "
                                  "training, not what pplx-embed (trained for it) does.", "warn")
    for dataset, n in small:
        html += views.notice_html(
            f"{dataset}: only {plural(n, 'query', 'queries')}. One query can move nDCG@10 by up to {100 / n:.1f} "
            f"points here, so differences between configurations of that size are noise (int8 can even seem "
            f"to beat float32). Use at least {SMALL_EVAL} queries.", "warn")
    return html


def _merged_rows(reports: list[EvalReport]) -> list[dict[str, Any]]:
    """report_rows of each report, with BM25 once (a late-chunking report repeats its pair's BM25)."""
    rows: list[dict[str, Any]] = []
    for r in reports:
        for row in report_rows(r):
            if row["configuration"] == "BM25" and any(x["configuration"] == "BM25" for x in rows):
                continue
            rows.append(row)
    bm25 = [row for row in rows if row["configuration"] == "BM25"]
    return [row for row in rows if row["configuration"] != "BM25"] + bm25


def _eval_tables(reports: list[EvalReport], available: dict[str, int]) -> str:
    out = []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        rs = [r for r in reports if r.dataset == dataset]
        r = rs[0]
        chunks = ("whole documents" if r.chunking is None else f"chunks of {r.chunking[0]} tokens, overlap "
                  f"{r.chunking[1]}")
        of = available.get(dataset)
        queries = plural(r.n_queries, "query", "queries") + (f" of {of:,}" if of and of > r.n_queries else "")
        caption = f"{dataset} · {queries} · {plural(r.n_documents, 'document')} · {chunks} · metrics x100"
        notes = [app_wording(w) for x in rs for w in report_warnings(x)]
        rows = []
        for row in _merged_rows(rs):
            if row["configuration"] == "BM25":  # its setup is long: a note, not a cell
                notes.append(f"BM25: {row['model']}.")
                row = {**row, "model": "bm25s"}
            # The variant column says "late chunking" once; the other cells need not repeat it.
            rows.append({**row, "configuration": str(row["configuration"]).removesuffix(" · late chunking"),
                         "model": charts.short_model_name(str(row["model"])).replace(" with late chunking", ""),
                         "variant": {"contextual": "late chunking"}.get(row["variant"], row["variant"])})
        out.append(views.eval_table_html(caption, rows, notes))
    return "".join(out)


def _eval_frame(reports: list[EvalReport]) -> pd.DataFrame:
    rows = [{"dataset": dataset, **row} for dataset in dict.fromkeys(r.dataset for r in reports)
            for row in _merged_rows([r for r in reports if r.dataset == dataset])]
    return pd.DataFrame(rows)


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (escaped HTML, no pipes or newlines)."""
    return views.esc(text).replace("|", "\\|").replace("\n", " ")


_URL = re.compile(r"https?://[^\s;,)]+")


def _md_cite(text: str) -> str:
    """A citation with its URLs as Markdown links (the rest escaped)."""
    out, pos = [], 0
    for m in _URL.finditer(text):
        out.append(_md(text[pos:m.start()]))
        out.append(f"[{_md(m.group(0).removeprefix('https://'))}]({m.group(0)})")
        pos = m.end()
    out.append(_md(text[pos:]))
    return "".join(out)


def _about_models() -> list[str]:
    lines = ["## Models", "",
             "| model | params | dims | context (tokens) | int8 | Matryoshka sizes | licence |",
             "|---|---|---|---|---|---|---|"]
    for spec in MODELS.values():
        dims = ", ".join(str(d) for d in spec.matryoshka_dims)
        lines.append(f"| {_md(spec.display_name)} | {spec.params} | {spec.dim} | {spec.max_context:,} | "
                     f"{spec.int8_scheme} | {dims} | {spec.licence} |")
    return lines


def _about_published() -> list[str]:
    lines = ["", "## Published results", "", "Numbers as their sources report them, not measured here.", "",
             "| model | benchmark | score | source |", "|---|---|---|---|"]
    sources: list[str] = []
    for spec in MODELS.values():
        if not spec.published:
            continue
        source = getattr(spec, "published_source", "") or "model card"
        if source not in sources:
            sources.append(source)
        ref = f"[{sources.index(source) + 1}]"
        for bench, score in spec.published.items():
            lines.append(f"| {_md(spec.display_name)} | {_md(bench)} | {score:g} | {ref} |")
    lines += [""] + [f"{i}. {_md_cite(s)}" for i, s in enumerate(sources, 1)]
    return lines


def _about_reproduction() -> list[str]:
    lines = ["", "## Reproduced here", ""]
    rep = load_reproduction()
    if rep is None or not rep.rows:
        return lines + ["No reproduction has been recorded yet (`python benchmarks/bench_eval.py` writes "
                        "`benchmarks/reproduction.json`)."]
    lines += [f"Command: `{_md(rep.command)}` · machine: {_md(rep.machine)} · date: {_md(rep.date)}", "",
              "| dataset | system | published | ours | difference | within tolerance |",
              "|---|---|---|---|---|---|"]
    for row in rep.rows:
        lines.append(f"| {_md(row.dataset)} | {_md(row.system)} | {row.published:.1f} | {row.ours:.2f} | "
                     f"{row.delta:+.2f} | {'yes' if row.within else 'no'} (±{row.tolerance:g}) |")
    return lines + [f"- {_md(n)}" for n in rep.notes]


@functools.cache
def storage_table() -> list[tuple[int, dict[str, int]]]:
    """Bytes per vector of each configuration at each model size, measured on tiny real indexes."""
    configs = {"float32": IndexConfig("float32"), "int8": IndexConfig("int8", int8_scheme="tanh"),
               "binary": IndexConfig("binary"),
               "binary + rescore (int8 kept)": IndexConfig("binary", "rescore", int8_scheme="tanh")}
    out = []
    for dim in sorted({spec.dim for spec in MODELS.values()}):
        vectors = np.random.default_rng(0).standard_normal((8, dim)).astype(np.float32)
        out.append((dim, {name: storage_report(QuantizedIndex.build(vectors, cfg), dim, 0).bytes_per_vector
                          for name, cfg in configs.items()}))
    return out


def _about_storage() -> list[str]:
    table = storage_table()
    names = list(table[0][1])
    lines = ["", "## What an index holds per vector", "",
             "Measured from the arrays of a real index of each size (`storage_report`), not from a formula:", "",
             "| dimensions | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for dim, row in table:
        lines.append(f"| {dim:,} | " + " | ".join(f"{row[n]:,} B" for n in names) + " |")
    dim, row = table[-1]
    extra = row["int8"] - dim
    lines += ["", f"int8 holds one byte of code per dimension plus {extra} bytes per vector (its float32 norm, kept "
              f"for cosine scoring): {row['int8']:,} B at {dim:,} dimensions. Binary packs one bit per dimension into "
              f"64-bit words ({row['binary']:,} B at {dim:,}). The search columns and the Compare tab report these "
              "measured sizes and project them to 1M, 100M and 1B vectors."]
    return lines


def _stats_html(name: str, stats: CorpusStats, model_name: str, chunking: tuple[int, int]) -> str:
    return views.stats_html(f"“{name}”", {
        "documents": f"{stats.documents:,}", "chunks": f"{stats.chunks:,}", "tokens": f"{stats.tokens:,}",
        "characters": f"{stats.characters:,}", "languages": stats.languages_text(),
        "chunking": f"{chunking[0]} tokens, overlap {chunking[1]} ({charts.short_model_name(model_name)} tokenizer)"})


def _problems_frame(problems: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(problems, columns=["file / page", "why it was not loaded"])


def shown_if_rows(frame: Any) -> Any:
    """Show a table only when it has rows (the rejected-files table stays hidden when all loaded)."""
    return gr.update(visible=frame is not None and len(frame) > 0)


def _response_json(response: Any, corpus: Any) -> dict[str, Any]:
    return {
        "corpus_id": corpus.id, "model": response.model_name, "embedded_now": response.embedded_now,
        "truncated_now": response.truncated_now,
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
