"""Search engines behind one contract: build an index from a corpus matrix, search it with float queries.

Every engine takes the same `IndexConfig` vocabulary and returns `SearchHits` whose ids are row
indices into the matrix it was built from and whose scores are higher-is-better. Two engines:

- "numpy exact" (`NumpyEngine`): the project's own `QuantizedIndex`, exact scans in this process.
- "Qdrant" (`pplx_demo.engines.qdrant`): the Qdrant engine itself, embedded (Qdrant Edge) or a
  server/cluster by URL. Imported on demand, so the numpy engine needs no Qdrant package.

An index says which engine answered (`engine`, e.g. "Qdrant Edge 0.9.0") and to which family it
belongs (`family`: "numpy exact" | "Qdrant"), so side-by-side columns can be labelled.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from pplx_demo.index import IndexConfig, QuantizedIndex, SearchHits

NUMPY_FAMILY = "numpy exact"
QDRANT_FAMILY = "Qdrant"


@runtime_checkable
class SearchIndex(Protocol):
    """One built configuration over n corpus vectors."""

    @property
    def config(self) -> IndexConfig: ...

    @property
    def n(self) -> int: ...

    @property
    def engine(self) -> str:
        """Who answers, with version or host: "numpy exact", "Qdrant Edge 0.9.0", "Qdrant server db.example"."""
        ...

    @property
    def family(self) -> str:
        """"numpy exact" or "Qdrant": the column label."""
        ...

    @property
    def description(self) -> str:
        """One line: engine, configuration as the engine runs it, and what the scores mean."""
        ...

    @property
    def nbytes(self) -> int:
        """Bytes this index keeps (in memory for numpy, on disk for Qdrant Edge, estimated for a server)."""
        ...

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        """Top-k row ids (into the built matrix) and higher-is-better scores per float query."""
        ...


class Engine(Protocol):
    """Builds `SearchIndex`es from a corpus' pooled float vectors (n, full_dim)."""

    @property
    def name(self) -> str: ...

    def build(self, vectors: np.ndarray, config: IndexConfig) -> SearchIndex: ...


class NumpyIndex:
    """A `QuantizedIndex` seen through the engine contract (`index` is the wrapped object)."""

    family = NUMPY_FAMILY
    engine = NUMPY_FAMILY

    def __init__(self, index: QuantizedIndex) -> None:
        self.index = index

    @property
    def config(self) -> IndexConfig:
        return self.index.config

    @property
    def n(self) -> int:
        return self.index.n

    @property
    def nbytes(self) -> int:
        return self.index.nbytes

    @property
    def description(self) -> str:
        return f"numpy exact · {self.index.config.label} · {self.index.kernels} kernels"

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        return self.index.search(queries, k)


class NumpyEngine:
    """The project's exact numpy/numba scans (`QuantizedIndex`)."""

    name = NUMPY_FAMILY

    def __init__(self, kernels: str | None = None) -> None:
        self.kernels = kernels  # "auto" | "numpy" | "numba"; None = PPLX_DEMO_KERNELS

    def build(self, vectors: np.ndarray, config: IndexConfig) -> NumpyIndex:
        return NumpyIndex(QuantizedIndex.build(vectors, config, self.kernels))


__all__ = ["Engine", "NUMPY_FAMILY", "NumpyEngine", "NumpyIndex", "QDRANT_FAMILY", "SearchIndex"]
