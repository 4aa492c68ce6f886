"""The Evaluate tab's views of a finished run: status line, one table per dataset, the table data, charts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from pplx_demo import charts
from pplx_demo.evaluate.datasets import SAMPLE_SEED, SMALL_SAMPLE
from pplx_demo.evaluate.runner import EvalReport
from pplx_demo.evaluate.reports import QualityPoint, frontier_of, mean_by_config, report_rows, report_warnings, warning_text
from pplx_demo.models import MODELS
from pplx_demo.ui import views
from pplx_demo.ui.choices import QUALITY_METRIC
from pplx_demo.ui.views import plural


@dataclass(frozen=True)
class EvalView:
    """The reports of the last evaluation of a session (kept for the Compare tab's quality chart)."""

    reports: list[EvalReport]

    def points(self) -> list[QualityPoint]:
        return mean_by_config(self.reports)

    def frontier(self) -> list[QualityPoint]:
        return frontier_of(self.points(), QUALITY_METRIC)


def variant_name(variant: str) -> str:
    return "late chunking" if variant == "contextual" else variant


def eval_status(reports: list[EvalReport], available: dict[str, int]) -> str:
    """Which model evaluated what: queries sampled of how many, documents, chunks, BM25; caveats."""
    models = list(dict.fromkeys(r.model_name for r in reports))
    parts, small = [], []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        rs = [r for r in reports if r.dataset == dataset]
        r = rs[0]
        of = available.get(dataset)
        sample = (f"{plural(r.n_queries, 'query', 'queries')} of {of:,} (random sample, seed {SAMPLE_SEED})"
                  if of and of > r.n_queries else plural(r.n_queries, "query", "queries"))
        embedded = sum(x.embedded_now for x in rs)
        bm25 = f"; BM25 nDCG@10 {100 * r.bm25[QUALITY_METRIC]:.1f}" if r.bm25 else ""
        parts.append(f"{dataset}: {sample} over {plural(r.n_documents, 'document')} "
                     f"({plural(r.n_chunks, 'chunk')}), {plural(embedded, 'text')} embedded now{bm25}")
        if r.n_queries < SMALL_SAMPLE:
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
            f"to beat float32). Use at least {SMALL_SAMPLE} queries.", "warn")
    return html


def merged_rows(reports: list[EvalReport]) -> list[dict[str, Any]]:
    """report_rows of each report, BM25 once and last (a late-chunking report repeats its pair's BM25)."""
    rows: list[dict[str, Any]] = []
    bm25: list[dict[str, Any]] = []
    for r in reports:
        for row in report_rows(r):
            if row["config"] is None:
                if not bm25:
                    bm25.append(row)
            else:
                rows.append(row)
    return rows + bm25


def eval_tables(reports: list[EvalReport], available: dict[str, int]) -> str:
    """One table per dataset: configuration, model and variant on every row, caveats under it."""
    out = []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        rs = [r for r in reports if r.dataset == dataset]
        r = rs[0]
        chunks = ("whole documents" if r.chunking is None else f"chunks of {r.chunking[0]} tokens, overlap "
                  f"{r.chunking[1]}")
        of = available.get(dataset)
        queries = plural(r.n_queries, "query", "queries") + (f" of {of:,}" if of and of > r.n_queries else "")
        caption = f"{dataset} · {queries} · {plural(r.n_documents, 'document')} · {chunks} · metrics x100"
        notes = [warning_text(w, "a chunk size for the evaluation") for x in rs for w in report_warnings(x)]
        rows = []
        for row in merged_rows(rs):
            if row["config"] is None:  # BM25: its setup is long, a note rather than a cell
                notes.append(f"BM25: {row['model']}.")
                row = {**row, "model": "bm25s"}
            rows.append({**row, "model": charts.short_model_name(str(row["model"])),
                         "variant": variant_name(row["variant"]) if row["variant"] else ""})
        out.append(views.eval_table_html(caption, rows, notes))
    return "".join(out)


def eval_frame(reports: list[EvalReport]) -> pd.DataFrame:
    """The tables' numbers as one frame (what the API returns): one row per dataset x model x variant x config."""
    rows = [{"dataset": dataset, **{k: v for k, v in row.items() if k != "config"}}
            for dataset in dict.fromkeys(r.dataset for r in reports)
            for row in merged_rows([r for r in reports if r.dataset == dataset])]
    return pd.DataFrame(rows)


def eval_charts(reports: list[EvalReport]) -> tuple[Any, Any]:
    """(quality vs bytes with the frontier, per-language bars) for the Evaluate tab."""
    view = EvalView(reports)
    by_dataset: dict[str, list[Any]] = {}
    for r in reports:
        by_dataset.setdefault(r.dataset, []).extend(r.results)
    return (charts.quality_bytes_figure(view.points(), QUALITY_METRIC, view.frontier()),
            charts.per_language_figure(by_dataset, QUALITY_METRIC))
