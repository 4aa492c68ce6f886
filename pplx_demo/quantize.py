"""Quantisers for pooled float embeddings: pure numpy functions with explicit dtypes.

All quantisers are element-wise, so truncating a Matryoshka prefix before or after quantising
gives the same codes. Normalise only after truncating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Precision = Literal["float32", "int8", "binary"]
Int8Scheme = Literal["tanh", "calibrated", "codes"]  # codes: the vector already holds int8 codes / 127
BitOrder = Literal["big", "little"]

PRECISIONS: tuple[Precision, ...] = ("float32", "int8", "binary")


def _as_float32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a (n, dim) matrix, got shape {x.shape}")
    return x


def truncate(x: np.ndarray, dim: int | None) -> np.ndarray:
    """Matryoshka: keep the first `dim` coordinates (None or >= full dim keeps all)."""
    x = _as_float32(x)
    if dim is None or dim >= x.shape[1]:
        return x
    if dim <= 0:
        raise ValueError(f"Matryoshka size must be positive, got {dim}")
    return np.ascontiguousarray(x[:, :dim])


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero (cosine 0 against everything)."""
    x = _as_float32(x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def int8_tanh(x: np.ndarray) -> np.ndarray:
    """pplx-embed native int8: clamp(round(tanh(x) * 127), -128, 127), round half to even."""
    x = _as_float32(x)
    return np.clip(np.rint(np.tanh(x) * np.float32(127.0)), -128, 127).astype(np.int8)


def int8_codes(x: np.ndarray) -> np.ndarray:
    """int8 codes of a float view that services return as codes / 127 (TEI, the Perplexity API): x * 127, rounded.

    Exact for such a view (its int8 is the service's own codes); the tanh is not applied again.
    """
    x = _as_float32(x)
    return np.clip(np.rint(x * np.float32(127.0)), -128, 127).astype(np.int8)


def int8_tanh_dequantize(codes: np.ndarray) -> np.ndarray:
    """Approximate inverse of `int8_tanh` (atanh of code/127, clipped inside (-1, 1))."""
    c = np.asarray(codes, dtype=np.float32) / np.float32(127.0)
    return np.arctanh(np.clip(c, -0.999999, 0.999999)).astype(np.float32)


@dataclass(frozen=True)
class Int8Calibration:
    """Per-dimension ranges taken from a corpus; reused unchanged for queries."""

    low: np.ndarray  # (dim,) float32
    high: np.ndarray  # (dim,) float32

    @property
    def scale(self) -> np.ndarray:
        """Float units per int8 step, per dimension (never zero)."""
        span = (self.high - self.low).astype(np.float32)
        return np.where(span > 0, span / np.float32(255.0), np.float32(1.0)).astype(np.float32)

    @property
    def offset(self) -> np.ndarray:
        """Float value of code -128, per dimension."""
        return self.low.astype(np.float32)

    def truncate(self, dim: int | None) -> "Int8Calibration":
        if dim is None or dim >= self.low.shape[0]:
            return self
        return Int8Calibration(self.low[:dim].copy(), self.high[:dim].copy())


def calibrate_int8(corpus: np.ndarray) -> Int8Calibration:
    """Per-dimension min/max over the CORPUS (calibrating on a query gives all-zero codes)."""
    corpus = _as_float32(corpus)
    if corpus.shape[0] < 2:
        raise ValueError("int8 calibration needs at least two corpus vectors")
    return Int8Calibration(corpus.min(axis=0).astype(np.float32), corpus.max(axis=0).astype(np.float32))


def int8_calibrated(x: np.ndarray, calibration: Int8Calibration) -> np.ndarray:
    """Map each dimension's [low, high] onto [-128, 127]; values outside are clipped."""
    x = _as_float32(x)
    steps = (x - calibration.offset) / calibration.scale
    return (np.clip(np.rint(steps), 0, 255) - 128).astype(np.int8)


def int8_calibrated_dequantize(codes: np.ndarray, calibration: Int8Calibration) -> np.ndarray:
    """Float value each code stands for: (code + 128) * scale + low."""
    c = np.asarray(codes, dtype=np.float32) + np.float32(128.0)
    return (c * calibration.scale + calibration.offset).astype(np.float32)


def binary_bits(x: np.ndarray) -> np.ndarray:
    """Sign bits of the FLOAT vector: True where x >= 0 (not the int8 code's sign)."""
    return _as_float32(x) >= 0


def pack_bits(bits: np.ndarray, bitorder: BitOrder = "big") -> np.ndarray:
    """Pack boolean rows into uint8; 'big' = MSB first (ubinary), 'little' = the API's base64_binary."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 1:
        bits = bits[None, :]
    return np.packbits(bits, axis=1, bitorder=bitorder)


def unpack_bits(packed: np.ndarray, dim: int, bitorder: BitOrder = "big") -> np.ndarray:
    """Inverse of `pack_bits`, trimmed to `dim` bits per row."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1, count=dim, bitorder=bitorder).astype(bool)


def binary_packed(x: np.ndarray, bitorder: BitOrder = "big") -> np.ndarray:
    """Sign-binarise float vectors and pack them (dim/8 bytes per vector, zero-padded)."""
    return pack_bits(binary_bits(x), bitorder=bitorder)


def binary_signs(x: np.ndarray) -> np.ndarray:
    """+1 / -1 float32 codes of the sign of the float vector (x >= 0 -> +1)."""
    return np.where(binary_bits(x), np.float32(1.0), np.float32(-1.0)).astype(np.float32)


def bytes_per_vector(dim: int, precision: Precision) -> int:
    """Storage of one code vector of `dim` coordinates."""
    if precision == "float32":
        return 4 * dim
    if precision == "int8":
        return dim
    if precision == "binary":
        return (dim + 7) // 8
    raise ValueError(f"unknown precision {precision!r}")
