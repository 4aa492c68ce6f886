"""Evaluation reports as rows, JSON, warnings and averaged points: what the front ends render."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pplx_demo.evaluate.metrics import METRICS
from pplx_demo.evaluate.runner import EvalConfigResult, EvalReport, pareto_frontier
from pplx_demo.index import IndexConfig


@dataclass(frozen=True)
class EvalWarning:
    """Something a reader must know before trusting the numbers, as a code plus its numbers.

    Codes: "truncated" (texts cut at the model's token cap: `count` of `of`, cap `max_tokens`,
    `whole_documents` when documents were not chunked). Each front end writes its own sentence.
    """

    code: str
    count: int
    of: int
    max_tokens: int | None = None
    whole_documents: bool = False


def report_warnings(report: EvalReport) -> list[EvalWarning]:
    """What a reader must know before trusting the numbers (e.g. texts cut at the token cap)."""
    warnings = []
    if report.truncated:
        warnings.append(EvalWarning("truncated", report.truncated, report.embedded_now, report.max_tokens,
                                    whole_documents=report.chunking is None))
    return warnings


def warning_text(warning: EvalWarning, chunk_option: str = "smaller chunks") -> str:
    """A front-end neutral sentence for a warning; `chunk_option` names how to chunk in that front end."""
    cap = f"{warning.max_tokens}-token" if warning.max_tokens else "token"
    how = (f"whole documents are cut as MTEB does; chunk them ({chunk_option}) to embed all of each"
           if warning.whole_documents else "their ends were not embedded; use smaller chunks")
    return (f"{warning.count} of the {warning.of} texts embedded by this run were longer than the model's {cap} cap "
            f"and were cut ({how})")


def report_rows(report: EvalReport) -> list[dict[str, Any]]:
    """One flat row per configuration (and BM25): the numbers the CLI table and JSON show (x100),
    each metric also as % of float32 (same model and variant)."""
    rows = []
    for r in report.results:
        rows.append({"configuration": r.label, "model": r.model_name, "variant": r.variant, "config": r.config,
                     **{m: round(100 * r.metrics[m], 2) for m in METRICS},
                     **{f"{m} % of float32": _round(r.pct_of_float32.get(m), 1) for m in METRICS},
                     "bytes_per_vector": r.bytes_per_vector, "search_ms": round(r.search_ms, 3)})
    if report.bm25 is not None:
        rows.append({"configuration": "BM25", "model": report.bm25_setup, "variant": "", "config": None,
                     **{m: round(100 * report.bm25[m], 2) for m in METRICS},
                     **{f"{m} % of float32": None for m in METRICS}, "bytes_per_vector": None, "search_ms": None})
    return rows


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def report_json(report: EvalReport) -> str:
    """The report as JSON: dataset facts plus per configuration ndcg@10, recall@10, recall@100,
    mrr@10 (0..1), % of float32, bytes_per_vector, search_ms and candidate counts; BM25 alongside;
    `truncated` and `warnings` say what was cut."""
    data = {
        "dataset": report.dataset, "model_key": report.model_key, "model_name": report.model_name,
        "variant": report.variant, "n_documents": report.n_documents, "n_chunks": report.n_chunks,
        "n_queries": report.n_queries, "chunking": list(report.chunking) if report.chunking else None,
        "doc_scoring": report.doc_scoring, "embedded_now": report.embedded_now,
        "truncated": report.truncated, "max_tokens": report.max_tokens,
        "warnings": [warning_text(w) for w in report_warnings(report)],
        "configurations": [
            {"label": r.label, "configuration": str(r.config), "family": r.config.family,
             "precision": r.config.precision, "mode": r.config.mode, "dim": r.config.dim,
             "int8_scheme": r.config.int8_scheme, "rescore_multiplier": r.config.rescore_multiplier
             if r.config.mode == "rescore" else None, **r.metrics,
             "pct_of_float32": r.pct_of_float32, "bytes_per_vector": r.bytes_per_vector, "search_ms": r.search_ms,
             "candidates": r.candidates}
            for r in report.results],
        "bm25": ({**report.bm25, "setup": report.bm25_setup} if report.bm25 is not None else None),
    }
    return json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False)


def json_safe(obj: Any) -> Any:
    """Copy of `obj` with NaN / infinite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


@dataclass(frozen=True)
class QualityPoint:
    """One configuration's quality averaged over the datasets of an evaluation run (for the charts)."""

    model_key: str
    model_name: str
    variant: str
    config: IndexConfig
    bytes_per_vector: int
    metrics: dict[str, float]
    datasets: int

    @property
    def label(self) -> str:
        return str(self.config)


def mean_by_config(reports: Sequence[EvalReport]) -> list[QualityPoint]:
    """Every (model, variant, configuration) of these reports with its metrics averaged over datasets."""
    groups: dict[tuple[str, str, IndexConfig], list[EvalConfigResult]] = {}
    for report in reports:
        for r in report.results:
            groups.setdefault(r.series, []).append(r)
    points = []
    for (model_key, variant, config), rs in groups.items():
        metrics = {m: sum(r.metrics[m] for r in rs) / len(rs) for m in rs[0].metrics}
        points.append(QualityPoint(model_key, rs[0].model_name, variant, config, rs[0].bytes_per_vector, metrics,
                                   len(rs)))
    return points


def frontier_of(points: Sequence[QualityPoint], metric: str = "ndcg@10") -> list[QualityPoint]:
    """The points on the bytes-per-vector vs `metric` Pareto frontier, cheapest first."""
    return [points[i] for i in pareto_frontier([(p.bytes_per_vector, p.metrics[metric]) for p in points])]
