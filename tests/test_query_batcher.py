"""Query micro-batching: concurrent small encodes share one forward pass, each caller gets its own rows."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pplx_demo.query_batcher import BatchedEncoder, QueryBatcher, batching_loader


class SlowEncoder:
    """A real computation (a fixed hash-seeded vector per text) that takes time per call, recording its calls."""

    dim = 8
    name = "slow"

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()  # like a real encoder: one forward pass at a time

    def encode(self, texts, progress=None, stats=None):
        with self.lock:
            self.calls.append(list(texts))
            time.sleep(self.seconds)
            return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim).astype(np.float32)
                             for t in texts])


def _run_together(fn, args):
    out: dict[int, object] = {}
    barrier = threading.Barrier(len(args))

    def worker(i, a):
        barrier.wait()
        try:
            out[i] = fn(a)
        except BaseException as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return [out[i] for i in range(len(args))]


def test_concurrent_queries_share_encode_calls_and_get_their_own_rows():
    enc = SlowEncoder()
    batcher = QueryBatcher(enc.encode, max_batch=32, window_s=0.01)
    queries = [f"query {i}" for i in range(16)]
    results = _run_together(lambda q: batcher.encode([q]), queries)
    for q, r in zip(queries, results):
        assert r.shape == (1, 8) and np.array_equal(r[0], enc.encode([q])[0])
    enc.calls = enc.calls[:batcher.stats.calls]
    assert batcher.stats.texts == 16 and batcher.stats.calls < 16 and batcher.stats.largest > 1
    assert sorted(t for call in enc.calls for t in call) == sorted(queries)


def test_batches_never_exceed_the_maximum():
    enc = SlowEncoder(0.02)
    batcher = QueryBatcher(enc.encode, max_batch=3, window_s=0.01)
    _run_together(lambda q: batcher.encode([q, q + "!"]), [f"q{i}" for i in range(8)])
    assert all(len(call) <= 3 for call in enc.calls) and batcher.stats.texts == 16


def test_an_encoder_error_reaches_every_caller_of_that_batch_and_the_batcher_recovers():
    fail = {"on": True}

    def encode(texts):
        time.sleep(0.02)
        if fail["on"]:
            raise RuntimeError("boom")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = QueryBatcher(encode, window_s=0.01)
    results = _run_together(lambda q: batcher.encode([q]), ["a", "b", "c"])
    assert all(isinstance(r, RuntimeError) and str(r) == "boom" for r in results)
    fail["on"] = False
    assert batcher.encode(["d"]).shape == (1, 2)


def test_a_lone_query_waits_at_most_the_window():
    enc = SlowEncoder(0.0)
    batcher = QueryBatcher(enc.encode, window_s=0.002)
    t0 = time.perf_counter()
    batcher.encode(["alone"])
    assert time.perf_counter() - t0 < 0.5 and enc.calls == [["alone"]]


def test_large_calls_and_progress_pass_straight_through(minilm):
    wrapped = BatchedEncoder(minilm)
    assert wrapped.dim == minilm.dim and wrapped.name == minilm.name and wrapped.cache_key == minilm.cache_key
    texts = [f"sentence number {i}" for i in range(10)]
    seen = []
    out = wrapped.encode(texts, progress=lambda d, t: seen.append((d, t)))
    assert out.shape == (10, minilm.dim) and seen and wrapped.batcher.stats.calls == 0
    # batched query rows equal the encoder's own (padding differs inside a batch; masks make it irrelevant)
    queries = ["When did Scheele discover oxygen?", "Wie heißt die Hauptstadt?", "capital of Spain"]
    together = _run_together(lambda q: wrapped.encode([q]), queries)
    for q, row in zip(queries, together):
        np.testing.assert_allclose(row[0], minilm.encode([q])[0], rtol=1e-4, atol=1e-5)


def test_the_loader_keeps_one_batcher_per_encoder():
    made = {}

    def loader(key, variant=None, runtime="torch"):
        return made.setdefault((key, variant, runtime), SlowEncoder(0.0))

    load = batching_loader(loader, max_batch=4)
    a = load("m")
    assert load("m") is a and load("m", None, "onnx") is not a
    assert a.batcher.max_batch == 4


@pytest.mark.parametrize("bad", [0, -1])
def test_a_batch_needs_room_for_one_text(bad):
    with pytest.raises(ValueError):
        QueryBatcher(lambda t: t, max_batch=bad)
