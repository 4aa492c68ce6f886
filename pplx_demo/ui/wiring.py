"""The studio's event wiring: which component triggers which handler, with which inputs and limits.

Every action exists twice: the page's button, whose errors become a persistent message in the tab's
status area (`bind(..., status=...)`), and a never-shown button carrying the public API endpoint,
whose errors reach the caller as errors. Stop buttons show only while their job runs (toggled in the
browser, no round trip); Stop sets the session's cancel event, which the running job checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pplx_demo.ui.binding import bind
from pplx_demo.ui.outputs import (CompareCharts, CorpusAdded, DatasetControls, EmbedDone, EvalResults, LateChunking,
                                  ModelControls, ReadinessUpdate, ScaleResults, SearchResults, SessionStarted,
                                  SweepResults, shown_if_rows)
from pplx_demo.ui.studio import Studio

PRIVATE = {"api_visibility": "private"}
Components = dict[str, Any]


def _running(stop: str, on: bool) -> str:
    """Browser-side: show (or hide) a Stop button; passes the event's inputs through unchanged."""
    action = "add" if on else "remove"
    return (f"(...args) => {{ const b = document.getElementById('{stop}'); if (b) b.classList.{action}"
            "('pplx-running'); return args; }")


SCROLL_TO_RESULTS = ("(...args) => { const r = document.getElementById('pplx-results'); "
                     "if (r) r.scrollIntoView({behavior: 'smooth', block: 'start'}); return args; }")
SET_VIEW = ("(v) => { const r = document.getElementById('pplx-results'); if (r) r.dataset.view = v; return v; }")
RESIZE_PLOTS = "(...args) => { if (window.pplxResizePlots) window.pplxResizePlots(); return args; }"


@dataclass(frozen=True)
class Action:
    name: str  # API endpoint
    button: str
    stop: str | None
    fn: Callable[..., Any]
    view: type
    inputs: tuple[str, ...]
    status: str  # where the page shows an error
    heavy: bool = True
    api_only: tuple[str, ...] | None = None  # outputs of the API endpoint, when fewer than the page's


def _as_view(fn: Callable[..., Any], view: type) -> Callable[..., Any]:
    """A handler returning one value, as one returning `view(value)` (same signature for Gradio)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(fn(*args, **kwargs))

    return wrapper


def actions(studio: Studio) -> list[Action]:
    model = ("model_size", "variant")
    data = ("dataset", "languages", "query_language", "beir_zip", "queries_file", "qrels_file", "max_queries")
    return [
        Action("search", "search_btn", "pplx-search-stop", studio.search, SearchResults,
               ("corpus", "query", *model, "configurations", "top_k", "rescore_multiplier", "matryoshka",
                "session_key", "runtime", "explain"), "results", heavy=False),
        Action("ingest", "ingest_btn", "pplx-stop", studio.ingest, CorpusAdded,
               ("files", "corpus_name", *model, "chunk_tokens", "overlap_tokens", "session_key", "runtime"),
               "corpus_status"),
        Action("crawl", "crawl_btn", "pplx-stop", studio.crawl, CorpusAdded,
               ("url", "max_pages", "max_depth", "same_host", "corpus_name", *model, "chunk_tokens", "overlap_tokens",
                "session_key", "runtime"), "corpus_status"),
        Action("embed", "embed_btn", "pplx-stop", studio.embed, EmbedDone,
               ("corpus", *model, "session_key", "runtime"), "corpus_status", api_only=("corpus_status",)),
        Action("evaluate", "eval_btn", "pplx-eval-stop", studio.evaluate, EvalResults,
               (*data, *model, "eval_configs", "eval_dims", "late_pair", "pair_chunks", "corpus", "session_key",
                "runtime"), "eval_status"),
        Action("sweep", "sweep_btn", "pplx-eval-stop", studio.sweep, SweepResults,
               (*data, *model, "quality_floor", "corpus", "session_key", "runtime"), "sweep_status"),
        Action("scale", "scale_btn", "pplx-scale-stop", studio.scale, ScaleResults,
               ("corpus", "scale_sizes", *model, "session_key", "runtime"), "scale_status"),
        Action("late_chunking", "late_btn", None, _as_view(studio.late_chunking_demo, LateChunking), LateChunking,
               ("late_query", "model_size"), "late_out"),
    ]


def wire(studio: Studio, C: Components, demo: gr.Blocks) -> None:
    s = studio.settings
    heavy = {"concurrency_limit": s.heavy_concurrency, "concurrency_id": "heavy"}
    light = {"concurrency_limit": s.search_concurrency, "concurrency_id": "search"}
    models = [C["model_size"], C["variant"], C["runtime"]]

    fn, outputs = bind(studio.start_session, SessionStarted, C)
    demo.load(fn, [C["browser_key"]], outputs, **PRIVATE)
    C["session_key"].change(lambda k: k, [C["session_key"]], [C["browser_key"]], **PRIVATE)
    fn, outputs = bind(studio.readiness_tick, ReadinessUpdate, C)
    C["ready_timer"].tick(fn, [C["corpus"], C["session_key"]], outputs, show_progress="hidden", **PRIVATE)

    fn, outputs = bind(studio.on_dataset_change, DatasetControls, C)
    for control in (C["dataset"], C["languages"]):
        control.change(fn, [C["dataset"], C["languages"]], outputs, **PRIVATE)
    C["late_pair"].change(lambda pair: gr.update(visible=bool(pair)), [C["late_pair"]], [C["pair_chunks"]], **PRIVATE)

    # Only what applies to the chosen source: the sample needs no name, chunking or button.
    def source(kind: str) -> Callable[[], tuple[Any, ...]]:
        return lambda: (gr.update(visible=kind != "sample"), gr.update(visible=kind == "upload"),
                        gr.update(visible=kind == "crawl"))

    for tab, kind in (("upload_tab", "upload"), ("crawl_tab", "crawl"), ("sample_tab", "sample")):
        C[tab].select(source(kind), None, [C["corpus_settings"], C["ingest_btn"], C["crawl_btn"]], **PRIVATE)

    fn, outputs = bind(studio.on_model_change, ModelControls, C)
    for control in models:
        control.change(fn, models, outputs, **PRIVATE)
    label_inputs = [C[n] for n in ("corpus", "model_size", "variant", "session_key", "runtime")]
    for control in (C["corpus"], *models, C["session_key"]):
        control.change(studio.embed_button_label, label_inputs, [C["embed_btn"]], show_progress="hidden", **PRIVATE)
    C["scale_sizes"].change(studio.scale_estimate, [C["scale_sizes"], C["model_size"], C["variant"]],
                            [C["scale_status"]], show_progress="hidden", **PRIVATE)
    C["view"].change(None, [C["view"]], None, js=SET_VIEW, **PRIVATE)

    stops: dict[str, list[Any]] = {}
    search_event: Any = None
    for a in actions(studio):
        limits = heavy if a.heavy else light
        inputs = [C[n] for n in a.inputs]
        api_inputs = [C["api_explain"] if n == "explain" else C[n] for n in a.inputs]
        api_fn, api_outputs = bind(a.fn, a.view, C, only=a.api_only)
        C[f"api_{a.name}"].click(api_fn, api_inputs, api_outputs, api_name=a.name, api_visibility="public", **limits)
        ui_fn, ui_outputs = bind(a.fn, a.view, C, status=a.status)
        triggers = [C[a.button].click] + ([C["query"].submit] if a.name == "search" else [])
        for trigger in triggers:
            event = trigger(ui_fn, inputs, ui_outputs, js=_running(a.stop, True) if a.stop else None, **limits,
                            **PRIVATE)
            after = event.then(None, None, None, js=_running(a.stop, False), **PRIVATE) if a.stop else event
            if a.name == "search":
                after.then(None, None, None, js=SCROLL_TO_RESULTS, **PRIVATE)
                search_event = (ui_fn, inputs, ui_outputs, limits)
            if C["rejections"] in ui_outputs:
                after.then(shown_if_rows, [C["rejections"]], [C["rejections"]], queue=False, **PRIVATE)
            if a.name == "embed":
                after.then(studio.embed_button_label, label_inputs, [C["embed_btn"]], **PRIVATE)
            if a.stop:
                stops.setdefault(a.stop, []).append(event)
            if a.name in ("evaluate", "sweep", "scale"):
                after.then(None, None, None, js=RESIZE_PLOTS, **PRIVATE)

    # Example questions run at once, on the shared sample they are about.
    ui_fn, inputs, ui_outputs, limits = search_event
    C["examples"].load_input_event.then(studio.use_sample, [C["corpus"]], [C["corpus"]], **PRIVATE).then(
        ui_fn, inputs, ui_outputs, js=_running("pplx-search-stop", True), **limits, **PRIVATE).then(
        None, None, None, js=_running("pplx-search-stop", False), **PRIVATE).then(
        None, None, None, js=SCROLL_TO_RESULTS, **PRIVATE)

    status_of = {"pplx-search-stop": "results", "pplx-stop": "corpus_status", "pplx-eval-stop": "eval_status",
                 "pplx-scale-stop": "scale_status"}
    button_of = {"pplx-search-stop": "search_stop", "pplx-stop": "stop_btn", "pplx-eval-stop": "eval_stop_btn",
                 "pplx-scale-stop": "scale_stop"}
    for stop, events in stops.items():
        C[button_of[stop]].click(studio.stop, [C["session_key"]], [C[status_of[stop]]], cancels=events, queue=False,
                                 js=_running(stop, False), **PRIVATE)

    # Charts are drawn when their tab is shown (Plotly sizes a hidden chart wrongly).
    compare, compare_outputs = bind(studio.compare_charts, CompareCharts, C)
    C["compare_tab"].select(compare, [C["session_key"]], compare_outputs, **PRIVATE).then(
        None, None, None, js=RESIZE_PLOTS, **PRIVATE)
    gr.api(studio.corpora, api_name="corpora")
    gr.api(studio.status, api_name="status")
