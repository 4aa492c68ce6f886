"""Side-by-side search: one query against several index configurations of one corpus.

Every response carries the float32 full-size baseline's ranks, so each column shows how much a
configuration changed the ranking (overlap@k, Spearman correlation over the shared chunks), next
to its per-stage timings and its measured storage. Indexes are built once per (corpus revision,
model, variant, configuration) and kept in a bounded LRU cache.

Hybrid configurations ("hybrid: BM25 + <dense> (RRF k=..)") search their dense leg for k x the
depth factor rows, BM25 (one index per corpus revision, cached) for as many, and fuse by RRF
(`pplx_demo.hybrid`). With `explain=True` every displayed hit also says why it matched: its
sentence closest to the query (same encoder) and the BM25 query terms it holds (`pplx_demo.explain`),
timed as its own stage.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pplx_demo.config import Settings
from pplx_demo.embedding import embed_corpus
from pplx_demo.errors import DemoError
from pplx_demo.explain import HitExplanation, SentenceVectorCache, explain_hits
from pplx_demo.hybrid import Bm25Cache, corpus_language, hybrid_search
from pplx_demo.engines import NUMPY_FAMILY
from pplx_demo.index import IndexConfig, QuantizedIndex, SearchHits
from pplx_demo.storage import StorageReport, storage_report
from pplx_demo.store import EmbeddingMatrix, Store

BASELINE = IndexConfig("float32", "plain", None)
MAX_K = 1000
ENGINES = ("numpy", "qdrant")  # "numpy": this process' exact scans; "qdrant": Qdrant Edge, or a server by URL


class _FloatFormView:
    """A Qdrant index over tanh(vectors), searched with tanh(query): the tanh float form (see IndexConfig)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        return self.index.search(np.tanh(queries), k)


@dataclass
class Hit:
    """One ranked chunk. `baseline_rank`: its rank in the float32 full-size top-k (None = absent)."""

    rank: int  # 1-based
    chunk_id: int
    score: float
    text: str
    title: str
    uri: str
    document_id: int
    baseline_rank: int | None
    dense_rank: int | None = None  # hybrid: rank in the dense leg (None: not among its candidates)
    bm25_rank: int | None = None  # hybrid: rank in the BM25 leg
    matched_terms: list[str] = field(default_factory=list)  # hybrid: BM25 query terms the chunk holds
    explanation: HitExplanation | None = None  # why it matched (searches with explain=True)


@dataclass
class ColumnResult:
    """One configuration's answer to the query."""

    config: IndexConfig  # with the int8 scheme resolved for the model
    hits: list[Hit]
    timings_ms: dict[str, float]  # search, rescore (rescoring configs only), fetch_text, total (+ build when built now)
    overlap_at_k: float  # |top-k ∩ baseline top-k| / k
    rank_correlation: float | None  # Spearman over the chunks both top-k lists share (None: < 2 shared)
    storage: StorageReport
    engine: str = NUMPY_FAMILY  # who answered: "numpy exact", "Qdrant Edge 0.9.0", "Qdrant server host"

    @property
    def label(self) -> str:
        """The configuration's canonical name (`str(config)`)."""
        return str(self.config)

    @property
    def search_ms(self) -> float:
        """Index time of this configuration: the scan plus its rescoring (what the configuration changes)."""
        return self.timings_ms.get("search", 0.0) + self.timings_ms.get("rescore", 0.0)


@dataclass
class SearchResponse:
    """Every column for one query. `model_name` is the encoder's true display name."""

    query: str
    corpus_id: int
    model_name: str
    model_key: str
    variant: str
    k: int
    columns: list[ColumnResult]
    embedded_now: int = 0  # corpus chunks this call had to embed first (0 once cached)
    truncated_now: int = 0  # of those, how many the encoder cut at its token window
    embed_query_ms: float = 0.0  # the query embedded once, shared by every column
    explain_ms: float | None = None  # the why-it-matched step (explain=True), its own latency stage
    explain_method: str = ""


def overlap_at_k(ids: Sequence[int], baseline: Sequence[int], k: int) -> float:
    """Share of the baseline's top-k (up to k items) also in `ids`' top-k."""
    if k <= 0:
        return 0.0
    return len(set(list(ids)[:k]) & set(list(baseline)[:k])) / float(min(k, max(len(baseline), 1)))


MIN_SHARED_FOR_CORRELATION = 5  # below this a rank correlation says little (3 shared hits can give 1.00)


def spearman_shared(ids: Sequence[int], baseline: Sequence[int],
                    min_shared: int = MIN_SHARED_FOR_CORRELATION) -> float | None:
    """Spearman's rho between two rankings over the items both contain (None if fewer than `min_shared`)."""
    pos = {x: i for i, x in enumerate(baseline)}
    shared = [x for x in ids if x in pos]
    m = len(shared)
    if m < max(2, min_shared):
        return None
    # Ranks 0..m-1 in `ids` order against the same items re-ranked by baseline position.
    base_rank = np.argsort(np.argsort([pos[x] for x in shared], kind="stable"), kind="stable")
    d = base_rank - np.arange(m)
    return float(1.0 - 6.0 * float((d * d).sum()) / (m * (m * m - 1)))


class SearchService:
    """Runs one query over several configurations of a corpus; safe to share between threads."""

    def __init__(self, store: Store, encoder_loader: Callable[[str, str | None], Any], *,
                 settings: Settings | None = None, max_cached_indexes: int = 32,
                 max_cached_bytes: int = 2 << 30) -> None:
        self.store = store
        self.encoder_loader = encoder_loader
        self.settings = settings or Settings()  # the defaults, never the environment (entry points read it)
        self.kernels = self.settings.kernels
        self.bm25 = Bm25Cache(self.settings.bm25_cache_entries, self.settings.bm25_cache_bytes)
        self._qdrant: Any = None  # the Qdrant engine, made on first use (its package loads only then)
        self.sentences = SentenceVectorCache(self.settings.explain_cache_entries)
        self.max_cached_indexes = max_cached_indexes
        self.max_cached_bytes = max_cached_bytes
        self._indexes: OrderedDict[tuple, QuantizedIndex] = OrderedDict()
        self._matrices: OrderedDict[tuple, EmbeddingMatrix] = OrderedDict()
        self._lock = threading.RLock()  # guards the caches
        self._build_lock = threading.Lock()  # one build at a time: builds are memory-heavy

    # -- caches ---------------------------------------------------------------------------------

    def embeddings(self, corpus_id: int, encoder: Any) -> EmbeddingMatrix:
        """The corpus' vectors for this encoder (from memory, else the store's cache, else embedded)."""
        return self._embeddings(corpus_id, encoder)[0]

    def _embeddings(self, corpus_id: int, encoder: Any, revision: int | None = None) -> tuple[EmbeddingMatrix, bool]:
        if revision is None:
            revision = self.store.get_corpus(corpus_id).revision
        key = (int(corpus_id), revision, str(encoder.cache_key), str(encoder.variant))
        with self._lock:
            if key in self._matrices:
                self._matrices.move_to_end(key)
                return self._matrices[key], False
        with self._build_lock:
            with self._lock:
                if key in self._matrices:
                    return self._matrices[key], False
            matrix = embed_corpus(self.store, corpus_id, encoder)
            with self._lock:
                self._matrices[key] = matrix
                while len(self._matrices) > 4:
                    self._matrices.popitem(last=False)
        return matrix, True

    def index(self, corpus_id: int, encoder: Any, config: IndexConfig,
              matrix: EmbeddingMatrix | None = None) -> tuple[QuantizedIndex, EmbeddingMatrix, bool]:
        """(index, matrix, built_now) for a config already resolved for this encoder.

        Pass `matrix` to build from a given version of the corpus (one response, one version).
        """
        if matrix is None:
            matrix, _ = self._embeddings(corpus_id, encoder)
        key = (int(corpus_id), *matrix.version, config)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key], matrix, False
        with self._build_lock:
            with self._lock:
                if key in self._indexes:
                    return self._indexes[key], matrix, False
            index = QuantizedIndex.build(matrix.vectors, config, self.kernels)
            with self._lock:
                self._indexes[key] = index
                self._evict()
        return index, matrix, True

    def engine_index(self, corpus_id: int, config: IndexConfig, matrix: EmbeddingMatrix) -> tuple[Any, bool]:
        """(Qdrant index, built_now) for a resolved config: Qdrant Edge (or the server the settings name),
        built once per corpus version and configuration."""
        key = (int(corpus_id), *matrix.version, config, "qdrant")
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key], False
        with self._build_lock:
            with self._lock:
                if key in self._indexes:
                    return self._indexes[key], False
            if self._qdrant is None:
                from pplx_demo.engines.qdrant import engine_from_settings  # noqa: PLC0415 - optional engine

                self._qdrant = engine_from_settings(self.settings)
            tanh = config.float_form == "tanh"
            vectors = np.tanh(matrix.vectors) if tanh else matrix.vectors
            index = self._qdrant.build(vectors, replace(config, float_form=None))
            index = _FloatFormView(index) if tanh else index
            with self._lock:
                self._indexes[key] = index
                self._evict()
        return index, True

    def _evict(self) -> None:
        total = sum(ix.nbytes for ix in self._indexes.values())
        while len(self._indexes) > 1 and (len(self._indexes) > self.max_cached_indexes
                                          or total > self.max_cached_bytes):
            _, old = self._indexes.popitem(last=False)
            total -= old.nbytes

    def forget(self, corpus_id: int | None = None) -> None:
        """Drop cached indexes and vectors (of one corpus, or all), e.g. after it was deleted."""
        with self._lock:
            for cache in (self._indexes, self._matrices):
                for key in [k for k in cache if corpus_id is None or k[0] == corpus_id]:
                    del cache[key]
        self.bm25.forget(corpus_id)

    # -- search ---------------------------------------------------------------------------------

    def search(self, corpus_id: int, model_key: str, variant: str, configs: list[IndexConfig], query: str,
               k: int = 10, *, explain: bool = False, engines: Sequence[str] = ("numpy",)) -> SearchResponse:
        """Rank the corpus' chunks for `query` under every config, each compared with float32 (numpy exact).

        `engines`: which engines answer each configuration, side by side ("numpy", "qdrant")."""
        engines = list(dict.fromkeys(engines or ("numpy",)))
        unknown = [e for e in engines if e not in ENGINES]
        if unknown:
            raise DemoError(f"unknown engine {unknown[0]!r}: use {' or '.join(ENGINES)}", field="engine",
                            cli_flag="--engine")
        if not isinstance(query, str) or not query.strip():
            raise DemoError("type a query first: the search text is empty")
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise DemoError(f"top-k must be a whole number between 1 and {MAX_K}, got {k!r}")
        if not configs:
            raise DemoError("choose at least one configuration to search with")
        corpus = self.store.get_corpus(corpus_id)
        if corpus.n_chunks == 0:
            raise DemoError(f"corpus {corpus.name!r} has no chunks to search")
        encoder = self.encoder_loader(model_key, variant)
        native = getattr(encoder, "int8_scheme", "tanh")
        # A Matryoshka size at or above the model's size is the full size: share its index.
        resolved = list(dict.fromkeys(c.for_model(int(encoder.dim), native) for c in configs))

        t0 = time.perf_counter()
        qvec = np.asarray(encoder.encode([query]), dtype=np.float32)
        embed_ms = (time.perf_counter() - t0) * 1e3

        matrix, loaded = self._embeddings(corpus_id, encoder, corpus.revision)
        embedded_now = matrix.embedded_now if loaded else 0
        truncated_now = matrix.truncated_now if loaded else 0
        t0 = time.perf_counter()
        baseline = BASELINE.for_model(int(encoder.dim), native)  # float32 in the model's float form
        base_index, matrix, built = self.index(corpus_id, encoder, baseline, matrix)
        base_build_ms = (time.perf_counter() - t0) * 1e3 if built else None
        base_hits = base_index.search(qvec, k)
        baseline_ids = [int(matrix.chunk_ids[r]) for r in base_hits.ids[0]]
        base_rank = {cid: i + 1 for i, cid in enumerate(baseline_ids)}
        db_bytes = self.store.file_size()

        columns = []
        for config in resolved:
            for engine in engines:
                depth = k * self.settings.hybrid_depth_factor if config.hybrid else k
                if engine == "numpy" and config == baseline:
                    index, hits, build_ms = base_index, base_hits, base_build_ms
                elif engine == "numpy":
                    t0 = time.perf_counter()
                    index, matrix, built = self.index(corpus_id, encoder, config.dense, matrix)
                    build_ms = (time.perf_counter() - t0) * 1e3 if built else None
                    hits = index.search(qvec, depth)
                else:
                    t0 = time.perf_counter()
                    engine_index, built = self.engine_index(corpus_id, config.dense, matrix)
                    build_ms = (time.perf_counter() - t0) * 1e3 if built else None
                    hits = engine_index.search(qvec[:, :], depth)
                    index, _, _ = self.index(corpus_id, encoder, config.dense, matrix)  # bytes of the codes
                column = self._column(config, index, hits, matrix, k, base_rank, baseline_ids, encoder.dim,
                                      db_bytes, build_ms, query, corpus)
                if engine != "numpy":
                    column = replace(column, engine=str(engine_index.engine))
                columns.append(column)
        self.store.touch_corpus(corpus_id)
        response = SearchResponse(query=query, corpus_id=int(corpus_id), model_name=str(encoder.name),
                                  model_key=str(encoder.model_key), variant=str(encoder.variant), k=int(k),
                                  columns=columns, embedded_now=embedded_now, truncated_now=truncated_now,
                                  embed_query_ms=embed_ms)
        return self._explained(response, encoder, qvec[0], corpus) if explain else response

    def _explained(self, response: SearchResponse, encoder: Any, qvec: np.ndarray, corpus: Any) -> SearchResponse:
        """Every displayed hit with its best sentence(s) and BM25 terms; each chunk is explained once."""
        order = list(dict.fromkeys(h.chunk_id for col in response.columns for h in col.hits))
        texts = {h.chunk_id: h.text for col in response.columns for h in col.hits}
        language = corpus_language(corpus.languages)
        terms = self.bm25.get(self.store, corpus.id, language).query_terms(response.query)
        limit = max(self.settings.explain_max_hits, max((len(c.hits) for c in response.columns), default=0))
        explained = explain_hits([texts[c] for c in order], response.query, encoder, query_vector=qvec,
                                 max_hits=min(len(order), limit * max(1, len(response.columns))),
                                 max_sentences=self.settings.explain_max_sentences, cache=self.sentences,
                                 terms=terms, language=language)
        by_chunk = dict(zip(order, explained.hits))
        columns = [replace(col, hits=[replace(h, explanation=by_chunk.get(h.chunk_id)) for h in col.hits])
                   for col in response.columns]
        return replace(response, columns=columns, explain_ms=explained.elapsed_ms, explain_method=explained.method)

    def _column(self, config: IndexConfig, index: QuantizedIndex, hits: SearchHits, matrix: EmbeddingMatrix, k: int,
                base_rank: dict[int, int], baseline_ids: list[int], full_dim: int,
                db_bytes: int, build_ms: float | None, query: str, corpus: Any) -> ColumnResult:
        timings = {"search": hits.timings.get("search", 0.0) * 1e3}
        if "rescore" in hits.timings:
            timings["rescore"] = hits.timings["rescore"] * 1e3
        rows, scores = hits.ids[0], hits.scores[0]
        legs: dict[int, tuple[int | None, int | None, list[str]]] = {}
        if config.hybrid:
            bm25 = self.bm25.get(self.store, corpus.id, corpus_language(corpus.languages))
            fused = hybrid_search(rows, scores, bm25, query, k, depth_factor=self.settings.hybrid_depth_factor,
                                  rrf_k=config.rrf_k, dense_chunk_ids=matrix.chunk_ids)
            rows, scores = fused.rows, fused.scores
            timings |= fused.timings_ms
            legs = {int(r): (d, b, t) for r, d, b, t in zip(rows, fused.dense_ranks, fused.bm25_ranks,
                                                             fused.matched_terms)}
        chunk_ids = [int(matrix.chunk_ids[r]) for r in rows]
        t0 = time.perf_counter()
        records = self.store.fetch_chunks(chunk_ids)
        timings["fetch_text"] = (time.perf_counter() - t0) * 1e3
        timings["total"] = sum(timings.values())
        if build_ms is not None:  # one-off cost of the first search with this config, not in total
            timings["build"] = build_ms
        out = []
        for i, (row, rec, s) in enumerate(zip(rows, records, scores)):
            dense_rank, bm25_rank, terms = legs.get(int(row), (None, None, []))
            out.append(Hit(rank=i + 1, chunk_id=rec.chunk_id, score=float(s), text=rec.text, title=rec.title,
                           uri=rec.uri, document_id=rec.document_id, baseline_rank=base_rank.get(rec.chunk_id),
                           dense_rank=dense_rank, bm25_rank=bm25_rank, matched_terms=list(terms)))
        return ColumnResult(config=config, hits=out, timings_ms=timings,
                            overlap_at_k=overlap_at_k(chunk_ids, baseline_ids, k),
                            rank_correlation=spearman_shared(chunk_ids, baseline_ids),
                            storage=storage_report(index, full_dim, db_bytes))


def response_payload(response: SearchResponse) -> dict[str, Any]:
    """The response as plain JSON-ready data: what the CLI's --json and the studio's API return."""
    return {
        "query": response.query, "corpus_id": response.corpus_id, "model": response.model_name,
        "model_key": response.model_key, "variant": response.variant, "k": response.k,
        "embedded_now": response.embedded_now, "truncated_now": response.truncated_now,
        "embed_query_ms": round(response.embed_query_ms, 3),
        "explain_ms": None if response.explain_ms is None else round(response.explain_ms, 3),
        "columns": [{
            "label": col.label, "configuration": col.label, "family": col.config.family, "engine": col.engine,
            "precision": col.config.precision, "mode": col.config.mode, "dim": col.config.dim,
            "int8_scheme": col.config.int8_scheme,
            "rescore_multiplier": col.config.rescore_multiplier if col.config.mode == "rescore" else None,
            "model": response.model_name,
            "timings_ms": {key: round(value, 3) for key, value in col.timings_ms.items()},
            "overlap_at_k": col.overlap_at_k, "rank_correlation": col.rank_correlation,
            "bytes_per_vector": col.storage.bytes_per_vector, "index_bytes": col.storage.index_nbytes,
            "ratio_vs_float32": col.storage.ratio_vs_float32, "projections": col.storage.projections,
            "hits": [_hit_payload(h) for h in col.hits],
        } for col in response.columns],
    }


def _hit_payload(h: Hit) -> dict[str, Any]:
    out: dict[str, Any] = {"rank": h.rank, "score": round(float(h.score), 6), "chunk_id": h.chunk_id,
                           "title": h.title, "uri": h.uri, "text": h.text, "baseline_rank": h.baseline_rank,
                           "float32_rank": h.baseline_rank}
    if h.dense_rank is not None or h.bm25_rank is not None or h.matched_terms:
        out |= {"dense_rank": h.dense_rank, "bm25_rank": h.bm25_rank, "matched_terms": h.matched_terms}
    e = h.explanation
    if e is not None:
        out["why"] = {"best_sentence": None if e.best is None else
                      {"char_start": e.best.char_start, "char_end": e.best.char_end, "score": round(e.best.score, 6),
                       "text": h.text[e.best.char_start:e.best.char_end], "position": e.best_position},
                      "sentences": e.n_sentences, "skipped": e.skipped,
                      "terms": [{"term": t.term, "char_start": t.char_start, "char_end": t.char_end} for t in e.terms]}
    return out
