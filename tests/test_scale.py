"""Scale runs, RAM vs disk cost arithmetic, and their figures (asserted on the data they plot)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import numpy as np
import pytest

import pplx_demo.scale as scale
from pplx_demo.charts_scale import deployment_cost_figure, scale_latency_figure
from pplx_demo.config import Settings
from pplx_demo.deployment import (COST_SOURCES, GIB, bytes_split, deployment_configs, deployment_cost,
                                  deployment_costs)
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.index import IndexConfig
from pplx_demo.scale import (SYNTHETIC_NOTE, as_stored, ScaleBudget, ScalePoint, ScaleReport, default_scale_configs, plan_scale,
                             run_scale)

DIM = 64
ROOMY = ScaleBudget(ram_bytes=1 << 30, disk_bytes=1 << 30)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(scale, "_BLOCK_BYTES", 4 * DIM * 500)  # 500 synthetic rows per block


def test_run_scale_times_every_configuration_at_every_size(tmp_path, small_blocks):
    configs = default_scale_configs(DIM)
    seen: list[tuple[int, int]] = []
    report = run_scale(vectors(700), vectors(4, seed=1), [3000, 1200], configs, workdir=tmp_path, budget=ROOMY,
                       progress=lambda d, t: seen.append((d, t)), repeats=2, k=5)
    assert [s.n_vectors for s in report.sizes] == [1200, 3000]  # sorted
    assert [(s.n_real, s.n_synthetic) for s in report.sizes] == [(700, 500), (700, 2300)]
    assert len(report.points) == 2 * len(configs)
    assert {p.config for p in report.points} == {  # the int8 scheme used
        replace(c, int8_scheme=c.int8_scheme or "tanh") if c.uses_int8 else c for c in configs}
    # float rows on disk are compared as stored, so pplx-embed's tanh float form is timed and labelled "raw"
    assert str(as_stored(IndexConfig("float32").resolved("tanh"))) == "float32 raw"
    for p in report.points:
        assert 0 < p.p50_ms <= p.p95_ms and p.samples == 2 * 4
        assert (p.rescore_p50_ms > 0) == (p.config.mode == "rescore")
    plan = plan_scale(DIM, 3000, configs)
    assert report.sizes[-1].disk_bytes == plan.disk_bytes_per_vector * 3000
    assert report.sizes[-1].index_ram_bytes == plan.ram_bytes_per_vector * 3000
    binary = next(p for p in report.points if p.config == IndexConfig("binary") and p.n_vectors == 3000)
    f32 = next(p for p in report.points if p.config == IndexConfig("float32") and p.n_vectors == 3000)
    assert f32.scanned_bytes == 32 * binary.scanned_bytes  # 64 float32 = 256 B vs 64 bits = 8 B per vector
    rescore = next(p for p in report.points if p.config.mode == "rescore" and p.config.dim is None)
    assert rescore.candidate_bytes_per_query == 5 * 4 * (DIM + 4)
    assert report.note == SYNTHETIC_NOTE
    assert seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    json.dumps(report.to_dict())  # renderable as JSON for the CLI
    assert list(tmp_path.iterdir()) == []  # the throwaway index is gone


def test_float32_rows_are_written_only_when_a_configuration_needs_them():
    plan = plan_scale(1024, 10_000_000, [IndexConfig("binary", "rescore", rescore_with="int8")])
    assert plan.store == ("binary", "int8") and plan.dims == (1024,)
    assert plan.disk_bytes_per_vector == 8 + 128 + 1024 + 4  # chunk id, bits, int8 codes, row norm
    assert plan.ram_bytes_per_vector == 128
    with_mrl = plan_scale(1024, 1, [IndexConfig("float32"), IndexConfig("binary", dim=512)])
    assert with_mrl.store == ("binary", "float32") and with_mrl.dims == (1024, 512)
    with pytest.raises(DemoError, match="several int8 schemes"):
        plan_scale(64, 1, [IndexConfig("int8", int8_scheme="tanh"), IndexConfig("int8", int8_scheme="calibrated")])


def test_sizes_over_budget_are_refused_before_anything_is_written(tmp_path):
    configs = [IndexConfig("float32"), IndexConfig("binary", "rescore")]
    per_vector = plan_scale(DIM, 1, configs).disk_bytes_per_vector
    tight = ScaleBudget(ram_bytes=1 << 30, disk_bytes=per_vector * 5000)
    with pytest.raises(DemoError, match=r"6,000 vectors need .* of disk.*PPLX_DEMO_SCALE_DISK_BUDGET_BYTES.*"
                                        r"largest size that fits is 5,000 vectors"):
        run_scale(vectors(100), vectors(2), [1000, 6000], configs, workdir=tmp_path, budget=tight)
    with pytest.raises(DemoError, match=r"of RAM.*PPLX_DEMO_SCALE_RAM_BUDGET_BYTES"):
        run_scale(vectors(100), vectors(2), [1000], configs, workdir=tmp_path,
                  budget=ScaleBudget(ram_bytes=1 << 20, disk_bytes=1 << 30))
    with pytest.raises(DemoError, match=r"free space under"):  # more than this volume holds
        run_scale(vectors(100), vectors(2), [10 ** 12], configs, workdir=tmp_path,
                  budget=ScaleBudget(ram_bytes=1 << 62, disk_bytes=1 << 62))
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_between_blocks_and_removes_the_files(tmp_path, small_blocks):
    stop = threading.Event()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if done >= 1500:
            stop.set()

    with pytest.raises(Cancelled):
        run_scale(vectors(200), vectors(2), [50_000], [IndexConfig("binary")], workdir=tmp_path, budget=ROOMY,
                  progress=progress, cancel=stop)
    assert max(calls) < 50_000  # stopped long before the end
    assert list(tmp_path.iterdir()) == []


def test_budget_comes_from_settings():
    s = Settings(scale_ram_budget_bytes=123, scale_disk_budget_bytes=456)
    assert ScaleBudget.from_settings(s) == ScaleBudget(123, 456)


# ---------------------------------------------------------------------------------------------
# costs


def test_cost_arithmetic_binary_in_ram_int8_on_disk():
    config = IndexConfig("binary", "rescore", rescore_with="int8")
    cost = deployment_cost(config, 1024, 1_000_000_000, ram_usd_per_gb_month=4.0, disk_usd_per_gb_month=0.1)
    assert cost.ram_bytes == 128 * 10 ** 9 and cost.disk_bytes == 1028 * 10 ** 9
    assert cost.ram_usd_month == pytest.approx(128e9 / GIB * 4.0)
    assert cost.disk_usd_month == pytest.approx(1028e9 / GIB * 0.1)
    assert cost.total_usd_month == pytest.approx(cost.ram_usd_month + cost.disk_usd_month)
    f32 = deployment_cost(IndexConfig("float32"), 1024, 10 ** 9, ram_usd_per_gb_month=4.0, disk_usd_per_gb_month=0.1)
    assert f32.ram_bytes == 32 * cost.ram_bytes and f32.disk_bytes == 0  # binary is 32x smaller than float32
    assert bytes_split(IndexConfig("int8"), 1024).ram_bytes_per_vector * 4 == 4 * 1028
    mrl = bytes_split(IndexConfig("binary", "rescore", dim=512), 1024)
    assert (mrl.ram_bytes_per_vector, mrl.disk_bytes_per_vector) == (64, 516)
    assert bytes_split(IndexConfig("binary", dim=100), 1024).ram_bytes_per_vector == 16  # whole 64-bit words


def test_cost_table_covers_every_configuration_and_projection():
    configs = deployment_configs(1024, "tanh")
    assert str(configs[-1]) == "binary + rescore x4 (int8 tanh) @512d"
    costs = deployment_costs(configs, 1024, ram_usd_per_gb_month=5.75, disk_usd_per_gb_month=0.08)
    assert len(costs) == 3 * len(configs)
    assert sorted({c.n_vectors for c in costs}) == [10 ** 6, 10 ** 8, 10 ** 9]
    s = Settings()
    assert {src.resource: src.usd_per_gb_month for src in COST_SOURCES} == {
        "RAM": s.ram_usd_per_gb_month, "disk": s.disk_usd_per_gb_month}
    assert all(src.url.startswith("https://") and src.as_of for src in COST_SOURCES)
    json.dumps([c.to_dict() for c in costs])


# ---------------------------------------------------------------------------------------------
# figures


def _report() -> ScaleReport:
    def point(label, n, p50, p95, scanned):
        return ScalePoint(config=IndexConfig.parse(label), n_vectors=n, p50_ms=p50, p95_ms=p95, search_p50_ms=p50,
                          rescore_p50_ms=0.0, samples=3, kernel="numba", ram_bytes=0, scanned_bytes=scanned,
                          candidate_bytes_per_query=0)
    return ScaleReport(full_dim=1024, k=10, n_queries=3, repeats=1, int8_scheme="tanh", configs=["float32", "binary"],
                       points=[point("float32", 1000, 1.0, 2.0, 4096 * 1000),
                               point("float32", 10000, 10.0, 15.0, 4096 * 10000),
                               point("binary", 1000, 0.1, 0.3, 128 * 1000),
                               point("binary", 10000, 0.5, 0.6, 128 * 10000)])


def test_scale_latency_figure_plots_p50_with_p95_bars_and_bytes_scanned():
    fig = scale_latency_figure(_report())
    lines = {t.name.split(" (")[0]: t for t in fig.data if t.type == "scatter"}
    assert list(lines["float32"].x) == [1000, 10000] and list(lines["float32"].y) == [1.0, 10.0]
    assert list(lines["float32"].error_y.array) == [1.0, 5.0]  # p95 - p50
    assert "128 B/vector" in lines["binary"].name
    bars = next(t for t in fig.data if t.type == "bar")
    assert list(bars.x) == [4096 * 10000, 128 * 10000]
    assert "32x fewer than float32" in bars.text[1]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert SYNTHETIC_NOTE in fig.layout.title.text


def test_deployment_cost_figure_stacks_ram_and_disk_dollars_per_size():
    configs = [IndexConfig("float32"), IndexConfig("binary", "rescore")]
    costs = deployment_costs(configs, 1024, (10 ** 6, 10 ** 9), ram_usd_per_gb_month=5.0, disk_usd_per_gb_month=0.1)
    fig = deployment_cost_figure(costs, "RAM $5/GiB-month")
    bars = [t for t in fig.data if t.type == "bar" and t.x is not None and t.x[0] is not None]
    assert len(bars) == 4  # RAM and disk, for each of two sizes
    ram_1b = next(t for t in bars if t.xaxis == "x2" and t.marker.pattern.shape in (None, ""))
    disk_1b = next(t for t in bars if t.xaxis == "x2" and t.marker.pattern.shape == "/")
    want = {c.config: c for c in costs if c.n_vectors == 10 ** 9}
    assert list(ram_1b.y) == pytest.approx([want[configs[0]].ram_usd_month, want[configs[1]].ram_usd_month])
    assert list(disk_1b.y) == pytest.approx([0.0, want[configs[1]].disk_usd_month])
    assert [a.text for a in fig.layout.annotations] == ["1,000,000 vectors", "1,000,000,000 vectors"]
    assert "RAM $5/GiB-month" in fig.layout.title.text


def test_figures_show_a_message_on_empty_input():
    for fig in (scale_latency_figure(None), scale_latency_figure(ScaleReport(1024, 10, 0, 1, "tanh", [])),
                deployment_cost_figure([])):
        assert len(fig.data) == 0 and fig.layout.annotations[0].text
    broken = scale_latency_figure(ScaleReport(1024, 10, 0, 1, "tanh", [], points=[object()]))  # type: ignore[list-item]
    # a bad input becomes a message, not a crash
    assert "Could not draw" in broken.layout.annotations[0].text
