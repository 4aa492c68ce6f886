"""Storage accounting for one index configuration: measured bytes, ratios and projections."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pplx_demo.index import IndexConfig, QuantizedIndex

PROJECTIONS: dict[str, int] = {"1M": 1_000_000, "100M": 100_000_000, "1B": 1_000_000_000}


@dataclass
class StorageReport:
    """What one configuration costs: measured from the arrays the index holds, then projected."""

    config: IndexConfig
    dim: int
    n_vectors: int
    bytes_per_vector: int  # bytes held per vector (codes + per-row norms + padding), measured
    index_nbytes: int  # bytes of every array the index holds, measured
    ratio_vs_float32: float  # bytes_per_vector / (4 * full_dim): < 1 means smaller than float32 at full size
    db_file_bytes: int  # the DuckDB file (float32 vectors stored once + texts), measured
    projections: dict[str, int] = field(default_factory=dict)  # index bytes at 1M / 100M / 1B vectors
    float32_bytes_per_vector: int = 0  # the full-size float32 reference

    @property
    def label(self) -> str:
        return str(self.config)

    @property
    def index_ratio_vs_float32(self) -> float:
        """This index's bytes over a full-size float32 index of the same vectors (fixed bytes included)."""
        reference = self.float32_bytes_per_vector * self.n_vectors
        return self.index_nbytes / reference if reference else 0.0


def storage_report(index: QuantizedIndex, full_dim: int, db_file_bytes: int) -> StorageReport:
    """Measured sizes of `index` (nbytes of its arrays), its ratio to full-size float32, projections."""
    reference = 4 * int(full_dim)
    per_vector = index.bytes_per_vector
    fixed = index.fixed_nbytes
    return StorageReport(
        config=index.config, dim=index.dim, n_vectors=index.n,
        bytes_per_vector=per_vector, index_nbytes=index.nbytes,
        ratio_vs_float32=per_vector / reference if reference else 0.0, db_file_bytes=int(db_file_bytes),
        projections={name: fixed + per_vector * count for name, count in PROJECTIONS.items()},
        float32_bytes_per_vector=reference,
    )


def bytes_per_vector_table(dims: list[int], configs: dict[str, IndexConfig]) -> list[tuple[int, dict[str, int]]]:
    """Bytes per vector of each named configuration at each size, measured on tiny real indexes."""
    out = []
    for dim in sorted(set(dims)):
        vectors = np.random.default_rng(0).standard_normal((8, dim)).astype(np.float32)
        out.append((dim, {name: storage_report(QuantizedIndex.build(vectors, cfg), dim, 0).bytes_per_vector
                          for name, cfg in configs.items()}))
    return out


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (powers of 1024, one decimal, IEC units)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"
