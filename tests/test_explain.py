"""Why it matched: sentence spans, the best sentence against an independent computation with the real
stand-in (alone and with late chunking), the cache and the caps, and BM25 term spans."""

from __future__ import annotations

import numpy as np
import pytest

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.explain import SentenceVectorCache, explain_hits, query_terms, term_spans
from pplx_demo.index import IndexConfig
from pplx_demo.ingest.chunking import sentence_spans
from pplx_demo.search import SearchService
from pplx_demo.store import Store

PARAGRAPHS = [
    ["Berlin is the capital of Germany.", "It has about 3.7 million inhabitants.",
     "The city is known for its museums and nightlife.", "Its wall fell in 1989."],
    ["Honey bees live in colonies.", "A colony can hold fifty thousand bees!",
     "Workers collect nectar and pollen from flowers.", "The queen lays the eggs."],
    ["Glaciers are slow rivers of ice.", "They carve deep valleys as they move.",
     "Many glaciers are shrinking because the climate is warming."],
]
TEXTS = [" ".join(p) for p in PARAGRAPHS]


def _cosines(query_vec: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    q = query_vec / np.linalg.norm(query_vec)
    return (vecs @ q) / np.linalg.norm(vecs, axis=1)


def test_sentence_spans_are_exact_and_follow_the_chunkers_sentence_rule():
    text = '  Berlin is big. It has 3.7 million people!" Next line\nThird one?  Yes…  東京は大きい。人口が多い。 end'
    got = [text[a:b] for a, b in sentence_spans(text)]
    assert got == ["Berlin is big.", 'It has 3.7 million people!"', "Next line", "Third one?", "Yes…",
                   "東京は大きい。", "人口が多い。", "end"]
    for p in PARAGRAPHS:
        joined = " ".join(p)
        assert [joined[a:b] for a, b in sentence_spans(joined)] == p
    assert sentence_spans("") == [] and sentence_spans(" \n\t ") == []
    # Inputs a backtracking pattern would choke on: one pass, every character once.
    assert sentence_spans("a" * 200_000) == [(0, 200_000)]
    assert len(sentence_spans("x. " * 100_000)) == 100_000
    assert sentence_spans("!" * 100_000 + " b") == [(0, 100_000), (100_001, 100_002)]


def test_best_sentence_is_the_argmax_computed_independently(minilm):
    query = "how many people live in Berlin"
    qvec = minilm.encode([query])[0]
    out = explain_hits(TEXTS, query, minilm, query_vector=qvec)
    assert len(out.hits) == 3 and not out.contextual and out.elapsed_ms > 0 and out.embedded_now == 11
    for text, sentences, hit in zip(TEXTS, PARAGRAPHS, out.hits):
        scores = _cosines(qvec, minilm.encode(sentences))  # each sentence embedded alone, here
        best = int(np.argmax(scores))
        assert text[hit.best.char_start:hit.best.char_end] == sentences[best]
        assert hit.best == hit.sentences[0] and hit.best_position == best
        assert [text[s.char_start:s.char_end] for s in hit.sentences] == [sentences[i] for i in np.argsort(-scores)]
        assert [s.score for s in hit.sentences] == pytest.approx(sorted(scores, reverse=True), abs=1e-5)
        assert hit.n_sentences == len(sentences) and hit.skipped == 0


def test_late_chunking_sentence_vectors_for_a_contextual_encoder(minilm, minilm_contextual):
    query = "Berlin museums"
    out = explain_hits(TEXTS[:1], query, minilm_contextual)
    assert out.contextual and "late chunking" in out.method
    qvec = minilm_contextual.encode([query])[0]
    in_context = minilm_contextual.encode_documents([PARAGRAPHS[0]])[0]  # the chunk's sentences as one document
    scores = _cosines(qvec, in_context)
    hit = out.hits[0]
    assert hit.best_position == int(np.argmax(scores))
    assert [s.score for s in hit.sentences] == pytest.approx(sorted(scores, reverse=True), abs=1e-5)
    alone = _cosines(qvec, minilm.encode(PARAGRAPHS[0]))
    assert not np.allclose(np.sort(alone), np.sort(scores), atol=1e-3)  # context changed the vectors


def test_cache_caps_and_errors(minilm, minilm_contextual):
    cache = SentenceVectorCache(max_entries=1000)
    first = explain_hits(TEXTS, "glaciers melting", minilm, cache=cache)
    again = explain_hits(TEXTS, "glaciers melting", minilm, cache=cache)
    assert first.embedded_now == 11 and again.embedded_now == 0
    for a, b in zip(first.hits, again.hits):  # the cached vectors give the same answer
        assert [(s.char_start, s.char_end) for s in a.sentences] == [(s.char_start, s.char_end) for s in b.sentences]
        assert [s.score for s in a.sentences] == pytest.approx([s.score for s in b.sentences], abs=1e-6)
    # another variant of the same model is another encoder: its vectors are not reused
    assert explain_hits(TEXTS[:1], "glaciers melting", minilm_contextual, cache=cache).embedded_now == 4
    capped = explain_hits(TEXTS, "glaciers melting", minilm, cache=cache, max_hits=2, max_sentences=2)
    assert len(capped.hits) == 2 and capped.not_explained == 1
    assert [len(h.sentences) for h in capped.hits] == [2, 2] and [h.skipped for h in capped.hits] == [2, 2]
    tiny = SentenceVectorCache(max_entries=3)
    explain_hits(TEXTS, "glaciers", minilm, cache=tiny)
    assert len(tiny) == 3
    with pytest.raises(DemoError, match="empty"):
        explain_hits(TEXTS, "  ", minilm)
    with pytest.raises(DemoError, match="max_sentences"):
        explain_hits(TEXTS, "bees", minilm, max_sentences=0)
    empty = explain_hits(["", "   "], "bees", minilm)
    assert [h.best for h in empty.hits] == [None, None] and empty.embedded_now == 0


def test_term_spans_use_the_bm25_tokenisation_with_exact_offsets():
    text = "Populations grew. The POPULATION of Berlin, and of berliners, is large."
    terms = query_terms("population of Berlin", "en")
    assert terms == ["popul", "berlin"]  # "of" is a stop word; words are stemmed
    spans = term_spans(text, terms, "en")
    assert [(s.term, text[s.char_start:s.char_end]) for s in spans] == [
        ("popul", "Populations"), ("popul", "POPULATION"), ("berlin", "Berlin"), ("berlin", "berliners")]
    assert term_spans(text, [], "en") == [] and term_spans("", terms, "en") == []
    german = "Die Bevölkerung Berlins wächst."
    de_terms = query_terms("Bevölkerung", "de")
    assert [german[s.char_start:s.char_end] for s in term_spans(german, de_terms, "de")] == ["Bevölkerung"]


def test_explaining_a_real_search_column(tmp_path, minilm):
    with Store(tmp_path / "s.duckdb") as store:
        docs = [Document(uri=f"mem://{i}", title=f"p{i}", text=t, metadata={"lang": "en"}) for i, t in enumerate(TEXTS)]
        cid = store.add_corpus("c", docs, [[Chunk(0, t, 0, len(t), 40)] for t in TEXTS])
        response = SearchService(store, encoder_loader=lambda key, variant: minilm).search(
            cid, "minilm-l6", "standard", [IndexConfig("float32")], "bee colony size", k=2)
        hits = response.columns[0].hits
        out = explain_hits([h.text for h in hits], "bee colony size", minilm, terms=query_terms("bee colony size"))
        top = out.hits[0]
        assert hits[0].text == TEXTS[1]
        assert hits[0].text[top.best.char_start:top.best.char_end] == "A colony can hold fifty thousand bees!"
        assert [hits[0].text[t.char_start:t.char_end] for t in top.terms] == ["bees", "colonies", "colony", "bees"]
