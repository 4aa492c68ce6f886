"""Float rows -> the arrays QuantizedIndex.build would hold (packed bits, int8 codes with their affine
map and inverse norms, unit float rows), block by block; and a QuantizedIndex around such arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pplx_demo.disk_index.files import bits_row_bytes
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig, QuantizedIndex
from pplx_demo.quantize import Int8Calibration, Int8Scheme, int8_calibrated, int8_tanh

_ENCODE_BLOCK_BYTES = 32 << 20  # float32 input quantised per step (temporaries stay a few times this)


def int8_affine(scheme: Int8Scheme, calibration: Int8Calibration | None, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with dequantised = code * scale + offset, exactly as QuantizedIndex computes them."""
    if scheme == "calibrated":
        assert calibration is not None
        cal = calibration.truncate(dim)
        return cal.scale, (cal.offset + np.float32(128.0) * cal.scale).astype(np.float32)
    return np.full(dim, 1.0 / 127.0, dtype=np.float32), np.zeros(dim, dtype=np.float32)


def first_batch_calibration(vectors: np.ndarray) -> Int8Calibration:
    """Per-dimension min / max of a batch, block by block (QuantizedIndex's rule, one-row case included)."""
    n, dim = vectors.shape
    if n == 0:
        raise DemoError("calibrated int8 needs corpus vectors to take its ranges from; append at least one row")
    if n == 1:  # a range from a single point is empty: a symmetric range around it
        edge = np.abs(np.asarray(vectors, dtype=np.float32)).max(axis=0)
        return Int8Calibration(-edge.astype(np.float32), edge.astype(np.float32))
    low = np.full(dim, np.inf, dtype=np.float32)
    high = np.full(dim, -np.inf, dtype=np.float32)
    step = max(1, _ENCODE_BLOCK_BYTES // (4 * dim))
    for i in range(0, n, step):
        block = np.asarray(vectors[i:i + step], dtype=np.float32)
        np.minimum(low, block.min(axis=0), out=low)
        np.maximum(high, block.max(axis=0), out=high)
    return Int8Calibration(low, high)


def _unit_rows(view: np.ndarray) -> np.ndarray:
    x = np.array(view, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)  # an all-zero row stays zero (cosine 0)
    return x


def encode_rows(raw: np.ndarray, dim: int, store: Sequence[str], scheme: Int8Scheme,
                calibration: Int8Calibration | None) -> dict[str, np.ndarray]:
    """The rows of every file of one stored size for a block of pooled float vectors (r, full_dim)."""
    view = raw[:, :dim]
    out: dict[str, np.ndarray] = {}
    if "binary" in store:
        bits = np.zeros((raw.shape[0], bits_row_bytes(dim)), dtype=np.uint8)  # zero padding: XOR of padding is 0
        bits[:, : (dim + 7) // 8] = np.packbits(view >= 0, axis=1)
        out["bits"] = bits
    if "int8" in store:
        codes = int8_tanh(view) if scheme == "tanh" else int8_calibrated(view, calibration.truncate(dim))
        scale, offset = int8_affine(scheme, calibration, dim)
        norms = np.linalg.norm(codes.astype(np.float32) * scale + offset, axis=1)
        out["int8"] = codes
        out["int8_inv_norm"] = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if "float32" in store:
        out["float32"] = _unit_rows(view)
    return out


def quantized_index_over(config: IndexConfig, n: int, dim: int, full_dim: int, *, kernels: str | None = None,
                         float_rows: np.ndarray | None = None, codes: np.ndarray | None = None,
                         code_inv_norm: np.ndarray | None = None, code_scale: np.ndarray | None = None,
                         code_offset: np.ndarray | None = None, calibration: Int8Calibration | None = None,
                         bits: np.ndarray | None = None) -> QuantizedIndex:
    """A QuantizedIndex around existing arrays (RAM or memory-mapped), without copying them.

    Hook for the lead: QuantizedIndex has no public constructor from prepared arrays, so this builds
    an empty index for `config` (which picks the kernels the same way `build` does) and sets its
    private arrays. Arrays must be what `build` would make: unit float rows (n, dim), int8 codes
    (n, dim) with 1/|dequantised| per row and the (scale, offset) affine map, packed bits as (n, words)
    uint64.
    """
    index = QuantizedIndex.build(np.zeros((0, dim), dtype=np.float32), config, kernels)
    index.n, index.dim, index.full_dim = n, dim, full_dim
    index._float = float_rows
    index._codes = codes
    index._code_inv_norm = code_inv_norm
    index._code_scale = code_scale
    index._code_offset = code_offset
    index._calibration = calibration
    index._bits = bits
    return index
