"""Reading chunks: a corpus' whole `ChunkTable` in the stable order the indexes use, and `ChunkRecord`s
by id for a result list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pplx_demo.errors import DemoError
from pplx_demo.store.connection import _Connection
from pplx_demo.store.records import ChunkRecord, ChunkTable
from pplx_demo.store.schema import _CHUNK_ORDER

_RECORDS_CACHED = 20_000  # chunk records kept in memory (a few KiB each at most)


class _Chunks(_Connection):
    """Chunk reads (part of `Store`; `chunk_table` checks the corpus with `_Corpora.get_corpus`)."""

    def chunk_table(self, corpus_id: int) -> ChunkTable:
        """Every chunk of a corpus in the stable order used by `embeddings` and the indexes."""
        self.get_corpus(corpus_id)
        res = self._cur().execute(f"""
            SELECT k.id, k.document_id, k.ord, k.text, d.title, d.uri, k.token_count, d.external_id,
                   k.char_start, k.char_end
            FROM chunks k JOIN documents d ON d.id = k.document_id
            WHERE k.corpus_id = ? ORDER BY {_CHUNK_ORDER}""", [int(corpus_id)]).fetchdf()
        return ChunkTable(
            chunk_ids=np.asarray(res["id"], dtype=np.int64),
            document_ids=np.asarray(res["document_id"], dtype=np.int64),
            orders=np.asarray(res["ord"], dtype=np.int32),
            texts=list(res["text"]), titles=list(res["title"]), uris=list(res["uri"]),
            token_counts=np.asarray(res["token_count"], dtype=np.int32),
            external_ids=[None if _is_missing(x) else str(x) for x in res["external_id"]],
            char_starts=np.asarray(res["char_start"], dtype=np.int64),
            char_ends=np.asarray(res["char_end"], dtype=np.int64),
        )

    def document_table(self, corpus_id: int) -> pd.DataFrame:
        """A corpus' documents in position order: id, position, uri, title, metadata (JSON text),
        external_id, lang (no full texts: chunks carry the text)."""
        self.get_corpus(corpus_id)  # type: ignore[attr-defined]
        return self._cur().execute("""
            SELECT id, position, uri, title, metadata, external_id, lang
            FROM documents WHERE corpus_id = ? ORDER BY position, id""", [int(corpus_id)]).fetchdf()

    def fetch_chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord]:
        """Records for these chunk ids, in the order given; DemoError if any no longer exists.

        Chunks never change once stored, so records are kept in a bounded in-memory cache (a search shows the
        same chunks in several columns, and popular chunks in many searches); deleting corpora empties it.
        """
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return []
        with self._records_lock:
            generation = self._records_generation
            cached = {i: self._records[i] for i in ids if i in self._records}
        wanted = [i for i in dict.fromkeys(ids) if i not in cached]
        if wanted:
            for record in self._fetch_chunk_rows(wanted):
                cached[record.chunk_id] = record
            with self._records_lock:
                if generation == self._records_generation:  # no corpus was deleted meanwhile
                    for i in wanted:
                        if i in cached:
                            self._records[i] = cached[i]
                    while len(self._records) > _RECORDS_CACHED:
                        self._records.popitem(last=False)
        missing = [i for i in ids if i not in cached]
        if missing:
            raise DemoError(f"{len(missing)} chunk(s) no longer exist (the corpus was deleted or expired)")
        return [cached[i] for i in ids]

    def _fetch_chunk_rows(self, ids: list[int]) -> list[ChunkRecord]:
        rows = self._all("""
            SELECT k.id, k.text, d.title, d.uri, k.document_id, k.ord, k.char_start, k.char_end,
                   k.token_count, d.external_id
            FROM chunks k JOIN documents d ON d.id = k.document_id
            WHERE k.id IN (SELECT unnest(?::BIGINT[]))""", [ids])
        return [ChunkRecord(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7]), int(r[8]), r[9])
                for r in rows]

    def chunk_pages(self, chunk_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """{chunk id: (first page, last page)} for chunks of documents that record PDF `page_spans`
        ([[page, start, end]] character ranges, see `ingest.formats.page_of`); other chunks are left out."""
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return {}
        rows = self._all("""
            SELECT k.id, k.char_start, k.char_end, d.metadata
            FROM chunks k JOIN documents d ON d.id = k.document_id
            WHERE k.id IN (SELECT unnest(?::BIGINT[])) AND d.metadata LIKE '%page_spans%'""", [ids])
        out: dict[int, tuple[int, int]] = {}
        for chunk_id, start, end, metadata in rows:
            try:
                spans = json.loads(metadata).get("page_spans") or []
            except (json.JSONDecodeError, AttributeError):
                continue
            first = _page_at(spans, int(start))
            last = _page_at(spans, max(int(start), int(end) - 1))
            if first is not None:
                out[int(chunk_id)] = (first, last if last is not None else first)
        return out


def _page_at(spans: Sequence[Sequence[int]], offset: int) -> int | None:
    """The page whose [start, end] span holds `offset` (the rule of `ingest.formats.page_of`)."""
    for number, start, end in spans:
        if start <= offset < end + 2:
            return int(number)
    return None


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA
