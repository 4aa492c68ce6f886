"""The studio's Gradio layout and event wiring. Handlers live in `studio.py`; views in `views.py`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from pplx_demo.config import Settings
from pplx_demo.ui import studio as st

CSS = (Path(__file__).parent / "style.css").read_text(encoding="utf-8")
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate")
BROWSER_STORAGE_KEY = "pplx-studio-session"


def launch_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments every `demo.launch` of the studio needs: theme, style, and the upload cap.

    Gradio refuses a file over `max_file_bytes` while it streams in, before it reaches the disk whole.
    """
    settings = settings or Settings.from_env()
    return {"theme": THEME, "css": CSS, "max_file_size": settings.max_file_bytes}


def build_app(settings: Settings | None = None, studio: st.Studio | None = None) -> gr.Blocks:
    """Build the studio (opening the store and preparing the shared sample corpus first)."""
    studio = studio or st.Studio(settings or Settings.from_env())
    studio.prepare()
    default_size, default_variant = studio.default_model()
    models = studio.model_choices(default_size)
    chunk_default, overlap_default, chunk_max = studio.chunking_for(default_size, default_variant)
    heavy = {"concurrency_limit": studio.settings.heavy_concurrency, "concurrency_id": "heavy"}
    empty = studio.empty_charts()
    private = {"api_visibility": "private"}

    # No usage analytics: nothing about what people search leaves the server.
    with gr.Blocks(title="pplx-embed search studio", analytics_enabled=False) as demo:
        browser_key = gr.BrowserState("", storage_key=BROWSER_STORAGE_KEY)
        session_key = gr.Textbox(value="", visible="hidden", label="session key", elem_id="pplx-session-key")
        history = gr.State([])  # last search runs of this session, for the Compare tab
        last_eval = gr.State(None)

        with gr.Column(elem_id="pplx-header"):
            gr.Markdown("# pplx-embed search studio\n"
                        "Search your own documents with Perplexity's pplx-embed models and compare float32, "
                        "int8 and binary indexes side by side: ranked results, latency, storage and quality.")
        with gr.Group():
            with gr.Row():
                model_size = gr.Radio(models.sizes, value=default_size, label="Model", scale=3,
                                      elem_id="pplx-model")
                variant = gr.Radio(models.variants, value=default_variant, label="Variant", scale=2,
                                   elem_id="pplx-variant")
            model_note = gr.HTML(studio.model_note(default_size, default_variant), elem_id="pplx-model-note",
                                 padding=True)

        with gr.Tabs():
            # ------------------------------------------------------------------ Corpus
            with gr.Tab("Corpus", id="corpus"):
                with gr.Row():
                    with gr.Column(scale=2):
                        with gr.Tabs():
                            with gr.Tab("Upload files") as upload_tab:
                                files = gr.File(file_count="multiple", label="Files (txt, md, html, pdf, docx, "
                                                "csv, tsv, json, jsonl, zip)", elem_id="pplx-upload")
                            with gr.Tab("Crawl a site") as crawl_tab:
                                url = gr.Textbox(label="Start URL", placeholder="https://example.org/docs/")
                                with gr.Row():
                                    max_pages = gr.Slider(1, studio.settings.crawl_max_pages,
                                                          value=min(20, studio.settings.crawl_max_pages),
                                                          step=1, label="Max pages")
                                    max_depth = gr.Slider(0, studio.settings.crawl_max_depth,
                                                          value=studio.settings.crawl_max_depth, step=1,
                                                          label="Max link depth")
                                same_host = gr.Checkbox(True, label="Stay on the start URL's host")
                            with gr.Tab("Shared sample") as sample_tab:
                                gr.Markdown(studio.sample_note(), elem_id="pplx-sample-note")
                        with gr.Group(elem_id="pplx-corpus-settings") as corpus_settings:
                            corpus_name = gr.Textbox(label="Corpus name", placeholder="my documents",
                                                     elem_id="pplx-corpus-name")
                            with gr.Row():
                                chunk_tokens = gr.Slider(16, chunk_max, value=chunk_default, step=1,
                                                         label="Chunk size (tokens)", elem_id="pplx-chunk-tokens")
                                overlap_tokens = gr.Slider(0, max(1, min(chunk_max // 2, 1024)),
                                                           value=overlap_default, step=1, label="Overlap (tokens)")
                        ingest_btn = gr.Button("Add files as a private corpus", variant="primary",
                                               elem_id="pplx-ingest")
                        crawl_btn = gr.Button("Crawl into a private corpus", variant="primary", visible=False,
                                              elem_id="pplx-crawl")
                        stop_btn = gr.Button("Stop", variant="stop", size="sm", visible=False, elem_id="pplx-stop")
                    with gr.Column(scale=3):
                        corpus_status = gr.HTML(label="status", elem_id="pplx-corpus-status")
                        corpus_stats = gr.HTML(label="corpus statistics", elem_id="pplx-corpus-stats")
                        rejections = gr.Dataframe(headers=["file / page", "why it was not loaded"],
                                                  label="Not loaded", visible=False, interactive=False,
                                                  wrap=True, max_height=240, column_widths=["35%", "65%"],
                                                  elem_id="pplx-rejected")
                        corpus_info = gr.JSON(label="Corpus handle (for the API)", visible=False)
                        corpora_table = gr.Dataframe(label="Corpora you can search", interactive=False,
                                                     wrap=True, max_height=260, elem_id="pplx-corpora",
                                                     column_widths=["6%", "33%", "13%", "10%", "14%", "24%"])
                        embed_btn = gr.Button("Embed the corpus chosen in Search now", size="sm",
                                              elem_id="pplx-embed")

            # ------------------------------------------------------------------ Search
            with gr.Tab("Search", id="search"):
                with gr.Row(equal_height=False):
                    corpus = gr.Dropdown(label="Corpus", allow_custom_value=True, scale=2,
                                         elem_id="pplx-corpus")
                    query = gr.Textbox(label="Query", placeholder="Ask something about the corpus", scale=5,
                                       elem_id="pplx-query", submit_btn=False)
                    search_btn = gr.Button("Search", variant="primary", scale=1, min_width=120,
                                           elem_id="pplx-search")
                gr.Examples(examples=[[q] for q in studio.example_queries()], inputs=[query],
                            label="Example questions (answered by the shared sample; "
                                  f"{', '.join(st.STARTER_LANGUAGES)})")
                with gr.Row():
                    configurations = gr.CheckboxGroup(st.CONFIG_CHOICES, value=list(st.DEFAULT_CONFIGS),
                                                      label="Configurations to compare (side by side)", scale=4,
                                                      elem_id="pplx-configs")
                    top_k = gr.Slider(1, st.MAX_TOP_K, value=10, step=1, label="Top-k", scale=1)
                    rescore_multiplier = gr.Slider(1, st.MAX_RESCORE_MULTIPLIER, value=4, step=1,
                                                   label="Rescore multiplier", scale=1)
                    matryoshka = gr.Dropdown(studio.matryoshka_choices(default_size, default_variant),
                                             value="full", label="Matryoshka size", scale=1)
                results = gr.HTML(label="results", elem_id="pplx-results")
                with gr.Accordion("Results as JSON (what the API returns)", open=False):
                    results_json = gr.JSON(label="results")

            # ------------------------------------------------------------------ Compare
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Charts from your searches in this session (and your last evaluation).")
                latency_plot = gr.Plot(empty[0], label="Latency", elem_id="pplx-latency")
                with gr.Row():
                    storage_plot = gr.Plot(empty[1], label="Storage", elem_id="pplx-storage")
                    scores_plot = gr.Plot(empty[3], label="Score distribution", elem_id="pplx-scores")
                quality_plot = gr.Plot(empty[2], label="Quality vs bytes (last evaluation)", elem_id="pplx-quality")

            # ------------------------------------------------------------------ Evaluate
            with gr.Tab("Evaluate", id="evaluate"):
                with gr.Tabs():
                    with gr.Tab("Quality on labelled data"):
                        with gr.Row():
                            with gr.Column(scale=2, min_width=280):
                                dataset = gr.Radio(st.DATASET_CHOICES, value=st.DATASET_CHOICES[0][1],
                                                   label="Labelled data")
                                languages = gr.CheckboxGroup(list(studio.xquad_languages()), value=["en"],
                                                             label="XQuAD corpus languages")
                                query_language = gr.Dropdown(["same as corpus", *studio.xquad_languages()],
                                                             value="same as corpus",
                                                             label="Query language (cross-lingual when different)")
                                beir_zip = gr.File(label="BEIR folder as a zip (corpus.jsonl, queries.jsonl, "
                                                   "qrels/test.tsv)", file_types=[".zip"], elem_id="pplx-beir",
                                                   visible=False)
                                queries_file = gr.File(label="Queries for your corpus (jsonl or tsv)",
                                                       file_types=[".jsonl", ".tsv", ".txt"], visible=False)
                                qrels_file = gr.File(label="Qrels for your corpus (tsv)",
                                                     file_types=[".tsv", ".txt"], visible=False)
                                max_queries = gr.Slider(10, studio.max_queries_for("xquad", ["en"]),
                                                        value=st.DEFAULT_EVAL_QUERIES, step=1,
                                                        label="Queries (a seeded random sample)",
                                                        elem_id="pplx-max-queries")
                                eval_configs = gr.CheckboxGroup(st.CONFIG_CHOICES, value=list(st.CONFIG_CHOICES),
                                                                label="Configurations")
                                eval_dims = gr.CheckboxGroup(
                                    [c for c in studio.matryoshka_choices(default_size, default_variant)
                                     if c[1] != "full"], value=[], label="Also at these Matryoshka sizes")
                                late_pair = gr.Checkbox(False, label="Also with late chunking (same chunks, both "
                                                                     "variants of the model)")
                                pair_chunks = gr.Slider(16, min(512, studio.pair_chunk_max(default_size)),
                                                        value=st.PAIR_CHUNK_TOKENS, step=1, visible=False,
                                                        label="Chunk size for the late-chunking pair (tokens)")
                                eval_btn = gr.Button("Run evaluation", variant="primary", elem_id="pplx-evaluate")
                            with gr.Column(scale=7):
                                eval_status = gr.HTML(label="evaluation status", elem_id="pplx-eval-status")
                                eval_tables = gr.HTML(label="quality tables", elem_id="pplx-eval-table")
                                pareto_plot = gr.Plot(empty[2], label="Quality vs bytes per vector")
                                language_plot = gr.Plot(empty[4], label="Per language")
                                with gr.Accordion("Table data (what the API returns)", open=False):
                                    eval_frame = gr.Dataframe(label="quality per configuration", interactive=False)
                    with gr.Tab("Independent vs late chunking"):
                        gr.Markdown("One short article about Berlin, cut into sentences. Later sentences say "
                                    "*it* or *the city* instead of *Berlin*: embedded alone they lose their subject; "
                                    "with late chunking each sentence is embedded in the context of the whole "
                                    "article. The two rankings below are for the same sentences and the same query.")
                        with gr.Row():
                            late_query = gr.Dropdown(list(st.DEMO_QUERIES), value=st.DEFAULT_QUERY,
                                                     allow_custom_value=True, label="Query", scale=4,
                                                     elem_id="pplx-late-query")
                            late_btn = gr.Button("Rank both ways", variant="primary", scale=1, min_width=200,
                                                 elem_id="pplx-late-run")
                        late_out = gr.HTML(label="late chunking", elem_id="pplx-late-out")

            # ------------------------------------------------------------------ About
            with gr.Tab("About", id="about"):
                gr.Markdown(studio.about_markdown(), elem_id="pplx-about")

        # ---------------------------------------------------------------------- wiring
        corpus_outputs = [corpus_info, corpus_status, corpus_stats, rejections, corpus, corpora_table, session_key]
        model_inputs = [model_size, variant]

        dataset.change(studio.on_dataset_change, [dataset, languages],
                       [languages, query_language, beir_zip, queries_file, qrels_file, max_queries], **private)
        languages.change(studio.on_dataset_change, [dataset, languages],
                         [languages, query_language, beir_zip, queries_file, qrels_file, max_queries], **private)
        late_pair.change(studio.on_pair_change, [late_pair], [pair_chunks], **private)
        demo.load(studio.start_session, [browser_key], [browser_key, session_key, corpus, corpora_table], **private)
        session_key.change(lambda k: k, [session_key], [browser_key], **private)

        # Only what applies to the chosen source: the sample needs no name, chunking or button.
        def source(kind: str) -> Callable[[], tuple[Any, ...]]:
            return lambda: (gr.update(visible=kind != "sample"), gr.update(visible=kind == "upload"),
                            gr.update(visible=kind == "crawl"))

        for tab, kind in ((upload_tab, "upload"), (crawl_tab, "crawl"), (sample_tab, "sample")):
            tab.select(source(kind), None, [corpus_settings, ingest_btn, crawl_btn], **private)

        for control in (model_size, variant):
            control.change(studio.on_model_change, model_inputs,
                           [model_note, variant, chunk_tokens, overlap_tokens, matryoshka, eval_dims, pair_chunks,
                            search_btn, ingest_btn, crawl_btn, eval_btn, late_btn], **private)
        for control in (corpus, model_size, variant, session_key):
            control.change(studio.embed_button_label, [corpus, model_size, variant, session_key], [embed_btn],
                           **private)

        # The Stop button shows only while an ingest, crawl or embedding runs.
        def busy() -> Any:
            return gr.update(visible=True)

        def idle() -> Any:
            return gr.update(visible=False)

        heavy_events = []
        for button, fn, inputs, outputs, name in (
            (ingest_btn, studio.ingest,
             [files, corpus_name, model_size, variant, chunk_tokens, overlap_tokens, session_key], corpus_outputs,
             "ingest"),
            (crawl_btn, studio.crawl,
             [url, max_pages, max_depth, same_host, corpus_name, model_size, variant, chunk_tokens, overlap_tokens,
              session_key], corpus_outputs, "crawl"),
            (embed_btn, studio.embed, [corpus, model_size, variant, session_key], [corpus_status], "embed"),
        ):
            event = button.click(busy, None, [stop_btn], queue=False, **private).then(
                fn, inputs, outputs, api_name=name, **heavy)
            after = event.then(idle, None, [stop_btn], queue=False, **private)
            # This Gradio's front end runs .then() after success only; an error needs its own listener.
            event.failure(idle, None, [stop_btn], queue=False, **private)
            if rejections in outputs:
                after.then(st.shown_if_rows, [rejections], [rejections], queue=False, **private)
            heavy_events.append(event)
        stop_btn.click(studio.stop, [session_key], [corpus_status, stop_btn], cancels=heavy_events, queue=False,
                       **private)

        search_inputs = [corpus, query, model_size, variant, configurations, top_k, rescore_multiplier, matryoshka,
                         session_key, history]
        for trigger in (search_btn.click, query.submit):
            trigger(studio.search, search_inputs, [results, results_json, history],
                    api_name="search" if trigger == search_btn.click else None,
                    api_visibility="public" if trigger == search_btn.click else "private",
                    concurrency_limit=st.SEARCH_CONCURRENCY, concurrency_id="search").then(
                studio.compare_charts, [history, last_eval], [latency_plot, storage_plot, quality_plot, scores_plot],
                **private)

        eval_btn.click(studio.evaluate,
                       [dataset, languages, query_language, beir_zip, queries_file, qrels_file, max_queries,
                        model_size, variant, eval_configs, eval_dims, late_pair, pair_chunks, corpus, session_key],
                       [eval_status, eval_tables, eval_frame, pareto_plot, language_plot, last_eval],
                       api_name="evaluate", **heavy).then(
            studio.compare_charts, [history, last_eval], [latency_plot, storage_plot, quality_plot, scores_plot],
            **private)
        late_btn.click(studio.late_chunking_demo, [late_query, model_size], [late_out], api_name="late_chunking",
                       **heavy)

        gr.api(studio.corpora, api_name="corpora")
    # Light events (page load, charts) run side by side; heavy ones set their own limit above.
    demo.queue(default_concurrency_limit=st.SEARCH_CONCURRENCY)
    return demo
