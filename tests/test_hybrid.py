"""Hybrid BM25 + dense: RRF against hand-computed values, BM25 over stored chunks, the cached index,
one search column end to end, and hybrid evaluation on XQuAD en with the real stand-in."""

from __future__ import annotations

import threading

import bm25s
import pytest

from pplx_demo.embedding import embed_corpus
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.bm25 import bm25_run, bm25_setup, bm25_tokenizer_args
from pplx_demo.evaluate.datasets import RetrievalDataset, load_xquad
import pplx_demo.evaluate.hybrid_eval as _hybrid_eval_module
import pplx_demo.evaluate.runs as _runs_module
from pplx_demo.hybrid import Bm25Cache, Bm25Index, hybrid_search, rrf_fuse, weighted_fuse
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.store import Store
from model_loading import with_models

run_corpus_hybrid_evaluation = with_models(_hybrid_eval_module.run_corpus_hybrid_evaluation)
run_hybrid_evaluation = with_models(_hybrid_eval_module.run_hybrid_evaluation)
run_evaluation = with_models(_runs_module.run_evaluation)

TEXTS = [
    "Honey bees collect nectar from flowers and turn it into honey inside the hive.",
    "A volcano erupts when molten rock called magma rises through the crust.",
    "Ocean tides rise and fall twice a day because of the pull of the moon's gravity.",
    "Bread dough rises because yeast ferments sugar and produces carbon dioxide.",
    "Bees dance to tell other bees where the flowers are.",
    "The moon orbits the Earth roughly once a month.",
    "Glaciers are slow rivers of ice that carve valleys over centuries.",
    "Cheese is made by curdling milk with rennet and ageing the curds.",
]


# --------------------------------------------------------------------------- fusion


def test_rrf_matches_hand_computed_scores_and_order():
    ids, scores = rrf_fuse([[10, 20, 30, 40], [30, 10, 50]], k=60)
    expected = {10: 1 / 61 + 1 / 62, 20: 1 / 62, 30: 1 / 63 + 1 / 61, 40: 1 / 64, 50: 1 / 63}
    assert ids.tolist() == [10, 30, 20, 50, 40]
    assert scores.tolist() == pytest.approx([expected[i] for i in ids.tolist()], abs=1e-15)
    top, top_scores = rrf_fuse([[10, 20, 30, 40], [30, 10, 50]], k=60, top=2)
    assert top.tolist() == [10, 30] and top_scores.tolist() == pytest.approx(scores[:2].tolist())
    # weights scale each leg's contribution; k changes the curve
    ids, scores = rrf_fuse([[1, 2], [2, 3]], k=0, weights=[2.0, 1.0])
    assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx({1: 2.0, 2: 2 / 2 + 1 / 1, 3: 1 / 2})
    assert ids.tolist() == [1, 2, 3]  # 1 and 2 tie at 2.0; both best rank 1, 1 got it in the first leg


def test_rrf_ties_are_exact_and_broken_by_best_rank_then_leg():
    # The same ranks {1, 2, 3} in three legs: exactly equal fused scores, whatever the summation order.
    ids, scores = rrf_fuse([[7, 8, 9], [9, 7, 8], [8, 9, 7]], k=60)
    assert scores[0] == scores[1] == scores[2]
    # each is ranked first by one leg: leg 0 put 7 first, leg 1 put 9 first, leg 2 put 8 first
    assert ids.tolist() == [7, 9, 8]
    ids, _ = rrf_fuse([[5, 6], [6, 5]])
    assert ids.tolist() == [5, 6]  # both best rank 1; 5 got it in the first leg


def test_rrf_skips_padding_and_repeats_and_rejects_bad_input():
    ids, scores = rrf_fuse([[4, -1, 4, 2], [-1]], k=1)
    assert ids.tolist() == [4, 2] and scores.tolist() == pytest.approx([1 / 2, 1 / 3])
    assert rrf_fuse([[], []])[0].size == 0
    with pytest.raises(DemoError, match="one weight per ranking"):
        rrf_fuse([[1], [2]], weights=[1.0])
    with pytest.raises(DemoError, match="k must"):
        rrf_fuse([[1]], k=-1)


def test_weighted_fuse_min_max_by_hand():
    legs = [([1, 2, 3], [0.9, 0.5, 0.1]), ([3, 4], [10.0, 5.0])]
    ids, scores = weighted_fuse(legs)
    # leg 1 -> 1: 1, 2: .5, 3: 0; leg 2 -> 3: 1, 4: 0; missing = 0
    assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx({1: 1.0, 2: 0.5, 3: 1.0, 4: 0.0})
    assert ids.tolist() == [1, 3, 2, 4]  # 1 and 3 tie: 1 was first in the first leg
    ids, scores = weighted_fuse(legs, weights=[1.0, 3.0])
    assert ids.tolist()[0] == 3 and scores[0] == pytest.approx(3.0)
    ids, _ = weighted_fuse(legs, normalisation="zscore", top=1)
    assert ids.size == 1
    with pytest.raises(DemoError, match="normalisation"):
        weighted_fuse(legs, normalisation="softmax")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- BM25 over chunks


def test_bm25_index_scores_like_the_evaluation_baseline_and_names_matched_terms():
    ds = RetrievalDataset(name="t", corpus={f"d{i}": ("", t) for i, t in enumerate(TEXTS)},
                          queries={"q1": "why do bees dance near flowers", "q2": "the moon's pull on tides"},
                          qrels={"q1": {"d4": 1}, "q2": {"d2": 1}}, language="en")
    baseline = bm25_run(ds, k=100, language="en")
    index = Bm25Index(TEXTS, "en")
    stop, stem = bm25_tokenizer_args(bm25_setup("en"))
    for qid, query in ds.queries.items():
        hits = index.search(query, k=len(TEXTS))
        expected = {d: s for d, s in baseline[qid].items() if s > 0}
        got = {f"d{r}": float(s) for r, s in zip(hits.rows, hits.scores)}
        assert got == pytest.approx(expected, rel=1e-6)  # same tokenisation, same BM25 scores
        assert list(hits.scores) == sorted(hits.scores, reverse=True)
        for row, terms in zip(hits.rows, hits.matched_terms):
            words = set(bm25s.tokenize([TEXTS[row]], stopwords=stop, stemmer=stem, return_ids=False,
                                       show_progress=False)[0])
            assert terms and set(terms) == words & set(hits.query_terms)
    assert index.search("bees", k=1).rows.tolist() == [4]  # "Bees ... bees": the higher term frequency
    assert index.search("zebra unicorn", k=5).rows.size == 0  # no known term: nothing, not zero-score rows
    assert index.search("the and of", k=5).query_terms == []  # stop words only
    assert Bm25Index([], "en").search("bees", 3).rows.size == 0
    with pytest.raises(DemoError):
        index.search("bees", k=0)


def _corpus(store: Store, name: str, texts: list[str]) -> int:
    docs = [Document(uri=f"mem://{name}/{i}", title="", text=t, metadata={"lang": "en"}) for i, t in enumerate(texts)]
    return store.add_corpus(name, docs, [[Chunk(0, t, 0, len(t), len(t.split()))] for t in texts])


def test_bm25_cache_builds_once_per_revision_within_its_bounds(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        a = _corpus(store, "a", TEXTS[:4])
        b = _corpus(store, "b", TEXTS[4:])
        cache = Bm25Cache(max_entries=4)
        first = cache.get(store, a)
        assert cache.get(store, a) is first and cache.builds == 1
        assert first.chunk_ids.tolist() == store.chunk_table(a).chunk_ids.tolist()
        store.add_documents(a, [Document(uri="mem://a/x", title="", text="Bees again.")],
                            [[Chunk(0, "Bees again.", 0, 11, 2)]])
        second = cache.get(store, a)  # a new revision: rebuilt, now with the new chunk
        assert second is not first and second.n == 5 and cache.builds == 2
        cache.get(store, b)
        cache.forget(a)
        assert len(cache) == 1
        small = Bm25Cache(max_entries=1)
        small.get(store, a)
        small.get(store, b)
        assert len(small) == 1 and small.get(store, b) is not None and small.builds == 2
        tight = Bm25Cache(max_entries=8, max_bytes=1)  # over the byte bound: only the newest is kept
        tight.get(store, a)
        tight.get(store, b)
        assert len(tight) == 1

        shared = Bm25Cache()
        got: list[Bm25Index] = []
        threads = [threading.Thread(target=lambda: got.append(shared.get(store, b))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert shared.builds == 1 and all(x is got[0] for x in got)


def test_hybrid_search_fuses_one_column_over_a_stored_corpus(tmp_path, minilm):
    with Store(tmp_path / "s.duckdb") as store:
        cid = _corpus(store, "c", TEXTS)
        matrix = embed_corpus(store, cid, minilm)
        bm25 = Bm25Cache().get(store, cid)
        query, k, depth_factor = "bees and flowers", 3, 2
        dense = QuantizedIndex.build(matrix.vectors, IndexConfig("float32")).search(minilm.encode([query]),
                                                                                    k * depth_factor)
        hits = hybrid_search(dense.ids[0], dense.scores[0], bm25, query, k, depth_factor=depth_factor,
                             dense_chunk_ids=matrix.chunk_ids)
        b = bm25.search(query, k * depth_factor)
        ids, scores = rrf_fuse([dense.ids[0], b.rows], k=60, top=k)
        assert hits.rows.tolist() == ids.tolist() and hits.scores.tolist() == pytest.approx(scores.tolist())
        assert hits.depth == 6 and hits.rrf_k == 60 and set(hits.timings_ms) == {"bm25", "fuse"}
        assert {0, 4} <= set(hits.rows.tolist())  # both bee texts
        assert hits.query_terms == ["bee", "flower"]
        stop, stem = bm25_tokenizer_args(bm25_setup("en"))
        for row, d_rank, b_rank, terms in zip(hits.rows, hits.dense_ranks, hits.bm25_ranks, hits.matched_terms):
            assert d_rank is None or dense.ids[0][d_rank - 1] == row
            assert b_rank is None or b.rows[b_rank - 1] == row
            assert d_rank is not None or b_rank is not None
            words = bm25s.tokenize([TEXTS[row]], stopwords=stop, stemmer=stem, return_ids=False, show_progress=False)
            assert set(terms) == set(words[0]) & {"bee", "flower"}  # dense-only hits too
        assert str(IndexConfig("float32", hybrid=True, rrf_k=hits.rrf_k)) == "hybrid: BM25 + float32 (RRF k=60)"
        with pytest.raises(DemoError, match="corpus changed"):
            hybrid_search(dense.ids[0], dense.scores[0], bm25, query, k, dense_chunk_ids=matrix.chunk_ids[::-1])


def test_hybrid_evaluation_on_a_stored_corpus(tmp_path, minilm):
    with Store(tmp_path / "s.duckdb") as store:
        docs = [Document(uri=f"mem://{i}", title="", text=t, external_id=f"d{i}", metadata={"lang": "en"})
                for i, t in enumerate(TEXTS)]
        cid = store.add_corpus("c", docs, [[Chunk(0, t, 0, len(t), 5)] for t in TEXTS])
        rows = run_corpus_hybrid_evaluation(store, cid, {"q": "what makes bread dough rise"}, {"q": {"d3": 1}},
                                            "minilm-l6", None, [IndexConfig("float32"), IndexConfig("binary")],
                                            encoder_loader=lambda key, variant: minilm)
        assert [r.label for r in rows] == ["hybrid: BM25 + float32 (RRF k=60)", "hybrid: BM25 + binary (RRF k=60)"]
        assert rows[0].metrics["mrr@10"] == 1.0 and rows[0].per_query["ndcg@10"] == {"q": 1.0}
        assert rows[0].bytes_per_vector == 1536 + rows[0].bm25_bytes_per_chunk and rows[0].bm25_bytes_per_chunk > 0


# --------------------------------------------------------------------------- XQuAD en, the real stand-in


@pytest.fixture(scope="module")
def xquad_en_store(tmp_path_factory):
    with Store(tmp_path_factory.mktemp("xquad") / "x.duckdb") as store:
        yield store


def test_hybrid_on_xquad_en_is_at_least_as_good_as_either_leg(xquad_en_store, minilm):
    """All 1185 unique XQuAD en questions (the 1190 question ids share 1185 texts), whole paragraphs."""
    ds = load_xquad("en")
    report = run_evaluation(xquad_en_store, ds, "minilm-l6", None, [IndexConfig("float32")], bm25=True,
                            encoder_loader=lambda key, variant: minilm)
    hybrid = run_hybrid_evaluation(xquad_en_store, ds, "minilm-l6", None, [IndexConfig("float32")],
                                   encoder_loader=lambda key, variant: minilm)[0]
    dense, bm25 = report.results[0].metrics["ndcg@10"], report.bm25["ndcg@10"]
    print(f"XQuAD en nDCG@10: dense float32 {dense:.4f}, BM25 {bm25:.4f}, hybrid {hybrid.metrics['ndcg@10']:.4f}")
    assert len(hybrid.per_query["ndcg@10"]) == len(ds.judged_queries()) == 1185
    assert hybrid.metrics["ndcg@10"] >= max(dense, bm25)
    assert hybrid.metrics["recall@10"] >= max(report.results[0].metrics["recall@10"], report.bm25["recall@10"])
    assert hybrid.candidates["leg@10"] == 40 and hybrid.label == "hybrid: BM25 + float32 (RRF k=60)"
    assert hybrid.pct_of_float32["ndcg@10"] > 100.0
