"""The Corpus tab's handlers: upload files or crawl a site into a private corpus, embed a corpus now.

A mixin of `Studio` (which holds the store, the encoders, the sessions and the jobs these use).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pplx_demo import charts, workflows
from pplx_demo.errors import DemoError
from pplx_demo.ingest.crawler import CrawlOptions, crawl
from pplx_demo.ingest.worker import load_files_isolated
from pplx_demo.models import MODELS
from pplx_demo.throughput import format_duration
from pplx_demo.ui import views
from pplx_demo.ui.choices import encoder_args, model_key_for, whole_number
from pplx_demo.ui.errors import user_errors
from pplx_demo.ui.outputs import CorpusAdded, EmbedDone, path_of, progress_bridge, stats_html, truncation_notice
from pplx_demo.ui.views import plural

EMBED_IDLE = "Embed the corpus chosen in Search now"


class CorpusHandlers:
    """ingest, crawl, embed and the Embed button's label (mixin; `self` is the Studio)."""

    settings: Any
    store: Any
    meter: Any
    auto_embed_seconds: float

    def embed_button_label(self, corpus: Any, model_size: str, variant: str, session_key: str,
                           runtime: str = "torch", request: gr.Request = None) -> Any:
        """'Embed “my notes” now with all-MiniLM-L6-v2', shown only while that corpus lacks vectors of that model."""
        try:
            _, owner = self._who(session_key, request)  # type: ignore[attr-defined]
            c = self._corpus_for(corpus, owner)  # type: ignore[attr-defined]
            key, enc_variant = encoder_args(model_size, variant)
            model = charts.short_model_name(MODELS[model_key_for(model_size, variant)].display_name)
        except DemoError:
            return gr.update(value=EMBED_IDLE, visible=False)
        if not self.model_available(key).available:  # type: ignore[attr-defined]
            return gr.update(value=EMBED_IDLE, visible=False)
        if runtime == "torch" or self.is_loaded(key, enc_variant, runtime):  # type: ignore[attr-defined]
            encoder = self.encoder(key, enc_variant, runtime)  # type: ignore[attr-defined]
            missing = self.store.missing_embeddings(c.id, str(encoder.cache_key), str(encoder.variant),
                                                    int(encoder.dim))
            if not missing:
                return gr.update(value=f"“{c.name}” is embedded with {model}", visible=False)
        return gr.update(value=f"Embed “{c.name}” now with {model}", visible=True, interactive=True)

    # ------------------------------------------------------------------ building corpora

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
            outcome = self._embed(built.corpus_id, encoder, progress, cancel)  # type: ignore[attr-defined]
            truncated = outcome.truncated
            status = views.notice_html(f"{added} Embedded with {model} in {outcome.seconds:.1f} s "
                                       f"(estimated {format_duration(estimate.seconds)}).")
            status += truncation_notice(outcome.truncation)
        else:
            t = estimate.throughput
            status = views.notice_html(
                f"{added} Embedding its {plural(stats.tokens, 'token')} with {model} will take about "
                f"{format_duration(estimate.seconds)} (measured {t.tokens_per_s:,.0f} tokens/s on this machine, "
                f"{t.source}). Press “Embed “{name}” now”, or search it: the first search embeds it (Stop "
                "works for both).", "warn")
        handle = {"corpus_id": built.corpus_id, "session_key": key, "name": name, "documents": stats.documents,
                  "chunks": stats.chunks, "tokens": stats.tokens, "languages": stats.languages,
                  "model": encoder.name, "chunk_tokens": plan.chunk_tokens, "overlap_tokens": plan.overlap_tokens,
                  "estimated_embedding_seconds": round(estimate.seconds, 2), "truncated": truncated,
                  "rejected": [{"name": n, "reason": r} for n, r in problems]}
        frame = pd.DataFrame(problems, columns=["file / page", "why it was not loaded"])
        return CorpusAdded(handle, status, stats_html(name, stats, encoder.name, plan), frame,
                           self._corpus_dropdown(owner, built.corpus_id),  # type: ignore[attr-defined]
                           self._corpora_frame(owner), key)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ API endpoints

    @user_errors
    def ingest(self, files: list[str] | None, corpus_name: str | None = None, model_size: str = "stand-in",
               variant: str = "standard", chunk_tokens: float | None = None, overlap_tokens: float | None = None,
               session_key: str | None = None, runtime: str = "torch", request: gr.Request = None,
               progress: gr.Progress = gr.Progress()) -> CorpusAdded:
        """Upload files into a new private corpus (chunked with the chosen model's tokenizer and embedded)."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        encoder = self._encoder_with_notice(*encoder_args(model_size, variant), runtime, progress)  # type: ignore[attr-defined]
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
                                self._cancel_event(key))  # type: ignore[attr-defined]

    @user_errors
    def crawl(self, url: str, max_pages: float = 20, max_depth: float = 1, same_host: bool = True,
              corpus_name: str | None = None, model_size: str = "stand-in", variant: str = "standard",
              chunk_tokens: float | None = None, overlap_tokens: float | None = None, session_key: str | None = None,
              runtime: str = "torch", request: gr.Request = None,
              progress: gr.Progress = gr.Progress()) -> CorpusAdded:
        """Crawl a site (within the limits) into a new private corpus."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        encoder = self._encoder_with_notice(*encoder_args(model_size, variant), runtime, progress)  # type: ignore[attr-defined]
        plan = self._plan(chunk_tokens, overlap_tokens, encoder)
        urls = [u for u in (url or "").split() if u]
        pages = whole_number(max_pages, "max_pages", 1, self.settings.crawl_max_pages)
        depth = whole_number(max_depth, "max_depth", 0, self.settings.crawl_max_depth)
        options = CrawlOptions.from_settings(self.settings, max_pages=pages, max_depth=depth, same_host=bool(same_host))
        cancel = self._cancel_event(key)  # type: ignore[attr-defined]
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
              session_key: str | None = None, runtime: str = "torch", request: gr.Request = None,
              progress: gr.Progress = gr.Progress()) -> EmbedDone:
        """Embed a corpus with the chosen model now (otherwise the first search does it)."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        c = self._corpus_for(corpus, owner)  # type: ignore[attr-defined]
        if self.sample_preparing(c.id):  # type: ignore[attr-defined]
            return EmbedDone(views.notice_html(self.preparing_message(), "info"))  # type: ignore[attr-defined]
        encoder = self._encoder_with_notice(*encoder_args(model_size, variant), runtime, progress)  # type: ignore[attr-defined]
        outcome = self._embed(c.id, encoder, progress, self._cancel_event(key))  # type: ignore[attr-defined]
        model = charts.short_model_name(encoder.name)
        hidden = gr.update(visible=False)
        if not outcome.embedded:
            return EmbedDone(views.notice_html(f"“{c.name}” was already embedded with {model}."), hidden)
        return EmbedDone(views.notice_html(f"“{c.name}”: embedded {plural(outcome.embedded, 'chunk')} with "
                                           f"{encoder.name} in {outcome.seconds:.1f} s.")
                         + truncation_notice(outcome.truncation), hidden)
