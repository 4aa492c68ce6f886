"""Why a hit matched: its sentence(s) closest to the query, and the query terms BM25 matched in it.

Sentences: `ingest.chunking.sentence_spans` (the chunker's sentence rule, one linear pass, exact
character offsets into the chunk text). Only the displayed hits are explained (`max_hits`), and only
the first `max_sentences` sentences of each (the rest are counted in `skipped`), so the cost is
bounded; `Explanation.elapsed_ms` is this step's own latency stage.

Scores: cosine between the query vector and each sentence vector from the SAME encoder that ranked
the hit, embedded in one batch for all hits; vectors are cached by (encoder cache_key, variant,
sentence hash), so a repeated query re-embeds nothing.

Contextual variant ("where available"): when the encoder is a contextual (late-chunking) encoder
(`encoder.variant == "contextual"`: pplx-embed-context-v1, or the stand-in's contextual variant),
each hit's scored sentences are encoded as ONE document with `encode_documents`, so every sentence
vector is pooled from tokens that saw the rest of the chunk (late chunking over the chunk's
sentences; the context is the chunk, not the whole document). Such a vector depends on its
neighbours, so its cache key also holds the hash of the sentence list and the sentence's position.
A standard encoder embeds each sentence alone.

BM25 / hybrid: `term_spans` finds the query terms (BM25 tokenisation: lower-case, 2+ word
characters, stop words out, Snowball stem) in the chunk text and returns their character spans.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.bm25 import TOKEN_PATTERN, bm25_setup, bm25_tokenizer_args
from pplx_demo.ingest.chunking import sentence_spans

MAX_HITS = 10  # default hits explained per call (Settings.explain_max_hits)
MAX_SENTENCES = 24  # default sentences scored per hit (Settings.explain_max_sentences)


@dataclass(frozen=True)
class SentenceScore:
    """One sentence of a hit's chunk: character span in the chunk text and cosine to the query."""

    char_start: int
    char_end: int
    score: float


@dataclass(frozen=True)
class TermSpan:
    """A query term (as BM25 tokenises it, e.g. the stem 'popul') found at [char_start, char_end)."""

    term: str
    char_start: int
    char_end: int


@dataclass
class HitExplanation:
    """Why one hit matched. Spans are offsets into the hit's chunk text."""

    sentences: list[SentenceScore]  # scored sentences, best first (ties: earlier sentence first)
    best: SentenceScore | None  # the argmax (= sentences[0]); None when the chunk has no sentence
    best_position: int | None  # the argmax's position among the chunk's sentences (0 = first)
    n_sentences: int  # sentences in the chunk
    skipped: int  # sentences over `max_sentences`, not scored
    terms: list[TermSpan] = field(default_factory=list)  # BM25 query terms found, in text order


@dataclass
class Explanation:
    """Explanations of the first `max_hits` hits, in hit order, and what producing them cost."""

    hits: list[HitExplanation]
    elapsed_ms: float  # this step alone (sentence split, embedding, scoring, term search)
    embedded_now: int  # sentences embedded by this call (0 when all came from the cache)
    contextual: bool  # sentence vectors from late chunking over each chunk's sentences
    method: str
    not_explained: int = 0  # hits beyond max_hits


class SentenceVectorCache:
    """LRU of sentence vectors keyed by (encoder cache key, variant, text hash[, context]); thread-safe."""

    def __init__(self, max_entries: int = 20_000) -> None:
        if max_entries < 1:
            raise DemoError("the sentence vector cache needs room for at least one vector")
        self.max_entries = int(max_entries)
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            v = self._items.get(key)
            if v is not None:
                self._items.move_to_end(key)
            return v

    def put(self, key: tuple, vector: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _context_hash(texts: Sequence[str]) -> str:
    return _hash(json.dumps(list(texts), ensure_ascii=False))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def query_terms(query: str, language: str | None = None) -> list[str]:
    """The query's terms as BM25 tokenises them for `language` (None: English rules), in order, once each."""
    import bm25s

    if not query or not query.strip():
        return []
    stop, stem = bm25_tokenizer_args(bm25_setup(language))
    tokens = bm25s.tokenize([query], stopwords=stop, stemmer=stem, return_ids=False, show_progress=False)[0]
    return list(dict.fromkeys(t for t in tokens if t))


def term_spans(text: str, terms: Sequence[str], language: str | None = None) -> list[TermSpan]:
    """Every word of `text` whose BM25 token (lower-cased, not a stop word, stemmed) is in `terms`.

    Words are found with BM25's own pattern in one linear pass. When lower-casing changes the text's
    length (rare letters such as 'İ'), words are matched on the original text and lower-cased one by
    one, which can differ from bm25s on those letters only.
    """
    import re

    import bm25s

    wanted = set(terms)
    if not wanted or not text:
        return []
    lowered = text.lower()
    source = lowered if len(lowered) == len(text) else text
    matches = [(m.start(), m.end(), m.group().lower()) for m in re.finditer(TOKEN_PATTERN, source)]
    words = list(dict.fromkeys(w for _, _, w in matches))
    if not words:
        return []
    stop, stem = bm25_tokenizer_args(bm25_setup(language))
    # The same pipeline as the index: each word alone gives [] (stop word) or its one token.
    tokens = bm25s.tokenize(words, stopwords=stop, stemmer=stem, return_ids=False, show_progress=False)
    token_of = {w: (t[0] if t else None) for w, t in zip(words, tokens)}
    return [TermSpan(token_of[w], a, b) for a, b, w in matches if token_of[w] in wanted]


def _sentence_keys(encoder: Any, texts: Sequence[str], contextual: bool) -> list[tuple]:
    base = (str(getattr(encoder, "cache_key", encoder.model_key)), str(encoder.variant))
    if not contextual:
        return [(*base, _hash(t)) for t in texts]
    ctx = _context_hash(texts)
    return [(*base, _hash(t), ctx, i) for i, t in enumerate(texts)]


def explain_hits(texts: Sequence[str], query: str, encoder: Any, *, query_vector: np.ndarray | None = None,
                 max_hits: int = MAX_HITS, max_sentences: int = MAX_SENTENCES,
                 cache: SentenceVectorCache | None = None, terms: Sequence[str] | None = None,
                 language: str | None = None) -> Explanation:
    """Explain the first `max_hits` of `texts` (the displayed hits' chunk texts, in rank order).

    `query_vector`: the query's pooled vector from `encoder` (embedded here when None). `terms`: BM25
    query terms to locate (e.g. `Bm25Hits.query_terms`; None: none, [] likewise); `language` is
    their tokenisation language. Sentence vectors come from `cache` when given.
    """
    t0 = time.perf_counter()
    if not isinstance(query, str) or not query.strip():
        raise DemoError("type a query first: the search text is empty")
    if max_hits < 0 or max_sentences < 1:
        raise DemoError(f"explanations need max_hits >= 0 and max_sentences >= 1 "
                        f"(got {max_hits} and {max_sentences})")
    contextual = str(getattr(encoder, "variant", "standard")) == "contextual"
    shown = list(texts)[:max_hits]
    if query_vector is None:
        query_vector = np.asarray(encoder.encode([query]), dtype=np.float32)[0]
    q = _unit(np.asarray(query_vector, dtype=np.float32).ravel())

    spans_per_hit = [sentence_spans(t) for t in shown]
    scored = [s[:max_sentences] for s in spans_per_hit]
    sent_texts = [[t[a:b] for a, b in s] for t, s in zip(shown, scored)]
    keys = [_sentence_keys(encoder, st, contextual) for st in sent_texts]
    vectors: dict[tuple, np.ndarray] = {}
    if cache is not None:
        for ks in keys:
            for key in ks:
                v = cache.get(key)
                if v is not None:
                    vectors[key] = v
    embedded = 0
    if contextual:
        todo = [i for i, ks in enumerate(keys) if ks and any(key not in vectors for key in ks)]
        if todo:
            docs = encoder.encode_documents([sent_texts[i] for i in todo])
            for i, arr in zip(todo, docs):
                for key, v in zip(keys[i], np.asarray(arr, dtype=np.float32)):
                    vectors[key] = v
                embedded += len(keys[i])
    else:
        missing: dict[tuple, str] = {}
        for ks, st in zip(keys, sent_texts):
            for key, text in zip(ks, st):
                if key not in vectors:
                    missing.setdefault(key, text)
        if missing:
            arr = np.asarray(encoder.encode(list(missing.values())), dtype=np.float32)
            vectors.update(zip(missing, arr))
            embedded = len(missing)
    if cache is not None and embedded:
        for ks in keys:
            for key in ks:
                cache.put(key, vectors[key])

    wanted_terms = list(terms) if terms else []
    hits: list[HitExplanation] = []
    for text, spans, kept, ks in zip(shown, spans_per_hit, scored, keys):
        scores = [float(_unit(vectors[key]) @ q) for key in ks]
        order = sorted(range(len(kept)), key=lambda i: (-scores[i], i))
        sentences = [SentenceScore(kept[i][0], kept[i][1], scores[i]) for i in order]
        hits.append(HitExplanation(sentences=sentences, best=sentences[0] if sentences else None,
                                   best_position=order[0] if order else None, n_sentences=len(spans),
                                   skipped=len(spans) - len(kept),
                                   terms=term_spans(text, wanted_terms, language) if wanted_terms else []))
    method = ("cosine of the query with each sentence, late chunking over the chunk's sentences" if contextual
              else "cosine of the query with each sentence, embedded alone")
    return Explanation(hits=hits, elapsed_ms=(time.perf_counter() - t0) * 1e3, embedded_now=embedded,
                       contextual=contextual, method=method, not_explained=max(0, len(texts) - len(shown)))
