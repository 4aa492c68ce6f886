"""The quality sweep: its points equal one-configuration evaluations, the recommendation and frontier
follow their definitions, it runs on a stored corpus too, and the charts draw what the sweep holds."""

from __future__ import annotations

import pytest

from pplx_demo.charts_quality import sweep_bytes_figure, sweep_figures, sweep_multiplier_figure
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.confidence import ConfigConfidence, Interval
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.runner import pareto_frontier
import pplx_demo.evaluate.runs as _runs_module
from pplx_demo.evaluate.sweep import (ASYMMETRIC_NOTE, SweepPoint, recommend, run_corpus_sweep, run_sweep,
                                      sweep_configs)
from pplx_demo.index import IndexConfig
from pplx_demo.store import Store
from model_loading import with_models

run_corpus_evaluation = with_models(_runs_module.run_corpus_evaluation)
run_evaluation = with_models(_runs_module.run_evaluation)

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
    "d11": "Satellites orbit the Earth and relay television, weather images and navigation signals.",
    "d12": "A battery stores chemical energy and releases it as electric current through a circuit.",
}
QUERIES = {"q1": "why does lava come out of a mountain", "q2": "how do bees make honey",
           "q3": "what causes ocean tides", "q4": "why does bread dough rise", "q5": "how do vaccines protect people",
           "q6": "what makes the ground shake", "q7": "birds that cannot fly", "q8": "how is cheese produced",
           "q9": "warning light for ships", "q10": "how do electric batteries work"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}, "q5": {"d5": 1},
         "q6": {"d6": 2, "d1": 1}, "q7": {"d7": 1}, "q8": {"d8": 1}, "q9": {"d9": 1}, "q10": {"d12": 1}}


@pytest.fixture(scope="module")
def dataset():
    return RetrievalDataset(name="tiny", corpus={d: ("", t) for d, t in DOCS.items()}, queries=QUERIES,
                            qrels=QRELS, language="en")


@pytest.fixture(scope="module")
def swept(tmp_path_factory, dataset, minilm):
    store = Store(tmp_path_factory.mktemp("sweep") / "s.duckdb")
    sweep = with_models(run_sweep)(store, dataset, "minilm-l6", None, n_resamples=400, seed=1,
                      encoder_loader=lambda key, variant: minilm)
    yield store, sweep
    store.close()


def test_sweep_configs_cover_multipliers_and_every_precision_and_size():
    configs = sweep_configs(1024)
    grid = [c for c in configs if c.mode == "plain"]
    assert [(c.precision, c.dim) for c in grid] == [(p, d) for p in ("float32", "int8", "binary")
                                                    for d in (None, 512, 256, 128)]
    assert [c.rescore_multiplier for c in configs if c.mode == "rescore"] == [1, 2, 4, 8, 16]
    assert [c for c in configs if c.mode == "asymmetric"] == [IndexConfig("binary", "asymmetric")]
    at_256 = sweep_configs(1024, multipliers=(2, 3), dims=[None, 1024, 256], multiplier_dim=256, rescore_with="float32")
    assert {c.dim for c in at_256 if c.mode != "plain"} == {256}
    assert {c.rescore_with for c in at_256 if c.mode == "rescore"} == {"float32"}
    assert [c.dim for c in at_256 if c.precision == "float32"] == [None, 256]  # 1024 = the full size
    with pytest.raises(DemoError, match="multiplier"):
        sweep_configs(384, multipliers=())


def test_sweep_points_equal_single_evaluations(swept, dataset, minilm):
    store, sweep = swept
    assert len(sweep.points) == 3 * 3 + 5 + 1  # minilm: 384, 256, 128 x 3 precisions; 5 multipliers; asymmetric
    assert [p.multiplier for p in sweep.rescore_series()] == [1, 2, 4, 8, 16]
    assert sweep.asymmetric() is not None and ASYMMETRIC_NOTE in sweep.notes
    assert sweep.model_name.startswith("all-MiniLM-L6-v2") and "not pplx-embed" in sweep.model_name
    assert sweep.n_queries == len(QRELS) and sweep.bm25 is not None
    for point in sweep.points:
        single = run_evaluation(store, dataset, "minilm-l6", None, [point.config], bm25=False,
                                encoder_loader=lambda key, variant: minilm)
        assert single.embedded_now == 0  # the sweep's cached vectors
        one = single.results[0]
        assert one.config == point.config
        assert one.metrics == point.metrics and one.bytes_per_vector == point.bytes_per_vector
        assert one.pct_of_float32 == pytest.approx(point.pct_of_float32, nan_ok=True)
        conf = point.confidence["ndcg@10"]
        assert conf.value.estimate == pytest.approx(one.metrics["ndcg@10"])
        assert conf.value.n_resamples == 400 and conf.value.seed == 1
        assert conf.value.low <= one.metrics["ndcg@10"] <= conf.value.high
    ref = sweep.reference
    assert ref.config == IndexConfig("float32") and ref.ratio("ndcg@10").estimate == pytest.approx(1.0)
    assert ref.confidence["ndcg@10"].test_vs_float32.p_value == 1.0
    assert set(sweep.points[0].confidence) == {"ndcg@10", "recall@10"}


def test_frontier_and_recommendation_follow_their_definitions(swept):
    _, sweep = swept
    metric = "ndcg@10"
    expected = [sweep.points[i] for i in pareto_frontier([(p.bytes_per_vector, p.metrics[metric])
                                                          for p in sweep.points])]
    assert sweep.frontier(metric) == expected
    for floor in (0.9, 0.97, 0.99, 1.0):
        rec = sweep.recommend(floor, metric)
        keeping = [p for p in sweep.points if p.ratio(metric).estimate >= floor - 1e-12]
        cheapest = min(p.bytes_per_vector for p in keeping)
        assert rec is not None and rec.point.bytes_per_vector == cheapest and rec.point in keeping
        assert rec.ratio == rec.point.ratio(metric) and f"{100 * floor:g}%" in rec.reason
        strict = sweep.recommend(floor, metric, conservative=True)
        assert strict is not None and strict.ratio.low >= floor - 1e-12
        assert strict.point.bytes_per_vector >= rec.point.bytes_per_vector


def _point(label: str, nbytes: int, ratio: Interval | None, value: float) -> SweepPoint:
    conf = {} if ratio is None else {"ndcg@10": ConfigConfidence(
        label, "ndcg@10", 10, Interval(value, value, value, 10, 0), ratio, None, None, None, None)}
    return SweepPoint(label=label, config=IndexConfig(), family="precision", bytes_per_vector=nbytes,
                      metrics={"ndcg@10": value}, pct_of_float32={}, confidence=conf)


def test_recommend_on_hand_made_points():
    f32 = _point("float32", 1536, Interval(1.0, 1.0, 1.0, 10, 0), 0.8)
    int8 = _point("int8", 388, Interval(0.995, 0.985, 1.003, 10, 0), 0.796)
    binary = _point("binary", 48, Interval(0.95, 0.93, 0.97, 10, 0), 0.76)
    rescore = _point("binary + rescore", 388, Interval(0.999, 0.992, 1.004, 10, 0), 0.799)
    points = [f32, int8, binary, rescore]
    assert recommend(points, 0.99).point is rescore  # same bytes as int8, higher quality
    assert recommend(points, 0.99, conservative=True).point is rescore  # low 0.992 >= 0.99
    assert recommend(points, 0.995, conservative=True).point is f32
    assert recommend(points, 0.9).point is binary
    assert recommend([_point("x", 1, None, 0.5)], 0.99) is None
    nan = float("nan")
    assert recommend([_point("x", 1, Interval(nan, nan, nan, 1, 0), 0.0)]) is None  # float32 scored 0: no ratio
    with pytest.raises(DemoError, match="floor"):
        recommend(points, 99)


def test_sweep_on_a_stored_corpus_with_qrels(tmp_path, minilm):
    docs = [Document(uri=f"mem://{d}", title="", text=t, external_id=d) for d, t in DOCS.items()]
    with Store(tmp_path / "c.duckdb") as store:
        cid = store.add_corpus("mine", docs, [[Chunk(0, t, 0, len(t), 20)] for t in DOCS.values()])
        sweep = with_models(run_corpus_sweep)(store, cid, QUERIES, QRELS, "minilm-l6", None, multipliers=(1, 4), dims=[None],
                                 n_resamples=200, encoder_loader=lambda key, variant: minilm)
        assert [(p.config.precision, p.config.mode, p.multiplier) for p in sweep.points] == [
            ("float32", "plain", None), ("int8", "plain", None), ("binary", "plain", None),
            ("binary", "rescore", 1), ("binary", "rescore", 4), ("binary", "asymmetric", None)]
        assert sweep.bm25 is None and sweep.dataset == "mine"
        single = run_corpus_evaluation(store, cid, QUERIES, QRELS, "minilm-l6", None, [sweep.points[4].config],
                                       encoder_loader=lambda key, variant: minilm)
        assert single.results[0].metrics == sweep.points[4].metrics


def test_charts_draw_the_sweep(swept):
    _, sweep = swept
    fig = sweep_multiplier_figure(sweep)
    rescore = [t for t in fig.data if t.name == "binary + rescore"]
    assert len(rescore) == 2  # one per panel: nDCG@10 and Recall@10
    series = sweep.rescore_series()
    assert list(rescore[0].x) == [1, 2, 4, 8, 16]
    assert list(rescore[0].y) == pytest.approx([100 * p.confidence["ndcg@10"].value.estimate for p in series])
    assert list(rescore[0].error_y.array) == pytest.approx(
        [100 * (p.confidence["ndcg@10"].value.high - p.confidence["ndcg@10"].value.estimate) for p in series])
    names = {t.name for t in fig.data}
    assert {"binary + asymmetric (no multiplier)", "float32 (reference)", "BM25"} <= names
    assert "not pplx-embed" in fig.layout.title.text

    rec = sweep.recommend(0.99)
    fig = sweep_bytes_figure(sweep, "ndcg@10", rec)
    front = next(t for t in fig.data if t.name.startswith("Pareto"))
    assert list(front.x) == [p.bytes_per_vector for p in sweep.frontier("ndcg@10")]
    assert sum(1 for t in fig.data if t.name in {p.label for p in sweep.points}) == len(sweep.points)
    star = next(t for t in fig.data if t.name.startswith("recommended"))
    assert star.x[0] == rec.point.bytes_per_vector and rec.point.label in star.name
    multiplier_fig, bytes_fig = sweep_figures(sweep)
    assert multiplier_fig.data and bytes_fig.data
    assert "Run a sweep" in sweep_multiplier_figure(None).layout.annotations[0].text
    assert "Run a sweep" in sweep_bytes_figure(None).layout.annotations[0].text
