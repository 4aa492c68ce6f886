"""Qdrant as a second engine: the real Qdrant Edge engine in-process against the numpy engine, the
server target's request objects (no Qdrant server can run here), and the local-mode refusal."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")
qdrant_models = pytest.importorskip("qdrant_client.models")

from pplx_demo.config import Settings  # noqa: E402
from pplx_demo.engines import NumpyEngine, SearchIndex  # noqa: E402
from pplx_demo.engines import qdrant as q  # noqa: E402
from pplx_demo.errors import DemoError  # noqa: E402
from pplx_demo.index import IndexConfig, QuantizedIndex  # noqa: E402

K = 10
# Measured on `clustered()` (seeds 7 and 8, 4000 x 256, 50 queries): Qdrant binary + rescore x4
# recall@10 0.816 / 0.776 (numpy 0.802 / 0.776). The floor leaves room for engine updates.
BINARY_RESCORE_X4_FLOOR = 0.7
INT8_RESCORE_FLOOR = 0.9


def clustered(n: int = 4000, d: int = 256, clusters: int = 40, n_queries: int = 50, seed: int = 7):
    """Unit vectors around 40 centres (all distinct) and queries near corpus points."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, clusters, n)] + 0.8 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    picks = rng.choice(n, n_queries, replace=False)
    queries = x[picks] + (1.2 / np.sqrt(d)) * rng.standard_normal((n_queries, d)).astype(np.float32)
    return x, queries


@pytest.fixture(scope="module")
def data():
    return clustered()


@pytest.fixture(scope="module")
def exact(data):
    x, queries = data
    return QuantizedIndex.build(x, IndexConfig("float32")).search(queries, K)


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(ids, truth)]))


# ---------------------------------------------------------------------------------------------
# Qdrant Edge: real behaviour


def test_edge_float32_top10_identical_to_numpy_exact(data, exact):
    x, queries = data
    with q.QdrantEdgeEngine().build(x, IndexConfig("float32")) as index:
        hits = index.search(queries, K)
    np.testing.assert_array_equal(hits.ids, exact.ids)
    np.testing.assert_allclose(hits.scores, exact.scores, atol=1e-5)


def test_edge_binary_plain_scores_are_numpy_sign_agreement(data):
    """1 - 2 * hamming / dim from Qdrant's score, bit for bit; every returned id really has that score."""
    x, queries = data
    numpy_hits = QuantizedIndex.build(x, IndexConfig("binary")).search(queries, K)
    with q.QdrantEdgeEngine().build(x, IndexConfig("binary")) as index:
        hits = index.search(queries, K)
    np.testing.assert_array_equal(hits.scores, numpy_hits.scores)  # same exact Hamming top-k
    signs_x, signs_q = np.where(x >= 0, 1.0, -1.0), np.where(queries >= 0, 1.0, -1.0)
    own = np.einsum("qd,qkd->qk", signs_q, signs_x[hits.ids]) / x.shape[1]
    np.testing.assert_allclose(hits.scores, own, atol=1e-6)


def test_edge_quantised_recall_against_exact_float(data, exact):
    x, queries = data
    engine, measured = q.QdrantEdgeEngine(), {}
    for config in (IndexConfig("int8"), IndexConfig("binary"), IndexConfig("binary", "rescore"),
                   IndexConfig("binary", "asymmetric")):
        with engine.build(x, config) as index:
            measured[config.label] = (recall(index.search(queries, K).ids, exact.ids),
                                      recall(QuantizedIndex.build(x, config).search(queries, K).ids, exact.ids))
    print("\nrecall@10 vs exact float32 (Qdrant Edge, numpy):", measured)
    assert measured["int8"][0] >= INT8_RESCORE_FLOOR
    assert measured["binary + rescore x4"][0] >= BINARY_RESCORE_X4_FLOOR
    # rescoring and an 8-bit query both recover what 1-bit codes lose
    assert measured["binary + rescore x4"][0] > measured["binary"][0]
    assert measured["binary + asymmetric"][0] >= measured["binary"][0]
    assert measured["binary"][0] == pytest.approx(measured["binary"][1], abs=0.02)  # same Hamming maths


def test_edge_matryoshka_prefix_matches_numpy_and_funnel_rescores_full_dim(data, exact):
    x, queries = data
    config = IndexConfig("float32", dim=64)
    numpy_hits = QuantizedIndex.build(x, config).search(queries, K)
    with q.QdrantEdgeEngine().build(x, config) as prefix:
        hits = prefix.search(queries, K)
        assert [v.name for v in prefix.plan.vectors] == ["mrl64"]
    np.testing.assert_array_equal(hits.ids, numpy_hits.ids)
    funnel_engine = q.QdrantEdgeEngine(options=q.QdrantOptions(matryoshka="funnel"))
    with funnel_engine.build(x, config) as funnel:
        assert [v.name for v in funnel.plan.vectors] == ["mrl64", "full"]
        funnel_hits = funnel.search(queries, K)
        assert "funnel" in funnel.description
    # the full-size second stage finds more of the full-size top-10 than the 64-d prefix alone
    assert recall(funnel_hits.ids, exact.ids) > recall(hits.ids, exact.ids)


def test_edge_index_names_its_engine_and_removes_its_temporary_folder(data):
    x, queries = data
    index = q.QdrantEdgeEngine().build(x[:500], IndexConfig("binary", "rescore"))
    assert isinstance(index, SearchIndex)
    assert index.engine == f"Qdrant Edge {q.edge_version()}" and index.engine.startswith("Qdrant Edge 0.9")
    assert index.family == "Qdrant"
    assert "oversampling x4" in index.description and "no HNSW graph" in index.description
    assert index.nbytes > 500 * 256 * 4  # the float32 originals at least
    assert set(index.build_timings) >= {"upsert", "optimize"}
    assert index.search(queries, K).ids.shape == (len(queries), K)
    path = index.path
    index.close()
    assert not path.exists()
    with pytest.raises(DemoError, match="closed"):
        index.search(queries, K)


def test_edge_binary_shard_serves_rescore_views_without_rebuilding(data):
    x, queries = data
    with q.QdrantEdgeEngine().build(x[:1000], IndexConfig("binary")) as plain:
        rescored = plain.searching_as(IndexConfig("binary", "rescore", rescore_multiplier=8))
        assert rescored.path == plain.path and "oversampling x8" in rescored.description
        hits = rescored.search(queries, K)
        truth = QuantizedIndex.build(x[:1000], IndexConfig("float32")).search(queries, K)
        assert recall(hits.ids, truth.ids) > recall(plain.search(queries, K).ids, truth.ids)
        with pytest.raises(DemoError, match="another collection layout"):
            plain.searching_as(IndexConfig("binary", "asymmetric"))
        rescored.close()
        assert plain.search(queries[:1], K).ids.shape == (1, K)  # closing a view keeps the shard
    with pytest.raises(DemoError, match="closed"):
        rescored.search(queries, K)


def test_edge_root_folder_keeps_shards_and_refuses_a_foreign_folder(tmp_path, data):
    import qdrant_edge

    x, _ = data
    engine = q.QdrantEdgeEngine(tmp_path / "shards")
    index = engine.build(x[:300], IndexConfig("int8"), name="corpus-1")
    index.close()
    shard = qdrant_edge.EdgeShard.load(str(tmp_path / "shards" / "corpus-1"))
    assert shard.count(qdrant_edge.CountRequest()) == 300  # the files are a Qdrant shard anyone can open
    shard.close()
    (tmp_path / "shards" / "mine").mkdir()
    (tmp_path / "shards" / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not a Qdrant Edge shard"):
        engine.build(x[:10], IndexConfig("float32"), name="mine")
    assert (tmp_path / "shards" / "mine" / "notes.txt").exists()


def test_edge_search_checks_queries(data):
    x, queries = data
    with q.QdrantEdgeEngine().build(x[:100], IndexConfig("float32")) as index:
        with pytest.raises(DemoError, match="dimensions"):
            index.search(queries[:, :10], K)
        bad = queries[:2].copy()
        bad[0, 0] = np.nan
        with pytest.raises(DemoError, match="NaN"):
            index.search(bad, K)
        with pytest.raises(DemoError, match="k must be"):
            index.search(queries, 0)
        assert index.search(queries[:1], 500).ids.shape == (1, 100)  # k above n: every row once


def test_numpy_engine_serves_the_same_contract(data):
    x, queries = data
    index = NumpyEngine("numpy").build(x, IndexConfig("binary", "rescore"))
    assert isinstance(index, SearchIndex) and index.family == index.engine == "numpy exact"
    direct = QuantizedIndex.build(x, IndexConfig("binary", "rescore"), "numpy").search(queries, K)
    np.testing.assert_array_equal(index.search(queries, K).ids, direct.ids)
    assert index.nbytes == QuantizedIndex.build(x, IndexConfig("binary", "rescore"), "numpy").nbytes


# ---------------------------------------------------------------------------------------------
# server target: the request objects (no Qdrant server runs here)


def test_server_target_request_objects_no_live_server():
    m = qdrant_models
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    qv = [float(v) for v in vec]
    cases = {
        IndexConfig("float32"): (
            m.VectorParams(size=8, distance=m.Distance.COSINE),
            m.QueryRequest(query=qv, using="full", limit=10, with_payload=False, params=m.SearchParams(exact=True))),
        IndexConfig("int8"): (
            m.VectorParams(size=8, distance=m.Distance.COSINE, quantization_config=m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8))),
            m.QueryRequest(query=qv, using="full", limit=10, with_payload=False, params=m.SearchParams(
                exact=False, quantization=m.QuantizationSearchParams(rescore=True, oversampling=4.0)))),
        IndexConfig("binary"): (
            m.VectorParams(size=8, distance=m.Distance.COSINE, quantization_config=m.BinaryQuantization(
                binary=m.BinaryQuantizationConfig())),
            m.QueryRequest(query=qv, using="full", limit=10, with_payload=False, params=m.SearchParams(
                exact=False, quantization=m.QuantizationSearchParams(rescore=False)))),
        IndexConfig("binary", "rescore", rescore_multiplier=6): (
            m.VectorParams(size=8, distance=m.Distance.COSINE, quantization_config=m.BinaryQuantization(
                binary=m.BinaryQuantizationConfig())),
            m.QueryRequest(query=qv, using="full", limit=10, with_payload=False, params=m.SearchParams(
                exact=False, quantization=m.QuantizationSearchParams(rescore=True, oversampling=6.0)))),
        IndexConfig("binary", "asymmetric"): (
            m.VectorParams(size=8, distance=m.Distance.COSINE, quantization_config=m.BinaryQuantization(
                binary=m.BinaryQuantizationConfig(query_encoding=m.BinaryQuantizationQueryEncoding.SCALAR8BITS))),
            m.QueryRequest(query=qv, using="full", limit=10, with_payload=False, params=m.SearchParams(
                exact=False, quantization=m.QuantizationSearchParams(rescore=False)))),
    }
    for config, (vector_params, request) in cases.items():
        plan = q.plan_for(config, 8)
        assert q.client_collection(plan) == {
            "vectors_config": {"full": vector_params},
            "hnsw_config": m.HnswConfigDiff(m=0),
            "optimizers_config": m.OptimizersConfigDiff(indexing_threshold=1)}, config.label
        assert q.client_request(plan, vec, 10) == request, config.label
        # the Edge collection and request are built from the same plan
        edge_vectors = q.edge_config(plan).vectors
        assert list(edge_vectors) == ["full"] and edge_vectors["full"].size == 8
        edge_quant = edge_vectors["full"].quantization_config
        client_quant = vector_params.quantization_config
        assert type(edge_quant).__name__ == (type(client_quant).__name__ + "Config" if client_quant else "NoneType")
        edge = q.edge_request(plan, vec, 10)
        assert edge.limit == request.limit and not edge.prefetches
        assert (edge.params is None) == (request.params is None)
        if request.params is not None and request.params.quantization is not None:
            assert edge.params.quantization.rescore == request.params.quantization.rescore
            assert edge.params.quantization.oversampling == request.params.quantization.oversampling


def test_server_target_funnel_request_objects_no_live_server():
    m = qdrant_models
    vec = np.arange(8, dtype=np.float32) - 3.5
    plan = q.plan_for(IndexConfig("binary", "rescore", dim=4, rescore_multiplier=5), 8,
                      q.QdrantOptions(matryoshka="funnel", hnsw_m=16))
    assert q.client_collection(plan)["vectors_config"] == {
        "mrl4": m.VectorParams(size=4, distance=m.Distance.COSINE,
                               quantization_config=m.BinaryQuantization(binary=m.BinaryQuantizationConfig())),
        "full": m.VectorParams(size=8, distance=m.Distance.COSINE)}
    assert q.client_collection(plan)["hnsw_config"] == m.HnswConfigDiff(m=16)
    assert q.client_request(plan, vec, 3) == m.QueryRequest(
        prefetch=[m.Prefetch(query=[-3.5, -2.5, -1.5, -0.5], using="mrl4", limit=15, params=m.SearchParams(
            exact=False, quantization=m.QuantizationSearchParams(rescore=True, oversampling=5.0)))],
        query=[float(v) for v in vec], using="full", limit=3, with_payload=False)
    edge = q.edge_request(plan, vec, 3)
    assert edge.limit == 3 and [p.limit for p in edge.prefetches] == [15]


def test_server_target_points_carry_prefix_vectors_and_payloads_no_live_server():
    m = qdrant_models
    rows = np.arange(16, dtype=np.float32).reshape(2, 8)
    plan = q.plan_for(IndexConfig("float32", dim=2), 8)
    points = q.client_points(plan, [11, 12], rows, [{"text": "a"}, {"text": "b"}])
    assert points == [m.PointStruct(id=11, vector={"mrl2": [0.0, 1.0]}, payload={"text": "a"}),
                      m.PointStruct(id=12, vector={"mrl2": [8.0, 9.0]}, payload={"text": "b"})]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_unreachable_is_a_demo_error_without_the_api_key():
    port = _closed_port()
    engine = q.QdrantServerEngine(f"http://127.0.0.1:{port}", api_key="s3cret-key-123", timeout_s=2)
    assert engine.name == f"Qdrant server 127.0.0.1:{port}"
    assert "s3cret" not in repr(engine) and "s3cret" not in repr(engine.conn)
    with pytest.raises(DemoError) as info:
        engine.build(np.eye(4, dtype=np.float32), IndexConfig("float32"))
    assert f"127.0.0.1:{port}" in str(info.value) and "s3cret" not in str(info.value)


def test_settings_hold_the_api_key_without_showing_it(monkeypatch, tmp_path):
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key-123")
    monkeypatch.setenv("PPLX_DEMO_QDRANT_URL", "https://qdrant.example.org:6333")
    monkeypatch.setenv("PPLX_DEMO_QDRANT_EDGE_DIR", str(tmp_path))
    settings = Settings.from_env()
    assert settings.qdrant_api_key == "s3cret-key-123" and "s3cret" not in repr(settings)
    engine = q.engine_from_settings(settings)
    assert isinstance(engine, q.QdrantServerEngine) and engine.name == "Qdrant server qdrant.example.org:6333"
    monkeypatch.delenv("PPLX_DEMO_QDRANT_URL")
    edge = q.engine_from_settings(Settings.from_env())
    assert isinstance(edge, q.QdrantEdgeEngine) and edge.root == tmp_path


# ---------------------------------------------------------------------------------------------
# qdrant-client local mode is refused


@pytest.mark.parametrize("target", [":memory:", "path=/tmp/qdrant", "/tmp/qdrant", "./qdrant-db", "~/qdrant",
                                    "file:///tmp/qdrant"])
def test_local_mode_targets_are_refused_as_a_simulation(target):
    with pytest.raises(DemoError, match="simulation"):
        q.check_server_url(target)
    with pytest.raises(DemoError, match="simulation"):
        q.QdrantServerEngine(target)
    with pytest.raises(DemoError, match="simulation"):
        q.engine_for(target)


def test_other_bad_targets_are_refused():
    with pytest.raises(DemoError, match="empty"):
        q.check_server_url("")
    with pytest.raises(DemoError, match="http"):
        q.check_server_url("ftp://qdrant.example.org")
    with pytest.raises(DemoError, match="QDRANT_API_KEY"):
        q.check_server_url("https://user:pw@qdrant.example.org")
    with pytest.raises(DemoError, match="edge: needs a folder"):
        q.parse_target("edge:")
    assert q.parse_target("edge:/tmp/x") == q.EdgeTarget(Path("/tmp/x"))
    assert q.parse_target(" https://db.example.org:6333 ") == q.ServerTarget("https://db.example.org:6333")
