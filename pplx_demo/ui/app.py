"""The studio's Gradio layout and event wiring. Handlers live in `studio.py`; views in `views.py`."""

from __future__ import annotations

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
    models = studio.model_choices()
    default_size, default_variant = studio.default_model()
    heavy = {"concurrency_limit": studio.settings.heavy_concurrency, "concurrency_id": "heavy"}

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
                            with gr.Tab("Upload files"):
                                files = gr.File(file_count="multiple", label="Files (txt, md, html, pdf, docx, "
                                                "csv, tsv, json, jsonl, zip)", elem_id="pplx-upload")
                                ingest_btn = gr.Button("Add files as a private corpus", variant="primary",
                                                       elem_id="pplx-ingest")
                            with gr.Tab("Crawl a site"):
                                url = gr.Textbox(label="Start URL", placeholder="https://example.org/docs/")
                                with gr.Row():
                                    max_pages = gr.Slider(1, studio.settings.crawl_max_pages,
                                                          value=min(20, studio.settings.crawl_max_pages),
                                                          step=1, label="Max pages")
                                    max_depth = gr.Slider(0, studio.settings.crawl_max_depth,
                                                          value=studio.settings.crawl_max_depth, step=1,
                                                          label="Max link depth")
                                same_host = gr.Checkbox(True, label="Stay on the start URL's host")
                                crawl_btn = gr.Button("Crawl into a private corpus", variant="primary")
                            with gr.Tab("Sample corpus"):
                                gr.Markdown(studio.sample_note())
                        corpus_name = gr.Textbox(label="Corpus name", placeholder="my documents", elem_id="pplx-corpus-name")
                        chunk_default, overlap_default = studio.chunking_for(default_size, default_variant)
                        with gr.Row():
                            chunk_tokens = gr.Slider(32, 2048, value=chunk_default, step=16,
                                                     label="Chunk size (tokens)")
                            overlap_tokens = gr.Slider(0, 256, value=overlap_default, step=8,
                                                       label="Overlap (tokens)")
                        stop_btn = gr.Button("Stop", variant="stop", size="sm")
                    with gr.Column(scale=3):
                        corpus_status = gr.HTML(elem_id="pplx-corpus-status")
                        corpus_stats = gr.Markdown(elem_id="pplx-corpus-stats")
                        rejections = gr.Dataframe(headers=["file / page", "why it was not loaded"],
                                                  label="Not loaded", visible=True, interactive=False,
                                                  wrap=True, max_height=240)
                        corpus_info = gr.JSON(label="Corpus handle (for the API)", visible=False)
                        with gr.Row():
                            corpora_table = gr.Dataframe(label="Corpora you can search", interactive=False,
                                                         wrap=True, max_height=260, elem_id="pplx-corpora")
                        embed_btn = gr.Button("Embed the selected corpus now", size="sm")

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
                            label="Example questions (from the sample corpus)")
                with gr.Row():
                    configurations = gr.CheckboxGroup(st.CONFIG_CHOICES, value=list(st.DEFAULT_CONFIGS),
                                                      label="Configurations to compare (side by side)", scale=4,
                                                      elem_id="pplx-configs")
                    top_k = gr.Slider(1, 50, value=10, step=1, label="Top-k", scale=1)
                    rescore_multiplier = gr.Slider(1, 10, value=4, step=1, label="Rescore multiplier", scale=1)
                    matryoshka = gr.Dropdown(studio.matryoshka_choices(default_size, default_variant),
                                             value="full", label="Matryoshka size", scale=1)
                results = gr.HTML(elem_id="pplx-results")
                with gr.Accordion("Results as JSON (what the API returns)", open=False):
                    results_json = gr.JSON(label="results")

            # ------------------------------------------------------------------ Compare
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Charts from your searches in this session (and your last evaluation).")
                with gr.Row():
                    latency_plot = gr.Plot(studio.empty_charts()[0], label="Latency", elem_id="pplx-latency")
                    storage_plot = gr.Plot(studio.empty_charts()[1], label="Storage", elem_id="pplx-storage")
                with gr.Row():
                    quality_plot = gr.Plot(studio.empty_charts()[2], label="Quality vs bytes")
                    scores_plot = gr.Plot(studio.empty_charts()[3], label="Score distribution")

            # ------------------------------------------------------------------ Evaluate
            with gr.Tab("Evaluate", id="evaluate"):
                with gr.Row():
                    with gr.Column(scale=2):
                        dataset = gr.Radio(st.DATASET_CHOICES, value=st.DATASET_CHOICES[0][1], label="Labelled data")
                        languages = gr.CheckboxGroup(list(studio.xquad_languages()), value=["en"],
                                                     label="XQuAD corpus languages")
                        query_language = gr.Dropdown(["same as corpus", *studio.xquad_languages()],
                                                     value="same as corpus",
                                                     label="Query language (cross-lingual when different)")
                        beir_zip = gr.File(label="BEIR folder as a zip (corpus.jsonl, queries.jsonl, "
                                           "qrels/test.tsv)", file_types=[".zip"], elem_id="pplx-beir",
                                           visible=False)
                        with gr.Row():
                            queries_file = gr.File(label="Queries for your corpus (jsonl or tsv)",
                                                   file_types=[".jsonl", ".tsv", ".txt"], visible=False)
                            qrels_file = gr.File(label="Qrels for your corpus (tsv)", file_types=[".tsv", ".txt"],
                                                 visible=False)
                        max_queries = gr.Slider(10, 1190, value=100, step=10, label="Queries (at most)")
                        eval_configs = gr.CheckboxGroup(st.CONFIG_CHOICES, value=list(st.CONFIG_CHOICES),
                                                        label="Configurations")
                        eval_dims = gr.CheckboxGroup(
                            [c for c in studio.matryoshka_choices(default_size, default_variant) if c[1] != "full"],
                            value=[], label="Also at these Matryoshka sizes")
                        eval_btn = gr.Button("Run evaluation", variant="primary")
                    with gr.Column(scale=3):
                        eval_status = gr.HTML()
                        eval_table = gr.Dataframe(label="Quality per configuration", interactive=False, wrap=True)
                        pareto_plot = gr.Plot(studio.empty_charts()[2], label="Quality vs bytes per vector")
                        language_plot = gr.Plot(studio.empty_charts()[4], label="Per language")

            # ------------------------------------------------------------------ About
            with gr.Tab("About", id="about"):
                about = gr.Markdown(studio.about_markdown())

        # ---------------------------------------------------------------------- wiring
        corpus_outputs = [corpus_info, corpus_status, corpus_stats, rejections, corpus, corpora_table, session_key]
        model_inputs = [model_size, variant]

        dataset.change(studio.on_dataset_change, [dataset],
                       [languages, query_language, beir_zip, queries_file, qrels_file], api_visibility="private")
        demo.load(studio.start_session, [browser_key], [browser_key, session_key, corpus, corpora_table],
                  api_visibility="private")
        session_key.change(lambda k: k, [session_key], [browser_key], api_visibility="private")

        for control in (model_size, variant):
            control.change(studio.on_model_change, model_inputs,
                           [model_note, chunk_tokens, overlap_tokens, matryoshka, eval_dims, search_btn, ingest_btn,
                            crawl_btn, eval_btn], api_visibility="private")

        ingest_event = ingest_btn.click(
            studio.ingest, [files, corpus_name, model_size, variant, chunk_tokens, overlap_tokens, session_key],
            corpus_outputs, api_name="ingest", **heavy)
        crawl_event = crawl_btn.click(
            studio.crawl, [url, max_pages, max_depth, same_host, corpus_name, model_size, variant, chunk_tokens,
                           overlap_tokens, session_key],
            corpus_outputs, api_name="crawl", **heavy)
        embed_event = embed_btn.click(studio.embed, [corpus, model_size, variant, session_key], [corpus_status],
                                      api_name="embed", **heavy)
        stop_btn.click(studio.stop, [session_key], [corpus_status], cancels=[ingest_event, crawl_event, embed_event],
                       api_visibility="private", queue=False)

        search_inputs = [corpus, query, model_size, variant, configurations, top_k, rescore_multiplier, matryoshka,
                         session_key, history]
        for trigger in (search_btn.click, query.submit):
            trigger(studio.search, search_inputs, [results, results_json, history],
                    api_name="search" if trigger == search_btn.click else None,
                    api_visibility="public" if trigger == search_btn.click else "private",
                    concurrency_limit=st.SEARCH_CONCURRENCY, concurrency_id="search").then(
                studio.compare_charts, [history, last_eval], [latency_plot, storage_plot, quality_plot, scores_plot],
                api_visibility="private")

        eval_btn.click(studio.evaluate,
                       [dataset, languages, query_language, beir_zip, queries_file, qrels_file, max_queries,
                        model_size, variant, eval_configs, eval_dims, corpus, session_key],
                       [eval_status, eval_table, pareto_plot, language_plot, last_eval], api_name="evaluate",
                       **heavy).then(
            studio.compare_charts, [history, last_eval], [latency_plot, storage_plot, quality_plot, scores_plot],
            api_visibility="private")

        gr.api(studio.corpora, api_name="corpora")
    # Light events (page load, charts) run side by side; heavy ones set their own limit above.
    demo.queue(default_concurrency_limit=st.SEARCH_CONCURRENCY)
    return demo
