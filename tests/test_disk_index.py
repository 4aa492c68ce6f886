"""The out-of-core index: same results as QuantizedIndex for every configuration, incremental appends,
reopening, damage detection with a clear message, and rebuilding from the float vectors."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import pplx_demo.disk_index.index as disk_index_module
from pplx_demo.deployment import deployment_cost, measured_cost
from pplx_demo.disk_index import MANIFEST_NAME, DiskIndex, index_folder
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.quantize import calibrate_int8

K = 10
FULL, MRL = 96, 40


def data(n: int = 3000, dim: int = FULL, nq: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.2, 3.0, size=dim)  # uneven per-dimension ranges, like real embeddings
    x = (rng.standard_normal((n, dim)) * scale).astype(np.float32)
    x[7] = x[3]  # an exact duplicate: ties must break the same way (lower row first)
    q = (rng.standard_normal((nq, dim)) * scale).astype(np.float32)
    return x, q


def every_config(scheme: str) -> list[IndexConfig]:
    out = []
    for dim in (None, MRL):
        out += [IndexConfig("float32", dim=dim), IndexConfig("int8", dim=dim, int8_scheme=scheme),
                IndexConfig("binary", dim=dim),
                IndexConfig("binary", "rescore", dim=dim, rescore_with="int8", int8_scheme=scheme),
                IndexConfig("binary", "rescore", dim=dim, rescore_multiplier=3, rescore_with="float32"),
                IndexConfig("binary", "asymmetric", dim=dim)]
    return out


def assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, atol=1e-7)


@pytest.fixture(params=["numpy", "numba"])
def kernels(request, monkeypatch):
    if request.param == "numba":
        pytest.importorskip("numba")
    monkeypatch.setenv("PPLX_DEMO_KERNELS", request.param)
    return request.param


@pytest.fixture
def small_chunks(monkeypatch):
    """4 KiB checksum chunks, so files span many chunks and appends end mid-chunk."""
    monkeypatch.setattr(disk_index_module, "CHECKSUM_CHUNK_BYTES", 4096)  # read by DiskIndex.create


@pytest.mark.parametrize("scheme", ["tanh", "calibrated"])
def test_every_configuration_equals_quantized_index(tmp_path, scheme, kernels):
    x, q = data()
    ix = DiskIndex.build(tmp_path / "ix", x, np.arange(len(x)) + 1000, dims=(None, MRL), int8_scheme=scheme)
    for config in every_config(scheme):
        want = QuantizedIndex.build(x, config).search(q, K)
        got = ix.search(q, K, config)
        assert_same(got, want)
        assert got.kernel == want.kernel
        assert got.ids[0, 0] >= 0 and ("rescore" in got.timings) == (config.mode == "rescore")
    # the duplicate rows 3 and 7 tie; the lower row ranks first, as in QuantizedIndex
    hits = ix.search(x[3:4], K, IndexConfig("float32"))
    assert list(hits.ids[0, :2]) == [3, 7]
    assert list(ix.chunk_ids[hits.ids[0, :2]]) == [1003, 1007]


def test_files_hold_exactly_the_arrays_quantized_index_builds(tmp_path):
    x, _ = data(n=500)
    ix = DiskIndex.build(tmp_path / "ix", x, np.arange(500), dims=(None, MRL), int8_scheme="calibrated")
    for dim in (FULL, MRL):
        ref_f = QuantizedIndex.build(x, IndexConfig("float32", dim=dim))
        ref_c = QuantizedIndex.build(x, IndexConfig("binary", "rescore", dim=dim, int8_scheme="calibrated"))
        view_f = ix.quantized(IndexConfig("float32", dim=dim))
        view_c = ix.quantized(IndexConfig("binary", "rescore", dim=dim, int8_scheme="calibrated"))
        np.testing.assert_array_equal(view_f._float, ref_f._float)
        np.testing.assert_array_equal(view_c._codes, ref_c._codes)
        np.testing.assert_array_equal(view_c._code_inv_norm, ref_c._code_inv_norm)
        np.testing.assert_array_equal(view_c._code_offset, ref_c._code_offset)
        np.testing.assert_array_equal(view_c._bits, ref_c._bits)
        assert isinstance(view_f._float.base, np.memmap) or isinstance(view_f._float, np.memmap)  # not in RAM
    assert ix.ram_nbytes == 500 * (16 + 8)  # bits of both sizes: 96 -> 2 words, 40 -> 1 word


def test_append_in_pieces_equals_a_full_build(tmp_path, small_chunks):
    x, q = data(n=2500)
    ids = np.arange(len(x)) * 3
    whole = DiskIndex.build(tmp_path / "whole", x, ids, dims=(None, MRL))
    grown = DiskIndex.create(tmp_path / "grown", FULL, dims=(None, MRL))
    for a, b in ((0, 1), (1, 700), (700, 701), (701, 2500)):  # odd sizes: appends end mid checksum chunk
        grown.append(x[a:b], ids[a:b])
    assert grown.n == whole.n == 2500
    for config in every_config("tanh"):
        assert_same(grown.search(q, K, config), whole.search(q, K, config))
    # same bytes, same checksums: the incremental hashing matches hashing the finished files
    assert grown.manifest["files"] == whole.manifest["files"]
    assert grown.verify() == whole.verify()
    np.testing.assert_array_equal(grown.chunk_ids, ids)


def test_reopen_after_close_gives_identical_results(tmp_path, small_chunks):
    x, q = data(n=1200)
    folder = tmp_path / "ix"
    ix = DiskIndex.build(folder, x[:1000], np.arange(1000), dims=(None, MRL), meta={"corpus_id": 3})
    before = {c: ix.search(q, K, c) for c in every_config("tanh")}
    ix.close()
    again = DiskIndex.open(folder)
    assert again.n == 1000 and again.dims == (FULL, MRL) and again.meta == {"corpus_id": 3}
    for config, hits in before.items():
        assert_same(again.search(q, K, config), hits)
    again.append(x[1000:], np.arange(1000, 1200))  # appending after a restart continues the checksums
    again.close()
    third = DiskIndex.open(folder)
    assert third.n == 1200
    third.verify()
    assert_same(third.search(q, K, IndexConfig("int8")), QuantizedIndex.build(x, IndexConfig("int8")).search(q, K))


def _built(tmp_path):
    x, q = data(n=800)
    folder = tmp_path / "corpus"
    DiskIndex.build(folder, x, np.arange(800), dims=(None, MRL)).close()
    return folder, x, q


def test_truncated_file_is_refused_on_open_and_rebuild_restores(tmp_path):
    folder, x, q = _built(tmp_path)
    path = folder / "d96.int8"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 10)
    with pytest.raises(DemoError, match=r"file d96\.int8 has \d+ bytes.*cut short.*rebuild"):
        DiskIndex.open(folder)
    fixed = DiskIndex.rebuild(folder, x, np.arange(800))
    assert fixed.dims == (FULL, MRL)  # settings kept from the old manifest
    fixed.verify()
    assert_same(fixed.search(q, K, IndexConfig("int8")), QuantizedIndex.build(x, IndexConfig("int8")).search(q, K))
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temporary folders left behind


def test_missing_file_is_named(tmp_path):
    folder, x, _ = _built(tmp_path)
    (folder / "d40.bits").unlink()
    with pytest.raises(DemoError, match=r"file d40\.bits is missing"):
        DiskIndex.open(folder)
    DiskIndex.rebuild(folder, x, np.arange(800)).verify()


def test_longer_file_reads_as_an_interrupted_append(tmp_path):
    folder, _, _ = _built(tmp_path)
    with open(folder / "chunk_ids.i64", "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(DemoError, match=r"chunk_ids\.i64 .*longer than committed"):
        DiskIndex.open(folder)


@pytest.mark.parametrize("damage", ["garbage", "missing", "old schema", "incomplete"])
def test_damaged_manifest_is_refused(tmp_path, damage):
    folder, x, q = _built(tmp_path)
    manifest = folder / MANIFEST_NAME
    if damage == "garbage":
        manifest.write_bytes(b"{not json")
    elif damage == "missing":
        manifest.unlink()
    else:
        data_ = json.loads(manifest.read_text())
        if damage == "old schema":
            data_["schema_version"] = 0
        else:
            del data_["files"]
        manifest.write_text(json.dumps(data_))
    with pytest.raises(DemoError, match=MANIFEST_NAME):
        DiskIndex.open(folder)
    # without a readable manifest the caller says what to build; the default is the full size only
    fixed = DiskIndex.rebuild(folder, x, np.arange(800), dims=(None, MRL))
    assert_same(fixed.search(q, K, IndexConfig("binary", dim=MRL)),
                QuantizedIndex.build(x, IndexConfig("binary", dim=MRL)).search(q, K))


def test_flipped_byte_passes_open_but_not_verify(tmp_path, small_chunks):
    folder, _, _ = _built(tmp_path)
    path = folder / "d96.float32"
    raw = bytearray(path.read_bytes())
    raw[5 * 4096 + 17] ^= 0xFF
    path.write_bytes(bytes(raw))
    ix = DiskIndex.open(folder)  # lengths are right: open stays cheap
    with pytest.raises(DemoError, match=r"file d96\.float32 is damaged \(checksum mismatch in bytes 20480\.\.24576\)"):
        ix.verify()


def test_a_failed_or_cancelled_append_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(disk_index_module, "_ENCODE_BLOCK_BYTES", 4 * FULL * 100)  # 100 rows per append block
    x, q = data(n=1000)
    ix = DiskIndex.build(tmp_path / "ix", x[:500], np.arange(500))
    files = ix.manifest["files"]
    bad = x[500:].copy()
    bad[250, 3] = np.nan  # in the third block: two blocks were already written
    with pytest.raises(DemoError, match="NaN"):
        ix.append(bad, np.arange(500, 1000))
    stop = threading.Event()
    with pytest.raises(Cancelled):
        ix.append(x[500:], np.arange(500, 1000), progress=lambda done, total: stop.set(), cancel=stop)
    assert ix.n == 500 and ix.manifest["files"] == files
    reopened = DiskIndex.open(tmp_path / "ix")
    reopened.verify()
    reopened.append(x[500:], np.arange(500, 1000))
    assert_same(reopened.search(q, K, IndexConfig("binary", "rescore")),
                QuantizedIndex.build(x, IndexConfig("binary", "rescore")).search(q, K))


def test_calibration_comes_from_the_first_rows_and_is_kept(tmp_path):
    x, _ = data(n=600)
    ix = DiskIndex.build(tmp_path / "ix", x[:400], np.arange(400), int8_scheme="calibrated")
    first = calibrate_int8(x[:400])
    ix.append(x[400:] * 3, np.arange(400, 600))  # out-of-range rows are clipped, the ranges stay
    again = DiskIndex.open(tmp_path / "ix")
    np.testing.assert_array_equal(again.calibration.low, first.low)
    np.testing.assert_array_equal(again.calibration.high, first.high)


def test_configurations_the_folder_cannot_serve_say_why(tmp_path):
    x, q = data(n=300)
    ix = DiskIndex.build(tmp_path / "ix", x, np.arange(300), store=("binary", "int8"), int8_scheme="tanh")
    with pytest.raises(DemoError, match="needs float32 codes"):
        ix.search(q, K, IndexConfig("binary", "rescore", rescore_with="float32"))
    with pytest.raises(DemoError, match="Matryoshka size 40 is not stored"):
        ix.search(q, K, IndexConfig("binary", dim=MRL))
    with pytest.raises(DemoError, match="holds tanh int8 codes"):
        ix.search(q, K, IndexConfig("int8", int8_scheme="calibrated"))
    with pytest.raises(DemoError, match="not empty"):
        DiskIndex.create(tmp_path / "ix", FULL)
    with pytest.raises(DemoError, match="dimensions"):
        ix.append(x[:, :50], np.arange(300))
    # None means "the index's own scheme"
    assert_same(ix.search(q, K, IndexConfig("int8")), ix.search(q, K, IndexConfig("int8", int8_scheme="tanh")))


def test_footprint_splits_ram_and_disk_like_the_cost_arithmetic(tmp_path):
    x, _ = data(n=1000)
    ix = DiskIndex.build(tmp_path / "ix", x, np.arange(1000), dims=(None, MRL))
    cases = {
        IndexConfig("binary", "rescore"): (1000 * 16, 0, 1000 * (FULL + 4)),
        IndexConfig("binary", "rescore", rescore_with="float32", dim=MRL): (1000 * 8, 0, 1000 * 4 * MRL),
        IndexConfig("int8"): (0, 1000 * (FULL + 4), 0),
        IndexConfig("float32"): (0, 1000 * 4 * FULL, 0),
        IndexConfig("binary", "asymmetric"): (1000 * 16, 0, 0),
    }
    for config, (ram, scanned, candidates) in cases.items():
        foot = ix.footprint(config)
        assert (foot.ram_bytes, foot.scanned_file_bytes, foot.candidate_file_bytes) == (ram, scanned, candidates)
        prices = dict(ram_usd_per_gb_month=5.0, disk_usd_per_gb_month=0.1)
        measured = measured_cost(foot, config.dim or FULL, **prices)
        expected = deployment_cost(config, FULL, 1000, **prices)
        assert (measured.ram_bytes, measured.disk_bytes) == (expected.ram_bytes, expected.disk_bytes)


def test_index_folder_is_one_safe_folder_per_corpus_model_and_variant(tmp_path):
    a = index_folder(tmp_path, 3, "/models/pplx embed:v1", "standard")
    b = index_folder(tmp_path, 3, "/models/pplx_embed_v1", "standard")
    c = index_folder(tmp_path, 3, "/models/pplx embed:v1", "contextual")
    assert len({a, b, c}) == 3
    assert a.parent.parent == tmp_path / "corpus-3"
    assert all(ch.isalnum() or ch in "._-" for ch in a.parent.name)


def test_rebuild_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path):
    x, _ = data(n=50)
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("keep me")
    with pytest.raises(DemoError, match="does not look like a disk index folder.*thesis.txt"):
        DiskIndex.rebuild(folder, x, np.arange(50))
    assert (folder / "thesis.txt").read_text() == "keep me"
