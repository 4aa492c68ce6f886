"""Exact in-memory vector search over float32, int8 or binary codes.

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
tanh(query), so only the rounding is lost. "codes" is for vectors that already are int8 codes / 127 (the float
view TEI and the Perplexity API return): code = round(x * 127), exactly the service's codes, compared like tanh codes.

Ties are broken by the lower row index everywhere, so results are deterministic. Scans are blocked
(temporaries stay near cache size), keep a running top-k, and split rows across threads where
numpy itself is single-threaded (int8, binary; float32 uses the BLAS threads).

Kernels: the int8 and Hamming scans have compiled twins in `pplx_demo.index.numba_kernels` (numba;
imported on the first build that needs them, compiled on first use once per machine and cached on
disk) that fuse scoring with a per-query top-k heap. They return the same ids and scores as the
numpy loops: Hamming exactly; int8 up to float32 summation order. The `kernels` argument of
`build` ("auto" | "numpy" | "numba"; the setting PPLX_DEMO_KERNELS at the entry points) chooses;
`QuantizedIndex.kernels` says which one an index uses and `SearchHits.kernel` which one a search ran.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.index.config import IndexConfig
from pplx_demo.index import scan as scans
from pplx_demo.index.scan import (Scan, _BitScorer, _compiled_kernels, _compiled_scan, _matmul_into, _parallel_scan,
                                  _tiled, kernel_path)
from pplx_demo.index.topk import Kernels, SearchHits, _TopK, top_k_rows
from pplx_demo.quantize import Int8Calibration, Int8Scheme, calibrate_int8, int8_calibrated, int8_codes, int8_tanh


def _has_compiled_twin(config: IndexConfig) -> bool:
    """True when a search of `config` runs a scan that has a compiled twin (int8, Hamming)."""
    return config.precision == "int8" or (config.precision == "binary" and config.mode != "asymmetric")


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
    def build(cls, vectors: np.ndarray, config: IndexConfig, kernels: str = "auto") -> "QuantizedIndex":
        """Quantise a corpus' pooled float vectors (n, full_dim) for `config` (block-wise, one copy).

        `kernels` ("auto" | "numpy" | "numba") picks the scan kernels.
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
        if config.needs_float:
            index._float = index._build_float(np.tanh(view) if config.float_form == "tanh" else view)
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
            c = self._quantise(part, scheme)
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

    def _float_form(self, q: np.ndarray) -> np.ndarray:
        """The query in the float form the float rows hold (tanh(q) for "tanh", q itself otherwise)."""
        return np.tanh(q) if self.config.float_form == "tanh" else q

    def _quantise(self, x: np.ndarray, scheme: Int8Scheme) -> np.ndarray:
        if scheme == "tanh":
            return int8_tanh(x)
        if scheme == "codes":
            return int8_codes(x)
        return int8_calibrated(x, self._calibration)

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
        x, qn = self._float, _normalised(self._float_form(q))
        # The block is a view; only its score buffer is a temporary, so one query scans in one call.
        step = _block_rows(4 * qn.shape[0], scans._FLOAT_SCORES_BYTES)
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
            codes = self._quantise(q, scheme)
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
        many = nq >= scans._INT8_MANY_MIN_QUERIES
        if many:  # padded to whole groups of four queries
            w4 = np.zeros((-(-nq // 4) * 4, dim), dtype=np.float32)
            w4[:nq] = w
            b4 = np.zeros(w4.shape[0], dtype=np.float32)
            b4[:nq] = bias
        row_block = _block_rows(dim, scans._INT8_BLOCK_BYTES)

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
        step = _block_rows(4 * dim, scans._CAST_BLOCK_BYTES)

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
            chunk = max(scorer.block_rows, (scans._BITS_CHUNK_ROWS // scorer.block_rows) * scorer.block_rows)
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
        many = nq >= scans._HAMMING_MANY_MIN_QUERIES
        if many:  # groups of transposed query words, padded to whole 8-query vectors
            width = min(max(8, scans._HAMMING_QUERY_GROUP // 8 * 8), -(-nq // 8) * 8)
            groups = -(-nq // width)
            qt = np.zeros((groups * width, words), dtype=np.int64)
            qt[:nq] = q64
            qg = np.ascontiguousarray(qt.reshape(groups, width, words).transpose(0, 2, 1))
        row_block = _block_rows(8 * words, scans._HAMMING_BLOCK_BYTES)

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
        step = _block_rows(4 * row_bytes * 8, scans._CAST_BLOCK_BYTES)

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
            qn = _normalised(self._float_form(q))
            scores = np.einsum("qd,qmd->qm", qn, self._float[cand])
        else:
            assert self._codes is not None and self._code_inv_norm is not None
            w, bias, q_inv = self._int8_weights(q, quantise_query=False)
            scores = np.einsum("qd,qmd->qm", w, self._codes[cand].astype(np.float32)) + bias[:, None]
            scores *= self._code_inv_norm[cand] * q_inv[:, None]
        return top_k_rows(scores.astype(np.float32), k, ids=cand)


def warm_up(kernels: str = "auto", dim: int = 64) -> float:
    """Compile (or load from the on-disk cache) every scan kernel once; returns the seconds it took.

    Entry points call this at start-up so no search, evaluation or benchmark ever reports one-off
    compilation as latency. Each kernel is specialised by argument types, not sizes: one tiny index
    per path (one query and several queries) covers them all.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((64, dim)).astype(np.float32)
    configs = [IndexConfig("int8", int8_scheme="tanh"), IndexConfig("int8", int8_scheme="calibrated"),
               IndexConfig("binary"), IndexConfig("binary", "rescore", int8_scheme="tanh"), IndexConfig("float32"),
               IndexConfig("binary", "asymmetric")]
    for config in configs:
        index = QuantizedIndex.build(vectors, config, kernels)
        for n_queries in (1, 8):
            index.search(vectors[:n_queries], 5)
    return time.perf_counter() - t0
