"""Hybrid (BM25 + dense, RRF) scored like every other configuration of the runner.

For each dense configuration, per query: the dense index's top (k x depth factor) chunks and BM25's
top (k x depth factor) chunks (BM25 over the same stored chunk texts, the baseline's tokenisation)
are fused by reciprocal rank fusion and cut to k chunks; the chunks become documents by
"max_chunk" (a document takes its best chunk's place in the fused order) and are scored on the
document-level qrels. k follows the runner's candidate-pool rules (`runner.search_depths`): k =
10 x the most chunks one document has for nDCG@10 / Recall@10 / MRR@10, 100 x that for Recall@100,
each capped at the corpus. Rescoring configurations rescore their own k x depth dense candidates.

The documents of the fused list are ranked by their fused position (RRF's tie-break included), not
re-sorted by score, so a tie is broken as the app shows it. `bytes_per_vector` adds the BM25
index's measured bytes per chunk to the dense index's; `search_ms` is per query: the dense search
for the top-10 pool plus BM25 (scored once per query, at the deeper pool) plus the fusion.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.bm25 import bm25_setup
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.metrics import retention
from pplx_demo.evaluate.runner import (DEPTH, TOP, EvalConfigResult, EvalVectors, Progress, checked_chunking,
                                       combine_depths, corpus_vectors, dataset_vectors, doc_level_run, evaluate_vectors,
                                       search_all, search_depths)
from pplx_demo.hybrid import DEPTH_FACTOR, RRF_K, Bm25Index, corpus_language, rrf_fuse
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.store import Store


@dataclass
class HybridEvalResult(EvalConfigResult):
    """One "hybrid: BM25 + <dense config> (RRF k=..)" row; `config` is the hybrid configuration (its
    `dense` field is the dense leg)."""

    depth_factor: int = DEPTH_FACTOR
    bm25_bytes_per_chunk: int = 0
    bm25_setup: str = ""


def _fused_hits(dense_rows: np.ndarray, bm25_rows: list[np.ndarray], leg: int, k: int, rrf_k: int
                ) -> np.ndarray:
    """(q, k) fused chunk rows, -1 padded, from each query's dense and BM25 legs cut to `leg`."""
    out = np.full((dense_rows.shape[0], k), -1, dtype=np.int64)
    for qi in range(dense_rows.shape[0]):
        ids, _ = rrf_fuse([dense_rows[qi, :leg], bm25_rows[qi][:leg]], k=rrf_k, top=k)
        out[qi, :ids.size] = ids
    return out


def _rank_scores(rows: np.ndarray) -> np.ndarray:
    """Strictly falling scores in fused order, so `doc_level_run` and the metrics keep that order."""
    return np.broadcast_to(np.arange(rows.shape[1], 0, -1, dtype=np.float64), rows.shape).copy()


def evaluate_hybrid(vec: EvalVectors, qrels: dict[str, dict[str, int]], encoder: Any,
                    dense_configs: Sequence[IndexConfig], *, language: str | None = None, rrf_k: int = RRF_K,
                    depth_factor: int = DEPTH_FACTOR, kernels: str = "auto") -> list[HybridEvalResult]:
    """One hybrid row per distinct dense configuration, on already-embedded vectors (with chunk texts).

    `language` picks the BM25 stemmer / stop words (None: English rules); "% of float32" is against
    the dense float32 full-size result on the same vectors.
    """
    if not vec.chunk_texts or len(vec.chunk_texts) != vec.n_chunks or len(vec.query_texts) != len(vec.query_names):
        raise DemoError("hybrid evaluation needs the chunk and query texts of the evaluation corpus")
    if not isinstance(depth_factor, (int, np.integer)) or depth_factor < 1:
        raise DemoError(f"the hybrid depth factor must be a whole number >= 1, got {depth_factor!r}")
    dense, reference = evaluate_vectors(vec, qrels, encoder, [c.dense for c in dense_configs], kernels)
    bm25 = Bm25Index(vec.chunk_texts, language)
    bm25_bytes = math.ceil(bm25.nbytes / max(1, vec.n_chunks))
    k_top, k_deep = search_depths(vec.n_chunks, vec.max_chunks_per_doc)
    leg_top, leg_deep = min(vec.n_chunks, k_top * depth_factor), min(vec.n_chunks, k_deep * depth_factor)
    t0 = time.perf_counter()
    bm25_rows = [bm25.search(q, leg_deep).rows if q.strip() else np.zeros(0, np.int64) for q in vec.query_texts]
    bm25_s = time.perf_counter() - t0
    n_q = max(1, len(vec.query_names))
    out = []
    for d in dense:
        config = d.config
        index = QuantizedIndex.build(vec.chunk_vectors, config, kernels)
        rows, _, dense_s = search_all(index, vec.query_vectors, leg_top)
        t0 = time.perf_counter()
        top_rows = _fused_hits(rows, bm25_rows, leg_top, k_top, rrf_k)
        fuse_s = time.perf_counter() - t0
        top_run = doc_level_run(top_rows, _rank_scores(top_rows), vec.row_doc, vec.doc_names, vec.query_names, TOP)
        if leg_deep > leg_top:
            rows, _, _ = search_all(index, vec.query_vectors, leg_deep)
        deep_rows = _fused_hits(rows, bm25_rows, leg_deep, k_deep, rrf_k)
        deep_run = doc_level_run(deep_rows, _rank_scores(deep_rows), vec.row_doc, vec.doc_names, vec.query_names,
                                 DEPTH)
        metrics, per_query = combine_depths(top_run, deep_run, qrels)
        candidates = {"k@10": k_top, "k@100": k_deep, "leg@10": leg_top, "leg@100": leg_deep}
        out.append(HybridEvalResult(
            model_key=d.model_key, model_name=d.model_name, variant=d.variant,
            config=replace(config, hybrid=True, rrf_k=int(rrf_k)), metrics=metrics,
            pct_of_float32=retention(metrics, reference.metrics),
            bytes_per_vector=index.bytes_per_vector + bm25_bytes,
            search_ms=1e3 * (dense_s + bm25_s + fuse_s) / n_q, candidates=candidates, per_query=per_query,
            depth_factor=int(depth_factor),
            bm25_bytes_per_chunk=bm25_bytes, bm25_setup=bm25.setup.describe()))
    return out


def run_hybrid_evaluation(store: Store, dataset: RetrievalDataset, model_key: str, variant: str | None,
                          dense_configs: list[IndexConfig], *, chunking: tuple[int, int] | None = None,
                          rrf_k: int = RRF_K, depth_factor: int = DEPTH_FACTOR, bm25_language: str | None = None,
                          owner: str | None = None, progress: Progress | None = None,
                          encoder_loader: Callable[[str, str | None], Any]) -> list[HybridEvalResult]:
    """Hybrid rows for a dataset (XQuAD, BEIR), from the vectors `run_evaluation` stored (cache hits
    when it ran first with the same model, variant and chunking). BM25 language as the runner's."""
    if not dense_configs:
        raise DemoError("choose at least one dense configuration to fuse with BM25")
    if not dataset.corpus or not dataset.judged_queries():
        raise DemoError(f"dataset {dataset.name} needs documents and judged queries")
    encoder = encoder_loader(model_key, variant)
    chunking = checked_chunking(chunking, encoder)
    vec = dataset_vectors(store, dataset, encoder, chunking, owner=owner, progress=progress)
    return evaluate_hybrid(vec, dataset.qrels, encoder, dense_configs,
                           language=bm25_setup(bm25_language or dataset.language).language,
                           rrf_k=rrf_k, depth_factor=depth_factor)


def run_corpus_hybrid_evaluation(store: Store, corpus_id: int, queries: dict[str, str],
                                 qrels: dict[str, dict[str, int]], model_key: str, variant: str | None,
                                 dense_configs: list[IndexConfig], *, rrf_k: int = RRF_K,
                                 depth_factor: int = DEPTH_FACTOR, bm25_language: str | None = None,
                                 owner: str | None = None, progress: Progress | None = None,
                                 encoder_loader: Callable[[str, str | None], Any]
                                 ) -> list[HybridEvalResult]:
    """Hybrid rows for a stored corpus with uploaded queries and qrels (as `run_corpus_evaluation`).

    BM25 language: `bm25_language`, else the corpus' one detected language, else English rules.
    """
    info = store.check_access(corpus_id, owner)
    if not dense_configs:
        raise DemoError("choose at least one dense configuration to fuse with BM25")
    judged = {q: j for q, j in qrels.items() if q in queries}
    if not judged:
        raise DemoError("none of the qrels' query ids is in the queries file")
    encoder = encoder_loader(model_key, variant)
    vec = corpus_vectors(store, corpus_id, queries, judged, encoder, owner=owner, progress=progress)
    return evaluate_hybrid(vec, judged, encoder, dense_configs,
                           language=bm25_language or corpus_language(info.languages),
                           rrf_k=rrf_k, depth_factor=depth_factor)
