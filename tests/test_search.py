"""SearchService end to end: real DuckDB file, real stand-in model, every configuration side by side."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.index import DENSE_FAMILIES, IndexConfig, QuantizedIndex
from pplx_demo.search import SearchService, overlap_at_k, spearman_shared
from pplx_demo.storage import PROJECTIONS, human_bytes, storage_report
from pplx_demo.store import Store

FACTS = [
    ("Paris", "Paris is the capital and largest city of France, on the Seine."),
    ("Berlin", "Berlin is the capital of Germany and its most populous city."),
    ("Nile", "The Nile is a major river flowing north through Egypt into the Mediterranean."),
    ("Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar by photosynthesis."),
    ("Python", "Python is a programming language that emphasises readable code."),
    ("Everest", "Mount Everest is Earth's highest mountain above sea level, in the Himalayas."),
    ("Coffee", "Coffee is brewed from roasted coffee beans, the seeds of Coffea plants."),
    ("Jupiter", "Jupiter is the largest planet in the Solar System, a gas giant."),
    ("Violin", "The violin is a string instrument played with a bow."),
    ("Penguins", "Penguins are flightless seabirds living almost only in the Southern Hemisphere."),
    ("Chess", "Chess is a board game for two players on a checkered board of 64 squares."),
    ("Volcano", "A volcano is a rupture in the crust where lava and ash escape."),
]


def corpus_docs(facts=FACTS, prefix=""):
    docs = [Document(uri=f"https://example.org/{prefix}{t.lower()}", title=f"{prefix}{t}", text=s,
                     metadata={"lang": "en"}) for t, s in facts]
    chunks = [[Chunk(0, s, 0, len(s), len(s.split()))] for _, s in facts]
    return docs, chunks


@pytest.fixture
def setup(tmp_path, minilm):
    store = Store(tmp_path / "s.duckdb")
    cid = store.add_corpus("facts", *corpus_docs())
    service = SearchService(store, encoder_loader=lambda key, variant: minilm)
    yield store, service, cid
    store.close()


def test_every_configuration_answers_with_baseline_ranks(setup, minilm):
    store, service, cid = setup
    configs = [IndexConfig.parse(f) for f in DENSE_FAMILIES] + [IndexConfig("int8", dim=128), IndexConfig("binary", dim=256)]
    resp = service.search(cid, "minilm-l6", "standard", configs, "What is the capital of France?", k=5)
    assert resp.model_name == minilm.name and "not pplx-embed" in resp.model_name
    assert (resp.model_key, resp.variant, resp.k, resp.corpus_id) == ("minilm-l6", "standard", 5, cid)
    assert resp.embedded_now == len(FACTS)  # first search embedded the corpus
    assert [c.label for c in resp.columns] == [
        "float32", "int8 calibrated", "binary", "binary + rescore x4 (int8 calibrated)",
        "binary + asymmetric", "int8 calibrated @128d", "binary @256d"]
    assert resp.embed_query_ms > 0  # the query is embedded once, for every column
    base = resp.columns[0]
    assert base.hits[0].title == "Paris"  # the real model finds the answer
    assert [h.baseline_rank for h in base.hits] == [1, 2, 3, 4, 5]
    assert base.overlap_at_k == 1.0 and base.rank_correlation == 1.0
    base_ids = [h.chunk_id for h in base.hits]
    for col in resp.columns:
        assert len(col.hits) == 5 and [h.rank for h in col.hits] == [1, 2, 3, 4, 5]
        scores = [h.score for h in col.hits]
        assert scores == sorted(scores, reverse=True)
        ids = [h.chunk_id for h in col.hits]
        assert col.overlap_at_k == len(set(ids) & set(base_ids)) / 5
        for h in col.hits:
            assert h.baseline_rank == (base_ids.index(h.chunk_id) + 1 if h.chunk_id in base_ids else None)
            assert h.text == dict(FACTS)[h.title]
            assert h.uri.endswith(h.title.lower())
        t = col.timings_ms
        # each column shows only its own stages: rescore only where it rescored, the query embedding never
        assert {"search", "fetch_text", "total"} <= set(t) and "embed_query" not in t
        assert ("rescore" in t) == (col.config.mode == "rescore")
        assert t["total"] == pytest.approx(t["search"] + t.get("rescore", 0.0) + t["fetch_text"])
        assert col.search_ms == pytest.approx(t["search"] + t.get("rescore", 0.0))
        assert min(t.values()) >= 0
        assert col.hits[0].title == "Paris", col.label
    assert resp.columns[3].timings_ms["rescore"] > 0


def test_baseline_is_computed_even_when_float32_is_not_requested(setup):
    store, service, cid = setup
    query = "Which planet is the biggest?"
    full = service.search(cid, "minilm-l6", "standard", [IndexConfig("float32")], query, k=4)
    only = service.search(cid, "minilm-l6", "standard", [IndexConfig("binary")], query, k=4)
    base_ids = [h.chunk_id for h in full.columns[0].hits]
    col = only.columns[0]
    assert [h.baseline_rank for h in col.hits] == [
        base_ids.index(h.chunk_id) + 1 if h.chunk_id in base_ids else None for h in col.hits]


def test_indexes_are_cached_until_the_corpus_changes(setup):
    store, service, cid = setup
    cfg = [IndexConfig("int8"), IndexConfig("binary", "rescore")]
    first = service.search(cid, "minilm-l6", "standard", cfg, "coffee beans", k=3)
    assert all("build" in c.timings_ms for c in first.columns)
    second = service.search(cid, "minilm-l6", "standard", cfg, "a string instrument", k=3)
    assert all("build" not in c.timings_ms for c in second.columns)
    assert second.embedded_now == 0
    assert second.columns[0].hits[0].title == "Violin"
    store.add_documents(cid, *corpus_docs([("Tea", "Tea is an aromatic drink made from Camellia leaves.")]))
    third = service.search(cid, "minilm-l6", "standard", cfg, "an aromatic drink from leaves", k=3)
    assert third.embedded_now == 1  # only the new chunk
    assert all("build" in c.timings_ms for c in third.columns)
    assert third.columns[0].hits[0].title == "Tea"


def test_int8_defaults_to_the_models_native_scheme(setup, minilm, tiny_pplx, tmp_path):
    store, service, cid = setup
    resp = service.search(cid, "minilm-l6", "standard", [IndexConfig("int8"), IndexConfig("int8", int8_scheme="tanh")],
                          "mountains", k=2)
    assert [c.config.int8_scheme for c in resp.columns] == ["calibrated", "tanh"]
    pplx_service = SearchService(store, encoder_loader=lambda key, variant: tiny_pplx)
    resp = pplx_service.search(cid, "tiny", "standard", [IndexConfig("int8")], "mountains", k=2)
    assert resp.columns[0].config.int8_scheme == "tanh" and resp.columns[0].label == "int8 tanh"
    assert resp.model_name == tiny_pplx.name


def test_storage_report_is_measured_and_projected(setup, minilm):
    store, service, cid = setup
    resp = service.search(cid, "minilm-l6", "standard",
                          [IndexConfig("float32"), IndexConfig("int8"), IndexConfig("binary"),
                           IndexConfig("binary", dim=128)], "chess", k=3)
    f32, i8, b, b128 = (c.storage for c in resp.columns)
    n, dim = len(FACTS), minilm.dim
    assert (f32.bytes_per_vector, f32.index_nbytes, f32.ratio_vs_float32) == (4 * dim, 4 * dim * n, 1.0)
    assert i8.bytes_per_vector == dim + 4 and i8.ratio_vs_float32 == pytest.approx((dim + 4) / (4 * dim))
    assert b.bytes_per_vector == dim // 8 and b.ratio_vs_float32 == pytest.approx(1 / 32)
    assert b128.dim == 128 and b128.bytes_per_vector == 16
    for rep in (f32, i8, b, b128):
        assert rep.n_vectors == n and rep.db_file_bytes > 0
        assert abs(rep.db_file_bytes - store.file_size()) < 4096  # the search's touch appends to the log
        assert set(rep.projections) == set(PROJECTIONS)
        fixed = rep.index_nbytes - rep.bytes_per_vector * n
        assert rep.projections["1B"] == fixed + rep.bytes_per_vector * 1_000_000_000
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(3 * 1024**3) == "3.0 GiB"  # IEC units: KiB, not "KB"


def test_storage_report_of_a_bare_index():
    x = np.random.default_rng(0).standard_normal((100, 64)).astype(np.float32)
    rep = storage_report(QuantizedIndex.build(x, IndexConfig("binary", "rescore", rescore_with="float32")), 64, 123)
    assert rep.bytes_per_vector == 8 + 256 and rep.db_file_bytes == 123 and rep.projections["1M"] == 264_000_000


def test_bad_requests_are_demo_errors(setup):
    store, service, cid = setup
    for query in ("", "   \n\t"):
        with pytest.raises(DemoError, match="empty"):
            service.search(cid, "minilm-l6", "standard", [IndexConfig()], query)
    with pytest.raises(DemoError, match="top-k"):
        service.search(cid, "minilm-l6", "standard", [IndexConfig()], "x", k=0)
    with pytest.raises(DemoError, match="configuration"):
        service.search(cid, "minilm-l6", "standard", [], "x")
    with pytest.raises(DemoError, match="does not exist"):
        service.search(cid + 100, "minilm-l6", "standard", [IndexConfig()], "x")


def test_overlap_and_rank_correlation_helpers():
    assert overlap_at_k([1, 2, 3], [3, 2, 1], 3) == 1.0
    assert overlap_at_k([1, 2, 9], [1, 2, 3], 3) == pytest.approx(2 / 3)
    assert spearman_shared([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(1.0)
    assert spearman_shared([5, 4, 3, 2, 1], [1, 2, 3, 4, 5]) == pytest.approx(-1.0)
    assert spearman_shared([1, 9, 8], [1, 2, 3]) is None  # one shared item: undefined
    # Three shared hits out of ten say little (a "1.00" beside overlap 0.30): below 5 shared, no number.
    assert spearman_shared([1, 2, 3, 11, 12], [1, 2, 3, 4, 5]) is None
    assert spearman_shared([2, 1, 7, 3], [1, 2, 3, 5], min_shared=2) == pytest.approx(1 - 6 * 2 / (3 * 8))


def test_searches_keep_working_while_another_corpus_is_ingested(setup, minilm):
    store, service, cid = setup
    configs = [IndexConfig("float32"), IndexConfig("int8"), IndexConfig("binary", "rescore")]
    expected = service.search(cid, "minilm-l6", "standard", configs, "a seabird that cannot fly", k=3)
    want = [[h.chunk_id for h in c.hits] for c in expected.columns]
    errors, answers = [], []
    done = threading.Event()

    def ingest():
        try:
            for i in range(3):
                docs, chunks = corpus_docs(FACTS * 250, prefix=f"bulk{i}-")
                store.add_corpus(f"bulk {i}", docs, chunks, owner="someone")
            store.add_documents(cid, *corpus_docs([("Owl", "Owls are nocturnal birds of prey.")]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def search():
        try:
            while not done.is_set():
                resp = service.search(cid, "minilm-l6", "standard", configs, "a seabird that cannot fly", k=3)
                answers.append([[h.chunk_id for h in c.hits] for c in resp.columns])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest), threading.Thread(target=search), threading.Thread(target=search)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(answers) >= 2
    after = service.search(cid, "minilm-l6", "standard", configs, "a seabird that cannot fly", k=3)
    # Every answer is the one from before or the one from after the Owl document was added.
    assert all(got in (want, [[h.chunk_id for h in c.hits] for c in after.columns]) for got in answers)
    final = service.search(cid, "minilm-l6", "standard", configs, "nocturnal bird of prey", k=1)
    assert final.columns[0].hits[0].title == "Owl"
    assert len(store.list_corpora("someone")) == 4


def test_the_same_configuration_on_numpy_and_qdrant_side_by_side(setup):
    pytest.importorskip("qdrant_edge")
    store, service, cid = setup
    configs = [IndexConfig("float32"), IndexConfig("binary", "rescore", rescore_multiplier=10)]
    resp = service.search(cid, "minilm-l6", "standard", configs, "What is the capital of France?", k=5,
                          engines=("numpy", "qdrant"))
    assert [(c.label, c.engine.split(" ")[0]) for c in resp.columns] == [
        ("float32", "numpy"), ("float32", "Qdrant"),
        ("binary + rescore x10 (int8 calibrated)", "numpy"), ("binary + rescore x10 (int8 calibrated)", "Qdrant")]
    numpy_f32, qdrant_f32 = resp.columns[0], resp.columns[1]
    assert [h.chunk_id for h in qdrant_f32.hits] == [h.chunk_id for h in numpy_f32.hits]  # exact: the same top-5
    assert qdrant_f32.overlap_at_k == 1.0 and qdrant_f32.engine.startswith("Qdrant Edge")
    again = service.search(cid, "minilm-l6", "standard", configs[:1], "a string instrument", k=3, engines=["qdrant"])
    assert "build" not in again.columns[0].timings_ms  # the Qdrant index is built once per corpus version
    with pytest.raises(DemoError, match="unknown engine"):
        service.search(cid, "minilm-l6", "standard", configs, "x", engines=["faiss"])
