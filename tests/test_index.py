"""QuantizedIndex against brute-force references written here (float64, unpacked bits).

Tests taking the `kernels` fixture run twice: with the numpy loops and with the compiled (numba)
kernels; `test_compiled_kernels_*` compare the two paths directly.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pplx_demo.errors import DemoError
from pplx_demo.index import DENSE_FAMILIES, IndexConfig, QuantizedIndex, matryoshka_sizes, top_k_rows
from pplx_demo.index import scan as scan_module

K = 10


def data(n: int, dim: int, nq: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.2, 3.0, size=dim)  # uneven per-dimension ranges, like real embeddings
    x = (rng.standard_normal((n, dim)) * scale).astype(np.float32)
    q = (rng.standard_normal((nq, dim)) * scale).astype(np.float32)
    return x, q


def ref_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise top-k of a float64 score matrix: score descending, then lower id."""
    ids = np.arange(scores.shape[1])
    return np.array([np.lexsort((ids, -row))[:k] for row in scores])


def ref_cosine(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    q, x = q.astype(np.float64), x.astype(np.float64)
    qn = np.linalg.norm(q, axis=1, keepdims=True)
    xn = np.linalg.norm(x, axis=1, keepdims=True)
    return (q / np.where(qn > 0, qn, 1)) @ (x / np.where(xn > 0, xn, 1)).T


def ref_hamming(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((q[:, None, :] >= 0) != (x[None, :, :] >= 0)).sum(axis=2)


def ref_tanh_codes(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.tanh(x.astype(np.float64)) * 127), -128, 127)


def ref_calibrated(x: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Dequantised values of per-dimension min/max int8 codes (ranges from the corpus).

    The codes are computed in float32 like the definition, so values on a rounding edge agree.
    """
    low, high = corpus.min(axis=0), corpus.max(axis=0)
    scale = np.where(high > low, (high - low) / np.float32(255), np.float32(1)).astype(np.float32)
    codes = np.clip(np.rint((x - low) / scale), 0, 255) - 128
    return (codes.astype(np.float64) + 128) * scale.astype(np.float64) + low.astype(np.float64)


def assert_same_top(hits, ref_scores: np.ndarray, k: int, atol: float = 1e-5) -> None:
    """Top-k equal to the reference up to float32 rounding: same scores rank by rank, ids where gaps are clear."""
    expected = ref_top(ref_scores, k)
    got_ref_scores = np.take_along_axis(ref_scores, hits.ids, axis=1)
    want = np.take_along_axis(ref_scores, expected, axis=1)
    np.testing.assert_allclose(got_ref_scores, want, atol=atol)
    np.testing.assert_allclose(hits.scores, want, atol=atol)
    gaps = np.diff(np.sort(ref_scores, axis=1)[:, ::-1][:, : k + 1], axis=1)
    if np.abs(gaps).min() > 10 * atol:
        np.testing.assert_array_equal(hits.ids, expected)


@pytest.fixture(params=[None, 40], ids=["full", "mrl40"])
def mrl(request):
    return request.param


@pytest.fixture(params=["numpy", "numba"])
def kernels(request, monkeypatch):
    """Every index built in the test uses these scan kernels (the default of `build`'s kernels argument)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    build = QuantizedIndex.build.__func__
    monkeypatch.setattr(QuantizedIndex, "build", classmethod(
        lambda cls, vectors, config, kernels=request.param: build(cls, vectors, config, kernels)))
    return request.param


def truncated(x: np.ndarray, dim: int | None) -> np.ndarray:
    return x if dim is None else x[:, :dim]


def test_float32_matches_brute_force_cosine_exactly(mrl):
    x, q = data(3000, 96)
    hits = QuantizedIndex.build(x, IndexConfig("float32", dim=mrl)).search(q, K)
    ref = ref_cosine(truncated(q, mrl), truncated(x, mrl))
    np.testing.assert_array_equal(hits.ids, ref_top(ref, K))
    np.testing.assert_allclose(hits.scores, np.take_along_axis(ref, hits.ids, 1), atol=1e-5)
    assert hits.ids.dtype == np.int64 and hits.scores.dtype == np.float32
    assert set(hits.timings) == {"search"}


def test_binary_is_exact_hamming_with_lower_row_winning_ties(mrl, kernels):
    x, q = data(2000, 72 if mrl is None else 96)  # 72 bits: padding inside the last 64-bit word
    dim = 72 if mrl is None else mrl
    hits = QuantizedIndex.build(x, IndexConfig("binary", dim=mrl)).search(q, K)
    assert hits.kernel == kernels
    ham = ref_hamming(truncated(q, dim), truncated(x, dim))
    np.testing.assert_array_equal(hits.ids, ref_top(-ham.astype(np.float64), K))
    np.testing.assert_allclose(hits.scores, 1 - 2 * np.take_along_axis(ham, hits.ids, 1) / dim, atol=1e-6)


def test_binary_ties_are_deterministic_with_few_bits(kernels):
    x, q = data(5000, 12)  # 12 bits: thousands of rows share each distance
    hits = QuantizedIndex.build(x, IndexConfig("binary")).search(q, 50)
    ham = ref_hamming(q, x)
    np.testing.assert_array_equal(hits.ids, ref_top(-ham.astype(np.float64), 50))


def test_int8_tanh_is_cosine_of_native_codes(mrl, kernels):
    x, q = data(3000, 96)
    x, q = x * 0.4, q * 0.4  # keep tanh out of saturation so codes differ
    hits = QuantizedIndex.build(x, IndexConfig("int8", dim=mrl, int8_scheme="tanh")).search(q, K)
    assert hits.kernel == kernels
    ref = ref_cosine(ref_tanh_codes(truncated(q, mrl)), ref_tanh_codes(truncated(x, mrl)))
    assert_same_top(hits, ref, K)


def test_int8_calibrated_is_cosine_of_dequantised_codes(mrl, kernels):
    x, q = data(3000, 96)
    xt, qt = truncated(x, mrl), truncated(q, mrl)
    hits = QuantizedIndex.build(x, IndexConfig("int8", dim=mrl, int8_scheme="calibrated")).search(q, K)
    ref = ref_cosine(ref_calibrated(qt, xt), ref_calibrated(xt, xt))
    assert_same_top(hits, ref, K)


def test_int8_calibrated_dequantisation_recovers_corpus_vectors(kernels):
    x, _ = data(500, 64)
    index = QuantizedIndex.build(x, IndexConfig("int8", int8_scheme="calibrated"))
    hits = index.search(x[:20], 1)
    np.testing.assert_array_equal(hits.ids[:, 0], np.arange(20))  # every vector finds itself
    assert (hits.scores[:, 0] > 0.999).all()


@pytest.mark.parametrize("scheme", ["tanh", "calibrated"])
def test_rescore_int8_reranks_hamming_candidates_with_float_query(scheme, mrl, kernels):
    x, q = data(3000, 128)
    m = 4
    dim = 128 if mrl is None else mrl
    xt, qt = truncated(x, dim), truncated(q, dim)
    cfg = IndexConfig("binary", "rescore", dim=mrl, rescore_multiplier=m, rescore_with="int8", int8_scheme=scheme)
    hits = QuantizedIndex.build(x, cfg).search(q, K)
    candidates = ref_top(-ref_hamming(qt, xt).astype(np.float64), K * m)
    if scheme == "tanh":  # tanh space: code / 127 against tanh(query)
        full = ref_cosine(np.tanh(qt.astype(np.float64)), ref_tanh_codes(xt) / 127)
    else:
        full = ref_cosine(qt, ref_calibrated(xt, xt))
    for row in range(q.shape[0]):
        cand = candidates[row]
        scores = full[row, cand]
        order = np.lexsort((cand, -scores))[:K]
        np.testing.assert_array_equal(hits.ids[row], cand[order])
        np.testing.assert_allclose(hits.scores[row], scores[order], atol=1e-5)
    assert set(hits.timings) == {"search", "rescore"}


def test_rescore_float32_reranks_candidates_by_cosine(kernels):
    x, q = data(3000, 128)
    hits = QuantizedIndex.build(x, IndexConfig("binary", "rescore", rescore_with="float32",
                                               rescore_multiplier=3)).search(q, K)
    candidates = ref_top(-ref_hamming(q, x).astype(np.float64), 3 * K)
    full = ref_cosine(q, x)
    for row in range(q.shape[0]):
        cand = candidates[row]
        order = np.lexsort((cand, -full[row, cand]))[:K]
        np.testing.assert_array_equal(hits.ids[row], cand[order])


def test_rescore_with_every_row_as_candidate_equals_the_full_search(kernels):
    x, q = data(30, 64)
    hits = QuantizedIndex.build(x, IndexConfig("binary", "rescore", rescore_with="float32",
                                               rescore_multiplier=10)).search(q, 5)
    np.testing.assert_array_equal(hits.ids, ref_top(ref_cosine(q, x), 5))


def test_asymmetric_scores_float_query_against_sign_vectors(mrl):
    x, q = data(3000, 96)
    hits = QuantizedIndex.build(x, IndexConfig("binary", "asymmetric", dim=mrl)).search(q, K)
    signs = np.where(truncated(x, mrl) >= 0, 1.0, -1.0)
    assert_same_top(hits, ref_cosine(truncated(q, mrl), signs), K)


def test_matryoshka_index_equals_an_index_of_the_truncated_vectors(kernels):
    x, q = data(1000, 96)
    for precision in ("float32", "int8", "binary"):
        a = QuantizedIndex.build(x, IndexConfig(precision, dim=32, int8_scheme="calibrated")).search(q, K)
        b = QuantizedIndex.build(np.ascontiguousarray(x[:, :32]),
                                 IndexConfig(precision, int8_scheme="calibrated")).search(q[:, :32], K)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_many_blocks_threads_and_tails_match_reference(monkeypatch, kernels):
    """Tiny block budgets force many blocks, partial tails and many parts over two threads."""
    monkeypatch.setattr(scan_module, "_FLOAT_SCORES_BYTES", 2048)
    monkeypatch.setattr(scan_module, "_CAST_BLOCK_BYTES", 8192)
    monkeypatch.setattr(scan_module, "_BITS_BLOCK_BYTES", 4096)
    monkeypatch.setattr(scan_module, "_BITS_CHUNK_ROWS", 700)
    monkeypatch.setattr(scan_module, "_PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(scan_module, "_MIN_PART_ROWS", 300)
    monkeypatch.setattr(scan_module, "_HAMMING_BLOCK_BYTES", 7 * 16)  # 7 rows of two words
    monkeypatch.setattr(scan_module, "_INT8_BLOCK_BYTES", 5 * 128)
    monkeypatch.setattr(scan_module, "_COMPILED_PART_WORK", 3000)
    x, q = data(4999, 128, nq=3)
    for cfg, ref in [
        (IndexConfig("float32"), ref_cosine(q, x)),
        (IndexConfig("int8", int8_scheme="calibrated"), ref_cosine(ref_calibrated(q, x), ref_calibrated(x, x))),
        (IndexConfig("binary"), -ref_hamming(q, x).astype(np.float64)),
        (IndexConfig("binary", "asymmetric"), ref_cosine(q, np.where(x >= 0, 1.0, -1.0))),
    ]:
        index = QuantizedIndex.build(x, cfg)
        index.threads = 2
        for batch in (q[:1], q):
            hits = index.search(batch, K)
            expected = ref_top(ref[: batch.shape[0]], K)
            if cfg.precision == "binary" and cfg.mode == "plain":
                np.testing.assert_array_equal(hits.ids, expected)
            else:
                assert_same_top(hits, ref[: batch.shape[0]], K)


def test_parallel_scan_of_a_large_index_matches_single_thread(kernels):
    x, q = data(40_000, 64, nq=4)
    for cfg in (IndexConfig("int8", int8_scheme="tanh"), IndexConfig("binary"), IndexConfig("float32")):
        index = QuantizedIndex.build(x, cfg)
        index.threads = 1
        one = index.search(q, K)
        index.threads = 2
        two = index.search(q, K)
        np.testing.assert_array_equal(one.ids, two.ids)
        np.testing.assert_allclose(one.scores, two.scores, atol=1e-6)


def assert_paths_agree(a, b, atol: float) -> None:
    """Same top-k from two kernel paths: scores equal within atol; ids differ only among such near-ties."""
    assert a.ids.shape == b.ids.shape
    np.testing.assert_allclose(a.scores, b.scores, atol=atol, rtol=0)
    for row in range(a.ids.shape[0]):
        for rank in np.nonzero(a.ids[row] != b.ids[row])[0]:
            # a swapped pair: each path's row at this rank scores within atol of the other's
            assert abs(float(a.scores[row, rank]) - float(b.scores[row, rank])) <= atol


@pytest.mark.parametrize("nq", [1, 2, 3, 5, 6, 9, 40])
def test_compiled_kernels_match_numpy_loops(nq, monkeypatch):
    """Tails of rows and queries, padded words, ties, more slots than rows per part, many query groups."""
    pytest.importorskip("numba")
    monkeypatch.setattr(scan_module, "_PARALLEL_MIN_ROWS", 100)
    monkeypatch.setattr(scan_module, "_MIN_PART_ROWS", 250)
    monkeypatch.setattr(scan_module, "_HAMMING_BLOCK_BYTES", 13 * 16)  # 13 rows at 100 bits
    monkeypatch.setattr(scan_module, "_HAMMING_QUERY_GROUP", 16)  # 40 queries: 3 groups, the last padded
    monkeypatch.setattr(scan_module, "_INT8_BLOCK_BYTES", 11 * 100)
    monkeypatch.setattr(scan_module, "_COMPILED_PART_WORK", 2000)  # 8 parts of ~375 rows
    x, q = data(2999, 200, nq=nq, seed=nq)
    x[1500] = x[7]  # exact duplicates, across scan parts: the lower row must win in both paths
    x[2998] = x[7]
    q[0] = x[7] * 3
    configs = [
        IndexConfig("binary", dim=100),  # 100 bits: two words, the second padded
        IndexConfig("binary", dim=12),  # 12 bits: thousands of ties per distance
        IndexConfig("binary"),
        IndexConfig("int8", int8_scheme="tanh", dim=100),
        IndexConfig("int8", int8_scheme="calibrated"),
        IndexConfig("binary", "rescore", dim=72, rescore_with="int8", int8_scheme="calibrated"),
        IndexConfig("binary", "rescore", rescore_with="float32", rescore_multiplier=2),
    ]
    for cfg in configs:
        numpy_ix = QuantizedIndex.build(x, cfg, kernels="numpy")
        numba_ix = QuantizedIndex.build(x, cfg, kernels="numba")
        assert (numpy_ix.kernels, numba_ix.kernels) == ("numpy", "numba")
        for ix in (numpy_ix, numba_ix):
            ix.threads = 2
        for k in (1, K, 500):  # 500 > the ~375 rows of a scan part: fewer slots than k
            a, b = numpy_ix.search(q, k), numba_ix.search(q, k)
            assert (a.kernel, b.kernel) == ("numpy", "numba")
            if cfg.mode == "plain" and cfg.precision == "binary":  # integer distances: identical
                np.testing.assert_array_equal(a.ids, b.ids, err_msg=cfg.label)
                np.testing.assert_array_equal(a.scores, b.scores, err_msg=cfg.label)
            else:
                assert_paths_agree(a, b, atol=2e-6)
            if cfg.dim != 12 and k >= 3:  # the query is row 7, copied to rows 1500 and 2998
                # compiled scores do not depend on a row's position, so the copies tie and the lower
                # row wins; BLAS may round a copy in a block's tail differently (a last-bit difference)
                assert b.ids[0, :3].tolist() == [7, 1500, 2998], cfg.label
                assert sorted(a.ids[0, :3].tolist()) == [7, 1500, 2998], cfg.label


def test_kernel_choice(monkeypatch):
    pytest.importorskip("numba")
    x, q = data(300, 64)
    assert QuantizedIndex.build(x, IndexConfig("binary"), kernels="numpy").kernels == "numpy"
    assert QuantizedIndex.build(x, IndexConfig("int8"), kernels=" Auto ").kernels == "numba"
    assert QuantizedIndex.build(x, IndexConfig("int8")).kernels == "numba"  # auto by default
    # scans without a compiled twin always run numpy / BLAS
    assert QuantizedIndex.build(x, IndexConfig("float32"), kernels="numba").search(q, 3).kernel == "numpy"
    assert QuantizedIndex.build(x, IndexConfig("binary", "asymmetric"), kernels="numba").kernels == "numpy"
    with pytest.raises(DemoError, match="kernels='fortran'.*auto, numpy, numba") as err:
        QuantizedIndex.build(x, IndexConfig("binary"), kernels="fortran")
    assert err.value.setting == "PPLX_DEMO_KERNELS"
    # The setting is read once, by Settings at the entry points.
    from pplx_demo.config import Settings

    monkeypatch.setenv("PPLX_DEMO_KERNELS", "numpy")
    assert Settings.from_env().kernels == "numpy"
    monkeypatch.setenv("PPLX_DEMO_KERNELS", "fortran")
    with pytest.raises(DemoError, match="PPLX_DEMO_KERNELS='fortran'"):
        Settings.from_env()


def test_without_numba_auto_falls_back_to_numpy_and_forcing_numba_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    monkeypatch.delitem(sys.modules, "pplx_demo.index.numba_kernels", raising=False)
    monkeypatch.setattr(scan_module, "_COMPILED", None)
    monkeypatch.setattr(scan_module, "_COMPILED_ERROR", None)
    x, q = data(300, 64)
    index = QuantizedIndex.build(x, IndexConfig("binary"), kernels="auto")
    assert index.kernels == "numpy" and index.search(q, 3).kernel == "numpy"
    with pytest.raises(DemoError, match="numba cannot be imported.*numba==0.68.1"):
        QuantizedIndex.build(x, IndexConfig("binary"), kernels="numba")


def test_popcount_row_sums_for_every_lane_width():
    rng = np.random.default_rng(3)
    for words in (1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 40):
        counts = rng.integers(0, 65, size=(257, words)).astype(np.uint8)
        counts[0] = 64  # the largest possible row
        got = scan_module._popcount_row_sums(counts.ravel(), words)
        np.testing.assert_array_equal(got.astype(np.int64), counts.sum(axis=1, dtype=np.int64))


def test_duplicate_vectors_rank_by_lower_row_first(kernels):
    x, q = data(200, 32)
    x[50] = x[150] = x[7] = q[0] * 2  # three identical best matches
    for cfg in (IndexConfig("float32"), IndexConfig("int8", int8_scheme="calibrated"), IndexConfig("binary")):
        hits = QuantizedIndex.build(x, cfg).search(q[:1], 3)
        assert hits.ids[0].tolist() == [7, 50, 150], cfg.label


def test_k_larger_than_the_corpus_returns_every_row(kernels):
    x, q = data(4, 16)
    for cfg in [IndexConfig.parse(f) for f in DENSE_FAMILIES]:
        hits = QuantizedIndex.build(x, cfg.resolved("calibrated")).search(q, 10)
        assert hits.ids.shape == (5, 4)
        assert sorted(hits.ids[0].tolist()) == [0, 1, 2, 3]


def test_single_vector_corpus_works_for_calibrated_int8(kernels):
    x, _ = data(1, 16)
    hits = QuantizedIndex.build(x, IndexConfig("int8", int8_scheme="calibrated")).search(x, 1)
    assert hits.ids.tolist() == [[0]] and hits.scores[0, 0] > 0.99


def test_nbytes_counts_the_arrays_actually_held():
    n, dim = 1000, 96
    x, _ = data(n, dim)
    f = QuantizedIndex.build(x, IndexConfig("float32"))
    assert f.nbytes == n * dim * 4 and f.bytes_per_vector == dim * 4 and f.fixed_nbytes == 0
    i8 = QuantizedIndex.build(x, IndexConfig("int8", int8_scheme="calibrated"))
    assert i8.bytes_per_vector == dim + 4  # codes + one float32 norm
    assert i8.nbytes == n * (dim + 4) + i8.fixed_nbytes and i8.fixed_nbytes == 4 * dim * 4
    b = QuantizedIndex.build(x, IndexConfig("binary"))
    assert b.bytes_per_vector == 16 and b.nbytes == n * 16  # 96 bits padded to two 64-bit words
    b512 = QuantizedIndex.build(data(10, 1024)[0], IndexConfig("binary", dim=512))
    assert b512.bytes_per_vector == 64 and b512.dim == 512
    r = QuantizedIndex.build(x, IndexConfig("binary", "rescore", rescore_with="int8", int8_scheme="tanh"))
    assert r.bytes_per_vector == 16 + dim + 4


def test_bad_inputs_raise_demo_errors():
    x, q = data(50, 16)
    index = QuantizedIndex.build(x, IndexConfig())
    with pytest.raises(DemoError, match="dimensions"):
        index.search(q[:, :8], 3)
    with pytest.raises(DemoError, match="k must be"):
        index.search(q, 0)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DemoError, match="NaN"):
        QuantizedIndex.build(bad, IndexConfig())
    with pytest.raises(DemoError, match="needs binary"):
        IndexConfig("int8", "rescore")
    with pytest.raises(DemoError, match="unknown precision"):
        IndexConfig("float16")  # type: ignore[arg-type]
    with pytest.raises(DemoError, match="Matryoshka"):
        IndexConfig("float32", dim=0)


def test_labels_and_resolution():
    assert IndexConfig("binary", "rescore", dim=512, rescore_with="int8").label == "binary + rescore x4 @512d"
    assert IndexConfig("int8", int8_scheme="calibrated").label == "int8 calibrated"
    assert IndexConfig("float32").label == "float32"
    assert IndexConfig("int8").resolved("calibrated").int8_scheme == "calibrated"
    assert IndexConfig("int8", int8_scheme="tanh").resolved("calibrated").int8_scheme == "tanh"
    assert IndexConfig("binary").resolved("tanh").int8_scheme is None
    assert matryoshka_sizes(2560) == [2560, 1024, 512, 256, 128]
    assert matryoshka_sizes(384) == [384, 256, 128]


def test_top_k_rows_breaks_ties_by_id():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]], dtype=np.float32)
    ids, top = top_k_rows(scores, 2)
    assert ids.tolist() == [[1, 2]] and top.tolist() == [[3.0, 3.0]]
    ids, _ = top_k_rows(scores, 2, ids=np.array([[9, 8, 7, 6, 5]]))
    assert ids.tolist() == [[5, 7]]


def test_query_tiling_matches_numpy_tile():
    rows = np.arange(6, dtype=np.uint64).reshape(2, 3)
    for times in (1, 2, 3, 5, 8, 13):
        np.testing.assert_array_equal(scan_module._tiled(rows, times), np.tile(rows, (1, times)))


def test_float32_tanh_form_is_the_cosine_of_tanh_vectors(kernels):
    x, q = data(500, 48)
    x, q = x * 2.0, q * 2.0  # tanh saturates: the two forms rank differently
    tanh_hits = QuantizedIndex.build(x, IndexConfig("float32", float_form="tanh")).search(q, K)
    ref = ref_cosine(np.tanh(q), np.tanh(x))
    np.testing.assert_array_equal(tanh_hits.ids, ref_top(ref, K))
    np.testing.assert_allclose(tanh_hits.scores, np.take_along_axis(ref, tanh_hits.ids, 1), atol=1e-5)
    raw_hits = QuantizedIndex.build(x, IndexConfig("float32", float_form="raw")).search(q, K)
    np.testing.assert_array_equal(raw_hits.ids, ref_top(ref_cosine(q, x), K))
    assert not np.array_equal(tanh_hits.ids, raw_hits.ids)
    rescored = QuantizedIndex.build(x, IndexConfig("binary", "rescore", rescore_with="float32", float_form="tanh",
                                                   rescore_multiplier=1000)).search(q, K)
    np.testing.assert_array_equal(rescored.ids, tanh_hits.ids)  # every row rescored: the exact tanh ranking
