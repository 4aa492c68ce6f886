"""Figure builders: each chart shows the numbers it is given, and a bad input gives a message figure."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from pplx_demo import charts
from pplx_demo.evaluate.runner import EvalConfigResult
from pplx_demo.index import IndexConfig
from pplx_demo.search import ColumnResult, Hit
from pplx_demo.storage import PROJECTIONS, StorageReport


def _storage(label: str, bpv: int, n: int = 100) -> StorageReport:
    return StorageReport(label=label, precision=label.split()[0], dim=384, n_vectors=n, bytes_per_vector=bpv,
                         index_nbytes=bpv * n, ratio_vs_float32=bpv / 1536, db_file_bytes=10_000,
                         projections={name: bpv * count for name, count in PROJECTIONS.items()},
                         float32_bytes_per_vector=1536)


def _column(config: IndexConfig, bpv: int, scores: list[float], timings: dict[str, float]) -> ColumnResult:
    hits = [Hit(rank=i + 1, chunk_id=i, score=s, text=f"text {i}", title=f"t{i}", uri=f"u{i}", document_id=i,
                baseline_rank=i + 1) for i, s in enumerate(scores)]
    return ColumnResult(config=config, label=config.label, hits=hits, timings_ms=timings, overlap_at_k=1.0,
                        rank_correlation=1.0, storage=_storage(config.label, bpv))


F32 = IndexConfig("float32")
B_RESCORE = IndexConfig("binary", "rescore", rescore_multiplier=4, int8_scheme="calibrated")


def _run(f32_search: float, bin_search: float) -> list[ColumnResult]:
    return [_column(F32, 1536, [0.9, 0.8, 0.5],
                    {"embed_query": 10.0, "search": f32_search, "rescore": 0.0, "fetch_text": 1.0,
                     "total": 11.0 + f32_search, "build": 500.0}),
            _column(B_RESCORE, 436, [0.85, 0.7],
                    {"embed_query": 10.0, "search": bin_search, "rescore": 0.5, "fetch_text": 1.0,
                     "total": 11.5 + bin_search})]


def _bars(fig: go.Figure) -> dict[str, go.Bar]:
    return {t.name: t for t in fig.data if t.type == "bar"}


def test_latency_stacks_median_stage_times_and_leaves_out_one_off_builds():
    fig = charts.latency_figure([_run(2.0, 0.2), _run(4.0, 0.4), _run(9.0, 0.3)])
    bars = _bars(fig)
    assert set(bars) == {"embed query", "search", "rescore", "fetch text"}  # no "build", no "total"
    assert list(bars["search"].y) == [4.0, 0.3]  # medians over the three runs
    assert fig.layout.barmode == "stack"
    totals = [t for t in fig.data if t.type == "scatter"][0]
    assert list(totals.text) == ["15.0 ms", "11.8 ms"]
    assert "median of 3 searches" in fig.layout.title.text


def test_storage_shows_this_corpus_and_projections_on_a_log_axis():
    fig = charts.storage_figure(_run(1, 1), corpus_vectors=100)
    assert fig.layout.yaxis.type == "log"
    bars = list(fig.data)
    assert [b.name for b in bars] == ["float32 (1,536 B/vector)", f"{B_RESCORE.label} (436 B/vector)"]
    assert list(bars[0].x) == ["this corpus (100 vectors)", "1M vectors", "100M vectors", "1B vectors"]
    assert list(bars[0].y) == [153_600, 1_536_000_000, 153_600_000_000, 1_536_000_000_000]
    assert list(bars[1].y)[-1] == 436_000_000_000
    assert "1 TB" in fig.layout.yaxis.ticktext


def test_score_distribution_has_one_box_per_configuration():
    fig = charts.score_distribution_figure(_run(1, 1))
    assert [t.type for t in fig.data] == ["box", "box"]
    assert list(fig.data[0].y) == [0.9, 0.8, 0.5] and list(fig.data[1].y) == [0.85, 0.7]


def _eval(label: str, bpv: int, ndcg: float) -> EvalConfigResult:
    return EvalConfigResult(label=label, model_key="minilm-l6", model_name="m", variant="standard",
                            config=IndexConfig("float32"), metrics={"ndcg@10": ndcg}, pct_of_float32={"ndcg@10": 100.0},
                            bytes_per_vector=bpv, search_ms=1.0)


def test_quality_vs_bytes_marks_the_frontier_in_cost_order():
    results = [_eval("float32", 1536, 0.95), _eval("int8", 388, 0.96), _eval("binary", 48, 0.90),
               _eval("binary + rescore", 436, 0.94)]
    fig = charts.quality_bytes_figure(results, "ndcg@10", frontier=["binary", "int8"])
    line = [t for t in fig.data if t.name == "Pareto frontier"][0]
    assert list(line.x) == [48, 388] and list(line.y) == [0.90, 0.96]
    points = {t.name: (t.x[0], t.y[0]) for t in fig.data if t.mode == "markers+text"}
    assert points == {"float32": (1536, 0.95), "int8": (388, 0.96), "binary": (48, 0.90),
                      "binary + rescore": (436, 0.94)}
    assert fig.layout.xaxis.type == "log"


def test_per_language_groups_configurations_by_language():
    fig = charts.per_language_figure({"XQuAD en": [_eval("float32", 1536, 0.9), _eval("binary", 48, 0.8)],
                                      "XQuAD de": [_eval("float32", 1536, 0.7), _eval("binary", 48, 0.6)]},
                                     "ndcg@10")
    bars = _bars(fig)
    assert list(bars["float32"].x) == ["XQuAD en", "XQuAD de"]
    assert list(bars["binary"].y) == [0.8, 0.6]


@pytest.mark.parametrize("build", [
    lambda: charts.latency_figure([]),
    lambda: charts.storage_figure([]),
    lambda: charts.score_distribution_figure([]),
    lambda: charts.quality_bytes_figure([], "ndcg@10"),
    lambda: charts.per_language_figure({}, "ndcg@10"),
])
def test_no_data_gives_a_figure_with_a_hint(build):
    fig = build()
    assert not fig.data
    assert fig.layout.annotations and fig.layout.annotations[0].text


def test_a_failing_chart_becomes_a_message_not_an_exception():
    broken = [object()]  # no .label / .timings_ms
    fig = charts.latency_figure([broken])
    assert not fig.data
    assert fig.layout.annotations[0].text.startswith("Could not draw this chart: AttributeError")


def test_figures_serialise_for_the_browser():
    fig = charts.storage_figure(_run(1, 1), corpus_vectors=100)
    data = json.loads(fig.to_json())
    assert data["data"][0]["type"] == "bar"


@pytest.mark.parametrize("n, text", [(512, "512 B"), (1536, "1.5 kB"), (153_600_000_000, "153.6 GB"),
                                     (1.536e12, "1.5 TB")])
def test_format_bytes(n, text):
    assert charts.format_bytes(n) == text
