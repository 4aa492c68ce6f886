"""Embed what a corpus lacks and read back its float32 vectors: the store persists, this runs the encoder.

`embed_corpus(store, corpus_id, encoder)` asks the store which chunks have no cached vector for the
encoder's cache key, encodes them in slices (cancel checks and progress between slices), stores all
new vectors in one transaction, and returns the corpus' `EmbeddingMatrix`. A cancel (`Cancelled`)
or an encoder error stores nothing. Every front end and the evaluation use this one path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.store import EmbeddingMatrix, MissingEmbeddings, Store

Progress = Callable[[int, int], None]

TEXTS_PER_CALL = 64  # standard variant: texts per encode() call between cancel checks
DOCUMENTS_PER_CALL = 8  # contextual variant: documents per encode_documents() call


def embed_corpus(store: Store, corpus_id: int, encoder: Any, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> EmbeddingMatrix:
    """The corpus' float32 vectors for `encoder`, embedding only chunks missing from the cache.

    `embedded_now` / `truncated_now` on the result say what this call had to embed and how many of
    those inputs the encoder cut at its token window.
    """
    cache_key, variant, dim = str(encoder.cache_key), str(encoder.variant), int(encoder.dim)
    missing = store.missing_embeddings(corpus_id, cache_key, variant, dim)
    stats = EncodeStats()
    rows: list[tuple[str, str, np.ndarray]] = []
    if missing:
        rows = encode_missing(missing, encoder, progress=progress, cancel=cancel, stats=stats)
        _check_cancel(cancel)
        store.put_embeddings(cache_key, variant, dim, rows)
    matrix = store.embedding_matrix(corpus_id, cache_key, variant, dim, missing.snapshot)
    return replace(matrix, embedded_now=len(rows), truncated_now=int(stats.truncated))


def encode_missing(missing: MissingEmbeddings, encoder: Any, *, progress: Progress | None = None,
                   cancel: threading.Event | None = None,
                   stats: EncodeStats | None = None) -> list[tuple[str, str, np.ndarray]]:
    """Vectors for what `missing` lists: (chunk hash, context key, float32 vector) rows, each key once."""
    stats = stats if stats is not None else EncodeStats()
    dim = int(encoder.dim)
    out: list[tuple[str, str, np.ndarray]] = []
    if missing.texts:
        total = len(missing.texts)
        for start in range(0, total, TEXTS_PER_CALL):
            _check_cancel(cancel)
            part = missing.texts[start:start + TEXTS_PER_CALL]
            vectors = checked_vectors(encoder.encode([text for _, text in part], stats=stats), len(part), dim)
            out.extend((chunk_hash, "", v) for (chunk_hash, _), v in zip(part, vectors))
            if progress is not None:
                progress(start + len(part), total)
    if missing.documents:
        total, done, seen = missing.n_inputs, 0, set()
        for start in range(0, len(missing.documents), DOCUMENTS_PER_CALL):
            _check_cancel(cancel)
            batch = missing.documents[start:start + DOCUMENTS_PER_CALL]
            per_doc = encoder.encode_documents([[text for _, _, text in doc] for doc in batch], stats=stats)
            for doc, vectors in zip(batch, per_doc):
                vectors = checked_vectors(vectors, len(doc), dim)
                for (chunk_hash, context_key, _), v in zip(doc, vectors):
                    if (chunk_hash, context_key) not in seen:  # two identical documents share their vectors
                        seen.add((chunk_hash, context_key))
                        out.append((chunk_hash, context_key, v))
                done += len(doc)
            if progress is not None:
                progress(done, total)
    return out


def checked_vectors(vectors: Any, n: int, dim: int) -> np.ndarray:
    """`vectors` as a finite (n, dim) float32 matrix; DemoError naming what the encoder got wrong."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (n, dim):
        raise DemoError(f"the encoder returned vectors of shape {vectors.shape}, expected {(n, dim)}")
    if not np.isfinite(vectors).all():
        raise DemoError("the encoder returned NaN or infinite values; nothing was stored")
    return vectors


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("embedding was cancelled; nothing was stored")
