"""What the services send -> numpy: the Perplexity API's base64 int8 codes and packed sign bits, its
indexed `data` lists, and TEI's int8 codes sent as JSON floats; anything else is a RemoteServiceError."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from pplx_demo.models.remote.client import RemoteServiceError

_API_HINT = "; check that PPLX_DEMO_PPLX_API_URL points at the Perplexity API, then try again"
_TEI_HINT = "; check that PPLX_DEMO_TEI_URL points at TEI >= 1.9.2 serving the model asked for, then try again"


def decode_api_int8(b64: Any, dim: int) -> np.ndarray:
    """One `base64_int8` embedding -> (dim,) int8 codes; DemoError on bad base64 or a wrong length."""
    raw = _b64(b64, "base64_int8")
    if len(raw) != dim:
        raise RemoteServiceError(f"the Perplexity API sent an int8 embedding of {len(raw)} values, expected {dim}"
                                 + _API_HINT)
    return np.frombuffer(raw, dtype=np.int8).copy()


def decode_api_binary(b64: Any, dim: int) -> np.ndarray:
    """One `base64_binary` embedding (packed, least significant bit first) -> (dim,) bool, True where x >= 0."""
    raw = _b64(b64, "base64_binary")
    need = -(-dim // 8)
    if len(raw) != need:
        raise RemoteServiceError(f"the Perplexity API sent a binary embedding of {len(raw)} bytes, expected {need} "
                                 f"({dim} bits){_API_HINT}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=dim, bitorder="little").astype(bool)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise RemoteServiceError(f"the Perplexity API sent a {type(value).__name__} where a {what} string belongs"
                                 + _API_HINT)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteServiceError(f"the Perplexity API sent an embedding that is not valid base64 ({what})"
                                 + _API_HINT) from None


def decode_tei_codes(rows: Any, n: int, dim: int) -> np.ndarray:
    """TEI's `/embed` answer for n inputs -> (n, dim) int8 codes; DemoError unless every value is a code."""
    if not isinstance(rows, list) or len(rows) != n:
        got = f"a list of {len(rows)}" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise RemoteServiceError(f"TEI answered {got} where a list of {n} vectors belongs" + _TEI_HINT)
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise RemoteServiceError("TEI answered vectors that are not lists of numbers" + _TEI_HINT) from None
    if arr.ndim != 2 or arr.shape[1] != dim:
        shape = "x".join(map(str, arr.shape))
        raise RemoteServiceError(f"TEI answered vectors of shape {shape}, expected {n}x{dim}: it serves a model of "
                                 "another size than the one asked for" + _TEI_HINT)
    if not np.isfinite(arr).all():
        raise RemoteServiceError("TEI answered NaN or infinite values" + _TEI_HINT)
    codes = np.rint(arr)
    if np.abs(arr - codes).max(initial=0.0) > 1e-3 or codes.max(initial=0.0) > 127 or codes.min(initial=0.0) < -128:
        raise RemoteServiceError(
            "TEI answered values that are not int8 codes (pplx-embed on TEI >= 1.9.2 returns round(tanh(x) * 127)): "
            "it is older than 1.9.2, normalises the output, or serves another model" + _TEI_HINT)
    return np.clip(codes, -128, 127).astype(np.int8)


def _data(body: Any) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise RemoteServiceError("the Perplexity API answered without a 'data' list" + _API_HINT)
    return body["data"]


def _indexed(items: Any, n: int, what: str) -> list:
    """`items` ordered by their 'index' field, checked to be exactly 0..n-1."""
    if not isinstance(items, list) or len(items) != n:
        got = f"{len(items)}" if isinstance(items, list) else f"a {type(items).__name__}"
        raise RemoteServiceError(f"the Perplexity API answered {got} embeddings for {n} {what}" + _API_HINT)
    try:
        order = sorted(items, key=lambda it: int(it.get("index")) if isinstance(it, dict) else -1)
        indexes = [int(it["index"]) for it in order]
    except (TypeError, ValueError, KeyError, AttributeError):
        raise RemoteServiceError(f"the Perplexity API answered {what} without usable 'index' fields"
                                 + _API_HINT) from None
    if indexes != list(range(n)):
        raise RemoteServiceError(f"the Perplexity API answered {what} with indexes {indexes[:5]}, expected "
                                 f"0..{n - 1}" + _API_HINT)
    return order


def _stack(rows: list[np.ndarray], dim: int, dtype) -> np.ndarray:
    return np.stack(rows).astype(dtype, copy=False) if rows else np.zeros((0, dim), dtype=dtype)
