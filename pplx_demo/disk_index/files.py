"""The folder of one disk index: file names and row layouts (`FileSpec`, `level_files`), where an index
lives (`index_folder`), the JSON manifest (read with its checks, replaced atomically) and memory maps."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.quantize import Int8Calibration

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
CHUNK_IDS_FILE = "chunk_ids.i64"
STORES: tuple[str, ...] = ("binary", "int8", "float32")
CHECKSUM_ALGORITHM = "blake2b-128"
CHECKSUM_CHUNK_BYTES = 8 << 20  # a checksum per 8 MiB: an append re-hashes at most one partial chunk

# Names a disk index folder may hold: what `rebuild` is allowed to replace.
_INDEX_FILE_NAME = re.compile(r"manifest\.json|\.manifest\.json\..*\.tmp|chunk_ids\.i64|"
                              r"d\d+\.(bits|int8|int8_inv_norm|float32)")


@dataclass(frozen=True)
class FileSpec:
    """One raw file of the index: little-endian `dtype`, `row_shape` elements per row."""

    name: str
    dtype: str  # numpy dtype string, explicit byte order ("<f4", "|i1", "|u1", "<i8")
    row_shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * math.prod(self.row_shape))


def bits_row_bytes(dim: int) -> int:
    """Bytes of one packed sign-bit row: `dim` bits rounded up to whole 64-bit words (as QuantizedIndex)."""
    return 8 * ((dim + 63) // 64)


def level_files(dim: int, store: Sequence[str]) -> dict[str, FileSpec]:
    """The files of one stored size, keyed by role: bits, int8, int8_inv_norm, float32."""
    files: dict[str, FileSpec] = {}
    if "binary" in store:
        files["bits"] = FileSpec(f"d{dim}.bits", "|u1", (bits_row_bytes(dim),))
    if "int8" in store:
        files["int8"] = FileSpec(f"d{dim}.int8", "|i1", (dim,))
        files["int8_inv_norm"] = FileSpec(f"d{dim}.int8_inv_norm", "<f4", ())
    if "float32" in store:
        files["float32"] = FileSpec(f"d{dim}.float32", "<f4", (dim,))
    return files


def _all_files(dims: Sequence[int], store: Sequence[str]) -> list[FileSpec]:
    specs = [FileSpec(CHUNK_IDS_FILE, "<i8", ())]
    for d in dims:
        specs.extend(level_files(d, store).values())
    return specs


def index_folder(root: Path, corpus_id: int, model_cache_key: str, variant: str) -> Path:
    """The folder of one (corpus, model cache key, variant) under `root`; safe for any cache key."""
    def safe(text: str) -> str:
        clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "x"
        return f"{clean}-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"

    return Path(root) / f"corpus-{int(corpus_id)}" / safe(model_cache_key) / safe(variant)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    where = f"disk index {folder}"
    if not folder.is_dir():
        raise DemoError(f"{where}: the folder does not exist; build the index first")
    if not path.is_file():
        raise DemoError(f"{where}: {MANIFEST_NAME} is missing; rebuild the index from the stored vectors "
                        f"(nothing in the database is affected)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemoError(f"{where}: {MANIFEST_NAME} is unreadable ({type(exc).__name__}: {exc}); rebuild the "
                        f"index from the stored vectors (nothing in the database is affected)") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise DemoError(f"{where}: {MANIFEST_NAME} has schema version {version!r}, this program reads "
                        f"{SCHEMA_VERSION}; rebuild the index from the stored vectors")
    try:
        int(manifest["n_rows"]), int(manifest["full_dim"]), int(manifest["checksum"]["chunk_bytes"])
        [int(d) for d in manifest["dims"]]
        list(manifest["store"])
        manifest["int8"]["scheme"]
        dict(manifest["files"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DemoError(f"{where}: {MANIFEST_NAME} is incomplete (missing or bad field {exc}); rebuild the "
                        f"index from the stored vectors") from None
    return manifest


def _write_manifest(folder: Path, manifest: dict) -> None:
    """Replace the manifest atomically: write a temporary file, fsync it, `os.replace`, fsync the folder."""
    tmp = folder / f".{MANIFEST_NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST_NAME)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _calibration_json(cal: Int8Calibration | None) -> dict | None:
    if cal is None:
        return None
    # float32 -> Python float -> JSON repr round-trips exactly
    return {"low": [float(v) for v in cal.low], "high": [float(v) for v in cal.high]}


def _calibration_from_json(data: dict | None) -> Int8Calibration | None:
    if data is None:
        return None
    return Int8Calibration(np.asarray(data["low"], dtype=np.float32), np.asarray(data["high"], dtype=np.float32))


def _memmap(path: Path, spec: FileSpec, n: int) -> np.ndarray:
    """(n, *row_shape) plain ndarray over a read-only memory map (numba and numpy treat it as any array)."""
    shape = (n, *spec.row_shape)
    if n == 0:
        return np.empty(shape, dtype=np.dtype(spec.dtype))
    return np.asarray(np.memmap(path, dtype=np.dtype(spec.dtype), mode="r", shape=shape))
