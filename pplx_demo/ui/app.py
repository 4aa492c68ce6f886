"""The studio's Gradio layout and event wiring: one builder per tab, handlers in `studio.py`.

Each builder adds its tab's components to one name -> component map (`C`); handlers return view
dataclasses whose field names are those names, and `bind` derives each event's outputs from the
dataclass, so no list of outputs here has to line up with a tuple returned elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from pplx_demo import charts
from pplx_demo.config import Settings
from pplx_demo.evaluate.contextual import DEFAULT_QUERY, DEMO_QUERIES
from pplx_demo.ingest.sample import STARTER_LANGUAGES
from pplx_demo.ui import choices
from pplx_demo.ui.binding import bind
from pplx_demo.ui.outputs import (CompareCharts, CorpusAdded, DatasetControls, EvalResults, ModelControls,
                                  SearchResults, SessionStarted, Stopped, shown_if_rows)
from pplx_demo.ui.studio import Studio

CSS = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate")
BROWSER_STORAGE_KEY = "pplx-studio-session"
PRIVATE = {"api_visibility": "private"}

Components = dict[str, Any]


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments every `demo.launch` of the studio needs: theme, style, and the upload cap.

    Gradio refuses a file over `max_file_bytes` while it streams in, before it reaches the disk whole.
    """
    return {"theme": THEME, "css": CSS, "max_file_size": settings.max_file_bytes}


def build_app(settings: Settings, studio: Studio | None = None) -> gr.Blocks:
    """Build the studio (opening the store and preparing the shared sample corpus first)."""
    studio = studio or Studio(settings)
    studio.prepare()
    C: Components = {}
    # No usage analytics: nothing about what people search leaves the server.
    with gr.Blocks(title="pplx-embed search studio", analytics_enabled=False) as demo:
        C["browser_key"] = gr.BrowserState("", storage_key=BROWSER_STORAGE_KEY)
        C["session_key"] = gr.Textbox(value="", visible="hidden", label="session key", elem_id="pplx-session-key")
        C["history"] = gr.State([])  # last search runs of this session, for the Compare tab
        C["last_eval"] = gr.State(None)
        _header(studio, C)
        with gr.Tabs():
            _corpus_tab(studio, C)
            _search_tab(studio, C)
            _compare_tab(C)
            _evaluate_tab(studio, C)
            with gr.Tab("About", id="about"):
                gr.Markdown(studio.about_markdown(), elem_id="pplx-about")
        _wire(studio, C, demo)
        gr.api(studio.corpora, api_name="corpora")
    # Light events (page load, charts) run side by side; heavy ones set their own limit.
    demo.queue(default_concurrency_limit=choices.SEARCH_CONCURRENCY)
    return demo


# ------------------------------------------------------------------------------------------ layout


def _header(studio: Studio, C: Components) -> None:
    size, variant = studio.default_model()
    models = studio.model_choices(size)
    with gr.Column(elem_id="pplx-header"):
        gr.Markdown("# pplx-embed search studio\n"
                    "Search your own documents with Perplexity's pplx-embed models and compare float32, "
                    "int8 and binary indexes side by side: ranked results, latency, storage and quality.")
    with gr.Group():
        with gr.Row():
            C["model_size"] = gr.Radio(models.sizes, value=size, label="Model", scale=3, elem_id="pplx-model")
            C["variant"] = gr.Radio(models.variants, value=variant, label="Variant", scale=2, elem_id="pplx-variant")
        C["model_note"] = gr.HTML(studio.model_note(size, variant), elem_id="pplx-model-note", padding=True)


def _corpus_tab(studio: Studio, C: Components) -> None:
    chunk_default, overlap_default, chunk_max = studio.chunking_for(C["model_size"].value, C["variant"].value)
    s = studio.settings
    with gr.Tab("Corpus", id="corpus"):
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Upload files") as C["upload_tab"]:
                        C["files"] = gr.File(file_count="multiple", label="Files (txt, md, html, pdf, docx, csv, "
                                             "tsv, json, jsonl, zip)", elem_id="pplx-upload")
                    with gr.Tab("Crawl a site") as C["crawl_tab"]:
                        C["url"] = gr.Textbox(label="Start URL", placeholder="https://example.org/docs/")
                        with gr.Row():
                            C["max_pages"] = gr.Slider(1, s.crawl_max_pages, value=min(20, s.crawl_max_pages), step=1,
                                                       label="Max pages")
                            C["max_depth"] = gr.Slider(0, s.crawl_max_depth, value=s.crawl_max_depth, step=1,
                                                       label="Max link depth")
                        C["same_host"] = gr.Checkbox(True, label="Stay on the start URL's host")
                    with gr.Tab("Shared sample") as C["sample_tab"]:
                        gr.Markdown(studio.sample_note(), elem_id="pplx-sample-note")
                with gr.Group(elem_id="pplx-corpus-settings") as C["corpus_settings"]:
                    C["corpus_name"] = gr.Textbox(label="Corpus name", placeholder="my documents",
                                                  elem_id="pplx-corpus-name")
                    with gr.Row():
                        C["chunk_tokens"] = gr.Slider(16, chunk_max, value=chunk_default, step=1,
                                                      label="Chunk size (tokens)", elem_id="pplx-chunk-tokens")
                        C["overlap_tokens"] = gr.Slider(0, max(1, min(chunk_max // 2, 1024)), value=overlap_default,
                                                        step=1, label="Overlap (tokens)")
                C["ingest_btn"] = gr.Button("Add files as a private corpus", variant="primary", elem_id="pplx-ingest")
                C["crawl_btn"] = gr.Button("Crawl into a private corpus", variant="primary", visible=False,
                                           elem_id="pplx-crawl")
                C["stop_btn"] = gr.Button("Stop", variant="stop", size="sm", visible=False, elem_id="pplx-stop")
            with gr.Column(scale=3):
                C["corpus_status"] = gr.HTML(label="status", elem_id="pplx-corpus-status")
                C["corpus_stats"] = gr.HTML(label="corpus statistics", elem_id="pplx-corpus-stats")
                C["rejections"] = gr.Dataframe(headers=["file / page", "why it was not loaded"], label="Not loaded",
                                               visible=False, interactive=False, wrap=True, max_height=240,
                                               column_widths=["35%", "65%"], elem_id="pplx-rejected")
                C["corpus_info"] = gr.JSON(label="Corpus handle (for the API)", visible=False)
                C["corpora_table"] = gr.Dataframe(label="Corpora you can search", interactive=False, wrap=True,
                                                  max_height=260, elem_id="pplx-corpora",
                                                  column_widths=["6%", "33%", "13%", "10%", "14%", "24%"])
                C["embed_btn"] = gr.Button("Embed the corpus chosen in Search now", size="sm", elem_id="pplx-embed")


def _search_tab(studio: Studio, C: Components) -> None:
    size, variant = C["model_size"].value, C["variant"].value
    with gr.Tab("Search", id="search"):
        with gr.Row(equal_height=False):
            C["corpus"] = gr.Dropdown(label="Corpus", allow_custom_value=True, scale=2, elem_id="pplx-corpus")
            C["query"] = gr.Textbox(label="Query", placeholder="Ask something about the corpus", scale=5,
                                    elem_id="pplx-query", submit_btn=False)
            C["search_btn"] = gr.Button("Search", variant="primary", scale=1, min_width=120, elem_id="pplx-search")
        C["examples"] = gr.Examples(examples=[[q] for q in studio.example_queries()], inputs=[C["query"]],
                                    label="Example questions (answered by the shared sample; "
                                          f"{', '.join(STARTER_LANGUAGES)})")
        with gr.Row():
            C["configurations"] = gr.CheckboxGroup(list(choices.CONFIG_CHOICES), value=list(choices.DEFAULT_CONFIGS),
                                                   label="Configurations to compare (side by side)", scale=4,
                                                   elem_id="pplx-configs")
            C["top_k"] = gr.Slider(1, choices.MAX_TOP_K, value=10, step=1, label="Top-k", scale=1)
            C["rescore_multiplier"] = gr.Slider(1, choices.MAX_RESCORE_MULTIPLIER, value=4, step=1,
                                                label="Rescore multiplier", scale=1)
            C["matryoshka"] = gr.Dropdown(studio.matryoshka_choices(size, variant), value="full",
                                          label="Matryoshka size", scale=1)
        C["results"] = gr.HTML(label="results", elem_id="pplx-results")
        with gr.Accordion("Results as JSON (what the API returns)", open=False):
            C["results_json"] = gr.JSON(label="results")


def _compare_tab(C: Components) -> None:
    with gr.Tab("Compare", id="compare"):
        gr.Markdown("Charts from your searches in this session (and your last evaluation).")
        C["latency_plot"] = gr.Plot(charts.latency_figure([]), label="Latency", elem_id="pplx-latency")
        with gr.Row():
            C["storage_plot"] = gr.Plot(charts.storage_figure(None), label="Storage", elem_id="pplx-storage")
            C["scores_plot"] = gr.Plot(charts.score_distribution_figure(None), label="Score distribution",
                                       elem_id="pplx-scores")
        C["quality_plot"] = gr.Plot(charts.quality_bytes_figure([], choices.QUALITY_METRIC),
                                    label="Quality vs bytes (last evaluation)", elem_id="pplx-quality")


def _evaluate_tab(studio: Studio, C: Components) -> None:
    size, variant = C["model_size"].value, C["variant"].value
    languages = list(studio.xquad_languages())
    with gr.Tab("Evaluate", id="evaluate"):
        with gr.Tabs():
            with gr.Tab("Quality on labelled data"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=280):
                        C["dataset"] = gr.Radio(choices.DATASET_CHOICES, value=choices.DATASET_CHOICES[0][1],
                                                label="Labelled data")
                        C["languages"] = gr.CheckboxGroup(languages, value=["en"], label="XQuAD corpus languages")
                        C["query_language"] = gr.Dropdown(["same as corpus", *languages], value="same as corpus",
                                                          label="Query language (cross-lingual when different)")
                        C["beir_zip"] = gr.File(label="BEIR folder as a zip (corpus.jsonl, queries.jsonl, "
                                                "qrels/test.tsv)", file_types=[".zip"], elem_id="pplx-beir",
                                                visible=False)
                        C["queries_file"] = gr.File(label="Queries for your corpus (jsonl or tsv)",
                                                    file_types=[".jsonl", ".tsv", ".txt"], visible=False)
                        C["qrels_file"] = gr.File(label="Qrels for your corpus (tsv)", file_types=[".tsv", ".txt"],
                                                  visible=False)
                        C["max_queries"] = gr.Slider(10, studio.max_queries_for("xquad", ["en"]),
                                                     value=choices.DEFAULT_EVAL_QUERIES, step=1,
                                                     label="Queries (a seeded random sample)",
                                                     elem_id="pplx-max-queries")
                        C["eval_configs"] = gr.CheckboxGroup(list(choices.CONFIG_CHOICES),
                                                             value=list(choices.CONFIG_CHOICES),
                                                             label="Configurations")
                        C["eval_dims"] = gr.CheckboxGroup(
                            [c for c in studio.matryoshka_choices(size, variant) if c[1] != "full"], value=[],
                            label="Also at these Matryoshka sizes")
                        C["late_pair"] = gr.Checkbox(False, label="Also with late chunking (same chunks, both "
                                                                  "variants of the model)")
                        C["pair_chunks"] = gr.Slider(16, min(512, studio.pair_chunk_max(size)),
                                                     value=choices.PAIR_CHUNK_TOKENS, step=1, visible=False,
                                                     label="Chunk size for the late-chunking pair (tokens)")
                        C["eval_btn"] = gr.Button("Run evaluation", variant="primary", elem_id="pplx-evaluate")
                        C["eval_stop_btn"] = gr.Button("Stop", variant="stop", size="sm", visible=False,
                                                       elem_id="pplx-eval-stop")
                    with gr.Column(scale=7):
                        C["eval_status"] = gr.HTML(label="evaluation status", elem_id="pplx-eval-status")
                        C["eval_tables"] = gr.HTML(label="quality tables", elem_id="pplx-eval-table")
                        C["pareto_plot"] = gr.Plot(charts.quality_bytes_figure([], choices.QUALITY_METRIC),
                                                   label="Quality vs bytes per vector")
                        C["language_plot"] = gr.Plot(charts.per_language_figure({}, choices.QUALITY_METRIC),
                                                     label="Per language")
                        with gr.Accordion("Table data (what the API returns)", open=False):
                            C["eval_frame"] = gr.Dataframe(label="quality per configuration", interactive=False)
            with gr.Tab("Independent vs late chunking"):
                gr.Markdown("One short article about Berlin, cut into sentences. Later sentences say *it* or "
                            "*the city* instead of *Berlin*: embedded alone they lose their subject; with late "
                            "chunking each sentence is embedded in the context of the whole article. The two "
                            "rankings below are for the same sentences and the same query.")
                with gr.Row():
                    C["late_query"] = gr.Dropdown(list(DEMO_QUERIES), value=DEFAULT_QUERY, allow_custom_value=True,
                                                  label="Query", scale=4, elem_id="pplx-late-query")
                    C["late_btn"] = gr.Button("Rank both ways", variant="primary", scale=1, min_width=200,
                                              elem_id="pplx-late-run")
                C["late_out"] = gr.HTML(label="late chunking", elem_id="pplx-late-out")


# ------------------------------------------------------------------------------------------ wiring


def _visible(flag: bool) -> Callable[[], Any]:
    return lambda: gr.update(visible=flag)


def _wire(studio: Studio, C: Components, demo: gr.Blocks) -> None:
    heavy = {"concurrency_limit": studio.settings.heavy_concurrency, "concurrency_id": "heavy"}
    models = [C["model_size"], C["variant"]]

    fn, outputs = bind(studio.on_dataset_change, DatasetControls, C)
    for control in (C["dataset"], C["languages"]):
        control.change(fn, [C["dataset"], C["languages"]], outputs, **PRIVATE)
    C["late_pair"].change(lambda pair: gr.update(visible=bool(pair)), [C["late_pair"]], [C["pair_chunks"]], **PRIVATE)
    fn, outputs = bind(studio.start_session, SessionStarted, C)
    demo.load(fn, [C["browser_key"]], outputs, **PRIVATE)
    C["session_key"].change(lambda k: k, [C["session_key"]], [C["browser_key"]], **PRIVATE)

    # Only what applies to the chosen source: the sample needs no name, chunking or button.
    def source(kind: str) -> Callable[[], tuple[Any, ...]]:
        return lambda: (gr.update(visible=kind != "sample"), gr.update(visible=kind == "upload"),
                        gr.update(visible=kind == "crawl"))

    for tab, kind in (("upload_tab", "upload"), ("crawl_tab", "crawl"), ("sample_tab", "sample")):
        C[tab].select(source(kind), None, [C["corpus_settings"], C["ingest_btn"], C["crawl_btn"]], **PRIVATE)

    fn, outputs = bind(studio.on_model_change, ModelControls, C)
    for control in models:
        control.change(fn, models, outputs, **PRIVATE)
    for control in (C["corpus"], *models, C["session_key"]):
        control.change(studio.embed_button_label, [C["corpus"], *models, C["session_key"]], [C["embed_btn"]],
                       **PRIVATE)

    # Stop shows only while an ingest, crawl, embedding or evaluation runs.
    ingest, corpus_outputs = bind(studio.ingest, CorpusAdded, C)
    crawl, _ = bind(studio.crawl, CorpusAdded, C)
    heavy_events = []
    for button, stop, fn, inputs, outputs, name in (
        ("ingest_btn", "stop_btn", ingest,
         ["files", "corpus_name", "model_size", "variant", "chunk_tokens", "overlap_tokens", "session_key"],
         corpus_outputs, "ingest"),
        ("crawl_btn", "stop_btn", crawl,
         ["url", "max_pages", "max_depth", "same_host", "corpus_name", "model_size", "variant", "chunk_tokens",
          "overlap_tokens", "session_key"], corpus_outputs, "crawl"),
        ("embed_btn", "stop_btn", studio.embed, ["corpus", "model_size", "variant", "session_key"],
         [C["corpus_status"]], "embed"),
    ):
        event = C[button].click(_visible(True), None, [C[stop]], queue=False, **PRIVATE).then(
            fn, [C[i] for i in inputs], outputs, api_name=name, **heavy)
        after = event.then(_visible(False), None, [C[stop]], queue=False, **PRIVATE)
        # This Gradio's front end runs .then() after success only; an error needs its own listener.
        event.failure(_visible(False), None, [C[stop]], queue=False, **PRIVATE)
        if C["rejections"] in outputs:
            after.then(shown_if_rows, [C["rejections"]], [C["rejections"]], queue=False, **PRIVATE)
        heavy_events.append(event)

    compare, compare_outputs = bind(studio.compare_charts, CompareCharts, C)
    search, search_outputs = bind(studio.search, SearchResults, C)
    search_inputs = [C[n] for n in ("corpus", "query", "model_size", "variant", "configurations", "top_k",
                                    "rescore_multiplier", "matryoshka", "session_key", "history")]
    for trigger, api in ((C["search_btn"].click, "search"), (C["query"].submit, None)):
        trigger(search, search_inputs, search_outputs, api_name=api, api_visibility="public" if api else "private",
                concurrency_limit=choices.SEARCH_CONCURRENCY, concurrency_id="search").then(
            compare, [C["history"], C["last_eval"]], compare_outputs, **PRIVATE)

    evaluate, eval_outputs = bind(studio.evaluate, EvalResults, C)
    eval_inputs = [C[n] for n in ("dataset", "languages", "query_language", "beir_zip", "queries_file", "qrels_file",
                                  "max_queries", "model_size", "variant", "eval_configs", "eval_dims", "late_pair",
                                  "pair_chunks", "corpus", "session_key")]
    event = C["eval_btn"].click(_visible(True), None, [C["eval_stop_btn"]], queue=False, **PRIVATE).then(
        evaluate, eval_inputs, eval_outputs, api_name="evaluate", **heavy)
    event.then(_visible(False), None, [C["eval_stop_btn"]], queue=False, **PRIVATE).then(
        compare, [C["history"], C["last_eval"]], compare_outputs, **PRIVATE)
    event.failure(_visible(False), None, [C["eval_stop_btn"]], queue=False, **PRIVATE)
    heavy_events.append(event)

    stop, stop_outputs = bind(studio.stop, Stopped, C)
    for button in ("stop_btn", "eval_stop_btn"):
        C[button].click(stop, [C["session_key"]], stop_outputs, cancels=heavy_events, queue=False, **PRIVATE).then(
            _visible(False), None, [C["eval_stop_btn"]], queue=False, **PRIVATE)
    C["late_btn"].click(studio.late_chunking_demo, [C["late_query"], C["model_size"]], [C["late_out"]],
                        api_name="late_chunking", **heavy)
