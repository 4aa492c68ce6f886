"""Confidence: per-query metrics, paired bootstrap intervals and paired permutation tests, checked
against scipy.stats and against hand-written references; the runner carries the per-query values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.confidence import (Interval, bootstrap_difference, bootstrap_mean, bootstrap_ratio,
                                           config_confidence, paired_permutation_test, report_confidence,
                                           resampled_means, significance_marker)
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.metrics import METRICS, evaluate_run, per_query_metrics
import pplx_demo.evaluate.runs as _runs_module
from pplx_demo.index import IndexConfig
from pplx_demo.store import Store
from model_loading import with_models

run_corpus_evaluation = with_models(_runs_module.run_corpus_evaluation)
run_evaluation = with_models(_runs_module.run_evaluation)

# scipy draws rng.integers(0, n, (B, n)) once (batch=None), exactly as we do, so the bounds agree to
# float rounding (our resample means are multiplicities . values / n, scipy's the mean of the draws).
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def paired():
    rng = np.random.default_rng(5)
    a = rng.random(150)
    b = np.clip(a * 0.97 + rng.normal(0, 0.05, 150), 0, 1)
    return a, b


def test_per_query_metrics_average_to_evaluate_run():
    run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0, "y": 1.0}, "q9": {"a": 1.0}}
    qrels = {"q1": {"b": 2, "c": 1, "z": 0}, "q2": {"y": 1}, "q3": {"a": 1}, "q4": {"a": 0}}
    per_query = per_query_metrics(run, qrels)
    assert set(per_query) == set(METRICS)
    assert set(per_query["ndcg@10"]) == {"q1", "q2", "q3"}  # judged queries only; q3 missing from the run -> 0
    assert per_query["mrr@10"] == {"q1": 0.5, "q2": 1.0, "q3": 0.0}  # q2: tie broken by id descending (y first)
    means = evaluate_run(run, qrels)
    for m in METRICS:
        assert sum(per_query[m].values()) / 3 == means[m]


def test_bootstrap_matches_scipy_paired_percentile(paired):
    a, b = paired
    for n_resamples, seed in ((999, 0), (4000, 11)):
        ratio = bootstrap_ratio(a, b, n_resamples, seed)
        ref = stats.bootstrap((a, b), lambda x, y, axis: x.mean(axis) / y.mean(axis), paired=True,
                              vectorized=True, n_resamples=n_resamples, method="percentile",
                              rng=np.random.default_rng(seed)).confidence_interval
        assert (ratio.low, ratio.high) == pytest.approx((ref.low, ref.high), abs=TOLERANCE)
        assert ratio.estimate == pytest.approx(a.mean() / b.mean())
        diff = bootstrap_difference(a, b, n_resamples, seed)
        ref = stats.bootstrap((a, b), lambda x, y, axis: (x - y).mean(axis), paired=True, vectorized=True,
                              n_resamples=n_resamples, method="percentile",
                              rng=np.random.default_rng(seed)).confidence_interval
        assert (diff.low, diff.high) == pytest.approx((ref.low, ref.high), abs=TOLERANCE)
        mean = bootstrap_mean(a, n_resamples, seed)
        ref = stats.bootstrap((a,), lambda x, axis: x.mean(axis), vectorized=True, n_resamples=n_resamples,
                              method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        assert (mean.low, mean.high) == pytest.approx((ref.low, ref.high), abs=TOLERANCE)
        assert mean.n_resamples == n_resamples and mean.seed == seed and mean.low < a.mean() < mean.high


def test_bootstrap_matches_a_hand_written_loop():
    a = np.array([0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.75, 1.0])
    r = np.array([0.5, 1.0, 0.5, 0.5, 1.0, 0.25, 0.75, 0.5])
    n_resamples, seed = 500, 3
    idx = np.random.default_rng(seed).integers(0, a.size, (n_resamples, a.size))
    ratios, diffs = [], []
    for row in idx:  # one resample at a time, the textbook way
        ratios.append(sum(a[i] for i in row) / sum(r[i] for i in row))
        diffs.append(sum(a[i] - r[i] for i in row) / a.size)
    ratio = bootstrap_ratio(a, r, n_resamples, seed)
    diff = bootstrap_difference(a, r, n_resamples, seed)
    assert (ratio.low, ratio.high) == pytest.approx(tuple(np.percentile(ratios, [2.5, 97.5])), abs=TOLERANCE)
    assert (diff.low, diff.high) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=TOLERANCE)
    assert ratio.estimate == pytest.approx(4.5 / 5.0)
    # the same seed gives every comparison the same draws
    means = resampled_means([a, r], n_resamples, seed)
    assert means[0] == pytest.approx(a[idx].mean(axis=1), abs=1e-14)


def test_permutation_test_exact_by_hand_and_against_scipy():
    d = np.array([0.5, 0.25, 0.125, -0.0625])
    test = paired_permutation_test(d, np.zeros(4), n_resamples=100, seed=0)
    # 16 sign patterns; sums >= 0.8125: (+,+,+,+) 0.9375 and (+,+,+,-) 0.8125; the same count <= -0.8125
    assert test.exact and test.n_resamples == 16 and test.p_value == pytest.approx(4 / 16)
    assert test.difference == pytest.approx(0.8125 / 4)
    x = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4, 0.6, 0.35, 0.8])
    y = np.array([0.2, 0.4, 0.3, 0.5, 0.1, 0.6, 0.5, 0.2, 0.3, 0.9])
    ours = paired_permutation_test(x, y, n_resamples=5000, seed=1)
    ref = stats.permutation_test((x, y), lambda u, v, axis: (u - v).mean(axis), permutation_type="samples",
                                 vectorized=True, n_resamples=5000)
    assert ours.exact and ours.n_resamples == 1024
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    # by hand: the share of the 1024 sign patterns at least as extreme as observed
    diffs = x - y
    null = [abs(np.dot(s, diffs)) for s in itertools.product((1, -1), repeat=10)]
    assert ours.p_value == pytest.approx(np.mean(np.array(null) >= abs(diffs.sum()) - 1e-12))
    assert ours.t_p_value == pytest.approx(stats.ttest_rel(x, y).pvalue)
    same = paired_permutation_test(x, x, n_resamples=100)
    assert same.p_value == 1.0 and same.t_p_value is None


def test_permutation_test_monte_carlo_is_close_to_scipy(paired):
    a, b = paired
    b = b + 0.007  # a small shift: a p-value near 0.09, well inside (0, 1)
    ours = paired_permutation_test(a, b, n_resamples=20_000, seed=2)
    ref = stats.permutation_test((a, b), lambda u, v, axis: (u - v).mean(axis), permutation_type="samples",
                                 vectorized=True, n_resamples=20_000, rng=np.random.default_rng(2))
    assert not ours.exact and ours.n_resamples == 20_000
    assert 0.001 < ref.pvalue < 0.5
    # Different random sign patterns: Monte Carlo error, sd <= sqrt(p(1-p)/20000) ~ 0.0035 each.
    assert ours.p_value == pytest.approx(ref.pvalue, abs=0.015)
    assert paired_permutation_test(a, b, n_resamples=20_000, seed=2) == ours  # seeded: reproducible


def test_interval_formatting_and_errors():
    iv = Interval(0.991, 0.982, 0.999, 2000, 0)
    assert iv.format_pct() == "99.1% [98.2, 99.9]"
    assert Interval(0.004, -0.003, 0.011, 10, 0).format_pct(signed=True) == "+0.4% [-0.3, +1.1]"
    assert Interval(float("nan"), float("nan"), float("nan"), 10, 0).format_pct() == "n/a"
    assert iv.contains(0.99) and not iv.contains(1.0)
    assert np.isnan(bootstrap_ratio([1.0, 0.5], [0.0, 0.0], 50).estimate)
    with pytest.raises(DemoError, match="one value per query"):
        bootstrap_ratio([1.0, 0.5], [1.0])
    with pytest.raises(DemoError, match="resamples"):
        bootstrap_mean([1.0], 0)
    with pytest.raises(DemoError, match="no judged queries"):
        bootstrap_mean([])
    with pytest.raises(DemoError, match="different queries"):
        config_confidence("x", {"ndcg@10": {"q1": 1.0}}, "ndcg@10", reference={"ndcg@10": {"q2": 1.0}})


DOCS = {
    "d1": "A volcano erupts when magma rises through the crust and escapes as lava.",
    "d2": "Honey bees collect nectar from flowers and turn it into honey inside the hive.",
    "d3": "Ocean tides rise and fall twice a day because of the pull of the moon's gravity.",
    "d4": "Bread dough rises because yeast ferments sugar and produces carbon dioxide gas.",
    "d5": "Vaccines train the immune system to recognise a germ without causing the disease.",
    "d6": "Earthquakes happen when tectonic plates slip suddenly along a fault line.",
    "d7": "Penguins are flightless birds that swim fast and breed on the ice of Antarctica.",
    "d8": "Cheese is made by curdling milk with rennet and ageing the curds for weeks.",
    "d9": "A lighthouse warns ships at night with a bright rotating lamp on a tall tower.",
    "d10": "Glaciers are slow rivers of ice that carve valleys as they move downhill.",
}
QUERIES = {"q1": "why does lava come out of a mountain", "q2": "how do bees make honey",
           "q3": "what causes ocean tides", "q4": "why does bread dough rise", "q5": "how do vaccines protect people",
           "q6": "what makes the ground shake", "q7": "birds that cannot fly", "q8": "how is cheese produced"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}, "q5": {"d5": 1},
         "q6": {"d6": 2, "d1": 1}, "q7": {"d7": 1}, "q8": {"d8": 1}}


def test_runner_carries_per_query_values_for_intervals_and_tests(tmp_path, minilm):
    ds = RetrievalDataset(name="tiny", corpus={d: ("", t) for d, t in DOCS.items()}, queries=QUERIES, qrels=QRELS,
                          language="en")
    with Store(tmp_path / "e.duckdb") as store:
        report = run_evaluation(store, ds, "minilm-l6", None, [IndexConfig("binary"), IndexConfig("int8")],
                                encoder_loader=lambda key, variant: minilm)
        for r in report.results:
            assert set(r.per_query) == set(METRICS)
            for m in METRICS:
                assert set(r.per_query[m]) == set(QRELS)
                assert sum(r.per_query[m].values()) / len(QRELS) == pytest.approx(r.metrics[m], abs=1e-15)
        assert set(report.reference_per_query["ndcg@10"]) == set(QRELS)  # float32 was not asked for, still there
        for m in METRICS:
            assert sum(report.bm25_per_query[m].values()) / len(QRELS) == pytest.approx(report.bm25[m], abs=1e-15)
        rows = report_confidence(report, "ndcg@10", n_resamples=500, seed=4)
        assert [r.label for r in rows] == [*(r.label for r in report.results), "BM25"]
        binary = rows[0]
        assert binary.n_queries == 8 and binary.value.estimate == pytest.approx(report.results[0].metrics["ndcg@10"])
        assert binary.pct_of_float32.estimate == pytest.approx(report.results[0].pct_of_float32["ndcg@10"] / 100)
        assert binary.value.n_resamples == 500 and binary.test_vs_float32.n_resamples == 256  # exact: 2**8 <= 500
        assert binary.diff_vs_bm25 is not None and binary.test_vs_bm25 is not None
        assert rows[-1].pct_of_float32 is not None and rows[-1].diff_vs_bm25 is None
        assert significance_marker(binary.test_vs_float32) in ("", "*")

        cid = next(c.id for c in store.list_corpora(sources=("evaluation",)) if c.name.startswith("[eval] tiny · whole"))
        corpus_report = run_corpus_evaluation(store, cid, dict(QUERIES), QRELS, "minilm-l6", None,
                                              [IndexConfig("binary")], encoder_loader=lambda key, variant: minilm)
        assert corpus_report.results[0].per_query["ndcg@10"] == report.results[0].per_query["ndcg@10"]
        assert corpus_report.reference_per_query and not corpus_report.bm25_per_query
