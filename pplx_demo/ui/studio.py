"""The studio: shared state (store, models, search services, sessions, jobs) and the small handlers.

No retrieval logic here: the corpus workflow is `pplx_demo.workflows`, search is `SearchService`,
evaluation is `evaluate.runner`. The handlers of each tab live in their own module (corpus, search,
evaluate, scale) as mixins of `Studio`; this module holds what they share: who is calling (session
key), whether they may see a corpus, the model controls, the background start-up (kernels, stand-in,
the shared sample) and its readiness. Handlers return small view dataclasses whose field names are
component names (`ui/binding.py` turns them into Gradio outputs).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
import pandas as pd

from pplx_demo import charts, workflows
from pplx_demo.config import Settings
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.datasets import XQUAD_LANGUAGES, load_xquad
from pplx_demo.index import warm_up
from pplx_demo.ingest.sample import sample_queries
from pplx_demo.models import MODELS, STAND_IN_KEY, ModelHub
from pplx_demo.models.encoder import RUNTIME_LABELS
from pplx_demo.models.registry import default_chunking
from pplx_demo.query_batcher import batching_loader
from pplx_demo.search import SearchService
from pplx_demo.sessions import Sessions, new_session_key
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter
from pplx_demo.ui import about, views
from pplx_demo.ui.choices import (AUTO_EMBED_SECONDS, DEFAULT_CONFIGS, HISTORY_RUNS, PAIR_CHUNK_TOKENS, SIZES,
                                  VARIANTS, ModelChoices, configs_for, encoder_args, example_questions,
                                  model_key_for, variant_choices)
from pplx_demo.ui.corpus_handlers import CorpusHandlers
from pplx_demo.ui.errors import STOPPED, user_errors
from pplx_demo.ui.evaluate_handlers import EvaluateHandlers
from pplx_demo.ui.gpu import gpu_loader
from pplx_demo.ui.jobs import Jobs, Readiness, SessionHistory
from pplx_demo.ui.outputs import DatasetControls, ModelControls, ReadinessUpdate, SessionStarted, progress_bridge
from pplx_demo.ui.scale_panel import ScalePanel
from pplx_demo.ui.search_handlers import SearchHandlers
from pplx_demo.ui.views import plural

log = logging.getLogger(__name__)
UNAVAILABLE = "not available here"


class Studio(CorpusHandlers, SearchHandlers, EvaluateHandlers, ScalePanel):
    """Everything the UI calls, bound to one store; one instance per app."""

    def __init__(self, settings: Settings, auto_embed_seconds: float = AUTO_EMBED_SECONDS) -> None:
        self.settings = settings
        self.auto_embed_seconds = float(auto_embed_seconds)
        self.store = Store(settings.db_path)
        self.models = ModelHub(settings)
        self._loaded: set[tuple[str, str | None, str]] = set()
        self._gpu = gpu_loader(self.models)  # only the encoders' forward passes are ZeroGPU tasks
        # Queries of concurrent searches share forward passes (pplx_demo.query_batcher).
        self.encoder = batching_loader(self._load, max_batch=settings.query_batch_max,
                                       window_s=settings.query_batch_window_ms / 1000)
        self._services: dict[str, SearchService] = {}
        self._services_lock = threading.Lock()
        self.sessions = Sessions(self.store, settings.private_corpus_idle_s)
        self.meter = ThroughputMeter()
        self.jobs = Jobs(settings.heavy_concurrency)
        self.readiness = Readiness()
        self.history = SessionHistory(HISTORY_RUNS)
        self._availability: dict[str, Any] = {}
        self._embedded: set[tuple[int, int, str, str]] = set()  # (corpus, revision, cache key, variant) ready
        self.sample_corpus_id: Any = None
        self._background: threading.Thread | None = None

    # ------------------------------------------------------------------ encoders and services

    def _load(self, model_key: str, variant: str | None = None, runtime: str = "torch") -> Any:
        encoder = self._gpu(model_key, variant, runtime)
        self._loaded.add((model_key, variant, runtime))
        return encoder

    def is_loaded(self, model_key: str, variant: str | None, runtime: str) -> bool:
        """Whether this encoder was loaded already (loading an ONNX runtime the first time exports it)."""
        return (model_key, variant, runtime) in self._loaded

    def loader(self, runtime: str = "torch") -> Callable[..., Any]:
        """An encoder loader `(key, variant)` for one runtime (what the domain's functions take)."""
        return functools.partial(self.encoder, runtime=runtime)

    def service(self, runtime: str = "torch") -> SearchService:
        """The search service of one runtime (its indexes are keyed by the encoder's cache key)."""
        with self._services_lock:
            svc = self._services.get(runtime)
            if svc is None:
                svc = self._services[runtime] = SearchService(self.store, self.loader(runtime), settings=self.settings)
            return svc

    @property
    def search_service(self) -> SearchService:
        return self.service("torch")

    # ------------------------------------------------------------------ start-up

    def prepare(self) -> None:
        """What the page needs before it is served: which models are available here (checked in parallel)."""
        if not self._availability:
            with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:  # hub checks time out in parallel
                found = list(pool.map(self.models.availability, MODELS))
            self._availability = {a.key: a for a in found}
        self._sweep(force=True)
        found = self.store.find_corpus(workflows.SAMPLE_CORPUS_NAME, None)
        if found is not None:
            self.sample_corpus_id = found.id

    def start_background(self) -> threading.Thread:
        """Start the background start-up (once): kernels, the stand-in, the shared sample, a warm search."""
        if self._background is None:
            self._background = threading.Thread(target=self._prepare_in_background, name="studio-start-up",
                                                daemon=True)
            self._background.start()
        return self._background

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.readiness.wait(timeout)

    def _prepare_in_background(self) -> None:
        r = self.readiness
        try:
            start = time.perf_counter()
            r.stage("compiling the scan kernels")
            log.info("scan kernels ready in %.1f s", warm_up(self.settings.kernels))
            r.stage("loading the offline stand-in model")
            encoder = self.encoder(STAND_IN_KEY, "standard")
            encoder.encode(["warm up"])  # the first forward pass is slow: never a user's query
            r.stage("storing the shared sample corpus")
            with self.jobs.heavy():
                self.sample_corpus_id, _ = workflows.ensure_sample(self.store, encoder, embed_it=False)
                r.stage("embedding the shared sample corpus")
                workflows.embed(self.store, self.sample_corpus_id, encoder, meter=self.meter, progress=r.progress)
            r.stage("warming up search")
            info = self.store.get_corpus(self.sample_corpus_id)
            configs = configs_for(list(DEFAULT_CONFIGS), "full", 4, self.settings.hybrid_rrf_k)
            self.search_service.search(info.id, STAND_IN_KEY, "standard", configs, sample_queries("en", 1)[0],
                                       10, explain=True)
            self._embedded.add((info.id, info.revision, str(encoder.cache_key), str(encoder.variant)))
            r.finish(f"the shared sample is ready: {plural(info.n_chunks, 'chunk')} embedded with "
                     f"{charts.short_model_name(encoder.name)}, start-up took {time.perf_counter() - start:.1f} s")
        except Exception as exc:  # noqa: BLE001 - shown in the page and the log; the app keeps serving
            log.exception("start-up failed")
            r.fail(f"{type(exc).__name__}: {exc}")

    def status(self) -> dict:
        """Start-up state: preparing (stage, progress) / ready / failed; what /status answers."""
        return self.readiness.view().as_dict()

    def readiness_html(self) -> str:
        v = self.readiness.view()
        if v.state == "ready":
            return ""
        if v.state == "failed":
            return views.notice_html(f"Start-up failed: {v.message}. Private corpora still work; the shared "
                                     "sample is not available.", "error")
        done = f" ({v.done:,}/{v.total:,})" if v.total else ""
        return views.notice_html(f"Preparing the studio: {v.stage}{done}, {v.seconds:.0f} s so far. You can look "
                                 "around; searching the shared sample works once it is ready.", "info")

    def readiness_tick(self, corpus: Any, session_key: str, request: gr.Request) -> ReadinessUpdate:
        """Every second while preparing: the status line; once ready, the sample in the corpus list."""
        view = ReadinessUpdate(self.readiness_html(), gr.Timer(active=self.readiness.view().state == "preparing"))
        if self.sample_corpus_id is not None and not corpus:
            _, owner = self._who(session_key, request)
            view.corpus = self._corpus_dropdown(owner)
            view.corpora_table = self._corpora_frame(owner)
        return view

    # ------------------------------------------------------------------ model controls

    def model_available(self, key: str) -> Any:
        a = self._availability.get(key)
        if a is None:
            a = self._availability[key] = self.models.availability(key)
        return a

    def size_available(self, size: str) -> bool:
        return any(self.model_available(model_key_for(size, v)).available for v in VARIANTS)

    def model_choices(self, model_size: str) -> ModelChoices:
        sizes = [(label if self.size_available(size) else f"{label} ({UNAVAILABLE})", size) for label, size in SIZES]
        return ModelChoices(sizes=sizes, variants=variant_choices(model_size))

    def unavailable_sizes(self) -> list[str]:
        return [size for _, size in SIZES if not self.size_available(size)]

    def unavailable_html(self) -> str:
        """Which models cannot be chosen here and why, with how to enable each: shown before anyone picks."""
        lines = []
        for key, spec in MODELS.items():
            a = self.model_available(key)
            if not a.available:
                lines.append(f"<li><b>{views.esc(spec.display_name)}</b>: {views.esc(a.reason)}. To enable it: "
                             f"{views.esc(a.how_to_enable)}.</li>")
        if not lines:
            return ""
        return (f"<div class='pplx-unavailable'><p>{plural(len(lines), 'model')} {'is' if len(lines) == 1 else 'are'} "
                f"{UNAVAILABLE} (greyed out above), and why:</p><ul>{''.join(lines)}</ul></div>")

    def default_model(self) -> tuple[str, str]:
        for size in ("0.6B", "4B"):
            if self.model_available(model_key_for(size, "standard")).available:
                return size, "standard"
        return "stand-in", "standard"

    def model_label(self, model_size: str, variant: str, runtime: str = "torch") -> str:
        name = charts.short_model_name(MODELS[model_key_for(model_size, variant)].display_name)
        kind = "late chunking" if variant == "contextual" else "standard"
        return f"Model: {name} · {kind} · {RUNTIME_LABELS.get(runtime) or 'PyTorch'}"

    def model_note(self, model_size: str, variant: str, runtime: str = "torch") -> str:
        key = model_key_for(model_size, variant)
        spec, a = MODELS[key], self.model_available(key)
        if not a.available:
            return views.notice_html(f"{spec.display_name} is {UNAVAILABLE}: {a.reason}. "
                                     f"To enable it: {a.how_to_enable}.", "warn")
        kind = "info" if spec.is_pplx else "warn"
        extra = "" if spec.is_pplx else " Results from it are labelled as such, never as pplx-embed."
        if variant == "contextual":
            extra += (" Late chunking: each chunk is embedded in the context of its whole document"
                      + ("." if spec.is_pplx else "; this model was not trained for it, so it shows the "
                         "mechanism, not pplx-embed-context's gain."))
        if runtime != "torch":
            enc_key, enc_variant = encoder_args(model_size, variant)
            first = "" if self.is_loaded(enc_key, enc_variant, runtime) else (
                " The first use exports the model to ONNX once (a minute or more for the stand-in, much longer "
                "for pplx-embed; progress shows meanwhile).")
            extra += f" Runtime: {RUNTIME_LABELS[runtime]} on the CPU; its vectors are cached apart.{first}"
        return views.notice_html(f"Using {spec.display_name}: {spec.dim}-d, {spec.params} parameters "
                                 f"({a.reason}).{extra}", kind)

    def chunking_for(self, model_size: str, variant: str, load: bool = True) -> tuple[int, int, int]:
        """(default chunk tokens, default overlap, largest chunk the model reads) for the controls.

        Available models are asked (the window depends on the device and its settings) when `load` is
        True or the model is loaded already; otherwise (the page's first layout, served before any model
        loads) its context capped by this machine's setting is the estimate, and the studio's own check
        refuses a chunk the model cannot read, saying why.
        """
        key, enc_variant = encoder_args(model_size, variant)
        if self.model_available(key).available and (load or self.is_loaded(key, enc_variant, "torch")):
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

    def pair_chunk_max(self, model_size: str, load: bool = True) -> int:
        """Largest chunk the late-chunking pair may use: what both variants of the model read."""
        try:
            return min(self.chunking_for(model_size, v, load)[2] for v in VARIANTS)
        except DemoError:
            return PAIR_CHUNK_TOKENS

    def on_model_change(self, model_size: str, variant: str, runtime: str = "torch") -> ModelControls:
        ok = self.model_available(model_key_for(model_size, variant)).available
        dims = self.matryoshka_choices(model_size, variant)
        view = ModelControls(self.model_note(model_size, variant, runtime), gr.update(choices=variant_choices(model_size)),
                             model_box=gr.Accordion(label=self.model_label(model_size, variant, runtime)),
                             matryoshka=gr.update(choices=dims, value="full"),
                             eval_dims=gr.update(choices=[d for d in dims if d[1] != "full"], value=[]))
        if ok:
            view.chunk_tokens, view.overlap_tokens = self.chunk_sliders(model_size, variant)
            view.pair_chunks = gr.update(maximum=min(512, self.pair_chunk_max(model_size)))
        for name in ("search_btn", "ingest_btn", "crawl_btn", "eval_btn", "late_btn", "sweep_btn", "scale_btn"):
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
        """On page load: reuse the key kept in this browser, or mint one; the start-up status."""
        key = stored_key if isinstance(stored_key, str) and stored_key else new_session_key()
        try:
            _, owner = self.sessions.resolve(key, None)
        except DemoError:  # a corrupted stored key: start a fresh private space
            key = new_session_key()
            _, owner = self.sessions.resolve(key, None)
        self._sweep()
        return SessionStarted(key, key, self._corpus_dropdown(owner), self._corpora_frame(owner),
                              self.readiness_html(), gr.Timer(active=self.readiness.view().state == "preparing"))

    def _sweep(self, force: bool = False) -> None:
        """Delete idle private corpora (rate-limited) and drop their cached indexes."""
        for corpus_id in self.sessions.sweep(force=force) or []:
            for svc in list(self._services.values()):
                svc.forget(corpus_id)
            self.history.forget(lambda r, cid=corpus_id: r.corpus_id == cid)
            log.info("private corpus %s expired", corpus_id)

    def _corpus_dropdown(self, owner: str, selected: Any = None) -> Any:
        corpora = self.store.list_corpora(owner)
        # The name alone (sizes and visibility are in the Corpus tab's table), so it fits; repeated names get an id.
        seen = [c.name for c in corpora]
        choices = [(c.name if seen.count(c.name) == 1 else f"{c.name} (#{c.id})", str(c.id)) for c in corpora]
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

    def sample_preparing(self, corpus_id: int) -> bool:
        """True while the shared sample is still being embedded at start-up."""
        return corpus_id == self.sample_corpus_id and self.readiness.view().state == "preparing"

    def preparing_message(self) -> str:
        v = self.readiness.view()
        done = f": {v.done:,} of {v.total:,} chunks embedded" if v.total else ""
        return (f"The shared sample is still being prepared ({v.stage}{done}). It is ready in a few seconds; "
                "search again then.")

    @user_errors
    def corpora(self, session_key: str, request: gr.Request) -> list[dict]:
        """The corpora this session may search: the shared sample plus its own private ones."""
        _, owner = self._who(session_key, request)
        return [{"corpus_id": c.id, "name": c.name, "documents": c.n_documents, "chunks": c.n_chunks,
                 "tokens": c.n_tokens, "languages": c.languages, "shared": c.owner is None}
                for c in self.store.list_corpora(owner)]

    # ------------------------------------------------------------------ heavy work

    def _cancel_event(self, key: str) -> threading.Event:
        return self.jobs.cancel_event(key)

    def stop(self, session_key: str, request: gr.Request) -> str:
        """Stop this session's running job (embedding, evaluation, sweep, scale run)."""
        key, _ = self._who(session_key, request)
        self.jobs.stop(key)
        return views.notice_html(STOPPED, "warn")

    def _embed(self, corpus_id: int, encoder: Any, progress: gr.Progress | None,
               cancel: threading.Event | None) -> workflows.EmbedOutcome:
        """Embed what is missing of a corpus under a heavy-work slot (cancellable, with progress)."""
        with self.jobs.heavy():
            return workflows.embed(self.store, corpus_id, encoder, meter=self.meter, cancel=cancel,
                                   progress=progress_bridge(progress, f"Embedding with {encoder.name}"))

    def _encoder_with_notice(self, model_key: str, variant: str | None, runtime: str,
                             progress: gr.Progress | None) -> Any:
        """Load an encoder; the first ONNX use exports the model, so say so in the progress bar meanwhile.
        No runtime given (an API caller leaving it out) means torch, the default."""
        runtime = runtime or "torch"
        if runtime != "torch" and not self.is_loaded(model_key, variant, runtime) and progress is not None:
            progress(0.0, desc=f"Loading {MODELS[model_key].display_name} on {RUNTIME_LABELS[runtime]}: the "
                               "first use exports it to ONNX (once; a minute or more)")
        return self.encoder(model_key, variant, runtime)

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
