"""The studio's Gradio layout: one builder per tab; the events are wired in `ui/wiring.py`.

Each builder adds its tab's components to one name -> component map (`C`); handlers return view
dataclasses whose field names are those names, and `bind` derives each event's outputs from the
dataclass, so no list of outputs here has to line up with a tuple returned elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from pplx_demo import charts
from pplx_demo.charts_scale import scale_latency_figure
from pplx_demo.config import Settings
from pplx_demo.evaluate.contextual import DEFAULT_QUERY, DEMO_QUERIES
from pplx_demo.ingest.sample import STARTER_LANGUAGES
from pplx_demo.scale import SYNTHETIC_NOTE
from pplx_demo.ui import choices, fields
from pplx_demo.ui.browser import STORAGE_KEY, browser_secret
from pplx_demo.ui.scale_panel import cost_sources_markdown
from pplx_demo.ui.studio import Studio
from pplx_demo.ui.wiring import wire

HERE = Path(__file__).parent
CSS = (HERE / "style.css").read_text(encoding="utf-8")
JS = (HERE / "studio.js").read_text(encoding="utf-8")
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate")

Components = dict[str, Any]


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments every `demo.launch` of the studio needs: theme, style, script, upload cap, privacy.

    Gradio refuses a file over `max_file_bytes` while it streams in, before it reaches the disk whole.
    `run_history=False`: Gradio would otherwise keep every query, its results and the session key in the
    browser's local storage (and offer a "Runs" page); the studio keeps nothing there but its session key.
    """
    return {"theme": THEME, "css": CSS, "js": JS, "max_file_size": settings.max_file_bytes, "run_history": False}


def build_app(settings: Settings, studio: Studio | None = None) -> gr.Blocks:
    """Build the studio. `studio.start_background()` (after launch) prepares the shared sample."""
    studio = studio or Studio(settings)
    studio.prepare()
    C: Components = {}
    # No usage analytics: nothing about what people search leaves the server.
    with gr.Blocks(title="pplx-embed search studio", analytics_enabled=False) as demo:
        C["browser_key"] = gr.BrowserState("", storage_key=STORAGE_KEY, secret=browser_secret(settings))
        C["session_key"] = gr.Textbox(value="", visible="hidden", label="session key", elem_id="pplx-session-key")
        _header(studio, C)
        with gr.Tabs(elem_id="pplx-tabs"):
            _search_tab(studio, C)
            _corpus_tab(studio, C)
            _compare_tab(C)
            _evaluate_tab(studio, C)
            with gr.Tab("About", id="about"):
                gr.Markdown(studio.about_markdown(), elem_id="pplx-about")
        _api_triggers(C)
        wire(studio, C, demo)
    # Light events (page load, charts) run side by side; searches and heavy work set their own limits.
    demo.queue(default_concurrency_limit=settings.search_concurrency)
    return demo


# ------------------------------------------------------------------------------------------ layout


def _header(studio: Studio, C: Components) -> None:
    size, variant = studio.default_model()
    models = studio.model_choices(size)
    with gr.Column(elem_id="pplx-header"):
        gr.Markdown("# pplx-embed search studio\n"
                    "Search your own documents with Perplexity's pplx-embed models and compare float32, "
                    "int8 and binary indexes side by side: ranked results, latency, memory, cost and quality.")
        C["ready_status"] = gr.HTML(studio.readiness_html(), elem_id="pplx-ready")
        C["ready_timer"] = gr.Timer(1.0, active=False)
    with gr.Accordion(studio.model_label(size, variant), open=False, elem_id="pplx-model-box") as C["model_box"]:
        with gr.Row():
            C["model_size"] = fields.radio(models.sizes, value=size, label="Model", scale=3, elem_id="pplx-model",
                                           param="model_size")
            C["variant"] = fields.radio(models.variants, value=variant, label="Variant", scale=2,
                                        elem_id="pplx-variant", param="variant")
            C["runtime"] = fields.radio(list(choices.RUNTIME_CHOICES), value="torch", label="Runtime (CPU)", scale=2,
                                        elem_id="pplx-runtime", param="runtime")
        C["model_note"] = gr.HTML(studio.model_note(size, variant), elem_id="pplx-model-note", padding=True)
        gr.HTML(studio.unavailable_html(), elem_id="pplx-unavailable")


def _search_tab(studio: Studio, C: Components) -> None:
    size, variant = C["model_size"].value, C["variant"].value
    with gr.Tab("Search", id="search"):
        with gr.Row(equal_height=False, elem_id="pplx-search-row"):
            C["corpus"] = gr.Dropdown(label="Corpus", allow_custom_value=True, scale=3, min_width=220,
                                      elem_id="pplx-corpus")
            C["query"] = gr.Textbox(label="Query", placeholder="Ask something about the corpus", scale=5,
                                    min_width=240, elem_id="pplx-query", submit_btn=False)
            with gr.Column(scale=1, min_width=110, elem_id="pplx-search-buttons"):
                C["search_btn"] = gr.Button("Search", variant="primary", elem_id="pplx-search")
                C["search_stop"] = gr.Button("Stop", variant="stop", size="sm", elem_id="pplx-search-stop",
                                             elem_classes=["pplx-stop"])
        C["examples"] = gr.Examples(examples=[[q] for q in studio.example_queries()], inputs=[C["query"]],
                                    label="Example questions: click one to search the shared sample "
                                          f"({', '.join(STARTER_LANGUAGES)})", preload=False,
                                    api_visibility="private", elem_id="pplx-examples")
        C["configurations"] = fields.checkbox_group(
            list(choices.CONFIG_CHOICES), value=list(choices.DEFAULT_CONFIGS), param="configurations",
            label="Configurations to compare (float32 is the reference)", elem_id="pplx-configs")
        with gr.Accordion("More search options: why it matched, layout, top-k, rescoring, Matryoshka size",
                          open=False, elem_id="pplx-search-options"):
            with gr.Row():
                C["explain"] = gr.Checkbox(True, label="Why it matched: mark each hit's sentence closest to the query "
                                           "(its own latency stage)", elem_id="pplx-explain")
                C["view"] = gr.Radio(list(choices.VIEW_CHOICES), value="auto",
                                     label="Show results as (auto: columns, a rank table on a phone)",
                                     elem_id="pplx-view")
            with gr.Row():
                C["top_k"] = fields.slider(1, choices.MAX_TOP_K, value=10, step=1, label="Top-k", param="top_k")
                C["rescore_multiplier"] = fields.slider(1, choices.MAX_RESCORE_MULTIPLIER, value=4, step=1,
                                                        label="Rescore multiplier", param="rescore_multiplier")
                C["matryoshka"] = fields.dropdown(studio.matryoshka_choices(size, variant), value="full",
                                                  label="Matryoshka size", param="matryoshka")
        C["results"] = gr.HTML(label="results", elem_id="pplx-results")
        with gr.Accordion("Results as JSON (what the API returns)", open=False):
            C["results_json"] = gr.JSON(label="results")


def _corpus_tab(studio: Studio, C: Components) -> None:
    # No model is loaded to lay the page out (it is served before any loads): the registry's estimate.
    chunk_default, overlap_default, chunk_max = studio.chunking_for(C["model_size"].value, C["variant"].value,
                                                                    load=False)
    s = studio.settings
    with gr.Tab("Corpus", id="corpus"):
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                with gr.Tabs():
                    with gr.Tab("Upload files") as C["upload_tab"]:
                        C["files"] = gr.File(file_count="multiple", label="Files (txt, md, html, pdf, docx, csv, "
                                             "tsv, json, jsonl, zip)", elem_id="pplx-upload")
                    with gr.Tab("Crawl a site") as C["crawl_tab"]:
                        C["url"] = gr.Textbox(label="Start URL", placeholder="https://example.org/docs/")
                        with gr.Row():
                            C["max_pages"] = fields.slider(1, s.crawl_max_pages, value=min(20, s.crawl_max_pages),
                                                           step=1, label="Max pages", param="max_pages")
                            C["max_depth"] = fields.slider(0, s.crawl_max_depth, value=s.crawl_max_depth, step=1,
                                                           label="Max link depth", param="max_depth")
                        C["same_host"] = gr.Checkbox(True, label="Stay on the start URL's host")
                    with gr.Tab("Shared sample") as C["sample_tab"]:
                        gr.Markdown(studio.sample_note(), elem_id="pplx-sample-note")
                with gr.Group(elem_id="pplx-corpus-settings") as C["corpus_settings"]:
                    C["corpus_name"] = gr.Textbox(label="Corpus name", placeholder="my documents",
                                                  elem_id="pplx-corpus-name")
                    with gr.Row():
                        C["chunk_tokens"] = fields.slider(16, chunk_max, value=chunk_default, step=1,
                                                          label="Chunk size (tokens)", elem_id="pplx-chunk-tokens",
                                                          param="chunk_tokens")
                        C["overlap_tokens"] = fields.slider(0, max(1, min(chunk_max // 2, 1024)),
                                                            value=overlap_default, step=1, label="Overlap (tokens)",
                                                            param="overlap_tokens")
                C["ingest_btn"] = gr.Button("Add files as a private corpus", variant="primary", elem_id="pplx-ingest")
                C["crawl_btn"] = gr.Button("Crawl into a private corpus", variant="primary", visible=False,
                                           elem_id="pplx-crawl")
                C["stop_btn"] = gr.Button("Stop", variant="stop", size="sm", elem_id="pplx-stop",
                                          elem_classes=["pplx-stop"])
            with gr.Column(scale=3, min_width=300):
                C["corpus_status"] = gr.HTML(label="status", elem_id="pplx-corpus-status")
                C["embed_btn"] = gr.Button("Embed the corpus chosen in Search now", size="sm", visible=False,
                                           elem_id="pplx-embed")
                C["corpus_stats"] = gr.HTML(label="corpus statistics", elem_id="pplx-corpus-stats")
                C["rejections"] = gr.Dataframe(headers=["file / page", "why it was not loaded"], label="Not loaded",
                                               visible=False, interactive=False, wrap=True, max_height=240,
                                               column_widths=["35%", "65%"], elem_id="pplx-rejected")
                C["corpus_info"] = gr.JSON(label="Corpus handle (for the API)", visible=False)
                C["corpora_table"] = gr.Dataframe(label="Corpora you can search", interactive=False, wrap=True,
                                                  max_height=260, elem_id="pplx-corpora",
                                                  column_widths=["6%", "33%", "13%", "10%", "14%", "24%"])


def _compare_tab(C: Components) -> None:
    with gr.Tab("Compare", id="compare") as C["compare_tab"]:
        gr.Markdown("Charts from your searches in this browser session (kept across reloads) and your last "
                    "evaluation.")
        C["latency_plot"] = gr.Plot(charts.latency_figure([]), label="Latency", elem_id="pplx-latency")
        with gr.Row(elem_classes=["pplx-chart-row"]):
            C["storage_plot"] = gr.Plot(charts.message_figure("Run a search to see what its configurations cost "
                                                              "to serve."), label="RAM, disk and $ per month",
                                        elem_id="pplx-storage")
            C["scores_plot"] = gr.Plot(charts.score_distribution_figure(None), label="Score distribution",
                                       elem_id="pplx-scores")
        gr.Markdown(cost_sources_markdown(), elem_classes=["pplx-small"])
        C["quality_plot"] = gr.Plot(charts.quality_bytes_figure([], choices.QUALITY_METRIC),
                                    label="Quality vs bytes (last evaluation)", elem_id="pplx-quality")
        with gr.Accordion("Scale: latency, RAM, disk and cost at 100k to 10M vectors", open=True,
                          elem_id="pplx-scale"):
            gr.HTML(f"<div class='pplx-notice warn'>Grows the corpus chosen in Search with {SYNTHETIC_NOTE}. "
                    "Queries are real questions.</div>")
            with gr.Row():
                C["scale_sizes"] = fields.checkbox_group(list(choices.SCALE_SIZE_CHOICES),
                                                        value=list(choices.DEFAULT_SCALE_SIZES),
                                                        label="Grow to", param="sizes", scale=3,
                                                        elem_id="pplx-scale-sizes")
                with gr.Column(scale=1, min_width=160):
                    C["scale_btn"] = gr.Button("Run the scale test", variant="primary", elem_id="pplx-scale-run")
                    C["scale_stop"] = gr.Button("Stop", variant="stop", size="sm", elem_id="pplx-scale-stop",
                                                elem_classes=["pplx-stop"])
            C["scale_status"] = gr.HTML(elem_id="pplx-scale-status")
            with gr.Row(elem_classes=["pplx-chart-row"]):
                C["scale_latency_plot"] = gr.Plot(scale_latency_figure(None), label="Latency at scale",
                                                  elem_id="pplx-scale-latency")
                C["scale_cost_plot"] = gr.Plot(charts.message_figure("Run the scale test to price its sizes."),
                                               label="RAM, disk and $ per month at these sizes",
                                               elem_id="pplx-scale-cost")
            C["scale_table"] = gr.HTML(elem_id="pplx-scale-table")
            gr.Markdown(cost_sources_markdown(), elem_classes=["pplx-small"])


def _evaluate_tab(studio: Studio, C: Components) -> None:
    size, variant = C["model_size"].value, C["variant"].value
    languages = list(studio.xquad_languages())
    with gr.Tab("Evaluate", id="evaluate"):
        with gr.Tabs():
            with gr.Tab("Quality on labelled data"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=280):
                        C["dataset"] = fields.radio(choices.DATASET_CHOICES, value=choices.DATASET_CHOICES[0][1],
                                                    label="Labelled data", param="dataset")
                        C["languages"] = fields.checkbox_group(languages, value=["en"], label="XQuAD corpus languages",
                                                              param="languages")
                        C["query_language"] = fields.dropdown(["same as corpus", *languages], value="same as corpus",
                                                              label="Query language (cross-lingual when different)",
                                                              param="query_language")
                        C["beir_zip"] = gr.File(label="BEIR folder as a zip (corpus.jsonl, queries.jsonl, "
                                                "qrels/test.tsv)", file_types=[".zip"], elem_id="pplx-beir",
                                                visible=False)
                        C["queries_file"] = gr.File(label="Queries for your corpus (jsonl or tsv)",
                                                    file_types=[".jsonl", ".tsv", ".txt"], visible=False)
                        C["qrels_file"] = gr.File(label="Qrels for your corpus (tsv)", file_types=[".tsv", ".txt"],
                                                  visible=False)
                        C["max_queries"] = fields.slider(10, studio.max_queries_for("xquad", ["en"]),
                                                         value=choices.DEFAULT_EVAL_QUERIES, step=1,
                                                         label="Queries (a seeded random sample)",
                                                         elem_id="pplx-max-queries", param="max_queries")
                        C["eval_configs"] = fields.checkbox_group(list(choices.CONFIG_CHOICES),
                                                                 value=list(choices.CONFIG_CHOICES),
                                                                 label="Configurations", param="configurations")
                        C["eval_dims"] = fields.checkbox_group(
                            [c for c in studio.matryoshka_choices(size, variant) if c[1] != "full"], value=[],
                            label="Also at these Matryoshka sizes", param="matryoshka_sizes")
                        C["late_pair"] = gr.Checkbox(False, label="Also with late chunking (same chunks, both "
                                                                  "variants of the model)")
                        C["pair_chunks"] = fields.slider(16, min(512, studio.pair_chunk_max(size, load=False)),
                                                         value=choices.PAIR_CHUNK_TOKENS, step=1, visible=False,
                                                         label="Chunk size for the late-chunking pair (tokens)",
                                                         param="pair_chunk_tokens")
                        C["eval_btn"] = gr.Button("Run evaluation", variant="primary", elem_id="pplx-evaluate")
                        with gr.Accordion("Cost vs quality sweep", open=False, elem_id="pplx-sweep-box"):
                            gr.Markdown("binary + rescore at multipliers 1 to 16, asymmetric, and every precision "
                                        "at every Matryoshka size, on the first language ticked above.")
                            C["quality_floor"] = fields.slider(90, 100, value=choices.QUALITY_FLOOR, step=0.5,
                                                               label="Quality floor (% of float32's nDCG@10)",
                                                               param="quality_floor")
                            C["sweep_btn"] = gr.Button("Run the sweep", elem_id="pplx-sweep")
                        C["eval_stop_btn"] = gr.Button("Stop", variant="stop", size="sm", elem_id="pplx-eval-stop",
                                                       elem_classes=["pplx-stop"])
                    with gr.Column(scale=7, min_width=300):
                        C["eval_status"] = gr.HTML(label="evaluation status", elem_id="pplx-eval-status")
                        C["eval_tables"] = gr.HTML(label="quality tables", elem_id="pplx-eval-table")
                        with gr.Row(elem_classes=["pplx-chart-row"]):
                            C["pareto_plot"] = gr.Plot(charts.quality_bytes_figure([], choices.QUALITY_METRIC),
                                                       label="Quality vs bytes per vector", elem_id="pplx-pareto")
                            C["language_plot"] = gr.Plot(charts.per_language_figure({}, choices.QUALITY_METRIC),
                                                         label="Per language", elem_id="pplx-language")
                        with gr.Accordion("Table data (what the API returns)", open=False):
                            C["eval_frame"] = gr.Dataframe(label="quality per configuration", interactive=False)
                        C["sweep_status"] = gr.HTML(elem_id="pplx-sweep-status")
                        C["sweep_table"] = gr.HTML(elem_id="pplx-sweep-table")
                        with gr.Row(elem_classes=["pplx-chart-row"]):
                            C["sweep_mult_plot"] = gr.Plot(label="Quality vs rescore multiplier",
                                                           elem_id="pplx-sweep-mult")
                            C["sweep_bytes_plot"] = gr.Plot(label="Quality vs bytes per vector (sweep)",
                                                            elem_id="pplx-sweep-bytes")
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


def _api_triggers(C: Components) -> None:
    """Never-shown buttons whose events are the public API: errors reach API callers as errors, while the
    page's own buttons show them as persistent messages in the tab."""
    for name in ("search", "ingest", "crawl", "embed", "evaluate", "sweep", "scale", "late_chunking"):
        C[f"api_{name}"] = gr.Button(visible=False, render=True)
    # Over the API, explanations are asked for (they embed each hit's sentences: worth it on the page).
    C["api_explain"] = gr.Checkbox(False, visible=False, label="explain (why each hit matched)")
