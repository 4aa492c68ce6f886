"""Measured embedding throughput per model on this machine, and the time estimate shown before a job.

The first estimate for a model comes from a small warm-up batch; every finished embedding job
then replaces it with the throughput that job actually reached (tokens per second).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

# A neutral English paragraph, repeated to a realistic chunk length for the warm-up batch.
_WARMUP_TEXT = ("Embedding models turn a passage of text into a vector so that passages about the same topic "
                "lie close together. Quantising those vectors to int8 or to single bits shrinks the index "
                "several times over, and rescoring a few candidates with finer vectors recovers most of the "
                "quality that the coarse codes lose. ")


@dataclass(frozen=True)
class Throughput:
    """Tokens per second one model reached here, how many tokens that was measured on, and how."""

    model_name: str
    tokens_per_s: float
    measured_tokens: int
    seconds: float
    source: str  # "warm-up batch" or "last embedding job"


@dataclass(frozen=True)
class Estimate:
    """Expected seconds to embed `tokens` tokens, with the throughput it is based on."""

    tokens: int
    seconds: float
    throughput: Throughput

    def describe(self) -> str:
        t = self.throughput
        return (f"about {format_duration(self.seconds)} to embed {self.tokens:,} tokens with {t.model_name} "
                f"(measured {t.tokens_per_s:,.0f} tokens/s on this machine, {t.source})")


def format_duration(seconds: float) -> str:
    """'< 1 s', '12 s', '3.5 min', '1.2 h'."""
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _cache_key(encoder: Any) -> tuple[str, str]:
    return (str(encoder.model_key), str(encoder.variant))


class ThroughputMeter:
    """Per-model tokens/s cache for this process (thread-safe)."""

    def __init__(self, warmup_texts: int = 4, warmup_repeats: int = 2) -> None:
        self._texts = [(_WARMUP_TEXT * warmup_repeats).strip()] * warmup_texts
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Throughput] = {}

    def get(self, encoder: Any) -> Throughput | None:
        with self._lock:
            return self._cache.get(_cache_key(encoder))

    def measure(self, encoder: Any) -> Throughput:
        """Cached throughput, measured now on a warm-up batch when this model has none yet."""
        known = self.get(encoder)
        if known is not None:
            return known
        encoder.encode(self._texts[:1])  # first call pays one-off costs (allocations, kernels)
        tokens = int(sum(encoder.count_tokens(self._texts)))
        start = time.perf_counter()
        encoder.encode(self._texts)
        seconds = max(time.perf_counter() - start, 1e-6)
        result = Throughput(encoder.name, tokens / seconds, tokens, seconds, "warm-up batch")
        with self._lock:
            return self._cache.setdefault(_cache_key(encoder), result)

    def record(self, encoder: Any, tokens: int, seconds: float) -> None:
        """Remember the throughput a real embedding job reached (ignored for tiny jobs)."""
        if tokens < 64 or seconds <= 0.05:
            return
        with self._lock:
            self._cache[_cache_key(encoder)] = Throughput(encoder.name, tokens / seconds, int(tokens), seconds,
                                                          "last embedding job")

    def estimate(self, encoder: Any, tokens: int) -> Estimate:
        """Expected time to embed `tokens` tokens with this encoder here."""
        t = self.measure(encoder)
        return Estimate(int(tokens), tokens / t.tokens_per_s, t)
