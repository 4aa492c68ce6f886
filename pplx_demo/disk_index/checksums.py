"""Checksums of the index files: blake2b-128 digests of fixed-size chunks, and `_AppendWriter`, which
appends rows to one file and re-hashes only its last partial chunk and the new bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo.errors import DemoError


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def _hash_range(path: Path, start: int, stop: int) -> Any:
    """A hasher fed with bytes start..stop of `path`."""
    h = _hasher()
    with open(path, "rb") as f:
        f.seek(start)
        left = stop - start
        while left > 0:
            buf = f.read(min(left, 4 << 20))
            if not buf:
                raise DemoError(f"{path.name} ended at byte {stop - left}, expected {stop}")
            h.update(buf)
            left -= len(buf)
    return h


def file_chunk_digests(path: Path, nbytes: int, chunk_bytes: int) -> list[str]:
    """blake2b-128 hex digest of each `chunk_bytes` chunk of the first `nbytes` of `path`."""
    return [_hash_range(path, s, min(s + chunk_bytes, nbytes)).hexdigest() for s in range(0, nbytes, chunk_bytes)]


class _AppendWriter:
    """Appends bytes to one file at its committed length and keeps its chunk checksums up to date."""

    def __init__(self, path: Path, committed: int, chunks: list[str], tail: tuple[int, Any] | None,
                 chunk_bytes: int) -> None:
        self.path, self.committed, self.chunk_bytes = path, committed, chunk_bytes
        self.length = committed
        full = committed // chunk_bytes
        self.chunks = chunks[:full]
        self._filled = committed - full * chunk_bytes
        if self._filled == 0:
            self._hash = _hasher()
        elif tail is not None and tail[0] == committed:
            self._hash = tail[1].copy()
        else:  # re-hash the partial last chunk (at most one chunk) from the file
            self._hash = _hash_range(path, full * chunk_bytes, committed)
        self._file = open(path, "r+b")
        self._file.seek(committed)
        self._file.truncate()  # bytes past the committed length belong to no committed state
        self.tail: tuple[int, Any] | None = None

    def write(self, rows: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(rows)).cast("B")
        self._file.write(data)
        pos = 0
        while pos < len(data):
            take = min(self.chunk_bytes - self._filled, len(data) - pos)
            self._hash.update(data[pos:pos + take])
            self._filled += take
            pos += take
            if self._filled == self.chunk_bytes:
                self.chunks.append(self._hash.hexdigest())
                self._hash, self._filled = _hasher(), 0
        self.length += len(data)

    def finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self._filled:
            self.chunks.append(self._hash.hexdigest())
            self.tail = (self.length, self._hash.copy())

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
