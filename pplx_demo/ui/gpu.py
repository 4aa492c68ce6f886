"""ZeroGPU support: `gpu_task` is `spaces.GPU` when the `spaces` package is importable, else a no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:  # only present on Hugging Face Spaces
    import spaces as _spaces  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the host
    _spaces = None


def gpu_task(duration: int = 120) -> Callable[[F], F]:
    """Decorator for work that wants the GPU (embedding, evaluation) on a ZeroGPU Space."""
    if _spaces is None:
        return lambda fn: fn
    return _spaces.GPU(duration=duration)  # type: ignore[no-any-return]


ON_ZERO_GPU = _spaces is not None
