"""Evaluate many index configurations from ONE set of cached float embeddings.

A dataset's documents (optionally chunked) and its queries are stored as two corpora in the
`Store`, so `Store.embeddings` embeds each text once per (model, variant) and every later run is a
cache hit. Each `IndexConfig` is then built from those float vectors, the queries are searched, and
chunk hits become document scores ("max_chunk": a document scores its best chunk), so chunking
and late chunking are compared on document-level qrels.

Candidate pools are the app's: nDCG@10, Recall@10 and MRR@10 come from a search for the top 10
(k = 10, times the most chunks one document has when documents are chunked, so the ten best
documents are exact), Recall@100 from a search for the top 100 (k = 100 x the same factor). So
"binary + rescore xM" re-scores k x M Hamming candidates, as a top-10 search in the app does,
never a deeper pool. Search latency is that of the top-10 search.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pplx_demo.documents import Chunk, Document
from pplx_demo.embedding import embed_corpus
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.metrics import METRICS, per_query_metrics, retention
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.store import Store

Progress = Callable[[int, int], None]
Run = dict[str, dict[str, float]]

DOC_SCORINGS = ("max_chunk",)
EVAL_PREFIX = "[eval] "
TOP = 10  # documents the @10 metrics read (nDCG@10, Recall@10, MRR@10)
DEPTH = 100  # documents ranked per query for Recall@100
AT_TOP = ("ndcg@10", "recall@10", "mrr@10")  # metrics computed from the top-10 search
_QUERY_BATCH = 256  # queries searched per call (bounds the (queries x candidates) arrays)
REFERENCE = IndexConfig("float32", "plain", None)
RAW_FLOAT = IndexConfig("float32", float_form="raw")  # the raw pooled cosine, next to a tanh reference


@dataclass
class EvalConfigResult:
    """Quality, cost and speed of one configuration on one dataset (late chunking: `variant`)."""

    model_key: str
    model_name: str
    variant: str
    config: IndexConfig  # int8 scheme resolved for the model
    metrics: dict[str, float]  # METRICS -> 0..1
    pct_of_float32: dict[str, float]  # METRICS -> % of the full-size float32 result, same model and variant
    bytes_per_vector: int  # measured bytes the index holds per vector
    search_ms: float  # mean per query of the top-10 search, queries searched in batches
    candidates: dict[str, int] = field(default_factory=dict)  # "k@10" / "k@100": chunks asked of the index;
    # "pool@10" / "pool@100": Hamming candidates re-scored (rescore mode only)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)  # METRICS -> {query id: value}, the
    # judged queries `metrics` averages (confidence intervals and paired tests resample these)

    @property
    def label(self) -> str:
        """The configuration's canonical name; the variant is its own field (`variant`), never in the label."""
        return str(self.config)

    @property
    def series(self) -> tuple[str, str, IndexConfig]:
        """What identifies this result across datasets: (model key, variant, configuration)."""
        return (self.model_key, self.variant, self.config)


@dataclass
class EvalReport:
    """Every configuration's result on one dataset, the BM25 baseline, and what had to be embedded."""

    dataset: str
    model_key: str
    model_name: str
    variant: str
    results: list[EvalConfigResult]
    bm25: dict[str, float] | None
    embedded_now: int  # texts embedded by this run (0 when everything came from the cache)
    n_documents: int = 0
    n_chunks: int = 0
    n_queries: int = 0
    chunking: tuple[int, int] | None = None  # (chunk_tokens, overlap_tokens); None = whole documents
    doc_scoring: str = "max_chunk"
    bm25_setup: str = ""
    language: str | None = None
    embed_s: float = 0.0
    truncated: int = 0  # texts this run's embedding cut at the model's token cap (0 when all came from the cache)
    max_tokens: int | None = None  # the encoder's token cap
    bm25_per_query: dict[str, dict[str, float]] = field(default_factory=dict)  # METRICS -> {query id: value}
    reference_per_query: dict[str, dict[str, float]] = field(default_factory=dict)  # float32 full size, same
    # model and variant, per query (present even when float32 itself was not asked for)

    def result(self, config: IndexConfig | str) -> EvalConfigResult:
        """The result of this configuration (an IndexConfig or any spelling `IndexConfig.parse` takes)."""
        wanted = config if isinstance(config, IndexConfig) else IndexConfig.parse(config)
        for r in self.results:
            if r.config == wanted or r.config == wanted.resolved(r.config.int8_scheme or "tanh"):
                return r
        raise DemoError(f"no configuration {str(wanted)!r} in this report")

    def pareto(self, metric: str = "ndcg@10") -> list[EvalConfigResult]:
        """Results on the bytes-per-vector vs `metric` Pareto frontier, cheapest first."""
        points = [(r.bytes_per_vector, r.metrics[metric]) for r in self.results]
        return [self.results[i] for i in pareto_frontier(points)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (configs as dicts, metrics as 0..1 floats)."""
        data = asdict(self)
        data["chunking"] = list(self.chunking) if self.chunking else None
        return data


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, quality) points no other point beats (cost <=, quality >=), by cost.

    Equal points keep the first; NaN qualities are never on the frontier.
    """
    order = sorted((i for i, (c, q) in enumerate(points) if not math.isnan(q)),
                   key=lambda i: (points[i][0], -points[i][1], i))
    frontier: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            frontier.append(i)
            best = points[i][1]
    return frontier


# --------------------------------------------------------------------------- storing the dataset


def _fingerprint(parts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:12]


def _whole_chunk(text: str, tokens: int) -> list[Chunk]:
    return [Chunk(order=0, text=text, char_start=0, char_end=len(text), token_count=tokens)] if text.strip() else []


def _ensure_corpus(store: Store, name: str, owner: str | None, build: Callable[[], tuple[list[Document], list[list[Chunk]]]],
                   chunking: dict | None) -> int:
    """The id of the stored corpus with this (content-derived) name, storing it first if needed."""
    info = store.find_corpus(name, owner)
    if info is not None:
        return info.id
    documents, chunks = build()
    try:
        return store.add_corpus(name, documents, chunks, owner=owner, chunking=chunking, source="evaluation")
    except DemoError:
        info = store.find_corpus(name, owner)  # another thread stored the same content first
        if info is None:
            raise
        return info.id


def store_dataset(store: Store, dataset: RetrievalDataset, encoder: Any, chunking: tuple[int, int] | None,
                  owner: str | None = None) -> tuple[int, int]:
    """(documents corpus id, queries corpus id) for `dataset` chunked this way, stored once.

    Names carry a hash of the content and chunking, so an identical later run finds them.
    """
    from pplx_demo.ingest.chunking import chunk_text

    doc_ids = list(dataset.corpus)
    texts = [dataset.document_text(d) for d in doc_ids]
    chunk_label = "whole documents" if chunking is None else f"chunks {chunking[0]}/{chunking[1]}"
    tok_name = type(encoder.tokenizer).__name__ + str(len(encoder.tokenizer))
    fp = _fingerprint([*doc_ids, *texts, chunk_label, tok_name if chunking else ""])

    def build_docs() -> tuple[list[Document], list[list[Chunk]]]:
        documents = [Document(uri=f"eval:{d}", title=dataset.corpus[d][0], text=t, external_id=d,
                              metadata={"lang": dataset.language} if dataset.language else {})
                     for d, t in zip(doc_ids, texts)]
        if chunking is None:
            counts = encoder.count_tokens(texts)
            return documents, [_whole_chunk(t, n) for t, n in zip(texts, counts)]
        return documents, [chunk_text(t, encoder.tokenizer, chunking[0], chunking[1]) for t in texts]

    corpus_id = _ensure_corpus(store, f"{EVAL_PREFIX}{dataset.name} · {chunk_label} · {fp}", owner, build_docs,
                               {"chunk_tokens": chunking[0], "overlap_tokens": chunking[1]} if chunking else None)

    query_ids = list(dataset.queries)
    qtexts = [dataset.queries[q] for q in query_ids]
    qfp = _fingerprint([*query_ids, *qtexts])

    def build_queries() -> tuple[list[Document], list[list[Chunk]]]:
        counts = encoder.count_tokens(qtexts)
        documents = [Document(uri=f"eval-query:{q}", title="", text=t, external_id=q,
                              metadata={"lang": dataset.query_language or dataset.language}
                              if (dataset.query_language or dataset.language) else {})
                     for q, t in zip(query_ids, qtexts)]
        return documents, [_whole_chunk(t, n) for t, n in zip(qtexts, counts)]

    queries_id = _ensure_corpus(store, f"{EVAL_PREFIX}{dataset.name} · queries · {qfp}", owner, build_queries, None)
    return corpus_id, queries_id


# --------------------------------------------------------------------------- scoring


def doc_level_run(hit_rows: np.ndarray, hit_scores: np.ndarray, row_doc: np.ndarray, doc_names: Sequence[str],
                  query_names: Sequence[str], depth: int = DEPTH) -> Run:
    """Chunk hits (q, k) -> per query the top `depth` documents scored by their best chunk."""
    run: Run = {}
    for qi, qname in enumerate(query_names):
        rows = hit_rows[qi]
        valid = rows >= 0
        docs = row_doc[rows[valid]]
        scores = hit_scores[qi][valid]
        # Hits are best first, so a document's first appearance is its best chunk.
        _, first = np.unique(docs, return_index=True)
        first.sort()
        first = first[:depth]
        run[qname] = {doc_names[docs[j]]: float(scores[j]) for j in first}
    return run


def search_all(index: QuantizedIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(rows (q, k), scores (q, k), seconds spent searching) for every query, in batches."""
    return _search_all(index, queries, k)


def _search_all(index: QuantizedIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    ids, scores, seconds = [], [], 0.0
    for start in range(0, queries.shape[0], _QUERY_BATCH):
        t0 = time.perf_counter()
        hits = index.search(queries[start:start + _QUERY_BATCH], k)
        seconds += time.perf_counter() - t0
        ids.append(hits.ids)
        scores.append(hits.scores)
    return np.concatenate(ids), np.concatenate(scores), seconds


def _normalise_configs(configs: Sequence[IndexConfig], full_dim: int, native: str) -> list[IndexConfig]:
    return list(dict.fromkeys(c.for_model(full_dim, native) for c in configs))  # type: ignore[arg-type]


@dataclass
class EvalVectors:
    """Float vectors of one dataset for one encoder, with row -> document / query names."""

    chunk_vectors: np.ndarray
    row_doc: np.ndarray  # row -> document number
    doc_names: list[str]
    query_vectors: np.ndarray
    query_names: list[str]
    max_chunks_per_doc: int
    embedded_now: int
    n_chunks: int
    truncated: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    chunk_texts: list[str] = field(default_factory=list)  # row -> chunk text (what a BM25 leg indexes)
    query_texts: list[str] = field(default_factory=list)  # query row -> text


_Vectors = EvalVectors  # the earlier private name


def _vectors(store: Store, corpus_id: int, queries_id: int, encoder: Any, progress: Progress | None,
             cancel: Any = None) -> EvalVectors:
    t0 = time.perf_counter()
    table = store.chunk_table(corpus_id)
    qtable = store.chunk_table(queries_id)
    total = len(table) + len(qtable)

    def corpus_progress(done: int, n: int) -> None:
        if progress is not None:
            progress(min(done, len(table)), total)

    def query_progress(done: int, n: int) -> None:
        if progress is not None:
            progress(len(table) + min(done, len(qtable)), total)

    matrix = embed_corpus(store, corpus_id, encoder, progress=corpus_progress, cancel=cancel)
    qmatrix = embed_corpus(store, queries_id, encoder, progress=query_progress, cancel=cancel)
    if not np.array_equal(matrix.chunk_ids, table.chunk_ids) or not np.array_equal(qmatrix.chunk_ids, qtable.chunk_ids):
        raise DemoError("the evaluation corpus changed while it was being read; please retry")
    names = [x if x is not None else str(d) for x, d in zip(table.external_ids, table.document_ids)]
    doc_index: dict[str, int] = {}
    row_doc = np.fromiter((doc_index.setdefault(n, len(doc_index)) for n in names), dtype=np.int64, count=len(names))
    counts = np.bincount(row_doc) if len(row_doc) else np.zeros(1, dtype=np.int64)
    qnames = [x if x is not None else str(d) for x, d in zip(qtable.external_ids, qtable.document_ids)]
    if progress is not None:
        progress(total, total)
    return EvalVectors(chunk_vectors=matrix.vectors, row_doc=row_doc, doc_names=list(doc_index),
                       query_vectors=qmatrix.vectors, query_names=qnames, max_chunks_per_doc=int(counts.max()),
                       embedded_now=matrix.embedded_now + qmatrix.embedded_now, n_chunks=len(table),
                       truncated=matrix.truncated_now + qmatrix.truncated_now, seconds=time.perf_counter() - t0,
                       chunk_texts=list(table.texts), query_texts=list(qtable.texts))


def search_depths(n_chunks: int, max_chunks_per_doc: int) -> tuple[int, int]:
    """(k for the top-10 metrics, k for Recall@100): chunks to ask the index for, capped at the corpus.

    A document's best chunk is within the top d x max_chunks_per_doc chunks of an exact search for
    the d-th best document, so the document ranking is exact for float32 / int8 / binary.
    """
    per_doc = max(1, max_chunks_per_doc)
    return min(n_chunks, TOP * per_doc), min(n_chunks, DEPTH * per_doc)


def _evaluate_configs(vec: EvalVectors, qrels: dict[str, dict[str, int]], encoder: Any,
                      configs: Sequence[IndexConfig], kernels: str = "auto") -> list[EvalConfigResult]:
    return evaluate_vectors(vec, qrels, encoder, configs, kernels)[0]


def evaluate_vectors(vec: EvalVectors, qrels: dict[str, dict[str, int]], encoder: Any,
                     configs: Sequence[IndexConfig], kernels: str = "auto"
                     ) -> tuple[list[EvalConfigResult], EvalConfigResult]:
    """(one result per distinct config, the float32 full-size reference) on already-embedded vectors.

    Configs are resolved for the encoder and de-duplicated as `run_evaluation` does; the reference
    is computed even when float32 was not asked for (it is what "% of float32" divides by).
    """
    if vec.n_chunks == 0:
        raise DemoError("the evaluation corpus has no text to search")
    full_dim = int(encoder.dim)
    native = getattr(encoder, "int8_scheme", "tanh")
    resolved = _normalise_configs(configs, full_dim, native)
    reference = REFERENCE.resolved(native)
    if reference.float_form == "tanh" and reference in resolved and RAW_FLOAT not in resolved:
        # pplx-embed's float32 reference is tanh(pooled); the raw pooled cosine is shown once beside it
        resolved.insert(resolved.index(reference) + 1, RAW_FLOAT)
    k_top, k_deep = search_depths(vec.n_chunks, vec.max_chunks_per_doc)
    # Queries without text (zero vectors) stay in the qrels and score 0.
    results: dict[IndexConfig, tuple[dict[str, float], int, float, dict[str, int], dict[str, dict[str, float]]]] = {}
    for config in ([reference] if reference not in resolved else []) + resolved:
        index = QuantizedIndex.build(vec.chunk_vectors, config, kernels)
        # Top 10 from a top-10 search: a rescore re-ranks k_top x multiplier candidates, as in the app.
        rows, scores, seconds = _search_all(index, vec.query_vectors, k_top)
        top_run = doc_level_run(rows, scores, vec.row_doc, vec.doc_names, vec.query_names, TOP)
        if k_deep > k_top:
            rows, scores, _ = _search_all(index, vec.query_vectors, k_deep)
        deep_run = doc_level_run(rows, scores, vec.row_doc, vec.doc_names, vec.query_names, DEPTH)
        metrics, per_query = combine_depths(top_run, deep_run, qrels)
        candidates = {"k@10": k_top, "k@100": k_deep}
        if config.mode == "rescore":
            candidates |= {"pool@10": min(vec.n_chunks, k_top * config.rescore_multiplier),
                           "pool@100": min(vec.n_chunks, k_deep * config.rescore_multiplier)}
        ms = 1e3 * seconds / max(1, len(vec.query_names))
        results[config] = (metrics, index.bytes_per_vector, ms, candidates, per_query)
    ref_metrics = results[reference][0]
    name = str(encoder.name)
    variant = str(encoder.variant)

    def result(config: IndexConfig) -> EvalConfigResult:
        metrics, nbytes, ms, candidates, per_query = results[config]
        return EvalConfigResult(model_key=str(encoder.model_key), model_name=name, variant=variant,
                                config=config, metrics=metrics, pct_of_float32=retention(metrics, ref_metrics),
                                bytes_per_vector=nbytes, search_ms=ms, candidates=candidates, per_query=per_query)

    return [result(c) for c in resolved], result(reference)


def combine_depths(top_run: Run, deep_run: Run, qrels: dict[str, dict[str, int]]
                   ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(means, per query) of METRICS: the @10 metrics from the top-10 run, Recall@100 from the deep run."""
    top, deep = per_query_metrics(top_run, qrels), per_query_metrics(deep_run, qrels)
    per_query = {m: (top[m] if m in AT_TOP else deep[m]) for m in METRICS}
    means = {m: (sum(v.values()) / len(v) if v else 0.0) for m, v in per_query.items()}
    return means, per_query


def _means(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """METRICS averaged as `evaluate_run` averages them (0 when no query is judged)."""
    return {m: (sum(per_query[m].values()) / len(per_query[m]) if per_query.get(m) else 0.0) for m in METRICS}


def checked_chunking(chunking: tuple[int, int] | None, encoder: Any) -> tuple[int, int] | None:
    """(chunk_tokens, overlap_tokens) as ints, validated against the encoder's window; None stays None."""
    if chunking is None:
        return None
    from pplx_demo.ingest.chunking import validate_chunking

    chunking = (int(chunking[0]), int(chunking[1]))
    validate_chunking(chunking[0], chunking[1], encoder)  # a clear error, not cut or broken chunks
    return chunking


def dataset_vectors(store: Store, dataset: RetrievalDataset, encoder: Any, chunking: tuple[int, int] | None, *,
                    owner: str | None = None, progress: Progress | None = None,
                    cancel: Any = None) -> EvalVectors:
    """The dataset's chunk and query vectors for `encoder`, stored and embedded once (cache hits later),
    exactly as `run_evaluation` reads them; `chunking` as there (validate it first)."""
    corpus_id, queries_id = store_dataset(store, dataset, encoder, chunking, owner=owner)
    return _vectors(store, corpus_id, queries_id, encoder, progress, cancel)


def corpus_vectors(store: Store, corpus_id: int, queries: dict[str, str], judged: dict[str, dict[str, int]],
                   encoder: Any, *, owner: str | None = None, progress: Progress | None = None,
                   table: Any = None, cancel: Any = None) -> EvalVectors:
    """A stored corpus' chunk vectors and the uploaded queries' vectors, as `run_corpus_evaluation`
    reads them (documents named by external id, else uri). Check access and qrels first."""
    table = table if table is not None else store.chunk_table(corpus_id)
    info = store.get_corpus(corpus_id)
    qds = RetrievalDataset(name=f"{info.name} queries", corpus={}, queries=queries, qrels=judged)
    query_ids = list(queries)
    qtexts = [queries[q] for q in query_ids]
    qfp = _fingerprint([*query_ids, *qtexts])

    def build_queries() -> tuple[list[Document], list[list[Chunk]]]:
        counts = encoder.count_tokens(qtexts)
        return ([Document(uri=f"eval-query:{q}", title="", text=t, external_id=q) for q, t in zip(query_ids, qtexts)],
                [_whole_chunk(t, n) for t, n in zip(qtexts, counts)])

    queries_id = _ensure_corpus(store, f"{EVAL_PREFIX}{qds.name} · {qfp}", owner, build_queries, None)
    vec = _vectors(store, corpus_id, queries_id, encoder, progress, cancel)
    # Name documents by external id, else uri, so qrels can use either.
    vec.doc_names = _corpus_doc_names(table, vec.doc_names)
    return vec


def _max_tokens(encoder: Any) -> int | None:
    value = getattr(encoder, "max_tokens", None)
    return int(value) if isinstance(value, (int, np.integer)) else None


def _corpus_doc_names(table: Any, names: list[str]) -> list[str]:
    by_doc_id = {}
    for ext, uri, doc_id in zip(table.external_ids, table.uris, table.document_ids):
        by_doc_id[str(doc_id)] = ext if ext is not None else uri
    return [by_doc_id.get(n, n) for n in names]


def _chunking_of(settings: dict | None) -> tuple[int, int] | None:
    if not settings:
        return None
    try:
        return int(settings["chunk_tokens"]), int(settings.get("overlap_tokens", 0))
    except (KeyError, TypeError, ValueError):
        return None
