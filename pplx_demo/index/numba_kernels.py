"""Compiled scan kernels for `pplx_demo.index` (numba): Hamming and int8 scoring fused with top-k.

numpy on some CPUs neither vectorises the int8 -> float32 cast nor `bitwise_count`; these loops
let LLVM do both for the host CPU (widen + FMA, XOR + `vpopcntq` where the CPU has them). Each
kernel scans a contiguous range of rows once and keeps a k-slot heap per query, so no score matrix
is written. They release the GIL: `pplx_demo.index` runs them on its own worker threads.

Heap conventions (per query row of `best` / `ids`): slot 0 holds the worst kept entry; empty
slots hold a sentinel worse than any real entry and id -1. Rows arrive in rising order, so a new
row enters only when strictly better than the worst kept one: ties keep the lower row.

This module imports numba; `pplx_demo.index` imports it lazily, when it first builds an index that uses it.
Compiled code is cached on disk (`cache=True`), so a machine compiles each kernel once.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

FAR = np.int64(1 << 62)  # empty Hamming slot: farther than any real distance


@intrinsic
def _popcount(typingctx, x):
    """Bit count of an integer through LLVM's ctpop (one `popcnt` / `vpopcntq` lane)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@njit(inline="always")
def _sift_far(dist, ids, q, k):
    """Restore the max-heap of (distance, id) for query q after slot 0 was replaced."""
    i = 0
    while True:
        c = 2 * i + 1
        if c >= k:
            return
        r = c + 1
        if r < k and (dist[q, r] > dist[q, c] or (dist[q, r] == dist[q, c] and ids[q, r] > ids[q, c])):
            c = r
        if dist[q, c] > dist[q, i] or (dist[q, c] == dist[q, i] and ids[q, c] > ids[q, i]):
            dist[q, c], dist[q, i] = dist[q, i], dist[q, c]
            ids[q, c], ids[q, i] = ids[q, i], ids[q, c]
            i = c
        else:
            return


@njit(inline="always")
def _sift_low(best, ids, q, k):
    """Restore the heap whose root is the lowest score (then the highest id) for query q."""
    i = 0
    while True:
        c = 2 * i + 1
        if c >= k:
            return
        r = c + 1
        if r < k and (best[q, r] < best[q, c] or (best[q, r] == best[q, c] and ids[q, r] > ids[q, c])):
            c = r
        if best[q, c] < best[q, i] or (best[q, c] == best[q, i] and ids[q, c] > ids[q, i]):
            best[q, c], best[q, i] = best[q, i], best[q, c]
            ids[q, c], ids[q, i] = ids[q, i], ids[q, c]
            i = c
        else:
            return


@njit(nogil=True, cache=True)
def hamming_topk_rows(bits, qbits, start, dist, ids):
    """Fold rows start.. (bits, (r, words) int64) into the per-query heaps of smallest Hamming distance.

    One pass per row and query, XOR + popcount over the row's words: best for a few queries,
    where the scan is bound by reading the rows.
    """
    n, words = bits.shape
    nq, k = dist.shape
    for r in range(n):
        for q in range(nq):
            d = 0
            for w in range(words):
                d += _popcount(bits[r, w] ^ qbits[q, w])
            if d < dist[q, 0]:
                dist[q, 0] = d
                ids[q, 0] = start + r
                _sift_far(dist, ids, q, k)


@njit(nogil=True, cache=True)
def hamming_topk_many(bits, qg, nq, start, dist, ids, row_block):
    """As `hamming_topk_rows` for many queries; qg is (groups, words, width) transposed query words.

    Query q is column q % width of group q // width; columns past nq are padding, never kept.
    The query loop is innermost and contiguous, so it vectorises across queries (one row word
    against 8 queries per instruction) and distances add up vertically, 8 words per store. Rows
    go in blocks of `row_block` that stay in cache while every query group reads them.
    """
    n, words = bits.shape
    groups, _, width = qg.shape
    k = dist.shape[1]
    d = np.zeros(width, np.int64)
    thr = np.full((groups, width), -1, np.int64)  # padding: no distance is below -1
    for q in range(nq):
        thr[q // width, q % width] = dist[q, 0]
    w8 = words - words % 8
    for b0 in range(0, n, row_block):
        b1 = min(b0 + row_block, n)
        for g in range(groups):
            qt = qg[g]
            tg = thr[g]
            for r in range(b0, b1):
                for q in range(width):
                    d[q] = 0
                for w in range(0, w8, 8):
                    x0 = bits[r, w]
                    x1 = bits[r, w + 1]
                    x2 = bits[r, w + 2]
                    x3 = bits[r, w + 3]
                    x4 = bits[r, w + 4]
                    x5 = bits[r, w + 5]
                    x6 = bits[r, w + 6]
                    x7 = bits[r, w + 7]
                    for q in range(width):
                        d[q] += (_popcount(x0 ^ qt[w, q]) + _popcount(x1 ^ qt[w + 1, q])
                                 + _popcount(x2 ^ qt[w + 2, q]) + _popcount(x3 ^ qt[w + 3, q])
                                 + _popcount(x4 ^ qt[w + 4, q]) + _popcount(x5 ^ qt[w + 5, q])
                                 + _popcount(x6 ^ qt[w + 6, q]) + _popcount(x7 ^ qt[w + 7, q]))
                for w in range(w8, words):
                    x = bits[r, w]
                    for q in range(width):
                        d[q] += _popcount(x ^ qt[w, q])
                hit = False
                for q in range(width):
                    hit |= d[q] < tg[q]
                if hit:
                    for q in range(width):
                        if d[q] < tg[q]:
                            gq = g * width + q
                            dist[gq, 0] = d[q]
                            ids[gq, 0] = start + r
                            _sift_far(dist, ids, gq, k)
                            tg[q] = dist[gq, 0]


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def int8_topk(codes, w, bias, inv_norm, start, best, ids):
    """Fold rows start.. into per-query heaps of the highest (codes . w[q] + bias[q]) * inv_norm.

    The same float32 score as the numpy path's blocked sgemv; only the summation order differs
    (reassociated so the widen + multiply-add vectorises), i.e. scores agree to float32 rounding.
    """
    n, dim = codes.shape
    nq, k = best.shape
    for r in range(n):
        for q in range(nq):
            acc = np.float32(0.0)
            for j in range(dim):
                acc += np.float32(codes[r, j]) * w[q, j]
            s = (acc + bias[q]) * inv_norm[r]
            if s > best[q, 0]:
                best[q, 0] = s
                ids[q, 0] = start + r
                _sift_low(best, ids, q, k)


@njit(inline="always")
def _offer_score(best, ids, q, s, row, k):
    if s > best[q, 0]:
        best[q, 0] = s
        ids[q, 0] = row
        _sift_low(best, ids, q, k)


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def int8_topk_many(codes, w, bias, inv_norm, nq, start, best, ids, row_block):
    """As `int8_topk` for many queries; w is (nqp, dim) with nqp a multiple of 4 (rows nq.. are padding).

    Four queries share each widened code (one widen, four multiply-adds), and a block of
    `row_block` rows stays in cache while every group of four queries reads it.
    """
    n, dim = codes.shape
    nqp = w.shape[0]
    k = best.shape[1]
    for b0 in range(0, n, row_block):
        b1 = min(b0 + row_block, n)
        for q0 in range(0, nqp, 4):
            for r in range(b0, b1):
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                for j in range(dim):
                    c = np.float32(codes[r, j])
                    a0 += c * w[q0, j]
                    a1 += c * w[q0 + 1, j]
                    a2 += c * w[q0 + 2, j]
                    a3 += c * w[q0 + 3, j]
                inv = inv_norm[r]
                _offer_score(best, ids, q0, (a0 + bias[q0]) * inv, start + r, k)
                if q0 + 1 < nq:
                    _offer_score(best, ids, q0 + 1, (a1 + bias[q0 + 1]) * inv, start + r, k)
                if q0 + 2 < nq:
                    _offer_score(best, ids, q0 + 2, (a2 + bias[q0 + 2]) * inv, start + r, k)
                if q0 + 3 < nq:
                    _offer_score(best, ids, q0 + 3, (a3 + bias[q0 + 3]) * inv, start + r, k)
