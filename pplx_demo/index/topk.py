"""Exact running top-k selection: score descending, then row ascending (deterministic ties)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kernels = Literal["numpy", "numba"]


@dataclass
class SearchHits:
    """Top-k per query, best first: ids are row indices into the built matrix."""

    ids: np.ndarray  # (q, k) int64
    scores: np.ndarray  # (q, k) float32
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage: "search", "rescore"
    kernel: Kernels = "numpy"  # which scan ran: the numpy loops or the compiled (numba) kernels



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
