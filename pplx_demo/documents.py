"""Documents and chunks: the records every stage after ingestion passes along."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One source text: a file, a page, an archive entry or a dataset record."""

    uri: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None  # id from the source (BEIR _id, XQuAD paragraph id, ...)


@dataclass
class Chunk:
    """A contiguous piece of a document, in document order, with its char offsets."""

    order: int
    text: str
    char_start: int
    char_end: int
    token_count: int
