"""One DuckDB file holding corpora, documents, chunks and an embedding cache.

- Schema: a `schema_version` table and numbered migrations, applied on open.
- Embedding cache: float32 vectors stored once as BLOBs, keyed by (encoder cache key, variant,
  chunk content hash, context key). The context key is '' for the standard variant; for the contextual
  variant it is the hash of the document's whole chunk list plus the chunk's position in it (the
  same text embedded in another document, or twice in one, has another vector). Quantised forms
  are derived in memory by `pplx_demo.index`, never stored.
- Persistence only: this module never runs a model. `missing_embeddings` says which vectors a
  corpus lacks for an encoder's cache key, `put_embeddings` stores computed ones (one transaction),
  `embedding_matrix` reads them back in chunk order; `pplx_demo.embedding` runs the encoder between.
- Writes are transactions: an ingest or embedding run either commits whole or leaves nothing.
  DuckDB's write-ahead log makes a killed process lose only the transaction it was in.
- Threads: every thread reads through its own cursor; writers take one lock, so a search keeps
  reading committed data while an ingest runs.

Modules: `schema` (migrations), `connection` (the file, cursors, transactions, open errors),
`corpora` (corpora and documents), `chunks` (chunk reads), `embeddings` (the embedding cache) and
`records` (the dataclasses handed out, content hashes). `Store` joins the three parts.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import duckdb

from pplx_demo.store.chunks import _Chunks
from pplx_demo.store.connection import open_error
from pplx_demo.store.corpora import SOURCES, TOUCH_WRITE_S, USER_SOURCES, _Corpora
from pplx_demo.store.embeddings import _EmbeddingCache
from pplx_demo.store.records import (ChunkRecord, ChunkTable, CorpusInfo, CorpusSnapshot, EmbeddingMatrix,
                                     MissingEmbeddings, chunk_list_hash, content_hash)
from pplx_demo.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SOURCES", "TOUCH_WRITE_S", "USER_SOURCES", "ChunkRecord", "ChunkTable",
           "CorpusInfo", "CorpusSnapshot", "EmbeddingMatrix", "MissingEmbeddings", "Store", "chunk_list_hash",
           "content_hash", "open_error"]


class Store(_Corpora, _Chunks, _EmbeddingCache):
    """The DuckDB-backed document store and embedding cache. Safe to share between threads."""


def _file_errors(method: Any) -> Any:
    """A store method whose DuckDB I/O failure (a file damaged after it was opened) becomes a DemoError."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException) as exc:
            raise open_error(self.path, exc) from None

    return wrapper


# Every public method, whichever part defines it: pages are read lazily, so damage can surface on any
# query, long after opening.
for _name in sorted({name for part in Store.__mro__ for name in vars(part)}):
    _method = inspect.getattr_static(Store, _name)
    if not _name.startswith("_") and callable(_method) and _name not in ("close",):
        setattr(Store, _name, _file_errors(_method))
