"""Blocked scans over int8 codes, packed bits and float rows, split over threads; kernel choice.

The numpy loops keep temporaries near cache size and merge a running top-k per part; the
compiled twins (`numba_kernels`, imported on first use) fuse scoring with a per-query heap.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.index.topk import Kernels, _TopK

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

KERNEL_CHOICES = ("auto", "numpy", "numba")

# ---------------------------------------------------------------------------------------------
# kernel choice

_COMPILED: ModuleType | None = None
_COMPILED_ERROR: str | None = None
_COMPILED_LOCK = threading.Lock()


def _compiled_kernels() -> ModuleType | None:
    """`pplx_demo.index.numba_kernels`, imported on first use (not at import: numba takes ~0.5 s); None if unavailable."""
    global _COMPILED, _COMPILED_ERROR
    with _COMPILED_LOCK:
        if _COMPILED is None and _COMPILED_ERROR is None:
            try:
                _COMPILED = importlib.import_module("pplx_demo.index.numba_kernels")
            except (ImportError, OSError) as exc:  # numba missing, built for another numpy, or no llvmlite library
                _COMPILED_ERROR = f"{type(exc).__name__}: {exc}"
        return _COMPILED


def kernel_path(choice: str = "auto") -> Kernels:
    """The scan kernels for a choice ("auto": numba when importable, else numpy; "numpy"; "numba")."""
    value = (choice or "auto").strip().lower()
    if value not in KERNEL_CHOICES:
        raise DemoError(f"kernels={value!r} is not a kernel choice: use one of {', '.join(KERNEL_CHOICES)}",
                        setting="PPLX_DEMO_KERNELS")
    if value == "numpy":
        return "numpy"
    if _compiled_kernels() is not None:
        return "numba"
    if value == "numba":
        raise DemoError(f"kernels=numba, but numba cannot be imported ({_COMPILED_ERROR}); "
                        f"install numba==0.68.1 or choose 'auto' or 'numpy'", setting="PPLX_DEMO_KERNELS")
    return "numpy"


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
