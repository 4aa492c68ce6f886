"""The Evaluate tab's views of a finished run: status line, one table per dataset with paired bootstrap
intervals, the table data, charts (with error bars where a run has intervals), and the sweep's views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pplx_demo import charts
from pplx_demo.evaluate.confidence import ConfigConfidence, report_confidence, significance_marker
from pplx_demo.evaluate.datasets import SAMPLE_SEED, SMALL_SAMPLE
from pplx_demo.evaluate.reports import QualityPoint, frontier_of, mean_by_config, report_rows, report_warnings, \
    warning_text
from pplx_demo.evaluate.runner import EvalReport
from pplx_demo.models import MODELS
from pplx_demo.ui import views
from pplx_demo.ui.choices import QUALITY_METRIC
from pplx_demo.ui.views import esc, plural

Intervals = dict[int, dict[str, ConfigConfidence]]  # report index -> configuration label -> confidence


def confidence_of(reports: Sequence[EvalReport], n_resamples: int, seed: int) -> Intervals:
    """Paired bootstrap intervals and tests vs float32 of every configuration of every report (same draws)."""
    out: Intervals = {}
    for i, r in enumerate(reports):
        if getattr(r, "reference_per_query", None):
            out[i] = {c.label: c for c in report_confidence(r, QUALITY_METRIC, n_resamples=n_resamples, seed=seed)}
    return out


@dataclass(frozen=True)
class EvalView:
    """The reports of the last evaluation of a session, with their intervals (kept for the Compare tab)."""

    reports: list[EvalReport]
    confidence: Intervals = field(default_factory=dict)

    def points(self) -> list[QualityPoint]:
        return mean_by_config(self.reports)

    def frontier(self) -> list[QualityPoint]:
        return frontier_of(self.points(), QUALITY_METRIC)

    def intervals(self) -> dict[tuple[str, str, Any], tuple[float, float]] | None:
        """(model key, variant, config) -> 95% interval of nDCG@10, when each point is one dataset's result
        (a mean over several datasets has no interval of its own)."""
        if len({r.dataset for r in self.reports}) != 1:
            return None
        out = {}
        for i, r in enumerate(self.reports):
            for result in r.results:
                c = self.confidence.get(i, {}).get(result.label)
                if c is not None:
                    out[(str(result.model_key), str(result.variant), result.config)] = (c.value.low, c.value.high)
        return out or None


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


def _pct_ci(row: dict[str, Any], c: ConfigConfidence | None) -> str:
    """'99.1% [98.2, 99.9]*' from the row's configuration's interval; the plain % when it has none."""
    if c is not None and c.pct_of_float32 is not None:
        return c.pct_of_float32.format_pct() + significance_marker(c.test_vs_float32)
    pct = row.get(f"{QUALITY_METRIC} % of float32")
    return "" if pct is None else f"{pct:.1f}%"


def merged_rows(reports: list[EvalReport], confidence: Intervals | None = None,
                indexes: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """report_rows of each report with its interval column, BM25 once and last (a late-chunking report
    repeats its pair's BM25). `indexes` are the reports' positions in `confidence`."""
    rows: list[dict[str, Any]] = []
    bm25: list[dict[str, Any]] = []
    for i, r in zip(indexes if indexes is not None else range(len(reports)), reports):
        conf = (confidence or {}).get(i, {})
        for row in report_rows(r):
            if row["config"] is None:
                if not bm25:
                    bm25.append({**row, "pct_ci": ""})
            else:
                rows.append({**row, "pct_ci": _pct_ci(row, conf.get(row["configuration"]))})
    return rows + bm25


def interval_note(reports: Sequence[EvalReport], n_resamples: int, seed: int) -> str:
    n = reports[0].n_queries if reports else 0
    return (f"[interval]: 95% paired bootstrap interval of nDCG@10 as % of float32 (same model and variant) over "
            f"the {plural(n, 'query', 'queries')}, {n_resamples:,} resamples, seed {seed}; * = differs from float32 "
            "(paired sign-flip permutation test, p < 0.05).")


def eval_tables(reports: list[EvalReport], available: dict[str, int], confidence: Intervals | None = None,
                n_resamples: int = 0, seed: int = 0) -> str:
    """One table per dataset: configuration, model and variant on every row, intervals, caveats under it."""
    out = []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        idx = [i for i, r in enumerate(reports) if r.dataset == dataset]
        rs = [reports[i] for i in idx]
        r = rs[0]
        chunks = ("whole documents" if r.chunking is None else f"chunks of {r.chunking[0]} tokens, overlap "
                  f"{r.chunking[1]}")
        of = available.get(dataset)
        queries = plural(r.n_queries, "query", "queries") + (f" of {of:,}" if of and of > r.n_queries else "")
        caption = f"{dataset} · {queries} · {plural(r.n_documents, 'document')} · {chunks} · metrics x100"
        notes = [warning_text(w, "a chunk size for the evaluation") for x in rs for w in report_warnings(x)]
        if confidence:
            notes.append(interval_note(rs, n_resamples, seed))
        rows = []
        for row in merged_rows(rs, confidence, idx):
            if row["config"] is None:  # BM25: its setup is long, a note rather than a cell
                notes.append(f"BM25: {row['model']}.")
                row = {**row, "model": "bm25s"}
            rows.append({**row, "model": charts.short_model_name(str(row["model"])),
                         "variant": variant_name(row["variant"]) if row["variant"] else ""})
        out.append(views.eval_table_html(caption, rows, notes))
    return "".join(out)


def eval_frame(reports: list[EvalReport], confidence: Intervals | None = None) -> pd.DataFrame:
    """The tables' numbers as one frame (what the API returns): one row per dataset x model x variant x config."""
    rows = []
    for dataset in dict.fromkeys(r.dataset for r in reports):
        idx = [i for i, r in enumerate(reports) if r.dataset == dataset]
        for row in merged_rows([reports[i] for i in idx], confidence, idx):
            ci = row.pop("pct_ci")
            rows.append({"dataset": dataset, **{k: v for k, v in row.items() if k != "config"},
                         f"{QUALITY_METRIC} % of float32 [95% interval]": ci})
    return pd.DataFrame(rows)


def eval_charts(view: EvalView) -> tuple[Any, Any]:
    """(quality vs bytes with the frontier and error bars, per-language bars) for the Evaluate tab."""
    by_dataset: dict[str, list[Any]] = {}
    for r in view.reports:
        by_dataset.setdefault(r.dataset, []).extend(r.results)
    return (charts.quality_bytes_figure(view.points(), QUALITY_METRIC, view.frontier(), view.intervals()),
            charts.per_language_figure(by_dataset, QUALITY_METRIC))


# ---------------------------------------------------------------------------------------------- sweep


def sweep_status(sweep: Any, floor_pct: float) -> str:
    """The recommendation for the stated quality floor (or why there is none), the sweep's notes."""
    rec = sweep.recommend(floor_pct / 100, QUALITY_METRIC)
    model = charts.short_model_name(sweep.model_name)
    head = f"{sweep.dataset}, {plural(sweep.n_queries, 'query', 'queries')}, {model}. "
    if rec is None:
        html = views.notice_html(head + f"No configuration keeps {floor_pct:g}% of float32's nDCG@10 here.", "warn")
    else:
        html = views.notice_html(head + f"Recommended for a floor of {floor_pct:g}% of float32: {rec.reason}.")
    for note in sweep.notes:
        html += f"<p class='pplx-table-note'>{esc(note)}.</p>"
    return html


def sweep_table(sweep: Any) -> str:
    """Every sweep point: bytes per vector, nDCG@10, % of float32 with its interval, the frontier marked."""
    front = {p.label for p in sweep.frontier(QUALITY_METRIC)}
    rows = []
    for p in sorted(sweep.points, key=lambda p: (p.bytes_per_vector, p.label)):
        c = p.confidence.get(QUALITY_METRIC)
        pct = (c.pct_of_float32.format_pct() + significance_marker(c.test_vs_float32)) \
            if c is not None and c.pct_of_float32 is not None else ""
        rows.append(f"<tr style='--pplx-config:{charts.colour_for(p.config)}'><td class='txt'>{esc(p.label)}"
                    f"{' (frontier)' if p.label in front else ''}</td><td class='num'>{p.bytes_per_vector:,}</td>"
                    f"<td class='num'>{100 * p.metrics[QUALITY_METRIC]:.2f}</td><td class='num'>{esc(pct)}</td>"
                    f"<td class='num'>{p.search_ms:.3f}</td></tr>")
    return (f"<div class='pplx-table-wrap'><table class='pplx-eval'><caption>Sweep: {esc(sweep.dataset)} · "
            f"{esc(charts.short_model_name(sweep.model_name))} · metrics x100</caption><thead><tr>"
            "<th class='txt'>configuration</th><th class='num'>bytes / vector</th><th class='num'>nDCG@10</th>"
            "<th class='num'>% of float32 [95% interval]</th><th class='num'>ms / query</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
