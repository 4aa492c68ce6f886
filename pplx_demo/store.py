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
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError

log = logging.getLogger(__name__)

_RECORDS_CACHED = 20_000  # chunk records kept in memory (a few KiB each at most)
_COUNTS_CACHED = 4096  # (corpus, revision) count rows kept in memory
TOUCH_WRITE_S = 30.0  # a corpus' last use is written at most this often (searches stay read-only)
_BATCH_DOCUMENTS = 500  # documents per insert statement (chunks follow their documents)
# Where a corpus came from; "evaluation" corpora are the datasets evaluation runs store for themselves.
SOURCES = ("upload", "crawl", "sample", "evaluation", "builtin")  # builtin: the late-chunking demo article
USER_SOURCES = ("upload", "crawl", "sample")

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        "CREATE SEQUENCE corpus_ids START 1",
        "CREATE SEQUENCE document_ids START 1",
        "CREATE SEQUENCE chunk_ids START 1",
        """CREATE TABLE corpora (
            id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, owner VARCHAR, source VARCHAR NOT NULL,
            chunking VARCHAR, created DOUBLE NOT NULL, last_used DOUBLE NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE documents (
            id BIGINT PRIMARY KEY, corpus_id BIGINT NOT NULL, position INTEGER NOT NULL,
            uri VARCHAR NOT NULL, title VARCHAR NOT NULL, text VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
            metadata VARCHAR NOT NULL, external_id VARCHAR, lang VARCHAR, chunk_list_hash VARCHAR NOT NULL)""",
        """CREATE TABLE chunks (
            id BIGINT PRIMARY KEY, corpus_id BIGINT NOT NULL, document_id BIGINT NOT NULL,
            position INTEGER NOT NULL, ord INTEGER NOT NULL, text VARCHAR NOT NULL,
            char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, token_count INTEGER NOT NULL,
            content_hash VARCHAR NOT NULL)""",
        """CREATE TABLE embeddings (
            model_key VARCHAR NOT NULL, variant VARCHAR NOT NULL, chunk_hash VARCHAR NOT NULL,
            context_key VARCHAR NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, created DOUBLE NOT NULL,
            PRIMARY KEY (model_key, variant, chunk_hash, context_key))""",
        "CREATE INDEX documents_corpus ON documents (corpus_id)",
        "CREATE INDEX chunks_corpus ON chunks (corpus_id)",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


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


class Store:
    """The DuckDB-backed document store and embedding cache. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"cannot create the folder for the database {self.path}: {exc.strerror or exc}",
                            setting="PPLX_DEMO_DB", cli_flag="--db") from None
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise open_error(self.path, exc) from None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._pending_touches: dict[int, float] = {}  # corpus id -> last use not yet written
        self._touch_written: dict[int, float] = {}  # corpus id -> when its last use was last written
        self._counts: dict[tuple[int, int], tuple[int, int, int, list[str]]] = {}  # (id, revision) -> counts
        self._counts_lock = threading.Lock()
        self._records: OrderedDict[int, ChunkRecord] = OrderedDict()  # chunk id -> record (chunks never change)
        self._records_lock = threading.Lock()
        self._records_generation = 0
        self._closed = False
        try:
            self._migrate()
            self._all("SELECT * FROM corpora")  # reads the catalog and the corpora pages: a damaged file fails here
        except duckdb.Error as exc:
            self.close()  # release the file lock
            raise open_error(self.path, exc) from None
        except BaseException:
            self.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------

    def _cur(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not safe to share between threads)."""
        if self._closed:
            raise DemoError("the store is closed")
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
            with self._cursors_lock:
                self._cursors.append(cur)
        return cur

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction under the writer lock: commit on success, roll back on any error.

        All writes of this process go through it (one at a time), so they never conflict.
        """
        with self._write_lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                touches = self._flush_touches(cur)
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            for corpus_id, when in touches.items():  # keep touches that arrived meanwhile
                self._touch_written[corpus_id] = when
                if self._pending_touches.get(corpus_id) == when:
                    self._pending_touches.pop(corpus_id, None)

    def _flush_touches(self, tx: duckdb.DuckDBPyConnection) -> dict[int, float]:
        touches = dict(self._pending_touches)
        for corpus_id, when in touches.items():
            tx.execute("UPDATE corpora SET last_used = greatest(last_used, ?) WHERE id = ?", [when, corpus_id])
        return touches

    def _all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self._cur().execute(sql, params or []).fetchall()

    def _one(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _migrate(self) -> None:
        cur = self._cur()
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied DOUBLE NOT NULL)")
        current = cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
        if current > SCHEMA_VERSION:
            raise DemoError(f"the database {self.path} has schema version {current}, newer than this program's "
                            f"{SCHEMA_VERSION}; upgrade the program or use another PPLX_DEMO_DB file")
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            with self._transaction() as tx:
                for sql in statements:
                    tx.execute(sql)
                tx.execute("INSERT INTO schema_version VALUES (?, ?)", [version, time.time()])
            log.info("database %s migrated to schema version %d", self.path, version)

    def schema_version(self) -> int:
        """The schema version the file is at."""
        return int(self._one("SELECT max(version) FROM schema_version")[0])

    def close(self) -> None:
        """Write pending corpus touches, then close every cursor and the connection."""
        if self._closed:
            return
        if self._pending_touches:
            try:
                with self._transaction():
                    pass
            except duckdb.Error as exc:  # closing must not fail over a last-used time
                log.warning("could not record corpus use times on close: %s", exc)
        self._closed = True
        with self._cursors_lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except duckdb.Error:
                    pass
            self._cursors.clear()
        self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def file_size(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if p.exists():
                total += p.stat().st_size
        return total

    # -- corpora ----------------------------------------------------------------------------------

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
        """A corpus' info; DemoError if it does not exist."""
        infos = self._corpus_infos("c.id = ?", [int(corpus_id)])
        if not infos:
            raise DemoError(f"corpus {corpus_id} does not exist (it may have been deleted or expired)")
        return infos[0]

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
        rows = self._all(f"""
            SELECT c.id, c.name, c.owner, c.source, c.chunking, c.created, c.last_used, c.revision
            FROM corpora c WHERE {where} ORDER BY c.id""", params)
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
        Counts are read in the same statement as the revision they are cached under.
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
        # A revision that moved on between the two statements: its newer counts are as good (only ever grow).
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

    # -- chunks -----------------------------------------------------------------------------------

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

    def _forget_records(self) -> None:
        with self._records_lock:
            self._records.clear()
            self._records_generation += 1

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

    # -- embeddings -------------------------------------------------------------------------------

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


def _file_errors(method: Any) -> Any:
    """A store method whose DuckDB I/O failure (a file damaged after it was opened) becomes a DemoError."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException) as exc:
            raise open_error(self.path, exc) from None

    return wrapper


# Every public method: pages are read lazily, so damage can surface on any query, long after opening.
for _name, _method in list(vars(Store).items()):
    if not _name.startswith("_") and callable(_method) and _name not in ("close",):
        setattr(Store, _name, _file_errors(_method))


# ---------------------------------------------------------------------------------------------
# helpers


def _page_at(spans: Sequence[Sequence[int]], offset: int) -> int | None:
    """The page whose [start, end] span holds `offset` (the rule of `ingest.formats.page_of`)."""
    for number, start, end in spans:
        if start <= offset < end + 2:
            return int(number)
    return None


def open_error(path: Path, exc: BaseException) -> DemoError:
    """A one-line DemoError for a database file that cannot be opened: locked, damaged or unreadable.

    Nothing is ever overwritten or repaired here: the message says what to do with the file.
    """
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if "lock" in lowered:
        holder = "another process"
        marker = lowered.find("pid ")
        if marker >= 0:
            digits = "".join(ch for ch in text[marker + 4: marker + 14] if ch.isdigit())
            holder = f"process {digits}" if digits else holder
        return DemoError(f"the database {path} is in use by {holder} (the running studio?): stop the studio "
                         f"(or that process), or use another database file", setting="PPLX_DEMO_DB", cli_flag="--db")
    damaged = ("corrupt", "not a valid duckdb", "invalid", "checksum", "truncat", "serializ", "unexpected",
               "could not read", "failed to read", "magic", "io error", "catalog")
    if isinstance(exc, (duckdb.IOException, duckdb.SerializationException)) or any(w in lowered for w in damaged):
        return DemoError(f"the database {path} cannot be read: it looks damaged or is not a DuckDB file "
                         f"({_shorten(text, 160)}). Nothing was changed; restore it from a backup, or move it "
                         f"aside and start with a new database file", setting="PPLX_DEMO_DB", cli_flag="--db")
    return DemoError(f"cannot open the database {path}: {_shorten(text, 200)}", setting="PPLX_DEMO_DB",
                     cli_flag="--db")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

_CHUNK_ORDER = "d.corpus_id, d.position, k.position, k.id"


def _context_key_sql(variant: str) -> str:
    """SQL for a chunk's context key: '' (standard) or '<document chunk-list hash>:<position>'."""
    if variant == "standard":
        return "''"
    if variant == "contextual":
        return "(d.chunk_list_hash || ':' || CAST(k.position AS VARCHAR))"
    raise DemoError(f"unknown variant {variant!r}: use 'standard' or 'contextual'")

_DOCUMENT_COLUMNS = ["id", "corpus_id", "position", "uri", "title", "text", "content_hash", "metadata",
                     "external_id", "lang", "chunk_list_hash"]
_CHUNK_COLUMNS = ["id", "corpus_id", "document_id", "position", "ord", "text", "char_start", "char_end",
                  "token_count", "content_hash"]


def _insert_frame(tx: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, or_ignore: bool = False) -> None:
    """INSERT a DataFrame's rows (columns named like the table's) through this cursor."""
    tx.register("_incoming", frame)
    try:
        cols = ", ".join(frame.columns)
        tx.execute(f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO {table} ({cols}) SELECT {cols} FROM _incoming")
    finally:
        tx.unregister("_incoming")


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA


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
