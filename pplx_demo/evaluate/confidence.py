"""How sure a quality number is: paired bootstrap intervals and paired significance tests over queries.

Everything resamples QUERIES (the judged queries the metric averages), and every comparison is
paired: two configurations are evaluated on the same resampled query set (one set of draws per
call, from `seed`), so query difficulty cancels out.

- `bootstrap_mean`, `bootstrap_ratio` ("% of float32" = ratio of the two means, queries resampled
  jointly), `bootstrap_difference` (mean of the paired differences): percentile intervals. The
  draws are `numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))`, the draws of
  `scipy.stats.bootstrap(..., paired=True, method="percentile", rng=default_rng(seed))`, with
  linear-interpolated quantiles as there. (Above 2**23 drawn indices they are drawn in row batches,
  which equals scipy with the same `batch`.) A resample whose reference mean is 0 gives no ratio
  and is left out of the ratio's quantiles.
- `paired_permutation_test`: H0 = the two configurations are exchangeable on every query. The
  statistic is the mean paired difference; the null flips the sign of each query's difference.
  Exact (all 2**n sign patterns) when 2**n <= n_resamples, else `n_resamples` random patterns
  with the observed one counted (p = (count + 1) / (n_resamples + 1)). Two-sided p =
  2 x min(one-sided p), capped at 1, with scipy.stats.permutation_test's tolerance for equal
  values, so it equals that function (permutation_type="samples") in the exact case. A paired
  t-test (scipy.stats.ttest_rel) is added when scipy is importable.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pplx_demo.errors import DemoError

RESAMPLES = 2000  # default bootstrap resamples and random sign patterns (Settings.confidence_resamples)
SEED = 0  # default seed (Settings.confidence_seed)
CONFIDENCE = 0.95
_MAX_DRAWN = 1 << 23  # indices drawn at once (64 MiB of int64)
_MAX_CACHED = 1 << 22  # resample weights kept for the next call up to this many entries (32 MiB)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval; values in the statistic's own units
    (a metric or a ratio as 0..1, a difference in metric units)."""

    estimate: float
    low: float
    high: float
    n_resamples: int
    seed: int
    confidence: float = CONFIDENCE

    def format_pct(self, digits: int = 1, signed: bool = False) -> str:
        """'99.1% [98.2, 99.9]' (x100); `signed` writes '+0.4% [-0.3, +1.1]' for differences."""
        spec = f"{'+' if signed else ''}.{digits}f"
        if not all(math.isfinite(v) for v in (self.estimate, self.low, self.high)):
            return "n/a"
        return f"{100 * self.estimate:{spec}}% [{100 * self.low:{spec}}, {100 * self.high:{spec}}]"

    def contains(self, value: float) -> bool:
        """True when `value` lies within [low, high]."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of mean(a) == mean(b) over the same queries."""

    difference: float  # mean(a - b)
    p_value: float  # sign-flip permutation test
    n_resamples: int  # sign patterns evaluated (2**n when exact)
    exact: bool
    seed: int
    t_p_value: float | None = None  # paired t-test; None without scipy or when every difference is equal
    method: str = "paired sign-flip permutation test, two-sided"


@dataclass
class ConfigConfidence:
    """One configuration's metric with intervals and tests against float32 and BM25 (same queries)."""

    label: str
    metric: str
    n_queries: int
    value: Interval
    pct_of_float32: Interval | None  # ratio of means, 0..1 (format_pct shows %)
    diff_vs_float32: Interval | None
    diff_vs_bm25: Interval | None
    test_vs_float32: PairedTest | None
    test_vs_bm25: PairedTest | None


# --------------------------------------------------------------------------- resampling


def _check(n_resamples: int, seed: int, confidence: float = CONFIDENCE) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise DemoError(f"the number of resamples must be a whole number >= 1, got {n_resamples!r}")
    if not isinstance(seed, (int, np.integer)):
        raise DemoError(f"the seed must be a whole number, got {seed!r}")
    if not 0 < confidence < 1:
        raise DemoError(f"the confidence level must be between 0 and 1, got {confidence!r}")


def _columns(*values: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    cols = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    n = cols[0].size
    if n == 0:
        raise DemoError("no judged queries to resample")
    if any(c.size != n for c in cols):
        raise DemoError(f"paired samples need one value per query in each, got sizes {[c.size for c in cols]}")
    if not all(np.isfinite(c).all() for c in cols):
        raise DemoError("per-query values contain NaN or infinite numbers")
    return cols


def _row_batches(n: int, n_resamples: int) -> list[int]:
    rows = max(1, _MAX_DRAWN // n)
    return [min(rows, n_resamples - start) for start in range(0, n_resamples, rows)]


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(r, n) multiplicities of each query in each resample row of drawn indices (r, n)."""
    r = idx.shape[0]
    flat = (np.arange(r, dtype=np.int64)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


@functools.lru_cache(maxsize=4)
def _cached(kind: str, n: int, n_resamples: int, seed: int) -> np.ndarray:
    out = _draw(kind, n, n_resamples, seed)
    out.flags.writeable = False
    return out


def _draw(kind: str, n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) weights: bootstrap multiplicities ("counts") or random signs ("signs")."""
    rng = np.random.default_rng(seed)
    parts = []
    for rows in _row_batches(n, n_resamples):
        if kind == "counts":
            parts.append(_counts(rng.integers(0, n, (rows, n)), n))
        else:
            parts.append((rng.integers(0, 2, (rows, n)) * 2 - 1).astype(np.float64))
    return np.concatenate(parts)


def _weights(kind: str, n: int, n_resamples: int, seed: int) -> np.ndarray:
    # Several configurations reuse one seed's draws: keep small matrices (<= 32 MiB) for the next call.
    if n * n_resamples <= _MAX_CACHED:
        return _cached(kind, n, n_resamples, seed)
    return _draw(kind, n, n_resamples, seed)


def resampled_means(columns: Sequence[np.ndarray], n_resamples: int, seed: int) -> list[np.ndarray]:
    """For each column, its mean over each of `n_resamples` resamples of the queries (the same
    resampled rows for every column: the paired bootstrap). Means are multiplicities . values / n,
    which equals the mean of the drawn values up to float rounding."""
    n = columns[0].size
    counts = _weights("counts", n, n_resamples, seed)
    means = counts @ np.stack(columns, axis=1) / n
    return [means[:, j] for j in range(len(columns))]


def _interval(estimate: float, stats: np.ndarray, n_resamples: int, seed: int, confidence: float) -> Interval:
    stats = stats[np.isfinite(stats)]
    if not math.isfinite(estimate) or stats.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), n_resamples, seed, confidence)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])  # linear interpolation, as scipy's percentile method
    return Interval(float(estimate), float(low), float(high), n_resamples, seed, confidence)


def bootstrap_mean(values: Sequence[float] | np.ndarray, n_resamples: int = RESAMPLES, seed: int = SEED,
                   confidence: float = CONFIDENCE) -> Interval:
    """Mean over queries with its percentile bootstrap interval."""
    _check(n_resamples, seed, confidence)
    (a,) = _columns(values)
    (means,) = resampled_means([a], n_resamples, seed)
    return _interval(float(a.mean()), means, n_resamples, seed, confidence)


def bootstrap_ratio(values: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray,
                    n_resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> Interval:
    """mean(values) / mean(reference) (e.g. 0.991 = 99.1% of float32), queries resampled jointly.

    NaN interval when the reference mean is 0.
    """
    _check(n_resamples, seed, confidence)
    a, r = _columns(values, reference)
    ma, mr = resampled_means([a, r], n_resamples, seed)
    ratios = np.divide(ma, mr, out=np.full_like(ma, np.nan), where=mr != 0)
    estimate = float(a.mean() / r.mean()) if r.mean() != 0 else float("nan")
    return _interval(estimate, ratios, n_resamples, seed, confidence)


def bootstrap_difference(values: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray,
                         n_resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE) -> Interval:
    """mean(values - other) over paired queries, with its percentile bootstrap interval."""
    _check(n_resamples, seed, confidence)
    a, b = _columns(values, other)
    (diffs,) = resampled_means([a - b], n_resamples, seed)
    return _interval(float((a - b).mean()), diffs, n_resamples, seed, confidence)


# --------------------------------------------------------------------------- tests


def _t_test_p(a: np.ndarray, b: np.ndarray) -> float | None:
    try:
        from scipy import stats
    except ImportError:  # optional: the permutation test needs only numpy
        return None
    d = a - b
    if d.size < 2 or np.all(d == d[0]):
        return None
    return float(stats.ttest_rel(a, b).pvalue)


def paired_permutation_test(values: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray,
                            n_resamples: int = RESAMPLES, seed: int = SEED) -> PairedTest:
    """Two-sided paired sign-flip permutation test of mean(values - other) = 0 (see the module doc)."""
    _check(n_resamples, seed)
    a, b = _columns(values, other)
    d = a - b
    n = d.size
    observed = float(d.mean())
    exact = n < 63 and 2 ** n <= n_resamples
    if exact:
        # Every sign pattern, in batches of sign rows.
        null_parts = []
        patterns = itertools.product((1.0, -1.0), repeat=n)
        rows = max(1, _MAX_DRAWN // n)
        while True:
            block = np.array(list(itertools.islice(patterns, rows)), dtype=np.float64)
            if block.size == 0:
                break
            null_parts.append((block * d).mean(axis=1))
        null = np.concatenate(null_parts)
        count_n, adjustment = null.size, 0
    else:
        null = _weights("signs", n, n_resamples, seed) @ d / n
        count_n, adjustment = n_resamples, 1
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)  # scipy's tolerance for "equal" statistics
    p_less = (np.count_nonzero(null <= observed + gamma) + adjustment) / (count_n + adjustment)
    p_greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / (count_n + adjustment)
    p = float(min(1.0, 2 * min(p_less, p_greater)))
    return PairedTest(difference=observed, p_value=p, n_resamples=int(count_n), exact=exact, seed=int(seed),
                      t_p_value=_t_test_p(a, b))


# --------------------------------------------------------------------------- per configuration


def aligned(per_query: Mapping[str, float], other: Mapping[str, float], what: str = "the two results"
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two per-query maps as arrays in one query order; DemoError unless they judge the same queries."""
    if set(per_query) != set(other):
        raise DemoError(f"{what} were scored on different queries ({len(per_query)} vs {len(other)}); "
                        "compare results of one evaluation run")
    keys = list(per_query)
    return (np.fromiter((per_query[q] for q in keys), dtype=np.float64, count=len(keys)),
            np.fromiter((other[q] for q in keys), dtype=np.float64, count=len(keys)))


def config_confidence(label: str, per_query: Mapping[str, Mapping[str, float]], metric: str, *,
                      reference: Mapping[str, Mapping[str, float]] | None = None,
                      bm25: Mapping[str, Mapping[str, float]] | None = None,
                      n_resamples: int = RESAMPLES, seed: int = SEED) -> ConfigConfidence:
    """Intervals and tests for one result's `metric` ({metric: {query id: value}} maps), against the
    float32 reference and BM25 when given; the same seed gives every comparison the same draws."""
    if metric not in per_query:
        raise DemoError(f"no per-query values for {metric!r} in {label!r}; run the evaluation again")
    values = per_query[metric]
    a = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    value = bootstrap_mean(a, n_resamples, seed)
    pct = diff_ref = diff_bm25 = None
    test_ref = test_bm25 = None
    if reference and metric in reference:
        x, r = aligned(values, reference[metric], f"{label!r} and float32")
        pct = bootstrap_ratio(x, r, n_resamples, seed)
        diff_ref = bootstrap_difference(x, r, n_resamples, seed)
        test_ref = paired_permutation_test(x, r, n_resamples, seed)
    if bm25 and metric in bm25:
        x, b = aligned(values, bm25[metric], f"{label!r} and BM25")
        diff_bm25 = bootstrap_difference(x, b, n_resamples, seed)
        test_bm25 = paired_permutation_test(x, b, n_resamples, seed)
    return ConfigConfidence(label=label, metric=metric, n_queries=int(a.size), value=value, pct_of_float32=pct,
                            diff_vs_float32=diff_ref, diff_vs_bm25=diff_bm25, test_vs_float32=test_ref,
                            test_vs_bm25=test_bm25)


def report_confidence(report: Any, metric: str = "ndcg@10", *, n_resamples: int = RESAMPLES, seed: int = SEED,
                      extra: Sequence[Any] = ()) -> list[ConfigConfidence]:
    """`config_confidence` for every result of an EvalReport (plus `extra` rows with `.label` and
    `.per_query`, e.g. hybrid results of the same run), then BM25 itself when the report has it."""
    reference = getattr(report, "reference_per_query", None) or None
    bm25 = getattr(report, "bm25_per_query", None) or None
    rows = [config_confidence(r.label, r.per_query, metric, reference=reference, bm25=bm25,
                              n_resamples=n_resamples, seed=seed)
            for r in [*report.results, *extra]]
    if bm25:
        rows.append(config_confidence("BM25", bm25, metric, reference=reference, n_resamples=n_resamples, seed=seed))
    return rows


def significance_marker(test: PairedTest | None, alpha: float = 0.05) -> str:
    """'*' when the test rejects equality at `alpha`, '' otherwise (for table cells)."""
    return "*" if test is not None and test.p_value < alpha else ""

