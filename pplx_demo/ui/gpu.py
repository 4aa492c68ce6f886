"""ZeroGPU support: only the encoder's forward passes run as GPU tasks.

On a Hugging Face ZeroGPU Space (the `spaces` package is importable) a GPU is attached to the
process only while a `spaces.GPU` function runs, so those functions should hold nothing but GPU
work: here `encode` and `encode_documents`. Everything around them (DuckDB reads and writes,
chunking, index building, progress) stays outside. Without `spaces` the wrappers are no-ops.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pplx_demo.models import EncodeStats, ModelHub

F = TypeVar("F", bound=Callable[..., Any])

try:  # only present on Hugging Face Spaces
    import spaces as _spaces  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the host
    _spaces = None

ON_ZERO_GPU = _spaces is not None
# The store embeds in slices (64 texts, 8 documents per call), so one call is short even for the 4B model.
ENCODE_SECONDS = 60
ENCODE_DOCUMENTS_SECONDS = 120


def gpu_task(duration: int = 60) -> Callable[[F], F]:
    """`spaces.GPU(duration=...)` on ZeroGPU, else a decorator that changes nothing."""
    if _spaces is None:
        return lambda fn: fn
    return _spaces.GPU(duration=duration)  # type: ignore[no-any-return]


# Decorated once at import: ZeroGPU registers GPU functions when the app starts.
@gpu_task(duration=ENCODE_SECONDS)
def _encode(encoder: Any, texts: list[str], progress: Any) -> tuple[Any, EncodeStats]:
    stats = EncodeStats()
    return encoder.encode(texts, progress=progress, stats=stats), stats


@gpu_task(duration=ENCODE_DOCUMENTS_SECONDS)
def _encode_documents(encoder: Any, docs: list[list[str]], progress: Any) -> tuple[Any, EncodeStats]:
    stats = EncodeStats()
    return encoder.encode_documents(docs, progress=progress, stats=stats), stats


def _merge(into: EncodeStats | None, found: EncodeStats) -> None:
    # The GPU task may run in another process: its stats come back with the result.
    if into is not None:
        into.add(found)


class GpuEncoder:
    """An encoder whose `encode` / `encode_documents` run as GPU tasks; every other attribute
    (name, dim, tokenizer, count_tokens, cache_key...) is the wrapped encoder's."""

    def __init__(self, encoder: Any) -> None:
        self.inner = encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], progress: Any = None, stats: EncodeStats | None = None) -> Any:
        # A progress callback cannot cross into a ZeroGPU worker; callers report between slices.
        vectors, found = _encode(self.inner, list(texts), None if ON_ZERO_GPU else progress)
        _merge(stats, found)
        return vectors

    def encode_documents(self, docs: Sequence[Sequence[str]], progress: Any = None,
                         stats: EncodeStats | None = None) -> Any:
        vectors, found = _encode_documents(self.inner, [list(d) for d in docs], None if ON_ZERO_GPU else progress)
        _merge(stats, found)
        return vectors


def gpu_loader(hub: ModelHub) -> Callable[..., GpuEncoder]:
    """An encoder loader over `hub` whose encoders run their forward passes as ZeroGPU tasks; one wrapper
    per loaded encoder (the same object on every call while the hub keeps that encoder)."""
    wrappers: weakref.WeakKeyDictionary[Any, GpuEncoder] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def load(model_key: str, variant: str | None = None, runtime: str = "torch") -> GpuEncoder:
        encoder = hub.get(model_key, variant, runtime)  # type: ignore[arg-type]
        with lock:
            wrapped = wrappers.get(encoder)
            if wrapped is None:
                wrapped = wrappers[encoder] = GpuEncoder(encoder)
            return wrapped

    return load
