"""Exact in-memory vector search over float32, int8 or binary codes, with numpy only.

`QuantizedIndex.build(vectors, IndexConfig(...))` turns a corpus' pooled float vectors into the
codes one configuration needs; `index.search(queries, k)` returns exact top-k row indices and
scores for a batch of float query vectors, with per-stage timings.

Scores are cosine-like, higher is better, for every configuration:
- float32: cosine of the (Matryoshka-truncated, then normalised) vectors.
- int8 plain: cosine of the dequantised codes, the query quantised the same way (symmetric; for
  "tanh" codes that is the cosine of the raw codes, how pplx-embed int8 vectors are compared).
- binary plain: 1 - 2 * hamming / dim, the cosine of the +-1 sign vectors.
- binary + rescore: Hamming picks k * multiplier candidates, then the float query is compared with
  the candidates' dequantised int8 codes or float32 vectors.
- binary asymmetric: cosine of the float query with every +-1 sign vector.

Dequantisation: "calibrated" int8 maps back to (code + 128) * scale + low per dimension (query
unchanged); "tanh" codes are compared in the space the model was trained in, code / 127 against
tanh(query), so only the rounding is lost.

Ties are broken by the lower row index everywhere, so results are deterministic. Scans are blocked
(temporaries stay near cache size), keep a running top-k, and split rows across threads where
numpy itself is single-threaded (int8, binary; float32 uses the BLAS threads).

Kernels: the int8 and Hamming scans have compiled twins in `pplx_demo.index_numba` (numba;
imported on the first build that needs them, compiled on first use once per machine and cached on
disk) that fuse scoring with a per-query top-k heap. They return the same ids and scores as the
numpy loops: Hamming exactly; int8 up to float32 summation order (a row's score there does not
depend on its position, so exact copies of a row always tie, which BLAS blocks do not promise).
`PPLX_DEMO_KERNELS` = auto (numba when importable, else numpy) | numpy | numba chooses;
`QuantizedIndex.kernels` says which one an index uses and `SearchHits.kernel` which one a search ran.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Literal

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.quantize import (PRECISIONS, Int8Calibration, Int8Scheme, Precision, calibrate_int8, int8_calibrated,
                                int8_tanh)

Mode = Literal["plain", "rescore", "asymmetric"]
MODES: tuple[Mode, ...] = ("plain", "rescore", "asymmetric")
RescoreWith = Literal["int8", "float32"]
INT8_SCHEMES: tuple[Int8Scheme, ...] = ("tanh", "calibrated")

# Work sizes, in bytes of the operand a block step touches; chosen to stay inside L2/L3.
_FLOAT_SCORES_BYTES = 8 << 20  # float32: rows per BLAS call sized by the (queries x rows) score buffer
_CAST_BLOCK_BYTES = 4 << 20  # float32 buffer an int8 / bit block is widened into (measured best 2-4 MB)
_BITS_BLOCK_BYTES = 2 << 20  # XOR temporary for (queries x rows) words; smaller blocks pay more per-call overhead
_BITS_CHUNK_ROWS = 1 << 15  # rows whose scores are collected before a top-k update
_PARALLEL_MIN_ROWS = 1 << 15  # below this a second thread costs more than it saves
_PARTS_PER_THREAD = 4  # scan parts per worker thread (load balancing on a busy machine)
_MIN_PART_ROWS = 1 << 13
# Compiled kernels (numba path).
_HAMMING_MANY_MIN_QUERIES = 6  # from here on the query-vectorised Hamming kernel beats one pass per query
_HAMMING_BLOCK_BYTES = 32 << 10  # rows kept in L1 while every query group reads them
_HAMMING_QUERY_GROUP = 64  # queries per pass over a row block (their words stay in L1)
_INT8_MANY_MIN_QUERIES = 2  # from here on four queries share each widened code (widening is the cost)
_INT8_BLOCK_BYTES = 256 << 10  # codes kept in L2 while every group of four queries reads them
_COMPILED_PART_WORK = 4 << 20  # bytes read x queries per scan part; less is not worth a thread handoff

Kernels = Literal["numpy", "numba"]
KERNEL_CHOICES = ("auto", "numpy", "numba")


@dataclass(frozen=True)
class IndexConfig:
    """One search configuration: precision, mode, Matryoshka size and rescoring options.

    `int8_scheme=None` means "the model's native scheme" (tanh for pplx-embed, calibrated for the
    stand-in); `SearchService` resolves it per encoder, `QuantizedIndex.build` treats None as tanh.
    "rescore" and "asymmetric" apply to binary codes only.
    """

    precision: Precision = "float32"
    mode: Mode = "plain"
    dim: int | None = None  # Matryoshka size; None = the model's full size
    rescore_multiplier: int = 4
    rescore_with: RescoreWith = "int8"
    int8_scheme: Int8Scheme | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise DemoError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.mode not in MODES:
            raise DemoError(f"unknown search mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.mode != "plain" and self.precision != "binary":
            raise DemoError(f"mode {self.mode!r} needs binary codes (it re-scores or reads sign vectors); "
                            f"use precision 'binary' or mode 'plain'")
        if self.dim is not None and (not isinstance(self.dim, (int, np.integer)) or self.dim < 1):
            raise DemoError(f"Matryoshka size must be a positive integer, got {self.dim!r}")
        if self.rescore_with not in ("int8", "float32"):
            raise DemoError(f"rescore_with must be 'int8' or 'float32', got {self.rescore_with!r}")
        if not isinstance(self.rescore_multiplier, (int, np.integer)) or not 1 <= self.rescore_multiplier <= 1000:
            raise DemoError(f"rescore multiplier must be an integer in 1..1000, got {self.rescore_multiplier!r}")
        if self.int8_scheme not in (None, *INT8_SCHEMES):
            raise DemoError(f"unknown int8 scheme {self.int8_scheme!r}: use 'tanh' or 'calibrated'")

    @property
    def uses_int8(self) -> bool:
        """True when int8 codes are searched or used for rescoring."""
        return self.precision == "int8" or (self.mode == "rescore" and self.rescore_with == "int8")

    def resolved(self, default_int8_scheme: Int8Scheme) -> "IndexConfig":
        """This config with `int8_scheme` fixed (to the default when unset); unchanged if it has no int8."""
        if not self.uses_int8:
            return replace(self, int8_scheme=None)
        return replace(self, int8_scheme=self.int8_scheme or default_int8_scheme)

    @property
    def label(self) -> str:
        """Short human name, e.g. 'binary + rescore(int8) x4 @512d' or 'int8 (calibrated)'."""
        scheme = " calibrated" if self.int8_scheme == "calibrated" else ""
        if self.precision == "int8":
            text = f"int8{' (calibrated)' if scheme else ''}"
        else:
            text = self.precision
        if self.mode == "rescore":
            target = f"int8{scheme}" if self.rescore_with == "int8" else "float32"
            text += f" + rescore({target}) x{self.rescore_multiplier}"
        elif self.mode == "asymmetric":
            text += " + asymmetric (float query)"
        if self.dim is not None:
            text += f" @{self.dim}d"
        return text


@dataclass
class SearchHits:
    """Top-k per query, best first: ids are row indices into the built matrix."""

    ids: np.ndarray  # (q, k) int64
    scores: np.ndarray  # (q, k) float32
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: "search", "rescore"
    kernel: Kernels = "numpy"  # which scan ran: the numpy loops or the compiled (numba) kernels


# ---------------------------------------------------------------------------------------------
# top-k selection


class _TopK:
    """Exact running top-k per query (score desc, then row asc) over blocks of rising row index."""

    def __init__(self, nq: int, k: int) -> None:
        self.nq, self.k = nq, k
        self.ids = np.full((nq, k), -1, dtype=np.int64)
        self.scores = np.full((nq, k), -np.inf, dtype=np.float32)
        self._threshold: np.ndarray | None = None  # (nq, 1) k-th score once every query has k rows

    def push(self, scores: np.ndarray, start: int) -> None:
        """Offer a (nq, r) block of scores for rows start..start+r (rows above all seen so far)."""
        r = scores.shape[1]
        if r == 0 or self.k == 0:
            return
        if self._threshold is not None:
            # Rows only grow, so an equal score never displaces a kept row: strict > suffices.
            qi, cj = np.nonzero(scores > self._threshold)
        elif r > self.k:
            head = max(4 * self.k, 2048)
            if head < r:  # partition a head only; its k-th score then filters the rest cheaply
                self.push(scores[:, :head], start)
                self.push(scores[:, head:], start + head)
                return
            kth = np.partition(scores, r - self.k, axis=1)[:, r - self.k: r - self.k + 1]
            qi, cj = np.nonzero(scores >= kth)  # every tie of the k-th value; merge keeps low rows
        else:
            qi, cj = np.nonzero(np.ones(scores.shape, dtype=bool))
        if qi.size:
            self.merge(qi, cj.astype(np.int64) + start, scores[qi, cj])

    def merge(self, qi: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> None:
        """Fold candidate (query, row, score) triples into the kept top-k (any row order)."""
        kept = self.ids >= 0
        all_q = np.concatenate([np.nonzero(kept)[0], qi])
        all_ids = np.concatenate([self.ids[kept], ids])
        all_s = np.concatenate([self.scores[kept], scores.astype(np.float32, copy=False)])
        order = np.lexsort((all_ids, -all_s, all_q))
        q_sorted = all_q[order]
        starts = np.searchsorted(q_sorted, np.arange(self.nq))
        rank = np.arange(q_sorted.size) - starts[q_sorted]
        keep = rank < self.k
        self.ids.fill(-1)
        self.scores.fill(-np.inf)
        self.ids[q_sorted[keep], rank[keep]] = all_ids[order][keep]
        self.scores[q_sorted[keep], rank[keep]] = all_s[order][keep]
        if self.ids[:, -1].min() >= 0:
            self._threshold = self.scores[:, -1:].copy()

    def absorb(self, other: "_TopK") -> None:
        """Merge another selector's results (e.g. from a thread that scanned other rows)."""
        kept = other.ids >= 0
        if kept.any():
            self.merge(np.nonzero(kept)[0], other.ids[kept], other.scores[kept])

    def result(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) trimmed to min(k, n_rows) columns."""
        width = min(self.k, n_rows)
        return self.ids[:, :width].copy(), self.scores[:, :width].copy()


def top_k_rows(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of a (q, m) score matrix (ties: lower id), as (ids, scores)."""
    scores = np.asarray(scores, dtype=np.float32)
    nq, m = scores.shape
    sel = _TopK(nq, k)
    if ids is None:
        sel.push(scores, 0)
    else:
        qi = np.repeat(np.arange(nq), m)
        sel.merge(qi, np.asarray(ids, dtype=np.int64).ravel(), scores.ravel())
    return sel.result(m)


# ---------------------------------------------------------------------------------------------
# kernel choice

_COMPILED: ModuleType | None = None
_COMPILED_ERROR: str | None = None
_COMPILED_LOCK = threading.Lock()


def _compiled_kernels() -> ModuleType | None:
    """`pplx_demo.index_numba`, imported on first use (not at import: numba takes ~0.5 s); None if unavailable."""
    global _COMPILED, _COMPILED_ERROR
    with _COMPILED_LOCK:
        if _COMPILED is None and _COMPILED_ERROR is None:
            try:
                _COMPILED = importlib.import_module("pplx_demo.index_numba")
            except (ImportError, OSError) as exc:  # numba missing, built for another numpy, or no llvmlite library
                _COMPILED_ERROR = f"{type(exc).__name__}: {exc}"
        return _COMPILED


def kernel_path(choice: str | None = None) -> Kernels:
    """The scan kernels to use: `choice`, else PPLX_DEMO_KERNELS, else "auto" (numba when importable)."""
    source = "kernels" if choice is not None else "setting PPLX_DEMO_KERNELS"
    value = (choice if choice is not None else os.environ.get("PPLX_DEMO_KERNELS") or "auto").strip().lower()
    if value not in KERNEL_CHOICES:
        raise DemoError(f"{source}={value!r} is not a kernel choice: use one of {', '.join(KERNEL_CHOICES)}")
    if value == "numpy":
        return "numpy"
    if _compiled_kernels() is not None:
        return "numba"
    if value == "numba":
        raise DemoError(f"{source}=numba, but numba cannot be imported ({_COMPILED_ERROR}); "
                        f"install numba==0.68.1 or choose 'auto' or 'numpy'")
    return "numpy"


def _has_compiled_twin(config: IndexConfig) -> bool:
    """True when a search of `config` runs a scan that has a compiled twin (int8, Hamming)."""
    return config.precision == "int8" or (config.precision == "binary" and config.mode != "asymmetric")


# ---------------------------------------------------------------------------------------------
# kernels


def _row_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous, nearly equal row ranges covering 0..n."""
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="index-scan")
        return _POOL


class _OneBlasThread:
    """While any scan splits rows over Python threads, each BLAS call runs on one thread.

    Two levels of threads (ours x BLAS') oversubscribe the cores and make OpenBLAS serialise
    concurrent calls. Reference-counted, so overlapping scans restore the original limit once.
    """

    _lock = threading.Lock()
    _depth = 0
    _limiter = None
    _controller = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:  # optional: without it the scan is only slower
                    cls._limiter = None
                else:
                    if cls._controller is None:
                        cls._controller = ThreadpoolController()
                    cls._limiter = cls._controller.limit(limits=1, user_api="blas")
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._limiter is not None:
                cls._limiter.restore_original_limits()
                cls._limiter = None


Scan = Callable[[int, int, _TopK], None]


def _run_parts(parts: list[tuple[int, int]], threads: int, make_work: Callable[[], Callable[[int, int, int], None]]
               ) -> None:
    """Run `work(i, start, stop)` for every part on up to `threads` workers; the caller is one of them.

    `make_work()` is called once per worker (its own buffers). Workers pull parts from a shared
    counter, so when another process holds a core the free worker simply takes more parts (a
    fixed split would wait for the slow half).
    """
    next_part = itertools.count()  # next() on a count is atomic under the GIL

    def worker() -> None:
        work = make_work()
        while (i := next(next_part)) < len(parts):
            work(i, parts[i][0], parts[i][1])

    helpers = [_pool().submit(worker) for _ in range(min(threads, len(parts)) - 1)]
    worker()
    for f in helpers:
        if not f.cancel():  # a helper still queued behind other searches is not needed any more
            f.result()


def _parallel_scan(n: int, nq: int, k: int, threads: int, make_scan: Callable[[], Scan],
                   uses_blas: bool) -> _TopK:
    """Scan rows 0..n in parts on up to `threads` workers and merge the parts' top-k.

    `make_scan()` is called once per worker and returns `scan(start, stop, selector)` with that
    worker's own buffers. A scan that calls BLAS on small cached blocks runs BLAS
    single-threaded: waking BLAS threads per block costs more than the work.
    """
    n_parts = 1
    if threads > 1 and n >= _PARALLEL_MIN_ROWS:
        n_parts = max(1, min(threads * _PARTS_PER_THREAD, n // _MIN_PART_ROWS))
    parts = _row_ranges(n, n_parts)
    selectors = [_TopK(nq, k) for _ in parts]

    def make_work() -> Callable[[int, int, int], None]:
        scan = make_scan()
        return lambda i, start, stop: scan(start, stop, selectors[i])

    with _OneBlasThread() if uses_blas else contextlib.nullcontext():
        _run_parts(parts, threads, make_work)
    total = selectors[0] if selectors else _TopK(nq, k)
    for other in selectors[1:]:
        total.absorb(other)
    return total


HeapScan = Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]


def _compiled_scan(n: int, nq: int, k: int, threads: int, row_bytes: int, heap_scan: HeapScan) -> _TopK:
    """Top-k over rows 0..n from `heap_scan(start, stop, slots) -> (scores, ids)` per part, merged once.

    Parts are sized by work (bytes read x queries): a small index is one call on the calling
    thread, since handing parts to a second thread costs more than the compiled scan of them.
    """
    min_rows = max(1, _COMPILED_PART_WORK // max(1, row_bytes * nq))
    n_parts = max(1, min(threads * _PARTS_PER_THREAD, n // min_rows)) if threads > 1 else 1
    parts = _row_ranges(n, n_parts)
    heaps: list[tuple[np.ndarray, np.ndarray]] = [(np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64))]
    heaps += [heaps[0]] * len(parts)

    def make_work() -> Callable[[int, int, int], None]:
        def work(i: int, start: int, stop: int) -> None:
            heaps[i + 1] = heap_scan(start, stop, min(k, stop - start))
        return work

    _run_parts(parts, threads, make_work)
    scores = np.concatenate([h[0] for h in heaps], axis=1)
    ids = np.concatenate([h[1] for h in heaps], axis=1)
    kept = ids >= 0  # empty heap slots hold id -1
    sel = _TopK(nq, k)
    sel.merge(np.nonzero(kept)[0], ids[kept], scores[kept])
    return sel


def _matmul_into(queries: np.ndarray, block: np.ndarray, out: np.ndarray) -> None:
    """out (nq, r) = queries (nq, d) @ block (r, d).T through BLAS (gemv for a single query)."""
    if queries.shape[0] == 1:
        np.matmul(block, queries[0], out=out[0])
    else:
        np.matmul(queries, block.T, out=out)


def _lane_plan(words: int) -> tuple[type, int]:
    """(unsigned lane dtype, bytes per lane) for summing `words` per-word popcounts of one row."""
    for size, dtype in ((8, np.uint64), (4, np.uint32), (2, np.uint16)):
        if words % size == 0:
            return dtype, size
    return np.uint8, 1


def _popcount_row_sums(counts: np.ndarray, words: int) -> np.ndarray:
    """Sum each row of `words` uint8 popcounts (flat (m * words,) array) -> (m,) unsigned ints.

    SWAR: add up to three lanes of bytes at once (<= 192, no carry), widen to 16-bit lanes, then
    fold the lanes with one multiply, instead of numpy's slow reduction over short rows.
    """
    dtype, size = _lane_plan(words)
    if size == 1:
        rows = counts.reshape(-1, words)
        acc = rows[:, 0].astype(np.uint16)
        for j in range(1, words):
            acc += rows[:, j]
        return acc
    lanes = counts.view(dtype).reshape(-1, words // size)
    cols = lanes.shape[1]
    m_lo = dtype(int.from_bytes(b"\xff\x00" * (size // 2), "little"))
    acc = None
    for g in range(0, cols, 3):
        s = lanes[:, g].copy()
        for j in range(g + 1, min(g + 3, cols)):
            s += lanes[:, j]
        if size == 2:
            wide = (s & m_lo) + (s >> dtype(8))
        else:
            wide = s & m_lo
            s >>= dtype(8)
            s &= m_lo
            wide += s
        acc = wide if acc is None else acc + wide
    assert acc is not None
    if size == 8:
        acc *= np.uint64(0x0001000100010001)
        acc >>= np.uint64(48)
    elif size == 4:
        acc *= np.uint32(0x00010001)
        acc >>= np.uint32(16)
    return acc


def _tiled(rows: np.ndarray, times: int) -> np.ndarray:
    """(nq, times * words): each row repeated `times` times, by doubling copies (np.tile is slow)."""
    nq, words = rows.shape
    out = np.empty((nq, times * words), dtype=rows.dtype)
    out[:, :words] = rows
    filled = words
    while filled < out.shape[1]:
        step = min(filled, out.shape[1] - filled)
        out[:, filled:filled + step] = out[:, :step]
        filled += step
    return out


class _BitScorer:
    """Agreement counts (dim - hamming) of packed query bits against blocks of packed rows.

    Each query is repeated over a whole block (`qtiled`, shared by the workers of one search), so
    the XOR is one long contiguous loop per query; broadcasting a (words,) row would run numpy's
    inner loop `words` elements at a time.
    """

    def __init__(self, qtiled: np.ndarray, words: int, dim_bits: int) -> None:
        self.nq, self.words, self.dim_bits = qtiled.shape[0], words, dim_bits
        self.block_rows = qtiled.shape[1] // words
        self.qtiled = qtiled
        self._xor = np.empty(qtiled.size, dtype=np.uint64)
        self._counts = np.empty(qtiled.size, dtype=np.uint8)

    @staticmethod
    def block_rows_for(nq: int, words: int) -> int:
        return max(1, _BITS_BLOCK_BYTES // (8 * words * nq))

    def score(self, block: np.ndarray, out: np.ndarray) -> None:
        """out (nq, r) float32 = agreement counts for block (r <= block_rows, words) uint64."""
        width = block.shape[0] * self.words
        size = self.nq * width
        x = self._xor[:size].reshape(self.nq, width)
        np.bitwise_xor(block.reshape(1, width), self.qtiled[:, :width], out=x)
        c = self._counts[:size]
        np.bitwise_count(self._xor[:size], out=c)
        sums = _popcount_row_sums(c, self.words).reshape(self.nq, block.shape[0])
        np.subtract(self.dim_bits, sums, out=out, casting="unsafe")


# ---------------------------------------------------------------------------------------------
# the index


def _check_matrix(vectors: np.ndarray, what: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2:
        raise DemoError(f"{what} must be a (n, dim) matrix, got shape {vectors.shape}")
    if vectors.dtype != np.float32:
        vectors = vectors.astype(np.float32)
    return vectors


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)  # an all-zero row stays zero (cosine 0)
    return x


def _block_rows(row_bytes: int, budget: int) -> int:
    return max(1, budget // max(1, row_bytes))


class QuantizedIndex:
    """Codes for one `IndexConfig` over n corpus vectors, searched exactly by blocked numpy scans.

    Attributes: `config`, `n`, `dim` (searched size), `full_dim` (input size), `nbytes` (bytes of
    every array held), `bytes_per_vector` (per-row bytes of those arrays), `fixed_nbytes` (the
    rest, e.g. calibration ranges).
    """

    def __init__(self, config: IndexConfig, n: int, dim: int, full_dim: int) -> None:
        self.config = config
        self.n, self.dim, self.full_dim = n, dim, full_dim
        self.threads = max(1, os.cpu_count() or 1)
        self.kernels: Kernels = "numpy"  # "numba": int8 / Hamming scans run the compiled kernels
        self._float: np.ndarray | None = None  # (n, dim) float32, unit rows
        self._codes: np.ndarray | None = None  # (n, dim) int8
        self._code_scale: np.ndarray | None = None  # (dim,) float32: dequantised = code * a + b
        self._code_offset: np.ndarray | None = None  # (dim,) float32
        self._code_inv_norm: np.ndarray | None = None  # (n,) float32: 1 / |dequantised row|
        self._calibration: Int8Calibration | None = None
        self._bits: np.ndarray | None = None  # (n, words) uint64, MSB-first packed signs

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig, kernels: str | None = None) -> "QuantizedIndex":
        """Quantise a corpus' pooled float vectors (n, full_dim) for `config` (block-wise, one copy).

        `kernels` ("auto" | "numpy" | "numba", default PPLX_DEMO_KERNELS) picks the scan kernels.
        """
        kernel_choice = kernel_path(kernels) if _has_compiled_twin(config) else "numpy"
        vectors = _check_matrix(vectors, "corpus vectors")
        n, full_dim = vectors.shape
        dim = full_dim if config.dim is None else min(int(config.dim), full_dim)
        if n and not np.isfinite(vectors[:, :dim]).all():
            raise DemoError("corpus vectors contain NaN or infinite values; re-embed the corpus")
        index = cls(config, n, dim, full_dim)
        index.kernels = kernel_choice
        view = vectors[:, :dim]
        needs_float = config.precision == "float32" or (config.mode == "rescore" and config.rescore_with == "float32")
        if needs_float:
            index._float = index._build_float(view)
        if config.uses_int8:
            index._build_int8(view, config.int8_scheme or "tanh")
        if config.precision == "binary":
            index._bits = index._build_bits(view)
        return index

    @staticmethod
    def _build_float(view: np.ndarray) -> np.ndarray:
        out = np.empty(view.shape, dtype=np.float32)
        step = _block_rows(4 * view.shape[1], 16 << 20)
        for i in range(0, view.shape[0], step):
            out[i:i + step] = _normalised(view[i:i + step])
        return out

    def _build_int8(self, view: np.ndarray, scheme: Int8Scheme) -> None:
        n, dim = view.shape
        codes = np.empty((n, dim), dtype=np.int8)
        if scheme == "calibrated":
            if n >= 2:
                cal = calibrate_int8(view)
            else:  # one vector: a symmetric range around it (a range from a single point is empty)
                edge = np.abs(view).max(axis=0) if n else np.ones(dim, np.float32)
                cal = Int8Calibration(-edge.astype(np.float32), edge.astype(np.float32))
            self._calibration = cal
            self._code_scale = cal.scale
            self._code_offset = (cal.offset + np.float32(128.0) * cal.scale).astype(np.float32)
        else:
            self._code_scale = np.full(dim, 1.0 / 127.0, dtype=np.float32)
            self._code_offset = np.zeros(dim, dtype=np.float32)
        inv_norm = np.empty(n, dtype=np.float32)
        step = _block_rows(4 * dim, 8 << 20)
        for i in range(0, n, step):
            part = view[i:i + step]
            c = int8_tanh(part) if scheme == "tanh" else int8_calibrated(part, self._calibration)
            codes[i:i + step] = c
            norms = np.linalg.norm(self._dequantise(c), axis=1)
            inv_norm[i:i + step] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        self._codes, self._code_inv_norm = codes, inv_norm

    @staticmethod
    def _build_bits(view: np.ndarray) -> np.ndarray:
        n, dim = view.shape
        words = (dim + 63) // 64
        out = np.zeros((n, words * 8), dtype=np.uint8)  # zero padding: XOR of padding is 0
        step = _block_rows(4 * dim, 8 << 20)
        for i in range(0, n, step):
            out[i:i + step, : (dim + 7) // 8] = np.packbits(view[i:i + step] >= 0, axis=1)
        return out.view(np.uint64)

    def _dequantise(self, codes: np.ndarray) -> np.ndarray:
        assert self._code_scale is not None and self._code_offset is not None
        return codes.astype(np.float32) * self._code_scale + self._code_offset

    # -- memory ---------------------------------------------------------------------------------

    def _arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        per_row = [a for a in (self._float, self._codes, self._code_inv_norm, self._bits) if a is not None]
        fixed = [a for a in (self._code_scale, self._code_offset) if a is not None]
        if self._calibration is not None:
            fixed += [self._calibration.low, self._calibration.high]
        return per_row, fixed

    @property
    def nbytes(self) -> int:
        """Bytes of every array this index holds (codes, norms, calibration)."""
        per_row, fixed = self._arrays()
        return int(sum(a.nbytes for a in per_row) + sum(a.nbytes for a in fixed))

    @property
    def bytes_per_vector(self) -> int:
        """Bytes held per corpus vector (codes + per-row norms, padding included)."""
        per_row, _ = self._arrays()
        return int(sum(a.nbytes // a.shape[0] if a.shape[0] else a.itemsize * int(np.prod(a.shape[1:]))
                       for a in per_row))

    @property
    def fixed_nbytes(self) -> int:
        """Bytes held independently of the number of vectors (calibration ranges, scales)."""
        return self.nbytes - self.bytes_per_vector * self.n

    # -- searching ------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        """Exact top-k rows for each of a batch of pooled float query vectors (q, full_dim)."""
        queries = _check_matrix(queries, "query vectors")
        if queries.shape[1] < self.dim:
            raise DemoError(f"query vectors have {queries.shape[1]} dimensions, the index needs {self.dim}")
        if not np.isfinite(queries[:, : self.dim]).all():
            raise DemoError("query vectors contain NaN or infinite values")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise DemoError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        q = np.ascontiguousarray(queries[:, : self.dim])
        cfg = self.config
        t0 = time.perf_counter()
        if cfg.precision == "float32":
            ids, scores = self._search_float(q, k)
            return SearchHits(ids, scores, {"search": time.perf_counter() - t0})
        if cfg.precision == "int8":
            ids, scores, kernel = self._search_int8(q, k)
            return SearchHits(ids, scores, {"search": time.perf_counter() - t0}, kernel)
        if cfg.mode == "asymmetric":
            ids, scores = self._search_asymmetric(q, k)
            return SearchHits(ids, scores, {"search": time.perf_counter() - t0})
        if cfg.mode == "plain":
            ids, scores = self._search_hamming(q, k)
            return SearchHits(ids, scores, {"search": time.perf_counter() - t0}, self.kernels)
        ids, _ = self._search_hamming(q, k * cfg.rescore_multiplier)
        t1 = time.perf_counter()
        ids, scores = self._rescore(q, ids, k)
        return SearchHits(ids, scores, {"search": t1 - t0, "rescore": time.perf_counter() - t1}, self.kernels)

    def _search_float(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._float is not None
        x, qn = self._float, _normalised(q)
        # The block is a view; only its score buffer is a temporary, so one query scans in one call.
        step = _block_rows(4 * qn.shape[0], _FLOAT_SCORES_BYTES)
        buf = np.empty((qn.shape[0], min(step, max(self.n, 1))), dtype=np.float32)
        sel = _TopK(qn.shape[0], k)
        for i in range(0, self.n, step):  # one thread: BLAS already uses every core
            block = x[i:i + step]
            out = buf[:, : block.shape[0]]
            _matmul_into(qn, block, out)
            sel.push(out, i)
        return sel.result(self.n)

    def _int8_weights(self, q: np.ndarray, quantise_query: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w, bias, 1/|q_hat|): q_hat . dequantised(row) = codes(row) . w + bias."""
        scheme = self.config.int8_scheme or "tanh"
        if quantise_query:
            codes = int8_tanh(q) if scheme == "tanh" else int8_calibrated(q, self._calibration)
            q_hat = self._dequantise(codes)
        else:
            q_hat = np.tanh(q) if scheme == "tanh" else q.astype(np.float32)
        w = (q_hat * self._code_scale).astype(np.float32)
        bias = (q_hat @ self._code_offset).astype(np.float32)
        norms = np.linalg.norm(q_hat, axis=1)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
        return w, bias, inv

    def _search_int8(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, Kernels]:
        """Top-k of (codes . w + bias) * 1/|row|, then scaled by 1/|q|; plus the kernels that ran."""
        assert self._codes is not None and self._code_inv_norm is not None
        w, bias, q_inv = self._int8_weights(q, quantise_query=True)
        if self.kernels == "numba":
            sel = self._scan_int8_compiled(w, bias, k)
        else:
            sel = self._scan_int8_blas(w, bias, k)
        ids, scores = sel.result(self.n)
        return ids, scores * q_inv[:, None], self.kernels

    def _scan_int8_compiled(self, w: np.ndarray, bias: np.ndarray, k: int) -> _TopK:
        kern = _compiled_kernels()
        assert kern is not None and self._codes is not None and self._code_inv_norm is not None
        codes, inv_norm = self._codes, self._code_inv_norm
        nq, dim = w.shape
        many = nq >= _INT8_MANY_MIN_QUERIES
        if many:  # padded to whole groups of four queries
            w4 = np.zeros((-(-nq // 4) * 4, dim), dtype=np.float32)
            w4[:nq] = w
            b4 = np.zeros(w4.shape[0], dtype=np.float32)
            b4[:nq] = bias
        row_block = _block_rows(dim, _INT8_BLOCK_BYTES)

        def heap_scan(start: int, stop: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
            best = np.full((nq, slots), -np.inf, dtype=np.float32)
            ids = np.full((nq, slots), -1, dtype=np.int64)
            if many:
                kern.int8_topk_many(codes[start:stop], w4, b4, inv_norm[start:stop], nq, start, best, ids, row_block)
            else:
                kern.int8_topk(codes[start:stop], w, bias, inv_norm[start:stop], start, best, ids)
            return best, ids

        return _compiled_scan(self.n, nq, k, self.threads, dim + 4, heap_scan)

    def _scan_int8_blas(self, w: np.ndarray, bias: np.ndarray, k: int) -> _TopK:
        assert self._codes is not None and self._code_inv_norm is not None
        codes, inv_norm = self._codes, self._code_inv_norm
        nq, dim = w.shape
        step = _block_rows(4 * dim, _CAST_BLOCK_BYTES)

        def make_scan() -> Scan:
            wide = np.empty((min(step, self.n), dim), dtype=np.float32)
            out = np.empty((nq, wide.shape[0]), dtype=np.float32)

            def scan(start: int, stop: int, sel: _TopK) -> None:
                for i in range(start, stop, step):
                    r = min(step, stop - i)
                    np.copyto(wide[:r], codes[i:i + r], casting="unsafe")  # int8 -> float32, in cache
                    s = out[:, :r]
                    _matmul_into(w, wide[:r], s)
                    s += bias[:, None]
                    s *= inv_norm[i:i + r]
                    sel.push(s, i)
            return scan

        return _parallel_scan(self.n, nq, k, self.threads, make_scan, uses_blas=True)

    def _query_bits(self, q: np.ndarray) -> np.ndarray:
        assert self._bits is not None
        packed = np.zeros((q.shape[0], self._bits.shape[1] * 8), dtype=np.uint8)
        packed[:, : (self.dim + 7) // 8] = np.packbits(q >= 0, axis=1)
        return packed.view(np.uint64)

    def _search_hamming(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by Hamming distance; scores are 1 - 2 * hamming / dim."""
        assert self._bits is not None
        bits, words, dim = self._bits, self._bits.shape[1], self.dim
        qbits = self._query_bits(q)
        nq = q.shape[0]
        if self.kernels == "numba":
            sel = self._scan_hamming_compiled(qbits, k)
            ids, agreements = sel.result(self.n)
            return ids, (np.float32(2.0) * agreements - dim) / np.float32(dim)
        qtiled = _tiled(qbits, min(_BitScorer.block_rows_for(nq, words), max(self.n, 1)))

        def make_scan() -> Scan:
            scorer = _BitScorer(qtiled, words, dim)
            chunk = max(scorer.block_rows, (_BITS_CHUNK_ROWS // scorer.block_rows) * scorer.block_rows)
            agree = np.empty((nq, min(chunk, self.n)), dtype=np.float32)

            def scan(start: int, stop: int, sel: _TopK) -> None:
                for c0 in range(start, stop, chunk):
                    c1 = min(c0 + chunk, stop)
                    for i in range(c0, c1, scorer.block_rows):
                        j = min(i + scorer.block_rows, c1)
                        scorer.score(bits[i:j], agree[:, i - c0: j - c0])
                    sel.push(agree[:, : c1 - c0], c0)
            return scan

        sel = _parallel_scan(self.n, nq, k, self.threads, make_scan, uses_blas=False)
        ids, agreements = sel.result(self.n)
        return ids, (np.float32(2.0) * agreements - dim) / np.float32(dim)

    def _scan_hamming_compiled(self, qbits: np.ndarray, k: int) -> _TopK:
        """Top-k agreements (dim - hamming) through the compiled kernels; packed bits as int64 words."""
        kern = _compiled_kernels()
        assert kern is not None and self._bits is not None
        bits, q64, dim = self._bits.view(np.int64), qbits.view(np.int64), self.dim
        nq, words = q64.shape
        many = nq >= _HAMMING_MANY_MIN_QUERIES
        if many:  # groups of transposed query words, padded to whole 8-query vectors
            width = min(max(8, _HAMMING_QUERY_GROUP // 8 * 8), -(-nq // 8) * 8)
            groups = -(-nq // width)
            qt = np.zeros((groups * width, words), dtype=np.int64)
            qt[:nq] = q64
            qg = np.ascontiguousarray(qt.reshape(groups, width, words).transpose(0, 2, 1))
        row_block = _block_rows(8 * words, _HAMMING_BLOCK_BYTES)

        def heap_scan(start: int, stop: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
            dist = np.full((nq, slots), kern.FAR, dtype=np.int64)
            ids = np.full((nq, slots), -1, dtype=np.int64)
            if many:
                kern.hamming_topk_many(bits[start:stop], qg, nq, start, dist, ids, row_block)
            else:
                kern.hamming_topk_rows(bits[start:stop], q64, start, dist, ids)
            return np.where(ids >= 0, dim - dist, 0).astype(np.float32), ids

        return _compiled_scan(self.n, nq, k, self.threads, 8 * words, heap_scan)

    def _search_asymmetric(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Float query against +-1 sign vectors: q.s = 2 * q.bits - sum(q), over the whole index."""
        assert self._bits is not None
        packed = self._bits.view(np.uint8)
        row_bytes, dim = packed.shape[1], self.dim
        qn = np.zeros((q.shape[0], row_bytes * 8), dtype=np.float32)
        qn[:, :dim] = _normalised(q)
        q_sum = qn.sum(axis=1)
        nq = qn.shape[0]
        step = _block_rows(4 * row_bytes * 8, _CAST_BLOCK_BYTES)

        def make_scan() -> Scan:
            wide = np.empty((min(step, self.n), row_bytes * 8), dtype=np.float32)
            out = np.empty((nq, wide.shape[0]), dtype=np.float32)

            def scan(start: int, stop: int, sel: _TopK) -> None:
                for i in range(start, stop, step):
                    r = min(step, stop - i)
                    np.copyto(wide[:r], np.unpackbits(packed[i:i + r], axis=1), casting="unsafe")
                    s = out[:, :r]
                    _matmul_into(qn, wide[:r], s)
                    sel.push(s, i)
            return scan

        sel = _parallel_scan(self.n, nq, k, self.threads, make_scan, uses_blas=True)
        ids, dots = sel.result(self.n)
        return ids, (np.float32(2.0) * dots - q_sum[:, None]) / np.float32(math.sqrt(dim))

    def _rescore(self, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank candidate rows (q, m) with the float query against int8 or float32 vectors."""
        nq, m = cand.shape
        if m == 0:
            return cand, np.zeros((nq, 0), dtype=np.float32)
        if self.config.rescore_with == "float32":
            assert self._float is not None
            qn = _normalised(q)
            scores = np.einsum("qd,qmd->qm", qn, self._float[cand])
        else:
            assert self._codes is not None and self._code_inv_norm is not None
            w, bias, q_inv = self._int8_weights(q, quantise_query=False)
            scores = np.einsum("qd,qmd->qm", w, self._codes[cand].astype(np.float32)) + bias[:, None]
            scores *= self._code_inv_norm[cand] * q_inv[:, None]
        return top_k_rows(scores.astype(np.float32), k, ids=cand)


def build_index(vectors: np.ndarray, config: IndexConfig, kernels: str | None = None) -> QuantizedIndex:
    """Shorthand for `QuantizedIndex.build`."""
    return QuantizedIndex.build(vectors, config, kernels)


def matryoshka_sizes(full_dim: int) -> list[int]:
    """Sizes worth offering for a model: its full size, then 1024/512/256/128 where smaller."""
    return [full_dim] + [d for d in (1024, 512, 256, 128) if d < full_dim]


def default_configs(dim: int | None = None) -> list[IndexConfig]:
    """The side-by-side set the UI starts with (int8 scheme left to the model's native one)."""
    return [
        IndexConfig("float32", dim=dim),
        IndexConfig("int8", dim=dim),
        IndexConfig("binary", dim=dim),
        IndexConfig("binary", "rescore", dim=dim, rescore_with="int8"),
        IndexConfig("binary", "asymmetric", dim=dim),
    ]
