"""Out-of-core index on one machine: binary codes in RAM, int8 and float32 rows memory-mapped from disk.

One folder per (corpus, model cache key, variant) holds raw little-endian files plus a JSON manifest:

    manifest.json          schema version, sizes, int8 scheme + calibration, per-file length + checksums
    chunk_ids.i64          (n,) int64: the chunk id of every row
    d{D}.bits              (n, words * 8) uint8: MSB-first packed sign bits, zero padded to 64-bit words
    d{D}.int8              (n, D) int8 codes               \
    d{D}.int8_inv_norm     (n,) float32: 1 / |dequantised|  > memory-mapped, read only where a search needs them
    d{D}.float32           (n, D) float32 unit rows        /

with one set of `d{dim}.*` files per stored size (the model's full size, plus any Matryoshka size asked
for when the index was created). Every file holds exactly what `QuantizedIndex.build(vectors,
IndexConfig(..., dim=dim))` would hold in RAM, so a search here runs the same scans (the same numba
kernels and top-k code, on memory-mapped arrays) and returns the same ids and scores.

- Binary codes are read into RAM when the index is opened (32x smaller than float32); int8 codes and
  float32 rows stay on disk and are read through the page cache: only the k x multiplier candidate
  rows for "binary + rescore", every row for a plain int8 / float32 scan.
- Appending adds rows to every file and then replaces the manifest atomically (temporary file +
  `os.replace`): a crash before that leaves the old index valid. Checksums are blake2b digests of
  8 MiB chunks, so an append only re-hashes the last partial chunk and the new bytes.
- `DiskIndex.open` refuses a missing or unreadable manifest and any file whose length differs from the
  manifest; `verify()` re-hashes every file. `DiskIndex.rebuild(folder, vectors, chunk_ids)` rewrites
  the folder from the float vectors the caller passes (they live in DuckDB; nothing there is touched).
- Calibrated int8: the per-dimension ranges come from the first rows written (all of them for
  `DiskIndex.build`) and are then kept, so appended rows reuse them (values outside are clipped).
  An index built in one call therefore equals `QuantizedIndex.build`; after appends with a
  calibrated scheme, it equals a QuantizedIndex calibrated on the first batch. "tanh" (pplx-embed's
  native scheme) needs no calibration: append-then-search always equals a full build.
- One writer at a time (the studio's single process); searches may run while nobody appends.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.index import IndexConfig, QuantizedIndex, SearchHits
from pplx_demo.quantize import Int8Calibration, Int8Scheme, int8_calibrated, int8_tanh

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
CHUNK_IDS_FILE = "chunk_ids.i64"
STORES: tuple[str, ...] = ("binary", "int8", "float32")
CHECKSUM_ALGORITHM = "blake2b-128"
CHECKSUM_CHUNK_BYTES = 8 << 20  # a checksum per 8 MiB: an append re-hashes at most one partial chunk
_ENCODE_BLOCK_BYTES = 32 << 20  # float32 input quantised per step (temporaries stay a few times this)

Progress = Callable[[int, int], None]
# Names a disk index folder may hold: what `rebuild` is allowed to replace.
_INDEX_FILE_NAME = re.compile(r"manifest\.json|\.manifest\.json\..*\.tmp|chunk_ids\.i64|"
                              r"d\d+\.(bits|int8|int8_inv_norm|float32)")


# ---------------------------------------------------------------------------------------------
# file layout


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


# ---------------------------------------------------------------------------------------------
# encoding (the arrays QuantizedIndex.build would hold, row by row)


def int8_affine(scheme: Int8Scheme, calibration: Int8Calibration | None, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with dequantised = code * scale + offset, exactly as QuantizedIndex computes them."""
    if scheme == "calibrated":
        assert calibration is not None
        cal = calibration.truncate(dim)
        return cal.scale, (cal.offset + np.float32(128.0) * cal.scale).astype(np.float32)
    return np.full(dim, 1.0 / 127.0, dtype=np.float32), np.zeros(dim, dtype=np.float32)


def first_batch_calibration(vectors: np.ndarray) -> Int8Calibration:
    """Per-dimension min / max of a batch, block by block (QuantizedIndex's rule, one-row case included)."""
    n, dim = vectors.shape
    if n == 0:
        raise DemoError("calibrated int8 needs corpus vectors to take its ranges from; append at least one row")
    if n == 1:  # a range from a single point is empty: a symmetric range around it
        edge = np.abs(np.asarray(vectors, dtype=np.float32)).max(axis=0)
        return Int8Calibration(-edge.astype(np.float32), edge.astype(np.float32))
    low = np.full(dim, np.inf, dtype=np.float32)
    high = np.full(dim, -np.inf, dtype=np.float32)
    step = max(1, _ENCODE_BLOCK_BYTES // (4 * dim))
    for i in range(0, n, step):
        block = np.asarray(vectors[i:i + step], dtype=np.float32)
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
    return Int8Calibration(low, high)


def _unit_rows(view: np.ndarray) -> np.ndarray:
    x = np.array(view, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)  # an all-zero row stays zero (cosine 0)
    return x


def encode_rows(raw: np.ndarray, dim: int, store: Sequence[str], scheme: Int8Scheme,
                calibration: Int8Calibration | None) -> dict[str, np.ndarray]:
    """The rows of every file of one stored size for a block of pooled float vectors (r, full_dim)."""
    view = raw[:, :dim]
    out: dict[str, np.ndarray] = {}
    if "binary" in store:
        bits = np.zeros((raw.shape[0], bits_row_bytes(dim)), dtype=np.uint8)  # zero padding: XOR of padding is 0
        bits[:, : (dim + 7) // 8] = np.packbits(view >= 0, axis=1)
        out["bits"] = bits
    if "int8" in store:
        codes = int8_tanh(view) if scheme == "tanh" else int8_calibrated(view, calibration.truncate(dim))
        scale, offset = int8_affine(scheme, calibration, dim)
        norms = np.linalg.norm(codes.astype(np.float32) * scale + offset, axis=1)
        out["int8"] = codes
        out["int8_inv_norm"] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if "float32" in store:
        out["float32"] = _unit_rows(view)
    return out


# ---------------------------------------------------------------------------------------------
# checksums


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


# ---------------------------------------------------------------------------------------------
# manifest


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


# ---------------------------------------------------------------------------------------------
# the index


def _memmap(path: Path, spec: FileSpec, n: int) -> np.ndarray:
    """(n, *row_shape) plain ndarray over a read-only memory map (numba and numpy treat it as any array)."""
    shape = (n, *spec.row_shape)
    if n == 0:
        return np.empty(shape, dtype=np.dtype(spec.dtype))
    return np.asarray(np.memmap(path, dtype=np.dtype(spec.dtype), mode="r", shape=shape))


def quantized_index_over(config: IndexConfig, n: int, dim: int, full_dim: int, *, kernels: str | None = None,
                         float_rows: np.ndarray | None = None, codes: np.ndarray | None = None,
                         code_inv_norm: np.ndarray | None = None, code_scale: np.ndarray | None = None,
                         code_offset: np.ndarray | None = None, calibration: Int8Calibration | None = None,
                         bits: np.ndarray | None = None) -> QuantizedIndex:
    """A QuantizedIndex around existing arrays (RAM or memory-mapped), without copying them.

    Hook for the lead: QuantizedIndex has no public constructor from prepared arrays, so this builds
    an empty index for `config` (which picks the kernels the same way `build` does) and sets its
    private arrays. Arrays must be what `build` would make: unit float rows (n, dim), int8 codes
    (n, dim) with 1/|dequantised| per row and the (scale, offset) affine map, packed bits as (n, words)
    uint64.
    """
    index = QuantizedIndex.build(np.zeros((0, dim), dtype=np.float32), config, kernels)
    index.n, index.dim, index.full_dim = n, dim, full_dim
    index._float = float_rows
    index._codes = codes
    index._code_inv_norm = code_inv_norm
    index._code_scale = code_scale
    index._code_offset = code_offset
    index._calibration = calibration
    index._bits = bits
    return index


@dataclass(frozen=True)
class IndexFootprint:
    """Bytes one configuration of an opened disk index uses: held in RAM, and read from disk files."""

    config: IndexConfig
    n_vectors: int
    ram_bytes: int  # arrays this process holds for the configuration (packed bits)
    scanned_file_bytes: int  # memory-mapped files every query scans in full (needs page cache to be fast)
    candidate_file_bytes: int  # memory-mapped files read only for the rescoring candidates
    disk_bytes: int  # every file the configuration reads, on disk

    @property
    def config_label(self) -> str:
        return str(self.config)

    def to_dict(self) -> dict:
        return {**self.__dict__, "config": str(self.config), "config_label": str(self.config)}


class DiskIndex:
    """Quantised codes of one corpus in a folder: open, append, search with any `IndexConfig`, verify, rebuild."""

    def __init__(self, folder: Path, manifest: dict, kernels: str | None = None) -> None:
        self.folder = Path(folder)
        self._manifest = manifest
        self._kernels = kernels
        self._lock = threading.RLock()
        self._maps: dict[str, np.ndarray] = {}
        self._bits: dict[int, np.ndarray] = {}  # stored size -> (n, words) uint64 in RAM
        self._views: dict[IndexConfig, QuantizedIndex] = {}
        self._tails: dict[str, tuple[int, Any]] = {}  # file -> (committed length, hasher of its partial chunk)
        self._calibration = _calibration_from_json(manifest["int8"].get("calibration"))

    # -- properties ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return int(self._manifest["n_rows"])

    def __len__(self) -> int:
        return self.n

    @property
    def full_dim(self) -> int:
        return int(self._manifest["full_dim"])

    @property
    def dims(self) -> tuple[int, ...]:
        """Stored sizes: the full size first, then Matryoshka sizes."""
        return tuple(int(d) for d in self._manifest["dims"])

    @property
    def store(self) -> tuple[str, ...]:
        """Stored code kinds, among "binary", "int8", "float32"."""
        return tuple(self._manifest["store"])

    @property
    def int8_scheme(self) -> Int8Scheme:
        return self._manifest["int8"]["scheme"]

    @property
    def calibration(self) -> Int8Calibration | None:
        return self._calibration

    @property
    def _chunk_bytes(self) -> int:
        return int(self._manifest["checksum"]["chunk_bytes"])

    @property
    def meta(self) -> dict:
        return dict(self._manifest.get("meta") or {})

    @property
    def manifest(self) -> dict:
        """A copy of the manifest as last committed."""
        return json.loads(json.dumps(self._manifest))

    @property
    def chunk_ids(self) -> np.ndarray:
        """(n,) int64 chunk id of every row (memory-mapped): `chunk_ids[hits.ids]` maps results to chunks."""
        return self._map(FileSpec(CHUNK_IDS_FILE, "<i8", ()))

    @property
    def ram_nbytes(self) -> int:
        """Bytes of the arrays held in RAM (the packed bits of every stored size, once loaded)."""
        return int(sum(a.nbytes for a in self._bits.values()))

    @property
    def disk_nbytes(self) -> int:
        """Bytes of every data file (manifest excluded), as committed."""
        return int(sum(int(f["nbytes"]) for f in self._manifest["files"].values()))

    def file_sizes(self) -> dict[str, int]:
        return {name: int(f["nbytes"]) for name, f in self._manifest["files"].items()}

    # -- creating and opening -----------------------------------------------------------------

    @classmethod
    def create(cls, folder: Path, full_dim: int, *, dims: Iterable[int | None] = (None,),
               store: Iterable[str] = STORES, int8_scheme: Int8Scheme = "tanh",
               calibration: Int8Calibration | None = None, meta: dict | None = None,
               kernels: str | None = None) -> "DiskIndex":
        """An empty index in a new (or empty) folder.

        `dims`: sizes to store (None = full; Matryoshka sizes below it). `store`: code kinds to keep
        (binary needs nothing else; "binary + rescore" needs int8 or float32 too). A calibrated
        scheme takes its ranges from `calibration`, else from the first rows appended.
        """
        folder = Path(folder)
        full_dim = int(full_dim)
        if full_dim < 1:
            raise DemoError(f"vector size must be positive, got {full_dim}")
        sizes = sorted({full_dim if d is None else min(int(d), full_dim) for d in dims} | {full_dim}, reverse=True)
        if sizes[-1] < 1:
            raise DemoError(f"Matryoshka sizes must be positive, got {sizes[-1]}")
        kinds = [s for s in STORES if s in set(store)]
        unknown = set(store) - set(STORES)
        if unknown or not kinds:
            raise DemoError(f"store must name some of {', '.join(STORES)}; got {sorted(set(store))}")
        if int8_scheme not in ("tanh", "calibrated"):
            raise DemoError(f"unknown int8 scheme {int8_scheme!r}: use 'tanh' or 'calibrated'")
        if folder.exists() and any(folder.iterdir()):
            raise DemoError(f"disk index {folder}: the folder is not empty; open it, or rebuild it")
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for spec in _all_files(sizes, kinds):
            (folder / spec.name).touch()
            files[spec.name] = {"dtype": spec.dtype, "row_shape": list(spec.row_shape), "nbytes": 0, "chunks": []}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": "pplx_demo disk index",
            "byte_order": "little",
            "full_dim": full_dim,
            "n_rows": 0,
            "dims": sizes,
            "store": kinds,
            "int8": {"scheme": int8_scheme, "calibration": _calibration_json(calibration)},
            "chunk_ids_file": CHUNK_IDS_FILE,
            "chunk_ids": {"count": 0, "first": None, "last": None},
            "checksum": {"algorithm": CHECKSUM_ALGORITHM, "chunk_bytes": CHECKSUM_CHUNK_BYTES},
            "files": files,
            "meta": dict(meta or {}),
            "updated_at": time.time(),
        }
        _write_manifest(folder, manifest)
        return cls(folder, manifest, kernels)

    @classmethod
    def open(cls, folder: Path, kernels: str | None = None) -> "DiskIndex":
        """Open a built index: reads the manifest, checks every file's length, loads the bits into RAM."""
        folder = Path(folder)
        manifest = _read_manifest(folder)
        n = int(manifest["n_rows"])
        expected = {s.name: s for s in _all_files([int(d) for d in manifest["dims"]], manifest["store"])}
        for name, spec in expected.items():
            entry = manifest["files"].get(name)
            if entry is None:
                raise DemoError(f"disk index {folder}: {MANIFEST_NAME} does not list {name}; rebuild the index "
                                f"from the stored vectors")
            want = int(entry["nbytes"])
            if want != n * spec.row_bytes:
                raise DemoError(f"disk index {folder}: {MANIFEST_NAME} records {want} bytes for {name}, but "
                                f"{n} rows need {n * spec.row_bytes}; rebuild the index from the stored vectors")
            path = folder / name
            if not path.is_file():
                raise DemoError(f"disk index {folder}: file {name} is missing; rebuild the index from the stored "
                                f"vectors (nothing in the database is affected)")
            have = path.stat().st_size
            if have != want:
                what = "cut short or damaged" if have < want else "longer than committed (an interrupted append?)"
                raise DemoError(f"disk index {folder}: file {name} has {have} bytes, the manifest records {want} "
                                f"({what}); rebuild the index from the stored vectors (nothing in the database "
                                f"is affected)")
        index = cls(folder, manifest, kernels)
        index.load()
        return index

    @classmethod
    def build(cls, folder: Path, vectors: np.ndarray, chunk_ids: Sequence[int] | np.ndarray, *,
              progress: Progress | None = None, cancel: threading.Event | None = None,
              **create_args: Any) -> "DiskIndex":
        """Create an index in `folder` and append `vectors` (n, full_dim) with their chunk ids."""
        vectors = _check_vectors(vectors)
        index = cls.create(folder, vectors.shape[1], **create_args)
        try:
            index.append(vectors, chunk_ids, progress=progress, cancel=cancel)
        except BaseException:
            index.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        index.load()
        return index

    @classmethod
    def rebuild(cls, folder: Path, vectors: np.ndarray, chunk_ids: Sequence[int] | np.ndarray, *,
                progress: Progress | None = None, cancel: threading.Event | None = None,
                **create_args: Any) -> "DiskIndex":
        """Rewrite the folder from the float vectors (e.g. from DuckDB): for a damaged, missing or stale index.

        Settings not given (dims, store, int8 scheme, calibration, meta) are taken from the old manifest
        when it is still readable. The new index is written beside the old one and swapped in at the
        end, so a failed rebuild leaves the folder as it was.
        """
        folder = Path(folder)
        try:
            old = _read_manifest(folder)
        except DemoError:
            old = None
        if old is not None:
            create_args.setdefault("dims", old["dims"])
            create_args.setdefault("store", old["store"])
            create_args.setdefault("int8_scheme", old["int8"]["scheme"])
            create_args.setdefault("meta", old.get("meta") or {})
        if folder.exists():
            strangers = [p.name for p in folder.iterdir() if not _INDEX_FILE_NAME.fullmatch(p.name)]
            if strangers or not folder.is_dir():
                raise DemoError(f"{folder} does not look like a disk index folder (it holds {', '.join(strangers[:3])}"
                                f"{'...' if len(strangers) > 3 else ''}); refusing to replace it")
        tmp = folder.with_name(f".{folder.name}.rebuild-{uuid.uuid4().hex[:8]}")
        fresh = cls.build(tmp, vectors, chunk_ids, progress=progress, cancel=cancel, **create_args)
        fresh.close()
        trash = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        if folder.exists():
            os.replace(folder, trash)
        os.replace(tmp, folder)
        _fsync_dir(folder.parent)
        shutil.rmtree(trash, ignore_errors=True)
        return cls.open(folder, create_args.get("kernels"))

    def load(self) -> None:
        """Read the packed bits of every stored size into RAM (done by `open`; again after appends)."""
        with self._lock:
            if "binary" not in self.store:
                return
            for d in self.dims:
                self._ram_bits(d)

    def close(self) -> None:
        """Drop the RAM copies and memory maps (the files stay)."""
        with self._lock:
            self._views.clear()
            self._maps.clear()
            self._bits.clear()

    def __enter__(self) -> "DiskIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending ----------------------------------------------------------------------------

    def append(self, vectors: np.ndarray, chunk_ids: Sequence[int] | np.ndarray, *,
               progress: Progress | None = None, cancel: threading.Event | None = None) -> None:
        """Add rows (pooled float vectors, (r, full_dim)) without rewriting existing ones; one manifest commit.

        Rows are quantised block by block, so `vectors` may be a memory map larger than RAM. On any
        error or cancel, files are cut back to the last committed state and nothing changes.
        """
        vectors = _check_vectors(vectors)
        ids = np.asarray(chunk_ids, dtype=np.int64).reshape(-1)
        r = vectors.shape[0]
        if vectors.shape[1] != self.full_dim:
            raise DemoError(f"vectors have {vectors.shape[1]} dimensions, this disk index holds {self.full_dim}")
        if ids.shape[0] != r:
            raise DemoError(f"{r} vectors but {ids.shape[0]} chunk ids")
        if r == 0:
            return
        with self._lock:
            if self.int8_scheme == "calibrated" and "int8" in self.store and self._calibration is None:
                self._calibration = first_batch_calibration(vectors)
                self._manifest["int8"]["calibration"] = _calibration_json(self._calibration)
            files = self._manifest["files"]
            committed = {name: int(f["nbytes"]) for name, f in files.items()}
            writers: dict[str, _AppendWriter] = {}
            try:
                for name in files:
                    writers[name] = _AppendWriter(self.folder / name, committed[name], list(files[name]["chunks"]),
                                                  self._tails.get(name), self._chunk_bytes)
                step = max(1, _ENCODE_BLOCK_BYTES // (4 * self.full_dim))
                for i in range(0, r, step):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("append cancelled; the disk index is unchanged")
                    block = np.asarray(vectors[i:i + step], dtype=np.float32)
                    if not np.isfinite(block).all():
                        raise DemoError("vectors contain NaN or infinite values; re-embed the corpus")
                    writers[CHUNK_IDS_FILE].write(ids[i:i + step].astype("<i8", copy=False))
                    for d in self.dims:
                        encoded = encode_rows(block, d, self.store, self.int8_scheme, self._calibration)
                        for role, spec in level_files(d, self.store).items():
                            writers[spec.name].write(encoded[role].astype(spec.dtype, copy=False))
                    if progress is not None:
                        progress(min(i + step, r), r)
                for w in writers.values():
                    w.finish()
            except BaseException:
                for w in writers.values():
                    w.abort()
                for name, length in committed.items():  # files a writer never opened are unchanged
                    path = self.folder / name
                    if path.exists() and path.stat().st_size != length:
                        os.truncate(path, length)
                self._tails.clear()
                if self.n == 0 and self.int8_scheme == "calibrated":
                    self._calibration = _calibration_from_json(self._manifest["int8"].get("calibration"))
                raise
            manifest = json.loads(json.dumps(self._manifest))
            for name, w in writers.items():
                manifest["files"][name]["nbytes"] = w.length
                manifest["files"][name]["chunks"] = w.chunks
            first = manifest["chunk_ids"]["first"]
            manifest["chunk_ids"] = {"count": self.n + r, "first": int(ids[0]) if first is None else first,
                                     "last": int(ids[-1])}
            manifest["n_rows"] = self.n + r
            manifest["updated_at"] = time.time()
            _write_manifest(self.folder, manifest)
            self._manifest = manifest
            self._tails = {name: w.tail for name, w in writers.items() if w.tail is not None}
            # Maps and RAM bits describe the old length: drop them; the bits come back on the next search.
            self._views.clear()
            self._maps.clear()
            self._bits.clear()

    # -- checking -----------------------------------------------------------------------------

    def verify(self) -> dict[str, int]:
        """Re-hash every file against the manifest; {file: bytes checked}, or DemoError naming the damage."""
        with self._lock:
            checked = {}
            for name, entry in self._manifest["files"].items():
                path = self.folder / name
                want = int(entry["nbytes"])
                if not path.is_file():
                    raise DemoError(f"disk index {self.folder}: file {name} is missing; rebuild the index from the "
                                    f"stored vectors")
                have = path.stat().st_size
                if have != want:
                    raise DemoError(f"disk index {self.folder}: file {name} has {have} bytes, the manifest records "
                                    f"{want}; rebuild the index from the stored vectors")
                chunk = self._chunk_bytes
                digests = file_chunk_digests(path, want, chunk)
                for j, (got, exp) in enumerate(zip(digests, entry["chunks"])):
                    if got != exp:
                        start = j * chunk
                        raise DemoError(f"disk index {self.folder}: file {name} is damaged (checksum mismatch in "
                                        f"bytes {start}..{min(start + chunk, want)}); rebuild the "
                                        f"index from the stored vectors (nothing in the database is affected)")
                if len(digests) != len(entry["chunks"]):
                    raise DemoError(f"disk index {self.folder}: {MANIFEST_NAME} lists {len(entry['chunks'])} "
                                    f"checksums for {name}, its {want} bytes need {len(digests)}; rebuild the index")
                checked[name] = want
            return checked

    # -- searching ----------------------------------------------------------------------------

    def resolve(self, config: IndexConfig) -> IndexConfig:
        """`config` with its int8 scheme fixed to this index's (None means "the index's scheme")."""
        if not config.uses_int8:
            return replace(config, int8_scheme=None)
        scheme = config.int8_scheme or self.int8_scheme
        if scheme != self.int8_scheme:
            raise DemoError(f"this disk index holds {self.int8_scheme} int8 codes, the configuration asks for "
                            f"{scheme}; rebuild it with int8_scheme={scheme!r}")
        return replace(config, int8_scheme=scheme)

    def search(self, queries: np.ndarray, k: int, config: IndexConfig) -> SearchHits:
        """Exact top-k rows per query (q, full_dim) for `config`: the same ids and scores as QuantizedIndex."""
        return self.quantized(config).search(queries, k)

    def quantized(self, config: IndexConfig) -> QuantizedIndex:
        """A QuantizedIndex for `config` whose arrays are this index's RAM bits and memory maps (cached)."""
        config = self.resolve(config)
        with self._lock:
            view = self._views.get(config)
            if view is None:
                view = self._make_view(config)
                self._views[config] = view
            return view

    def _level(self, config: IndexConfig) -> int:
        d = self.full_dim if config.dim is None else min(int(config.dim), self.full_dim)
        if d not in self.dims:
            raise DemoError(f"Matryoshka size {d} is not stored in this disk index (stored: "
                            f"{', '.join(map(str, self.dims))}); rebuild it with that size in dims")
        return d

    def _needs(self, config: IndexConfig) -> list[str]:
        if config.precision == "float32":
            return ["float32"]
        if config.precision == "int8":
            return ["int8"]
        if config.mode == "rescore":
            return ["binary", config.rescore_with]
        return ["binary"]

    def _make_view(self, config: IndexConfig) -> QuantizedIndex:
        d = self._level(config)
        missing = [s for s in self._needs(config) if s not in self.store]
        if missing:
            raise DemoError(f"'{config.label}' needs {' and '.join(missing)} codes, this disk index stores "
                            f"{', '.join(self.store)}; rebuild it with those in store")
        files = level_files(d, self.store)
        arrays: dict[str, Any] = {}
        if "float32" in self._needs(config):
            arrays["float_rows"] = self._map(files["float32"])
        if config.uses_int8:
            scale, offset = int8_affine(self.int8_scheme, self._calibration, d)
            arrays.update(codes=self._map(files["int8"]), code_inv_norm=self._map(files["int8_inv_norm"]),
                          code_scale=scale, code_offset=offset,
                          calibration=self._calibration.truncate(d) if self._calibration is not None else None)
        if config.precision == "binary":
            arrays["bits"] = self._ram_bits(d)
        return quantized_index_over(config, self.n, d, self.full_dim, kernels=self._kernels, **arrays)

    def _map(self, spec: FileSpec) -> np.ndarray:
        with self._lock:
            arr = self._maps.get(spec.name)
            if arr is None:
                arr = _memmap(self.folder / spec.name, spec, self.n)
                self._maps[spec.name] = arr
            return arr

    def _ram_bits(self, d: int) -> np.ndarray:
        with self._lock:
            bits = self._bits.get(d)
            if bits is None:
                spec = level_files(d, self.store)["bits"]
                path = self.folder / spec.name
                want = self.n * spec.row_bytes
                if not path.is_file() or path.stat().st_size != want:
                    have = path.stat().st_size if path.is_file() else "no"
                    raise DemoError(f"disk index {self.folder}: file {spec.name} has {have} bytes, the manifest "
                                    f"records {want}; rebuild the index from the stored vectors")
                raw = np.fromfile(path, dtype=np.uint8, count=want) if want else np.zeros(0, np.uint8)
                bits = raw.reshape(self.n, spec.row_shape[0]).view(np.uint64)
                self._bits[d] = bits
            return bits

    # -- accounting ---------------------------------------------------------------------------

    def footprint(self, config: IndexConfig) -> IndexFootprint:
        """Measured bytes for `config`: bits held in RAM, files scanned in full, files read for candidates."""
        config = self.resolve(config)
        d = self._level(config)
        files = level_files(d, self.store)
        size = self.file_sizes()
        ram = scanned = candidates = 0
        if config.precision == "float32":
            scanned = size[files["float32"].name]
        elif config.precision == "int8":
            scanned = size[files["int8"].name] + size[files["int8_inv_norm"].name]
        else:
            ram = size[files["bits"].name]
            if config.mode == "rescore" and config.rescore_with == "int8":
                candidates = size[files["int8"].name] + size[files["int8_inv_norm"].name]
            elif config.mode == "rescore":
                candidates = size[files["float32"].name]
        return IndexFootprint(config, self.n, ram, scanned, candidates, ram + scanned + candidates)


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


def _check_vectors(vectors: np.ndarray) -> np.ndarray:
    if not isinstance(vectors, np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise DemoError(f"vectors must be a (n, dim) matrix, got shape {vectors.shape}")
    return vectors
