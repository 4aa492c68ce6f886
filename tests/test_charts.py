"""Figure builders: each chart shows the numbers it is given, names the model that produced them, keeps one
colour per configuration, and a bad input gives a message figure."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from pplx_demo import charts
from pplx_demo.evaluate.runner import EvalConfigResult
from pplx_demo.index import IndexConfig
from pplx_demo.search import ColumnResult, Hit, SearchResponse
from pplx_demo.storage import PROJECTIONS, StorageReport


def _storage(config: IndexConfig, bpv: int, n: int = 100) -> StorageReport:
    return StorageReport(config=config, dim=384, n_vectors=n, bytes_per_vector=bpv,
                         index_nbytes=bpv * n, ratio_vs_float32=bpv / 1536, db_file_bytes=10_000,
                         projections={name: bpv * count for name, count in PROJECTIONS.items()},
                         float32_bytes_per_vector=1536)


def _column(config: IndexConfig, bpv: int, scores: list[float], timings: dict[str, float]) -> ColumnResult:
    hits = [Hit(rank=i + 1, chunk_id=i, score=s, text=f"text {i}", title=f"t{i}", uri=f"u{i}", document_id=i,
                baseline_rank=i + 1) for i, s in enumerate(scores)]
    return ColumnResult(config=config, hits=hits, timings_ms=timings, overlap_at_k=1.0,
                        rank_correlation=1.0, storage=_storage(config, bpv))


F32 = IndexConfig("float32")
B_RESCORE = IndexConfig("binary", "rescore", rescore_multiplier=4, int8_scheme="calibrated")
MODEL = "all-MiniLM-L6-v2 (offline stand-in, not pplx-embed)"


def _run(f32_search: float, bin_search: float, build: bool = False, model: str = MODEL) -> SearchResponse:
    extra = {"build": 500.0} if build else {}
    columns = [_column(F32, 1536, [0.9, 0.8, 0.5],
                       {"search": f32_search, "fetch_text": 1.0, "total": 1.0 + f32_search, **extra}),
               _column(B_RESCORE, 436, [0.85, 0.7],
                       {"search": bin_search, "rescore": 0.5, "fetch_text": 1.0, "total": 1.5 + bin_search, **extra})]
    return SearchResponse(query="q", corpus_id=1, model_name=model, model_key="minilm-l6", variant="standard", k=3,
                          columns=columns, embed_query_ms=10.0)


def _traces(fig: go.Figure, kind: str) -> list:
    return [t for t in fig.data if t.type == kind and t.x is not None and t.x[0] is not None]


def test_latency_separates_the_index_search_from_the_whole_query():
    # The first run built the indexes (and paid one-off costs): it is left out of the medians.
    fig = charts.latency_figure([_run(90.0, 80.0, build=True), _run(2.0, 0.2), _run(4.0, 0.4), _run(9.0, 0.3)])
    index_panel = [t for t in _traces(fig, "bar") if t.xaxis == "x"]
    search, rescore = index_panel
    assert list(search.y) == [4.0, 0.3] and list(rescore.y) == [0.0, 0.5]  # medians of the later runs
    assert rescore.marker.pattern.shape == "/"  # rescore is the hatched part of the same colour
    whole = [t for t in _traces(fig, "bar") if t.xaxis == "x2"]
    assert [list(t.y) for t in whole] == [[10.0, 10.0], [4.0, 0.8], [1.0, 1.0]]  # embed query, index, fetch
    totals = [t for t in fig.data if t.type == "scatter" and t.xaxis == "x2"][0]
    assert list(totals.text) == ["15.0 ms", "11.8 ms"]
    assert fig.layout.barmode == "stack"
    assert "median over 4 searches" in fig.layout.title.text and MODEL in fig.layout.title.text
    assert {a.text for a in fig.layout.annotations} >= {"Index search (+ rescore)", "Whole query"}
    # The legend sits above the plots, away from the (multi-line) configuration labels.
    assert fig.layout.legend.yanchor == "bottom" and fig.layout.legend.y > 1


def test_latency_groups_by_model_and_configuration():
    fig = charts.latency_figure([_run(2.0, 0.2), _run(3.0, 0.3, model="pplx-embed-v1-0.6B")])
    search = [t for t in _traces(fig, "bar") if t.xaxis == "x"][0]
    assert len(search.x) == 4  # two models x two configurations, never pooled across models
    assert search.x[0].startswith("all-MiniLM-L6-v2<br>") and search.x[2].startswith("pplx-embed-v1-0.6B<br>")
    assert "pplx-embed-v1-0.6B" in fig.layout.title.text and MODEL in fig.layout.title.text


def test_storage_shows_this_corpus_and_projections_on_a_log_axis():
    fig = charts.storage_figure(_run(1, 1))
    assert fig.layout.yaxis.type == "log"
    bars = list(fig.data)
    assert [b.name for b in bars] == ["float32 (1,536 B/vector)", f"{B_RESCORE.label} (436 B/vector)"]
    assert list(bars[0].x) == ["this corpus (100 vectors)", "1M vectors", "100M vectors", "1B vectors"]
    assert list(bars[0].y) == [153_600, 1_536_000_000, 153_600_000_000, 1_536_000_000_000]
    assert list(bars[1].y)[-1] == 436_000_000_000
    assert "1 TiB" in fig.layout.yaxis.ticktext and fig.layout.yaxis.tickvals[-1] == 1024 ** 4  # one byte unit
    assert MODEL in fig.layout.title.text


def test_score_distribution_has_one_box_per_configuration():
    fig = charts.score_distribution_figure(_run(1, 1))
    assert [t.type for t in fig.data] == ["box", "box"]
    assert list(fig.data[0].y) == [0.9, 0.8, 0.5] and list(fig.data[1].y) == [0.85, 0.7]
    assert MODEL in fig.layout.title.text


def test_each_configuration_has_one_colour_everywhere():
    # Colours key on the configuration's family (a field), whatever its text or options.
    families = {IndexConfig("float32"): "float32", IndexConfig("int8", int8_scheme="calibrated"): "int8",
                IndexConfig("binary"): "binary", B_RESCORE: "binary + rescore",
                IndexConfig("binary", "rescore", rescore_multiplier=8, rescore_with="float32"): "binary + rescore",
                IndexConfig("binary", "asymmetric"): "binary + asymmetric"}
    for config, family in families.items():
        assert config.family == family and charts.colour_for(config) == charts.CONFIG_COLOURS[family]
    assert len(set(charts.CONFIG_COLOURS.values())) == len(charts.CONFIG_COLOURS) == 6  # one per family
    # A Matryoshka size is a lighter tint of its family's colour, not another family's.
    tint = charts.colour_for(IndexConfig("int8", dim=128))
    assert tint != charts.CONFIG_COLOURS["int8"] and tint not in charts.CONFIG_COLOURS.values()
    boxes = charts.score_distribution_figure(_run(1, 1)).data
    assert [b.marker.color for b in boxes] == [charts.CONFIG_COLOURS["float32"],
                                               charts.CONFIG_COLOURS["binary + rescore"]]
    # Axis labels are built from the fields (several short lines), not by cutting label text.
    assert charts.axis_label(B_RESCORE, "contextual") == "binary<br>+ rescore x4<br>(int8 calibrated)<br>late chunking"


def _eval(config: IndexConfig, bpv: int, ndcg: float, variant: str = "standard") -> EvalConfigResult:
    return EvalConfigResult(model_key="minilm-l6", model_name=MODEL, variant=variant, config=config,
                            metrics={"ndcg@10": ndcg}, pct_of_float32={"ndcg@10": 100.0}, bytes_per_vector=bpv,
                            search_ms=1.0)


def test_quality_vs_bytes_marks_the_frontier_and_names_points_in_the_legend():
    asym, rescore = IndexConfig("binary", "asymmetric"), IndexConfig("binary", "rescore")
    results = [_eval(IndexConfig("float32"), 1536, 0.95), _eval(IndexConfig("int8"), 388, 0.96),
               _eval(IndexConfig("binary"), 48, 0.90), _eval(asym, 48, 0.91), _eval(rescore, 436, 0.94),
               _eval(IndexConfig("binary"), 48, 0.92, variant="contextual")]
    fig = charts.quality_bytes_figure(results, "ndcg@10", frontier=[results[3], results[1]])
    line = [t for t in fig.data if t.name.startswith("Pareto frontier")][0]
    assert list(line.x) == [48, 388] and list(line.y) == [91.0, 96.0]  # x100, cheapest first
    points = {t.name: (t.x[0], t.y[0]) for t in fig.data if t.mode == "markers"}
    assert points == {"float32": (1536, 95.0), "int8": (388, 96.0), "binary": (48, 90.0),
                      "binary + asymmetric": (48, 91.0), "binary + rescore x4": (436, 94.0),
                      "binary (late chunking)": (48, 92.0)}
    late = [t for t in fig.data if t.name == "binary (late chunking)"][0]
    assert late.marker.symbol.endswith("-open")  # the variant is a field, drawn as an open marker
    # No text next to the points: two configurations at 48 bytes would overprint each other.
    assert all(not t.text for t in fig.data)
    assert fig.layout.xaxis.type == "log" and MODEL in fig.layout.title.text
    # plain ticks at powers of ten, no minor labels ("4 5 6 7 8 9 100 2 3")
    assert list(fig.layout.xaxis.ticktext) == ["10", "100", "1,000", "10,000"]


def test_per_language_bars_start_from_zero_and_carry_their_values():
    f32, binary = IndexConfig("float32"), IndexConfig("binary")
    fig = charts.per_language_figure({"XQuAD en": [_eval(f32, 1536, 0.959), _eval(binary, 48, 0.929),
                                                   _eval(binary, 48, 0.94, variant="contextual")],
                                      "XQuAD de": [_eval(f32, 1536, 0.70), _eval(binary, 48, 0.68)]},
                                     "ndcg@10")
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert list(bars["float32"].x) == ["XQuAD en", "XQuAD de"]
    assert list(bars["binary"].y) == [pytest.approx(92.9), pytest.approx(68.0)]
    assert list(bars["binary"].text) == ["92.9", "68.0"]
    assert bars["binary (late chunking)"].marker.pattern.shape == "/"  # late chunking hatched (a field)
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] > 95.9  # bars from zero, all visible


@pytest.mark.parametrize("build", [
    lambda: charts.latency_figure([]),
    lambda: charts.storage_figure(None),
    lambda: charts.score_distribution_figure(None),
    lambda: charts.quality_bytes_figure([], "ndcg@10"),
    lambda: charts.per_language_figure({}, "ndcg@10"),
])
def test_no_data_gives_a_figure_with_a_hint(build):
    fig = build()
    assert not fig.data
    assert fig.layout.annotations and fig.layout.annotations[0].text


def test_a_failing_chart_becomes_a_message_not_an_exception():
    broken = [object()]  # no .model_name / .columns
    fig = charts.latency_figure(broken)
    assert not fig.data
    assert fig.layout.annotations[0].text.startswith("Could not draw this chart: AttributeError")


def test_figures_serialise_for_the_browser():
    for fig in (charts.storage_figure(_run(1, 1)), charts.latency_figure([_run(1, 1)])):
        data = json.loads(fig.to_json())
        assert data["data"][0]["type"] == "bar"
