"""`DiskIndex`: one folder of quantised codes: create, open (lengths checked), build, append (one atomic
manifest commit), verify, rebuild from the float vectors, search with any `IndexConfig`, footprint."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo.disk_index.checksums import _AppendWriter, file_chunk_digests
from pplx_demo.disk_index.encoding import (_ENCODE_BLOCK_BYTES, encode_rows, first_batch_calibration, int8_affine,
                                           quantized_index_over)
from pplx_demo.disk_index.files import (CHECKSUM_ALGORITHM, CHECKSUM_CHUNK_BYTES, CHUNK_IDS_FILE, MANIFEST_NAME,
                                        SCHEMA_VERSION, STORES, _INDEX_FILE_NAME, FileSpec, _all_files,
                                        _calibration_from_json, _calibration_json, _fsync_dir, _memmap,
                                        _read_manifest, _write_manifest, level_files)
from pplx_demo.disk_index.footprint import IndexFootprint
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.index import IndexConfig, QuantizedIndex, SearchHits
from pplx_demo.quantize import Int8Calibration, Int8Scheme

Progress = Callable[[int, int], None]


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
        """`config` with its int8 scheme fixed to this index's (None means "the index's scheme"). The float32
        rows on disk are the vectors as stored, compared by plain cosine: a "tanh" float form asked for is
        reported as "raw", which is what is computed (the scans cost the same)."""
        if config.float_form == "tanh":
            config = replace(config, float_form="raw")
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


def _check_vectors(vectors: np.ndarray) -> np.ndarray:
    if not isinstance(vectors, np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise DemoError(f"vectors must be a (n, dim) matrix, got shape {vectors.shape}")
    return vectors
