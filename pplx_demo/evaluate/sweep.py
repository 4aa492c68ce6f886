"""Quality against cost: the rescore multiplier and bytes per vector, with intervals and a recommendation.

One evaluation run (the runner, one set of cached float vectors) scores:
- binary + rescore at each multiplier (1, 2, 4, 8, 16 by default) at one Matryoshka size (full by
  default), rescoring with int8 codes (or float32);
- binary + asymmetric (float query against the sign vectors) at that size. `IndexConfig` has no
  "asymmetric + rescore" (one mode per configuration), and asymmetric scoring reads every sign
  vector with no candidate stage, so it has no multiplier: it is one point, drawn flat on the
  multiplier chart, and the sweep's notes say so;
- every precision (float32, int8, binary) at every Matryoshka size offered for the model.
Each point carries its metrics, measured bytes per vector, and paired bootstrap intervals over the
queries (value, % of float32) plus a paired permutation test against float32 (`confidence`).
`recommend` picks the cheapest point that keeps >= `floor` of float32. Works on XQuAD or a BEIR
folder (`run_sweep`) and on a stored corpus with uploaded queries and qrels (`run_corpus_sweep`),
the runner's three sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.confidence import RESAMPLES, SEED, ConfigConfidence, Interval, config_confidence
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.runner import EvalReport, Progress, pareto_frontier
from pplx_demo.evaluate.runs import run_corpus_evaluation, run_evaluation
from pplx_demo.index import IndexConfig, matryoshka_sizes
from pplx_demo.store import Store

MULTIPLIERS: tuple[int, ...] = (1, 2, 4, 8, 16)
PRECISIONS: tuple[str, ...] = ("float32", "int8", "binary")
SWEEP_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10")  # what the charts plot (intervals computed for these)
ASYMMETRIC_NOTE = ("binary + asymmetric has no rescore multiplier (it scores every sign vector with the float "
                   "query, no candidate stage) and IndexConfig has no asymmetric + rescore mode: it is one point, "
                   "drawn flat across the multipliers")


@dataclass
class SweepPoint:
    """One configuration of the sweep: what it costs, what it scores, how sure that is."""

    label: str
    config: IndexConfig
    family: str  # "precision" (precision x Matryoshka grid) | "rescore" | "asymmetric"
    bytes_per_vector: int
    metrics: dict[str, float]  # METRICS, 0..1
    pct_of_float32: dict[str, float]  # METRICS, x100
    confidence: dict[str, ConfigConfidence] = field(default_factory=dict)  # SWEEP_METRICS -> intervals, test
    search_ms: float = 0.0

    @property
    def multiplier(self) -> int | None:
        """The rescore multiplier (None unless family == 'rescore')."""
        return self.config.rescore_multiplier if self.config.mode == "rescore" else None

    @property
    def dim(self) -> int | None:
        return self.config.dim

    def ratio(self, metric: str) -> Interval | None:
        """This point's `metric` as a fraction of float32's, with its paired bootstrap interval."""
        c = self.confidence.get(metric)
        return c.pct_of_float32 if c is not None else None


@dataclass
class Recommendation:
    """The cheapest point keeping >= floor of float32 on `metric`."""

    point: SweepPoint
    metric: str
    floor: float  # e.g. 0.99
    ratio: Interval  # point's metric / float32's, paired bootstrap interval
    conservative: bool  # True: the interval's low end had to clear the floor, else the estimate
    reason: str


@dataclass
class SweepResult:
    """Every sweep point of one dataset, model and variant, with the frontier and the notes to show."""

    dataset: str
    model_key: str
    model_name: str
    variant: str
    points: list[SweepPoint]
    multipliers: tuple[int, ...]
    dims: list[int | None]  # Matryoshka sizes swept (None = full)
    multiplier_dim: int | None
    n_queries: int
    n_resamples: int
    seed: int
    bm25: dict[str, float] | None
    notes: list[str]
    report: EvalReport  # the runner's report the points come from

    @property
    def reference(self) -> SweepPoint:
        """The float32 full-size point."""
        for p in self.points:
            if p.config.precision == "float32" and p.config.dim is None:
                return p
        raise DemoError("the sweep has no float32 full-size point")

    def rescore_series(self) -> list[SweepPoint]:
        """binary + rescore points by rising multiplier."""
        return sorted((p for p in self.points if p.family == "rescore"), key=lambda p: p.multiplier or 0)

    def asymmetric(self) -> SweepPoint | None:
        return next((p for p in self.points if p.family == "asymmetric"), None)

    def frontier(self, metric: str = "ndcg@10") -> list[SweepPoint]:
        """Points on the bytes-per-vector vs `metric` Pareto frontier (runner.pareto_frontier), cheapest first."""
        return [self.points[i] for i in pareto_frontier([(p.bytes_per_vector, p.metrics[metric]) for p in self.points])]

    def recommend(self, floor: float = 0.99, metric: str = "ndcg@10", conservative: bool = False
                  ) -> Recommendation | None:
        return recommend(self.points, floor, metric, conservative=conservative)


def sweep_configs(full_dim: int, multipliers: Sequence[int] = MULTIPLIERS, dims: Sequence[int | None] | None = None,
                  multiplier_dim: int | None = None, rescore_with: str = "int8") -> list[IndexConfig]:
    """The sweep's configurations: precision x Matryoshka grid, then rescore by multiplier, then asymmetric.

    `dims` default: `matryoshka_sizes(full_dim)` (the full size written as None).
    """
    if not multipliers:
        raise DemoError("give at least one rescore multiplier to sweep")
    sizes = list(dims) if dims is not None else [None if d == full_dim else d for d in matryoshka_sizes(full_dim)]
    sizes = [None if d is not None and d >= full_dim else d for d in sizes]
    mdim = None if multiplier_dim is None or multiplier_dim >= full_dim else multiplier_dim
    configs = [IndexConfig(p, dim=d) for p in PRECISIONS for d in dict.fromkeys(sizes)]  # type: ignore[arg-type]
    configs += [IndexConfig("binary", "rescore", dim=mdim, rescore_multiplier=int(m), rescore_with=rescore_with)  # type: ignore[arg-type]
                for m in dict.fromkeys(multipliers)]
    configs.append(IndexConfig("binary", "asymmetric", dim=mdim))
    return configs


def _family(config: IndexConfig) -> str:
    return {"rescore": "rescore", "asymmetric": "asymmetric"}.get(config.mode, "precision")


def sweep_from_report(report: EvalReport, *, multipliers: Sequence[int] = MULTIPLIERS,
                      dims: Sequence[int | None] = (), multiplier_dim: int | None = None,
                      metrics: Sequence[str] = SWEEP_METRICS, n_resamples: int = RESAMPLES,
                      seed: int = SEED) -> SweepResult:
    """Sweep points (with intervals and tests vs float32) from a runner report that has per-query values."""
    if not report.reference_per_query:
        raise DemoError("this evaluation report has no per-query values; run the evaluation again")
    bm25 = report.bm25_per_query or None
    points = []
    for r in report.results:
        conf = {m: config_confidence(r.label, r.per_query, m, reference=report.reference_per_query, bm25=bm25,
                                     n_resamples=n_resamples, seed=seed) for m in metrics}
        points.append(SweepPoint(label=r.label, config=r.config, family=_family(r.config),
                                 bytes_per_vector=r.bytes_per_vector, metrics=dict(r.metrics),
                                 pct_of_float32=dict(r.pct_of_float32), confidence=conf, search_ms=r.search_ms))
    notes = [ASYMMETRIC_NOTE] if any(p.family == "asymmetric" for p in points) else []
    n_queries = len(next(iter(report.reference_per_query.values()), {}))
    notes.append(f"intervals: paired bootstrap over {n_queries} queries, {n_resamples} resamples, seed {seed}, 95% "
                 "percentile; tests: paired sign-flip permutation test against float32")
    return SweepResult(dataset=report.dataset, model_key=report.model_key, model_name=report.model_name,
                       variant=report.variant, points=points, multipliers=tuple(int(m) for m in multipliers),
                       dims=list(dims), multiplier_dim=multiplier_dim, n_queries=n_queries,
                       n_resamples=n_resamples, seed=seed, bm25=report.bm25, notes=notes, report=report)


def run_sweep(store: Store, dataset: RetrievalDataset, model_key: str, variant: str | None, *,
              multipliers: Sequence[int] = MULTIPLIERS, dims: Sequence[int | None] | None = None,
              multiplier_dim: int | None = None, rescore_with: str = "int8",
              chunking: tuple[int, int] | None = None, metrics: Sequence[str] = SWEEP_METRICS,
              n_resamples: int = RESAMPLES, seed: int = SEED, bm25: bool = True, bm25_language: str | None = None,
              owner: str | None = None, progress: Progress | None = None,
              encoder_loader: Callable[[str, str | None], Any]) -> SweepResult:
    """Sweep a dataset (XQuAD, BEIR folder) with one `run_evaluation` over every sweep configuration."""
    loader = encoder_loader
    encoder = loader(model_key, variant)
    configs = sweep_configs(int(encoder.dim), multipliers, dims, multiplier_dim, rescore_with)
    report = run_evaluation(store, dataset, model_key, variant, configs, chunking=chunking, progress=progress,
                            bm25=bm25, bm25_language=bm25_language, owner=owner, encoder_loader=loader)
    return sweep_from_report(report, multipliers=multipliers, dims=_dims_of(configs), multiplier_dim=multiplier_dim,
                             metrics=metrics, n_resamples=n_resamples, seed=seed)


def run_corpus_sweep(store: Store, corpus_id: int, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     model_key: str, variant: str | None, *, multipliers: Sequence[int] = MULTIPLIERS,
                     dims: Sequence[int | None] | None = None, multiplier_dim: int | None = None,
                     rescore_with: str = "int8", metrics: Sequence[str] = SWEEP_METRICS,
                     n_resamples: int = RESAMPLES, seed: int = SEED, owner: str | None = None,
                     progress: Progress | None = None,
                     encoder_loader: Callable[[str, str | None], Any]) -> SweepResult:
    """Sweep a stored corpus with uploaded queries and qrels (`run_corpus_evaluation`; no BM25 there)."""
    loader = encoder_loader
    encoder = loader(model_key, variant)
    configs = sweep_configs(int(encoder.dim), multipliers, dims, multiplier_dim, rescore_with)
    report = run_corpus_evaluation(store, corpus_id, queries, qrels, model_key, variant, configs, progress=progress,
                                   owner=owner, encoder_loader=loader)
    return sweep_from_report(report, multipliers=multipliers, dims=_dims_of(configs), multiplier_dim=multiplier_dim,
                             metrics=metrics, n_resamples=n_resamples, seed=seed)


def _dims_of(configs: Sequence[IndexConfig]) -> list[int | None]:
    return list(dict.fromkeys(c.dim for c in configs if c.mode == "plain"))


def recommend(points: Sequence[SweepPoint], floor: float = 0.99, metric: str = "ndcg@10", *,
              conservative: bool = False) -> Recommendation | None:
    """The cheapest point (bytes per vector; ties: higher `metric`, then label) whose `metric` is at
    least `floor` x float32's: the ratio's point estimate, or with `conservative` its interval's low end.

    None when no point has an interval for `metric` or float32 scored 0 (no ratio exists).
    """
    if not 0 < floor <= 1.5:
        raise DemoError(f"the quality floor is a fraction of float32 such as 0.99, got {floor!r}")
    ok = []
    for p in points:
        ratio = p.ratio(metric)
        if ratio is None or not math.isfinite(ratio.estimate):
            continue
        value = ratio.low if conservative else ratio.estimate
        if value >= floor - 1e-12:
            ok.append((p, ratio))
    if not ok:
        return None
    p, ratio = min(ok, key=lambda x: (x[0].bytes_per_vector, -x[0].metrics[metric], x[0].label))
    how = "the interval's low end" if conservative else "the estimate"
    reason = (f"{p.label}: {p.bytes_per_vector:,} bytes per vector, {metric} {ratio.format_pct()} of float32 "
              f"({how} >= {100 * floor:g}%); the cheapest configuration that does")
    return Recommendation(point=p, metric=metric, floor=float(floor), ratio=ratio, conservative=conservative,
                          reason=reason)


__all__ = ["ASYMMETRIC_NOTE", "MULTIPLIERS", "Recommendation", "SweepPoint", "SweepResult", "recommend",
           "run_corpus_sweep", "run_sweep", "sweep_configs", "sweep_from_report"]
