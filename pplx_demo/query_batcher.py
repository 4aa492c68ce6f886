"""Micro-batching of query embeddings: queries that arrive together share one encode call.

A search embeds one short query. Twenty concurrent searches would run twenty forward passes one
after the other (an encoder runs one batch at a time); one forward pass over the twenty queries
costs a fraction of that. `QueryBatcher` collects small `encode` calls:

- an idle batcher lets the first caller wait `window_s` for company, then run everything pending;
- callers that arrive while a batch runs queue up and go together in the next batch (no waiting
  beyond the batch in flight), at most `max_batch` texts per call;
- each caller gets exactly its own rows back (or the exception the batch raised).

One caller at a time is the "leader" that runs the encoder; when it is done it hands the lead to the
oldest waiting caller, so no thread sits idle while work is pending and nobody waits on a thread that
has left. `BatchedEncoder` puts a batcher in front of an encoder's `encode` for calls of a few texts
without a progress callback or stats (queries); large calls (corpora, explanations) pass straight through.
`batching_loader(loader)` wraps an encoder loader so every caller of one encoder shares one batcher.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_BATCH = 32  # default texts per encode call (Settings.query_batch_max)
WINDOW_S = 0.002  # default wait of the first query of an idle batcher (Settings.query_batch_window_ms)
SMALL_CALL = 4  # calls of at most this many texts are batched; larger ones are batches already


@dataclass
class _Request:
    texts: list[str]
    event: threading.Event = field(default_factory=threading.Event)
    leader: bool = False
    result: np.ndarray | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """What the batcher did so far: encode calls made and texts they carried (for tests and logs)."""

    calls: int = 0
    texts: int = 0
    largest: int = 0


class QueryBatcher:
    """Runs `encode_fn(texts) -> (n, dim) array` over the texts of every caller waiting at the same time."""

    def __init__(self, encode_fn: Callable[[list[str]], Any], *, max_batch: int = MAX_BATCH,
                 window_s: float = WINDOW_S) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.encode_fn = encode_fn
        self.max_batch = int(max_batch)
        self.window_s = max(0.0, float(window_s))
        self.stats = BatchStats()
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._busy = False  # a leader is collecting or running a batch (invariant: idle => nothing pending)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The rows of `texts`, computed in one batch with whatever else is pending."""
        req = _Request(list(texts))
        with self._lock:
            self._pending.append(req)
            fresh = not self._busy
            if fresh:
                self._busy = req.leader = True
        if not req.leader:
            req.event.wait()
            if not req.leader:  # another leader computed it
                return self._result(req)
        elif fresh and self.window_s:
            time.sleep(self.window_s)  # an idle encoder: let queries that arrive together join
        self._lead(req)
        return self._result(req)

    def _lead(self, me: _Request) -> None:
        with self._lock:
            batch, size = [], 0
            for r in self._pending:
                if batch and size + len(r.texts) > self.max_batch:
                    break
                batch.append(r)
                size += len(r.texts)
            del self._pending[:len(batch)]
        texts = [t for r in batch for t in r.texts]
        try:
            out = np.asarray(self.encode_fn(texts), dtype=np.float32)
            if out.shape[0] != len(texts):
                raise RuntimeError(f"the encoder returned {out.shape[0]} rows for {len(texts)} texts")
            start = 0
            for r in batch:
                r.result = out[start:start + len(r.texts)]
                start += len(r.texts)
        except BaseException as exc:  # every caller of this batch sees the failure
            for r in batch:
                r.error = exc
        with self._lock:
            self.stats.calls += 1
            self.stats.texts += len(texts)
            self.stats.largest = max(self.stats.largest, len(texts))
            if self._pending:  # hand the lead to the oldest waiting caller
                nxt = self._pending[0]
                nxt.leader = True
                nxt.event.set()
            else:
                self._busy = False
        for r in batch:
            if r is not me:
                r.event.set()

    @staticmethod
    def _result(req: _Request) -> np.ndarray:
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result


class BatchedEncoder:
    """An encoder whose small `encode` calls (queries) go through a shared `QueryBatcher`; every other
    attribute and call (name, dim, cache_key, encode_documents, large encodes) is the wrapped encoder's."""

    def __init__(self, encoder: Any, *, max_batch: int = MAX_BATCH, window_s: float = WINDOW_S,
                 small_call: int = SMALL_CALL) -> None:
        self.inner = encoder
        self.small_call = int(small_call)
        self.batcher = QueryBatcher(lambda texts: encoder.encode(texts), max_batch=max_batch, window_s=window_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], progress: Any = None, stats: Any = None) -> np.ndarray:
        texts = list(texts)
        if progress is None and stats is None and 0 < len(texts) <= self.small_call:
            return self.batcher.encode(texts)
        return self.inner.encode(texts, progress=progress, stats=stats)


def batching_loader(loader: Callable[..., Any], *, max_batch: int = MAX_BATCH, window_s: float = WINDOW_S
                    ) -> Callable[..., BatchedEncoder]:
    """`loader` (any encoder loader, e.g. `ModelHub.get`) whose encoders come wrapped in `BatchedEncoder`,
    one wrapper (one batcher) per encoder object for as long as that encoder lives."""
    wrappers: weakref.WeakKeyDictionary[Any, BatchedEncoder] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def load(*args: Any, **kwargs: Any) -> BatchedEncoder:
        encoder = loader(*args, **kwargs)
        with lock:
            wrapped = wrappers.get(encoder)
            if wrapped is None:
                wrapped = wrappers[encoder] = BatchedEncoder(encoder, max_batch=max_batch, window_s=window_s)
            return wrapped

    return load
