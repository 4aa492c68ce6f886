"""What the store hands out: `CorpusInfo`, `ChunkTable`, `ChunkRecord`, `CorpusSnapshot`,
`MissingEmbeddings`, `EmbeddingMatrix`, and the content hashes that key the embedding cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CorpusInfo:
    """A corpus and its sizes; `owner` None = shared with everyone. Times are epoch seconds."""

    id: int
    name: str
    owner: str | None
    source: str
    n_documents: int
    n_chunks: int
    n_tokens: int
    languages: list[str]
    created: float
    last_used: float
    chunking: dict | None = None
    revision: int = 0  # bumped whenever documents are added


@dataclass
class ChunkTable:
    """Every chunk of a corpus in a stable order (document position, then chunk order)."""

    chunk_ids: np.ndarray  # int64
    document_ids: np.ndarray  # int64
    orders: np.ndarray  # int32
    texts: list[str]
    titles: list[str]
    uris: list[str]
    token_counts: np.ndarray  # int32
    external_ids: list[str | None] = field(default_factory=list)  # the documents' source ids
    char_starts: np.ndarray | None = None
    char_ends: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.chunk_ids.shape[0])


@dataclass
class ChunkRecord:
    """One chunk with what a result list shows about it."""

    chunk_id: int
    text: str
    title: str
    uri: str
    document_id: int
    order: int
    char_start: int
    char_end: int
    token_count: int
    external_id: str | None = None


@dataclass
class EmbeddingMatrix:
    """Float32 pooled vectors of a corpus, row i belonging to chunk_ids[i] (chunk_table order)."""

    chunk_ids: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, dim)
    embedded_now: int = 0  # chunks the call that produced it had to embed (0 on a full cache hit)
    cache_key: str = ""  # the encoder's cache key (model, weights, dtype, window, runtime)
    variant: str = "standard"
    corpus_revision: int = 0
    truncated_now: int = 0  # of the chunks embedded by that call, how many the encoder had to cut

    @property
    def version(self) -> tuple[int, str, str]:
        """Identifies this matrix's content for index caches: (corpus revision, cache key, variant)."""
        return (self.corpus_revision, self.cache_key, self.variant)


@dataclass(frozen=True)
class CorpusSnapshot:
    """A corpus as of one moment: later appends have higher chunk ids, so reads stop at max_chunk_id."""

    corpus_id: int
    revision: int
    n_chunks: int
    max_chunk_id: int


@dataclass
class MissingEmbeddings:
    """What a corpus lacks for one encoder: standard texts (each once) or whole contextual documents.

    `texts`: (chunk hash, text) for the standard variant. `documents`: for the contextual variant,
    every chunk of each document with a missing vector, in order: (chunk hash, context key, text).
    """

    snapshot: CorpusSnapshot
    texts: list[tuple[str, str]] = field(default_factory=list)
    documents: list[list[tuple[str, str, str]]] = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        """Chunks the encoder will read (texts, or every chunk of the listed documents)."""
        return len(self.texts) + sum(len(d) for d in self.documents)

    def __bool__(self) -> bool:
        return bool(self.texts or self.documents)


def content_hash(text: str) -> str:
    """sha256 of a text's UTF-8 bytes (the embedding cache key of a chunk)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def chunk_list_hash(texts: Sequence[str]) -> str:
    """sha256 of a document's ordered chunk texts (the contextual variant's cache key part)."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
