"""What the studio's handlers return: one small dataclass per group of outputs (field names are component
names; `ui/binding.py` turns them into Gradio updates), and the HTML pieces several handlers share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pplx_demo import charts, workflows
from pplx_demo.stats import CorpusStats
from pplx_demo.ui import views
from pplx_demo.ui.binding import unchanged
from pplx_demo.ui.views import plural


@dataclass
class CorpusAdded:
    corpus_info: Any  # the handle an API caller keeps (corpus id, session key, sizes)
    corpus_status: str
    corpus_stats: str = unchanged()
    rejections: Any = unchanged()
    corpus: Any = unchanged()
    corpora_table: Any = unchanged()
    session_key: str = unchanged()


@dataclass
class SessionStarted:
    browser_key: str
    session_key: str
    corpus: Any
    corpora_table: Any
    ready_status: str
    ready_timer: Any


@dataclass
class ReadinessUpdate:
    ready_status: str
    ready_timer: Any
    corpus: Any = unchanged()
    corpora_table: Any = unchanged()


@dataclass
class ModelControls:
    model_note: str
    variant: Any
    model_box: Any = unchanged()
    chunk_tokens: Any = unchanged()
    overlap_tokens: Any = unchanged()
    matryoshka: Any = unchanged()
    eval_dims: Any = unchanged()
    pair_chunks: Any = unchanged()
    search_btn: Any = unchanged()
    ingest_btn: Any = unchanged()
    crawl_btn: Any = unchanged()
    eval_btn: Any = unchanged()
    late_btn: Any = unchanged()
    sweep_btn: Any = unchanged()
    scale_btn: Any = unchanged()


@dataclass
class DatasetControls:
    languages: Any
    query_language: Any
    beir_zip: Any
    queries_file: Any
    qrels_file: Any
    max_queries: Any


@dataclass
class SearchResults:
    results: str
    results_json: dict


@dataclass
class EmbedDone:
    corpus_status: str
    embed_btn: Any = unchanged()


@dataclass
class EvalResults:
    eval_status: str
    eval_tables: str = unchanged()
    eval_frame: Any = unchanged()
    pareto_plot: Any = unchanged()
    language_plot: Any = unchanged()


@dataclass
class SweepResults:
    sweep_status: str
    sweep_table: str = unchanged()
    sweep_mult_plot: Any = unchanged()
    sweep_bytes_plot: Any = unchanged()


@dataclass
class CompareCharts:
    latency_plot: Any
    storage_plot: Any
    quality_plot: Any
    scores_plot: Any


@dataclass
class ScaleResults:
    scale_status: str
    scale_table: str = unchanged()
    scale_latency_plot: Any = unchanged()
    scale_cost_plot: Any = unchanged()


def progress_bridge(progress: gr.Progress | None, desc: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress((done, max(total, 1)), desc=desc)

    return report


def path_of(upload: Any) -> str:
    return upload if isinstance(upload, str) else getattr(upload, "path", str(upload))


def stats_html(name: str, stats: CorpusStats, model_name: str, plan: workflows.ChunkingPlan) -> str:
    return views.stats_html(f"“{name}”", {
        "documents": f"{stats.documents:,}", "chunks": f"{stats.chunks:,}", "tokens": f"{stats.tokens:,}",
        "characters": f"{stats.characters:,}", "languages": stats.languages_text(),
        "chunking": f"{plan.chunk_tokens} tokens, overlap {plan.overlap_tokens} "
                    f"({charts.short_model_name(model_name)} tokenizer)"})


def shown_if_rows(frame: Any) -> Any:
    """Show a table only when it has rows (the rejected-files table stays hidden when all loaded)."""
    return gr.update(visible=frame is not None and len(frame) > 0)


def truncation_notice(report: workflows.TruncationReport) -> str:
    if not report:
        return ""
    return views.notice_html(
        f"{plural(report.truncated, 'chunk')} of the {plural(report.embedded, 'chunk')} embedded now "
        f"{'was' if report.truncated == 1 else 'were'} longer than {charts.short_model_name(report.model_name)} reads "
        f"({report.budget_tokens} tokens) and cut: their ends are not searchable. Chunk the corpus smaller for this "
        "model.", "warn")


@dataclass
class LateChunking:
    late_out: str
