"""The embedding cache: float32 vectors stored once per (encoder cache key, variant, chunk hash, context
key); which a corpus lacks, storing computed ones (one transaction), reading them back in chunk order."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pplx_demo.errors import DemoError
from pplx_demo.store.connection import _Connection, _insert_frame
from pplx_demo.store.records import CorpusSnapshot, EmbeddingMatrix, MissingEmbeddings
from pplx_demo.store.schema import _CHUNK_ORDER


class _EmbeddingCache(_Connection):
    """The embedding cache (part of `Store`)."""

    def snapshot(self, corpus_id: int) -> CorpusSnapshot:
        """The corpus as of now (one statement, one consistent view); DemoError if it does not exist."""
        row = self._one("""SELECT revision, (SELECT count(*) FROM chunks WHERE corpus_id = c.id),
                                  (SELECT coalesce(max(id), 0) FROM chunks WHERE corpus_id = c.id)
                           FROM corpora c WHERE c.id = ?""", [int(corpus_id)])
        if row is None:
            raise DemoError(f"corpus {corpus_id} does not exist (it may have been deleted or expired)")
        return CorpusSnapshot(int(corpus_id), int(row[0]), int(row[1]), int(row[2]))

    def missing_embeddings(self, corpus_id: int, cache_key: str, variant: str, dim: int,
                           snapshot: CorpusSnapshot | None = None) -> MissingEmbeddings:
        """The chunks of the corpus (as of `snapshot`) with no cached vector for this cache key.

        Standard variant: each missing text once. Contextual: every document with a missing chunk,
        whole (a chunk's vector depends on its document).
        """
        snap = snapshot or self.snapshot(corpus_id)
        ctx = _context_key_sql(variant)
        rows = self._all(f"""
            SELECT k.document_id, k.content_hash, {ctx}, k.text, e.vector IS NULL
            FROM chunks k JOIN documents d ON d.id = k.document_id
            LEFT JOIN embeddings e ON e.model_key = ? AND e.variant = ? AND e.dim = ?
                 AND e.chunk_hash = k.content_hash AND e.context_key = {ctx}
            WHERE k.corpus_id = ? AND k.id <= ?
            ORDER BY {_CHUNK_ORDER}""", [str(cache_key), variant, int(dim), int(corpus_id), snap.max_chunk_id])
        missing = MissingEmbeddings(snap)
        if variant == "contextual":
            docs: dict[int, list[tuple[str, str, str]]] = {}
            lacking: set[int] = set()
            for doc_id, chunk_hash, context_key, text, absent in rows:
                docs.setdefault(int(doc_id), []).append((chunk_hash, context_key, text))
                if absent:
                    lacking.add(int(doc_id))
            missing.documents = [chunks for doc_id, chunks in docs.items() if doc_id in lacking]
        else:
            seen: dict[str, str] = {}
            for _, chunk_hash, _, text, absent in rows:
                if absent:
                    seen.setdefault(chunk_hash, text)
            missing.texts = list(seen.items())
        return missing

    def put_embeddings(self, cache_key: str, variant: str, dim: int,
                       rows: Sequence[tuple[str, str, np.ndarray]]) -> int:
        """Store computed vectors (chunk hash, context key, float32 (dim,)) in one transaction.

        Every vector is checked first (shape, finite): one bad vector stores nothing. Vectors already
        cached are kept (a concurrent run may have stored the same). Returns how many rows were given.
        """
        _context_key_sql(variant)  # rejects an unknown variant
        if not rows:
            return 0
        hashes, keys, blobs = [], [], []
        for chunk_hash, context_key, vector in rows:
            v = np.asarray(vector, dtype=np.float32)
            if v.shape != (int(dim),):
                raise DemoError(f"a vector of shape {v.shape} cannot be stored as a {dim}-d embedding")
            if not np.isfinite(v).all():
                raise DemoError("the encoder returned NaN or infinite values; nothing was stored")
            hashes.append(str(chunk_hash))
            keys.append(str(context_key))
            blobs.append(v.tobytes())
        frame = pd.DataFrame({"model_key": str(cache_key), "variant": variant, "chunk_hash": hashes,
                              "context_key": keys, "dim": int(dim), "vector": blobs, "created": time.time()})
        with self._transaction() as tx:
            _insert_frame(tx, "embeddings", frame, or_ignore=True)
        return len(blobs)

    def embedding_matrix(self, corpus_id: int, cache_key: str, variant: str, dim: int,
                         snapshot: CorpusSnapshot | None = None) -> EmbeddingMatrix:
        """The corpus' cached vectors (as of `snapshot`) in chunk_table order; DemoError if any is missing."""
        snap = snapshot or self.snapshot(corpus_id)
        ctx = _context_key_sql(variant)
        res = self._cur().execute(f"""
            SELECT k.id, e.vector
            FROM chunks k JOIN documents d ON d.id = k.document_id
            JOIN embeddings e ON e.model_key = ? AND e.variant = ? AND e.dim = ?
                 AND e.chunk_hash = k.content_hash AND e.context_key = {ctx}
            WHERE k.corpus_id = ? AND k.id <= ?
            ORDER BY {_CHUNK_ORDER}""", [str(cache_key), variant, int(dim), int(corpus_id),
                                         snap.max_chunk_id]).fetchnumpy()
        chunk_ids = np.asarray(res["id"], dtype=np.int64)
        if chunk_ids.shape[0] != snap.n_chunks:
            raise DemoError(f"corpus {corpus_id} has {snap.n_chunks - chunk_ids.shape[0]} chunks without a vector "
                            f"for this model (embed it first), or it changed meanwhile (deleted?)")
        blob = b"".join(res["vector"])
        vectors = np.frombuffer(blob, dtype=np.float32).reshape(chunk_ids.shape[0], int(dim)).copy()
        return EmbeddingMatrix(chunk_ids=chunk_ids, vectors=vectors, cache_key=str(cache_key), variant=variant,
                               corpus_revision=snap.revision)


def _context_key_sql(variant: str) -> str:
    """SQL for a chunk's context key: '' (standard) or '<document chunk-list hash>:<position>'."""
    if variant == "standard":
        return "''"
    if variant == "contextual":
        return "(d.chunk_list_hash || ':' || CAST(k.position AS VARCHAR))"
    raise DemoError(f"unknown variant {variant!r}: use 'standard' or 'contextual'")
