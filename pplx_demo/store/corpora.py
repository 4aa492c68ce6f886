"""Corpora and their documents: add (all or nothing), append, look up, list per owner, delete (with the
cached vectors only they used), touch and expire; the checks that turn Documents and Chunks into rows."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.store.connection import _Connection, _insert_frame
from pplx_demo.store.records import CorpusInfo, chunk_list_hash, content_hash

_COUNTS_CACHED = 4096  # (corpus, revision) count rows kept in memory
TOUCH_WRITE_S = 30.0  # a corpus' last use is written at most this often (searches stay read-only)
_BATCH_DOCUMENTS = 500  # documents per insert statement (chunks follow their documents)
# Where a corpus came from; "evaluation" corpora are the datasets evaluation runs store for themselves.
SOURCES = ("upload", "crawl", "sample", "evaluation", "builtin")  # builtin: the late-chunking demo article
USER_SOURCES = ("upload", "crawl", "sample")
_CORPUS_SELECT = ("SELECT c.id, c.name, c.owner, c.source, c.chunking, c.created, c.last_used, c.revision "
                  "FROM corpora c")


class _Corpora(_Connection):
    """Corpora and documents (part of `Store`)."""

    def add_corpus(self, name: str, documents: list[Document], chunks: list[list[Chunk]], *,
                   owner: str | None = None, chunking: dict | None = None, source: str = "upload") -> int:
        """Store a new corpus with its documents and chunks in one transaction; returns its id.

        All or nothing: any bad document or error rolls the whole corpus back. A name must be
        unique per owner (shared corpora: among shared ones), and a private corpus may not take a
        shared corpus' name.
        """
        name = (name or "").strip() if isinstance(name, str) else ""
        if not name:
            raise DemoError("a corpus needs a non-empty name")
        _check_lengths(documents, chunks)
        chunking_json = _json_or_error(chunking, "chunking settings") if chunking is not None else None
        now = time.time()
        with self._transaction() as tx:
            clash = tx.execute("SELECT id FROM corpora WHERE name = ? AND owner IS NOT DISTINCT FROM ?",
                               [name, owner]).fetchall()
            if clash:
                raise DemoError(f"a corpus named {name!r} already exists (id {clash[0][0]}); "
                                f"choose another name or delete it first")
            if owner is not None:
                # Two look-alike entries in one list: the private one would pass for the shared one.
                shared = tx.execute("SELECT name FROM corpora WHERE lower(name) = lower(?) AND owner IS NULL",
                                    [name]).fetchall()
                if shared:
                    raise DemoError(f"{shared[0][0]!r} is the name of a shared corpus everyone sees; "
                                    f"choose another name for your corpus")
            corpus_id = int(tx.execute("SELECT nextval('corpus_ids')").fetchall()[0][0])
            tx.execute("INSERT INTO corpora VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                       [corpus_id, name, owner, str(source), chunking_json, now, now])
            self._insert_documents(tx, corpus_id, documents, chunks, first_position=0)
        return corpus_id

    def add_documents(self, corpus_id: int, documents: list[Document], chunks: list[list[Chunk]]) -> int:
        """Append documents (and their chunks) to a corpus in one transaction; returns how many."""
        _check_lengths(documents, chunks)
        with self._transaction() as tx:
            row = tx.execute("SELECT id FROM corpora WHERE id = ?", [int(corpus_id)]).fetchall()
            if not row:
                raise DemoError(f"corpus {corpus_id} does not exist (it may have been deleted or expired)")
            start = tx.execute("SELECT coalesce(max(position) + 1, 0) FROM documents WHERE corpus_id = ?",
                               [int(corpus_id)]).fetchall()[0][0]
            self._insert_documents(tx, int(corpus_id), documents, chunks, first_position=int(start))
            tx.execute("UPDATE corpora SET revision = revision + 1, last_used = ? WHERE id = ?",
                       [time.time(), int(corpus_id)])
        return len(documents)

    def _insert_documents(self, tx: duckdb.DuckDBPyConnection, corpus_id: int, documents: list[Document],
                          chunks: list[list[Chunk]], first_position: int) -> None:
        for start in range(0, len(documents), _BATCH_DOCUMENTS):
            docs = documents[start:start + _BATCH_DOCUMENTS]
            doc_chunks = chunks[start:start + _BATCH_DOCUMENTS]
            doc_ids = [int(r[0]) for r in tx.execute(
                "SELECT nextval('document_ids') FROM range(?)", [len(docs)]).fetchall()]
            doc_rows, chunk_rows = [], []
            for offset, (doc_id, doc, cks) in enumerate(zip(doc_ids, docs, doc_chunks)):
                doc_rows.append(_document_row(doc_id, corpus_id, first_position + start + offset, doc, cks))
                chunk_rows.extend(_chunk_rows(doc_id, corpus_id, doc, cks))
            n_chunks = len(chunk_rows)
            chunk_ids = [int(r[0]) for r in tx.execute(
                "SELECT nextval('chunk_ids') FROM range(?)", [n_chunks]).fetchall()] if n_chunks else []
            _insert_frame(tx, "documents", pd.DataFrame(doc_rows, columns=_DOCUMENT_COLUMNS))
            if n_chunks:
                chunk_frame = pd.DataFrame(chunk_rows, columns=_CHUNK_COLUMNS[1:])
                chunk_frame.insert(0, "id", chunk_ids)
                _insert_frame(tx, "chunks", chunk_frame)

    def get_corpus(self, corpus_id: int) -> CorpusInfo:
        """A corpus' info; DemoError if it does not exist.

        Every search asks for its corpus, so the row is cached until the next committed write of this
        process (the only writer of the file: DuckDB lets one process open it for writing).
        """
        cid = int(corpus_id)
        generation = self._write_generation
        with self._corpus_rows_lock:
            if self._corpus_rows_generation != generation:
                self._corpus_rows.clear()
                self._corpus_rows_generation = generation
            row = self._corpus_rows.get(cid)
        if row is None:
            rows = self._all(f"{_CORPUS_SELECT} WHERE c.id = ?", [cid])
            if not rows:
                raise DemoError(f"corpus {corpus_id} does not exist (it may have been deleted or expired)")
            row = rows[0]
            with self._corpus_rows_lock:
                if self._corpus_rows_generation == generation == self._write_generation:
                    self._corpus_rows[cid] = row
        return self._infos_from_rows([row])[0]

    def find_corpus(self, name: str, owner: str | None = None) -> CorpusInfo | None:
        """The corpus with exactly this name and owner (None = shared), or None."""
        infos = self._corpus_infos("c.name = ? AND c.owner IS NOT DISTINCT FROM ?", [name, owner])
        return infos[0] if infos else None

    def list_corpora(self, owner: str | None = None, sources: Sequence[str] = USER_SOURCES) -> list[CorpusInfo]:
        """Shared corpora plus `owner`'s private ones (never another owner's) from these sources, oldest first.

        By default the datasets evaluation runs store for themselves (source "evaluation") are left out.
        """
        return self._corpus_infos("(c.owner IS NULL OR c.owner = ?) AND list_contains(?::VARCHAR[], c.source)",
                                  [owner, list(sources)])

    def check_access(self, corpus_id: int, owner: str | None) -> CorpusInfo:
        """The corpus if `owner` may read it (shared, or its own); DemoError otherwise."""
        info = self.get_corpus(corpus_id)
        if info.owner is not None and info.owner != owner:
            raise DemoError(f"corpus {corpus_id} does not exist (it may have been deleted or expired)")
        return info

    def _corpus_infos(self, where: str, params: list[Any]) -> list[CorpusInfo]:
        return self._infos_from_rows(self._all(f"{_CORPUS_SELECT} WHERE {where} ORDER BY c.id", params))

    def _infos_from_rows(self, rows: list[tuple]) -> list[CorpusInfo]:
        counts = self._corpus_counts([(int(r[0]), int(r[7])) for r in rows])
        pending = dict(self._pending_touches)
        out = []
        for r in rows:
            n_documents, n_chunks, n_tokens, languages = counts[(int(r[0]), int(r[7]))]
            out.append(CorpusInfo(id=int(r[0]), name=r[1], owner=r[2], source=r[3],
                                  chunking=json.loads(r[4]) if r[4] else None, created=float(r[5]),
                                  last_used=max(float(r[6]), pending.get(int(r[0]), 0.0)), revision=int(r[7]),
                                  n_documents=n_documents, n_chunks=n_chunks, n_tokens=n_tokens,
                                  languages=list(languages)))
        return out

    def _corpus_counts(self, heads: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int, int, list[str]]]:
        """(documents, chunks, tokens, languages) per (corpus id, revision), counted once per revision.

        Documents and chunks change only with the revision (add_corpus / add_documents) or with the corpus
        itself (delete), so the counts of a revision are cached; searches then read one small row per corpus.
        """
        with self._counts_lock:
            found = {h: self._counts[h] for h in heads if h in self._counts}
        missing = sorted({cid for cid, rev in heads if (cid, rev) not in found})
        if missing:
            rows = self._all("""
                SELECT c.id, c.revision,
                       (SELECT count(*) FROM documents d WHERE d.corpus_id = c.id),
                       (SELECT count(*) FROM chunks k WHERE k.corpus_id = c.id),
                       (SELECT coalesce(sum(k.token_count), 0) FROM chunks k WHERE k.corpus_id = c.id),
                       (SELECT coalesce(list(DISTINCT d.lang ORDER BY d.lang), [])
                          FROM documents d WHERE d.corpus_id = c.id AND d.lang IS NOT NULL)
                FROM corpora c WHERE list_contains(?::BIGINT[], c.id)""", [missing])
            with self._counts_lock:
                for r in rows:
                    value = (int(r[2]), int(r[3]), int(r[4]), list(r[5] or []))
                    self._counts[(int(r[0]), int(r[1]))] = value
                    found.setdefault((int(r[0]), int(r[1])), value)
                while len(self._counts) > _COUNTS_CACHED:
                    self._counts.pop(next(iter(self._counts)))
        # A revision that moved on between the two statements: its newer counts are as good (they only grow).
        by_id = {cid: v for (cid, _), v in found.items()}
        return {h: found.get(h, by_id.get(h[0], (0, 0, 0, []))) for h in heads}

    def delete_corpus(self, corpus_id: int) -> None:
        """Remove a corpus with its documents and chunks (a missing id is a no-op).

        Cached vectors no other corpus uses go too, so deleting private text deletes its vectors.
        """
        with self._transaction() as tx:
            _delete_corpora(tx, [int(corpus_id)])
        self._forget_records()

    def touch_corpus(self, corpus_id: int) -> None:
        """Mark a corpus as used now (keeps a private corpus from expiring).

        Never waits for an ingest and writes at most every TOUCH_WRITE_S per corpus: the time is
        kept in memory meanwhile, reported by get_corpus and written with the next write
        (expiry itself is a write, so it always sees it).
        """
        now = time.time()
        self._pending_touches[int(corpus_id)] = now
        if now - self._touch_written.get(int(corpus_id), 0.0) < TOUCH_WRITE_S:
            return
        if self._write_lock.acquire(blocking=False):
            try:
                with self._transaction():
                    pass
            finally:
                self._write_lock.release()

    def expire_private_corpora(self, idle_seconds: float) -> list[int]:
        """Delete private corpora unused for `idle_seconds`; returns their ids."""
        cutoff = time.time() - float(idle_seconds)
        with self._transaction() as tx:
            ids = [int(r[0]) for r in tx.execute(
                "SELECT id FROM corpora WHERE owner IS NOT NULL AND last_used < ? ORDER BY id", [cutoff]).fetchall()]
            if ids:
                _delete_corpora(tx, ids)
        if ids:
            self._forget_records()
        return ids


_DOCUMENT_COLUMNS = ["id", "corpus_id", "position", "uri", "title", "text", "content_hash", "metadata",
                     "external_id", "lang", "chunk_list_hash"]
_CHUNK_COLUMNS = ["id", "corpus_id", "document_id", "position", "ord", "text", "char_start", "char_end",
                  "token_count", "content_hash"]


def _check_lengths(documents: Sequence[Document], chunks: Sequence[Sequence[Chunk]]) -> None:
    if len(documents) != len(chunks):
        raise DemoError(f"got {len(documents)} documents but {len(chunks)} chunk lists; one list per document")


def _json_or_error(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DemoError(f"{what} cannot be stored as JSON: {exc}") from exc


def _document_row(doc_id: int, corpus_id: int, position: int, doc: Document, chunks: Sequence[Chunk]) -> tuple:
    if not isinstance(doc, Document):
        raise DemoError(f"document {position} is a {type(doc).__name__}, not a Document")
    for attr in ("uri", "title", "text"):
        if not isinstance(getattr(doc, attr), str):
            raise DemoError(f"document {doc.uri!r} has a {attr} of type {type(getattr(doc, attr)).__name__}; "
                            f"expected text")
    metadata = doc.metadata or {}
    if not isinstance(metadata, dict):
        raise DemoError(f"document {doc.uri!r} has metadata of type {type(metadata).__name__}; expected a dict")
    lang = metadata.get("lang")
    texts = [c.text if isinstance(c, Chunk) else None for c in chunks]
    if any(not isinstance(t, str) for t in texts):
        raise DemoError(f"document {doc.uri!r} has a chunk that is not a Chunk with text")
    return (doc_id, corpus_id, position, doc.uri, doc.title, doc.text, content_hash(doc.text),
            _json_or_error(metadata, f"metadata of document {doc.uri!r}"),
            None if doc.external_id is None else str(doc.external_id),
            None if lang is None else str(lang), chunk_list_hash(texts))


def _chunk_rows(doc_id: int, corpus_id: int, doc: Document, chunks: Sequence[Chunk]) -> list[tuple]:
    rows = []
    for position, c in enumerate(chunks):
        try:
            values = (int(c.order), int(c.char_start), int(c.char_end), int(c.token_count))
        except (TypeError, ValueError) as exc:
            raise DemoError(f"chunk {position} of document {doc.uri!r} has a non-integer field: {exc}") from exc
        rows.append((corpus_id, doc_id, position, values[0], c.text, values[1], values[2], values[3],
                     content_hash(c.text)))
    return rows


def _delete_corpora(tx: duckdb.DuckDBPyConnection, ids: list[int]) -> None:
    tx.execute("DELETE FROM chunks WHERE corpus_id IN (SELECT unnest(?::BIGINT[]))", [ids])
    tx.execute("DELETE FROM documents WHERE corpus_id IN (SELECT unnest(?::BIGINT[]))", [ids])
    tx.execute("DELETE FROM corpora WHERE id IN (SELECT unnest(?::BIGINT[]))", [ids])
    tx.execute("DELETE FROM embeddings WHERE chunk_hash NOT IN (SELECT content_hash FROM chunks)")
