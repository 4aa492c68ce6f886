"""The plumbing under `Store`: the DuckDB file opened and migrated, one cursor per thread, write
transactions under one lock (with pending corpus touches flushed), one-line errors for a file that
cannot be opened, and DataFrame inserts."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from pplx_demo.errors import DemoError
from pplx_demo.store.records import ChunkRecord
from pplx_demo.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__package__)  # one logger for the package, named as before the split


class _Connection:
    """The open database file and its plumbing; `Store` adds corpora, chunks and the embedding cache."""

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
        # Read caches: counts per (corpus id, revision) and chunk records (chunks never change once stored);
        # deleting corpora empties the records and bumps the generation so a read in flight does not refill it.
        self._counts: dict[tuple[int, int], tuple[int, int, int, list[str]]] = {}
        self._counts_lock = threading.Lock()
        self._records: OrderedDict[int, ChunkRecord] = OrderedDict()
        self._records_lock = threading.Lock()
        self._records_generation = 0
        # Every committed write bumps this; rows of `corpora` read at one generation stay valid until the next.
        self._write_generation = 0
        self._corpus_rows: dict[int, tuple] = {}
        self._corpus_rows_generation = 0
        self._corpus_rows_lock = threading.Lock()
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

    def _forget_records(self) -> None:
        with self._records_lock:
            self._records.clear()
            self._records_generation += 1

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
            self._write_generation += 1  # under the writer lock: cached corpus rows are stale from here
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

    def __enter__(self) -> Self:
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


def _insert_frame(tx: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, or_ignore: bool = False) -> None:
    """INSERT a DataFrame's rows (columns named like the table's) through this cursor."""
    tx.register("_incoming", frame)
    try:
        cols = ", ".join(frame.columns)
        tx.execute(f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO {table} ({cols}) SELECT {cols} FROM _incoming")
    finally:
        tx.unregister("_incoming")
