"""Hybrid retrieval: BM25 over a corpus' chunk texts fused with a dense leg.

- `rrf_fuse`: reciprocal rank fusion, score(d) = sum_i w_i / (k + rank_i(d)), rank 1-based, w_i = 1
  by default. A document missing from a leg gets nothing from it. Ties (equal fused scores, summed
  exactly with `math.fsum`, so equal rank multisets always tie) go to the better best rank in any
  leg, then to the leg listed first (the dense leg, by `hybrid_search`'s order), then to the lower id.
- `weighted_fuse`: weighted score fusion after per-leg normalisation ("minmax" over the leg's own
  candidates, "zscore", or "none"); a document missing from a leg gets that leg's floor (0 after
  min-max, the leg's minimum z otherwise). Same tie-break.
- `Bm25Index`: bm25s (Lucene BM25, k1 = 1.5, b = 0.75) over chunk texts with the evaluation
  baseline's tokenisation (`evaluate.bm25`: lower-case, 2+ word characters, stop words and Snowball
  stemmer of the language). Chunks without any query term (score 0) are never hits.
- `Bm25Cache`: one index per (corpus id, corpus revision, tokenisation), LRU-bounded by entries and
  bytes, safe to share between threads (the dense indexes' cache in `search.py` works the same way).
- `hybrid_search`: one search column's fusion. Candidate depth: each leg contributes its top
  k x `depth_factor` chunks (`Settings.hybrid_depth_factor`, default 4), the fused list is cut to k.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.bm25 import Bm25Setup, bm25_setup, bm25_tokenizer_args

RRF_K = 60  # the constant of Cormack et al. (2009), also Elasticsearch's and OpenSearch's default
DEPTH_FACTOR = 4  # default candidates per leg = k x this (Settings.hybrid_depth_factor)
Normalisation = Literal["minmax", "zscore", "none"]
NORMALISATIONS: tuple[Normalisation, ...] = ("minmax", "zscore", "none")


# --------------------------------------------------------------------------- fusion


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    w = [float(x) for x in weights]
    if len(w) != n:
        raise DemoError(f"{len(w)} fusion weights for {n} rankings: give one weight per ranking")
    if any(not math.isfinite(x) or x < 0 for x in w):
        raise DemoError(f"fusion weights must be finite and >= 0, got {w}")
    return w


def _ordered(fused: Mapping[int, float], best: Mapping[int, tuple[int, int]], top: int | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Ids and scores, fused score desc, then best (rank, leg) asc, then id asc; cut to `top`."""
    order = sorted(fused, key=lambda d: (-fused[d], best[d][0], best[d][1], d))
    if top is not None:
        order = order[:max(0, int(top))]
    return (np.asarray(order, dtype=np.int64),
            np.asarray([fused[d] for d in order], dtype=np.float64))


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K, weights: Sequence[float] | None = None, *,
             top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of best-first id lists -> (ids, fused scores), best first.

    Negative ids (padding) are skipped; an id repeated within one ranking counts at its first
    (best) rank. `top` None keeps every fused id. Tie-break: see the module docstring.
    """
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise DemoError(f"the RRF constant k must be a whole number >= 0, got {k!r}")
    w = _check_weights(weights, len(rankings))
    parts: dict[int, list[float]] = {}
    best: dict[int, tuple[int, int]] = {}
    for leg, ranking in enumerate(rankings):
        seen: set[int] = set()
        rank = 0
        for raw in ranking:
            d = int(raw)
            if d < 0 or d in seen:
                continue
            seen.add(d)
            rank += 1
            parts.setdefault(d, []).append(w[leg] / (k + rank))
            if d not in best or (rank, leg) < best[d]:
                best[d] = (rank, leg)
    fused = {d: math.fsum(p) for d, p in parts.items()}
    return _ordered(fused, best, top)


def _normalise(scores: np.ndarray, how: Normalisation) -> tuple[np.ndarray, float]:
    """(normalised scores, the value a missing document gets)."""
    if how == "none":
        return scores, float(scores.min()) if scores.size else 0.0
    if how == "minmax":
        lo, hi = float(scores.min()), float(scores.max())
        if hi > lo:
            return (scores - lo) / (hi - lo), 0.0
        return np.ones_like(scores), 0.0  # one candidate, or all equal: each is this leg's best
    mean, std = float(scores.mean()), float(scores.std())
    z = (scores - mean) / std if std > 0 else np.zeros_like(scores)
    return z, float(z.min())


def weighted_fuse(legs: Sequence[tuple[Sequence[int], Sequence[float]]], weights: Sequence[float] | None = None,
                  normalisation: Normalisation = "minmax", *, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted score fusion of (ids, scores) legs, best first -> (ids, fused scores), best first.

    Each leg's scores are normalised over its own candidates (`normalisation`), then summed with
    `weights` (default 1 each); a document absent from a leg gets the leg's floor (see module doc).
    """
    if normalisation not in NORMALISATIONS:
        raise DemoError(f"unknown normalisation {normalisation!r}: use one of {', '.join(NORMALISATIONS)}")
    w = _check_weights(weights, len(legs))
    per_leg: list[dict[int, float]] = []
    floors: list[float] = []
    best: dict[int, tuple[int, int]] = {}
    for leg, (ids, scores) in enumerate(legs):
        ids_a = np.asarray(ids, dtype=np.int64).ravel()
        sc = np.asarray(scores, dtype=np.float64).ravel()
        if ids_a.shape != sc.shape:
            raise DemoError(f"leg {leg + 1} has {ids_a.size} ids but {sc.size} scores")
        keep = ids_a >= 0
        ids_a, sc = ids_a[keep], sc[keep]
        if not np.isfinite(sc).all():
            raise DemoError(f"leg {leg + 1} has NaN or infinite scores")
        norm, floor = _normalise(sc, normalisation) if sc.size else (sc, 0.0)
        values: dict[int, float] = {}
        rank = 0
        for d, v in zip(ids_a.tolist(), norm.tolist()):
            if d in values:
                continue
            rank += 1
            values[d] = v
            if d not in best or (rank, leg) < best[d]:
                best[d] = (rank, leg)
        per_leg.append(values)
        floors.append(floor)
    fused = {d: math.fsum(w[i] * per_leg[i].get(d, floors[i]) for i in range(len(legs))) for d in best}
    return _ordered(fused, best, top)


# --------------------------------------------------------------------------- BM25 over chunks


@dataclass
class Bm25Hits:
    """One query's BM25 hits, best first: rows of the index (chunk_table order), scores > 0, and per
    hit the query terms (after tokenisation: lower-cased, stop words out, stemmed) its chunk holds."""

    rows: np.ndarray  # int64 (m,), m <= k
    scores: np.ndarray  # float32 (m,)
    matched_terms: list[list[str]]
    query_terms: list[str]  # the query's terms found in the corpus vocabulary, query order
    seconds: float = 0.0


class Bm25Index:
    """BM25 over a list of texts (a corpus' chunks, in chunk_table order)."""

    def __init__(self, texts: Sequence[str], language: str | None = None,
                 chunk_ids: Sequence[int] | np.ndarray | None = None) -> None:
        import bm25s

        self.setup: Bm25Setup = bm25_setup(language)
        self._stop, self._stem = bm25_tokenizer_args(self.setup)
        self.n = len(texts)
        self.chunk_ids = (np.asarray(chunk_ids, dtype=np.int64) if chunk_ids is not None
                          else np.arange(self.n, dtype=np.int64))
        if self.chunk_ids.shape[0] != self.n:
            raise DemoError(f"{self.chunk_ids.shape[0]} chunk ids for {self.n} texts")
        self._retriever: Any = None
        self._vocab: dict[str, int] = {}
        if self.n:
            tokens = bm25s.tokenize(list(texts), stopwords=self._stop, stemmer=self._stem, show_progress=False)
            if any(tokens.ids):
                retriever = bm25s.BM25()
                retriever.index(tokens, show_progress=False)
                self._retriever, self._vocab = retriever, dict(retriever.vocab_dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the sparse score matrix plus an estimate of the vocabulary dict (~100 B/term)."""
        if self._retriever is None:
            return int(self.chunk_ids.nbytes)
        sc = self._retriever.scores
        arrays = sum(int(sc[k].nbytes) for k in ("data", "indices", "indptr"))
        return arrays + int(self.chunk_ids.nbytes) + sum(100 + len(t) for t in self._vocab)

    def query_terms(self, query: str) -> list[str]:
        """The query's terms as the index tokenises them, those in the vocabulary, first occurrence order."""
        import bm25s

        if self._retriever is None or not query or not query.strip():
            return []
        tokens = bm25s.tokenize([query], stopwords=self._stop, stemmer=self._stem, return_ids=False,
                                show_progress=False)[0]
        return list(dict.fromkeys(t for t in tokens if t in self._vocab))

    def _rows_with(self, term: str) -> np.ndarray:
        sc = self._retriever.scores
        t = self._vocab[term]
        return sc["indices"][sc["indptr"][t]:sc["indptr"][t + 1]]

    def matched_terms(self, terms: Sequence[str], rows: Sequence[int]) -> list[list[str]]:
        """Per row, which of `terms` (as `query_terms` gives them) its text contains."""
        out: list[list[str]] = [[] for _ in rows]
        if self._retriever is None:
            return out
        rows_a = np.asarray(rows, dtype=np.int64)
        for term in terms:
            if term not in self._vocab:
                continue
            present = np.isin(rows_a, self._rows_with(term))
            for i in np.flatnonzero(present):
                out[i].append(term)
        return out

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every row for these (already tokenised, known) terms; zeros when none."""
        if self._retriever is None or not terms:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(list(terms)), dtype=np.float32)

    def search(self, query: str, k: int) -> Bm25Hits:
        """Top-k rows by BM25 (score desc, then lower row), only rows holding a query term."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise DemoError(f"k must be a positive integer, got {k!r}")
        t0 = time.perf_counter()
        terms = self.query_terms(query)
        if not terms:
            return Bm25Hits(np.zeros(0, np.int64), np.zeros(0, np.float32), [], [], time.perf_counter() - t0)
        scores = self.scores(terms)
        cand = np.flatnonzero(scores > 0)
        if cand.size > k:
            # Partition to the k-th best score, keep every tie of it, then sort exactly.
            kth = np.partition(scores[cand], cand.size - k)[cand.size - k]
            cand = cand[scores[cand] >= kth]
        order = cand[np.lexsort((cand, -scores[cand]))][:k]
        return Bm25Hits(order.astype(np.int64), scores[order].astype(np.float32),
                        self.matched_terms(terms, order), terms, time.perf_counter() - t0)


def corpus_language(languages: Sequence[str]) -> str | None:
    """The BM25 language of a corpus: its one detected language, else None (English rules, as MTEB)."""
    return languages[0] if len(languages) == 1 else None


class Bm25Cache:
    """Bm25Index per (corpus id, corpus revision, language), LRU within `max_entries` and `max_bytes`.

    The newest index is always kept, even alone over the byte bound. Safe to share between threads;
    one build at a time (builds are memory-heavy), the way `SearchService` builds dense indexes.
    """

    def __init__(self, max_entries: int = 8, max_bytes: int = 512 << 20) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise DemoError("the BM25 cache needs room for at least one index")
        self.max_entries, self.max_bytes = int(max_entries), int(max_bytes)
        self._items: OrderedDict[tuple, Bm25Index] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.builds = 0  # indexes built by this cache (a hit builds nothing)

    def get(self, store: Any, corpus_id: int, language: str | None = None) -> Bm25Index:
        """The corpus' BM25 index (built from `store.chunk_table` on the first call per revision).

        `language` None: the corpus' single detected language, else English rules.
        """
        info = store.get_corpus(corpus_id)
        setup = bm25_setup(language if language is not None else corpus_language(info.languages))
        key = (int(corpus_id), int(info.revision), setup.language)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._build_lock:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            table = store.chunk_table(corpus_id)
            index = Bm25Index(table.texts, setup.language, table.chunk_ids)
            self.builds += 1
            with self._lock:
                self._items[key] = index
                self._evict()
        return index

    def _evict(self) -> None:
        total = sum(ix.nbytes for ix in self._items.values())
        while len(self._items) > 1 and (len(self._items) > self.max_entries or total > self.max_bytes):
            _, old = self._items.popitem(last=False)
            total -= old.nbytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes the cached indexes hold (see `Bm25Index.nbytes`)."""
        with self._lock:
            return sum(ix.nbytes for ix in self._items.values())

    def forget(self, corpus_id: int | None = None) -> None:
        """Drop the indexes of one corpus (or all), e.g. after it was deleted."""
        with self._lock:
            for key in [k for k in self._items if corpus_id is None or k[0] == int(corpus_id)]:
                del self._items[key]


# --------------------------------------------------------------------------- one search column


@dataclass
class HybridHits:
    """A fused top-k for one query: rows into the corpus' chunk_table order, best first.

    Per hit, its rank and score in each leg (None: not among that leg's candidates) and the BM25
    query terms its chunk holds. `depth` = candidates each leg contributed (k x depth factor).
    """

    rows: np.ndarray  # int64 (m,), m <= k
    scores: np.ndarray  # float64 fused RRF scores
    dense_ranks: list[int | None]
    bm25_ranks: list[int | None]
    dense_scores: list[float | None]
    bm25_scores: list[float | None]
    matched_terms: list[list[str]]
    query_terms: list[str]
    depth: int
    rrf_k: int
    timings_ms: dict[str, float] = field(default_factory=dict)  # "bm25", "fuse"


def hybrid_search(dense_rows: Sequence[int] | np.ndarray, dense_scores: Sequence[float] | np.ndarray,
                  bm25: Bm25Index, query: str, k: int, *, depth_factor: int = DEPTH_FACTOR, rrf_k: int = RRF_K,
                  weights: Sequence[float] | None = None, dense_chunk_ids: np.ndarray | None = None,
                  bm25_hits: Bm25Hits | None = None) -> HybridHits:
    """Fuse one dense column's hits with BM25 by RRF (dense leg first for ties).

    Search the dense index for k x depth_factor rows and pass them (extra rows are ignored, fewer
    are used as they are). `dense_chunk_ids` (the matrix's chunk ids) checks that both legs number
    the same chunks; `bm25_hits` reuses a BM25 search shared by several columns.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise DemoError(f"top-k must be a positive integer, got {k!r}")
    if not isinstance(depth_factor, (int, np.integer)) or depth_factor < 1:
        raise DemoError(f"the hybrid depth factor must be a whole number >= 1, got {depth_factor!r}")
    if dense_chunk_ids is not None and not np.array_equal(np.asarray(dense_chunk_ids), bm25.chunk_ids):
        raise DemoError("the corpus changed between the dense and the BM25 search; please search again")
    depth = min(int(k) * int(depth_factor), max(bm25.n, 1))
    d_rows = np.asarray(dense_rows, dtype=np.int64).ravel()[:depth]
    d_scores = np.asarray(dense_scores, dtype=np.float64).ravel()[:depth]
    t0 = time.perf_counter()
    if bm25_hits is None:
        bm25_hits = bm25.search(query, depth)
    bm25_ms = (time.perf_counter() - t0) * 1e3  # ~0 when a shared search was passed in
    b_rows, b_scores = bm25_hits.rows[:depth], bm25_hits.scores[:depth]
    t0 = time.perf_counter()
    ids, fused = rrf_fuse([d_rows, b_rows], k=rrf_k, weights=weights, top=k)
    d_pos: dict[int, int] = {}
    for i, r in enumerate(d_rows.tolist()):
        if r >= 0:
            d_pos.setdefault(r, i)
    b_pos = {int(r): i for i, r in enumerate(b_rows.tolist())}
    terms_by_row = dict(zip(b_rows.tolist(), bm25_hits.matched_terms[:depth]))
    missing = [int(r) for r in ids if int(r) not in terms_by_row]
    if missing:  # dense-only hits: say which query terms they hold all the same
        terms_by_row.update(zip(missing, bm25.matched_terms(bm25_hits.query_terms, missing)))
    fuse_ms = (time.perf_counter() - t0) * 1e3
    rows = [int(r) for r in ids]
    return HybridHits(
        rows=ids, scores=fused,
        dense_ranks=[d_pos[r] + 1 if r in d_pos else None for r in rows],
        bm25_ranks=[b_pos[r] + 1 if r in b_pos else None for r in rows],
        dense_scores=[float(d_scores[d_pos[r]]) if r in d_pos else None for r in rows],
        bm25_scores=[float(b_scores[b_pos[r]]) if r in b_pos else None for r in rows],
        matched_terms=[terms_by_row.get(r, []) for r in rows], query_terms=list(bm25_hits.query_terms),
        depth=depth, rrf_k=int(rrf_k), timings_ms={"bm25": bm25_ms, "fuse": fuse_ms})
