"""The target-independent request model: how an `IndexConfig` becomes a Qdrant collection layout
(`VectorSpec`s) and query stages (`Stage`s), plus the checks and conversions both targets share.

The mapping table and the reasons behind it are in the package docstring (`pplx_demo.engines.qdrant`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from pplx_demo.engines import QDRANT_FAMILY
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig

Quantization = Literal["none", "int8", "binary"]
QueryEncoding = Literal["default", "scalar8bits"]
ScoreKind = Literal["cosine", "sign agreement", "qdrant asymmetric"]
Matryoshka = Literal["prefix", "funnel"]
Progress = Callable[[int, int], None]

FULL_VECTOR = "full"


@dataclass(frozen=True)
class QdrantOptions:
    """How an IndexConfig becomes a Qdrant collection; the defaults compare like-for-like with numpy."""

    hnsw_m: int = 0  # 0: no HNSW graph, every search scans; 16 is Qdrant's default graph
    int8_rescore: bool = True  # int8: rescore the oversampled candidates with the float32 originals
    matryoshka: Matryoshka = "prefix"  # see the module docstring
    upsert_batch: int = 2000  # points per update call
    indexing_threshold_kb: int = 1  # segments above this are optimised (quantised codes built)
    wal: bool = False  # built indexes are derived data: no write-ahead log, one flush at the end

    def __post_init__(self) -> None:
        if self.matryoshka not in ("prefix", "funnel"):
            raise DemoError(f"Qdrant Matryoshka mode must be 'prefix' or 'funnel', got {self.matryoshka!r}")
        if not isinstance(self.hnsw_m, int) or self.hnsw_m < 0:
            raise DemoError(f"hnsw_m must be a non-negative integer, got {self.hnsw_m!r}")
        if not isinstance(self.upsert_batch, int) or self.upsert_batch < 1:
            raise DemoError(f"upsert batch must be a positive integer, got {self.upsert_batch!r}")


@dataclass(frozen=True)
class VectorSpec:
    """One named vector of the collection."""

    name: str
    size: int
    quantization: Quantization = "none"
    query_encoding: QueryEncoding = "default"


@dataclass(frozen=True)
class Stage:
    """One query stage: which vector, how many leading query coordinates, how many hits, which params."""

    using: str
    size: int
    limit: int
    exact: bool = False
    rescore: bool | None = None  # None: no quantisation search params (nothing to rescore)
    oversampling: float | None = None


@dataclass(frozen=True)
class QdrantPlan:
    """A Qdrant collection layout and query shape for one IndexConfig (target-independent)."""

    config: IndexConfig
    full_dim: int
    dim: int  # searched (Matryoshka) size
    vectors: tuple[VectorSpec, ...]
    searched: Stage  # the stage on the searched vector, limit = hits per k (1 or the multiplier)
    funnel: bool
    hnsw_m: int
    indexing_threshold_kb: int
    score: ScoreKind
    score_divisor: float  # Qdrant's score / this = the documented score (float32 division)

    @property
    def query_dim(self) -> int:
        """Query coordinates the plan needs (the full size for a funnel)."""
        return self.full_dim if self.funnel else self.dim

    def stages(self, k: int) -> tuple[Stage | None, Stage]:
        """(prefetch or None, final stage) for top-k."""
        if not self.funnel:
            return None, _with_limit(self.searched, k)
        first = _with_limit(self.searched, k * self.config.rescore_multiplier)
        return first, Stage(using=FULL_VECTOR, size=self.full_dim, limit=k)

    @property
    def description(self) -> str:
        """What the collection and the query do, in words."""
        s = self.searched
        spec = self.vectors[0]
        if spec.quantization == "none":
            text = "float32 cosine, exact scan (no quantisation)"
        elif spec.quantization == "int8":
            text = "scalar quantisation int8 (one quantile range per collection)"
        else:
            text = "binary quantisation 1 bit"
            if spec.query_encoding == "scalar8bits":
                text += ", 8-bit query encoding (asymmetric)"
        if s.rescore:
            text += f", oversampling x{s.oversampling:g}, rescored with the float32 originals"
        elif spec.quantization != "none":
            text += ", no rescoring"
        if self.dim < self.full_dim:
            if self.funnel:
                text += (f"; Matryoshka funnel: {self.dim}d first pass (prefetch"
                         f" x{self.config.rescore_multiplier}) then full {self.full_dim}d cosine")
            else:
                text += f"; Matryoshka prefix {self.dim}d"
        graph = "no HNSW graph: every search scans all vectors" if self.hnsw_m == 0 else f"HNSW m={self.hnsw_m}"
        return f"{text}; {graph}; scores: {self.score}"


def _with_limit(stage: Stage, limit: int) -> Stage:
    return Stage(stage.using, stage.size, limit, stage.exact, stage.rescore, stage.oversampling)


def vector_name(dim: int, full_dim: int) -> str:
    """'full' for the model's full size, 'mrl<dim>' for a Matryoshka prefix."""
    return FULL_VECTOR if dim >= full_dim else f"mrl{dim}"


def plan_for(config: IndexConfig, full_dim: int, options: QdrantOptions | None = None) -> QdrantPlan:
    """The Qdrant collection and query shape for `config` over vectors of `full_dim` coordinates."""
    options = options or QdrantOptions()
    if not isinstance(full_dim, (int, np.integer)) or full_dim < 1:
        raise DemoError(f"vector size must be a positive integer, got {full_dim!r}")
    full_dim = int(full_dim)
    dim = full_dim if config.dim is None else min(int(config.dim), full_dim)
    name = vector_name(dim, full_dim)
    mult = float(config.rescore_multiplier)
    score: ScoreKind = "cosine"
    divisor = 1.0
    if config.precision == "float32":
        spec = VectorSpec(name, dim)
        stage = Stage(name, dim, 1, exact=True)
    elif config.precision == "int8":
        spec = VectorSpec(name, dim, "int8")
        rescore = options.int8_rescore
        stage = Stage(name, dim, 1, rescore=rescore, oversampling=mult if rescore else None)
    elif config.mode == "asymmetric":
        spec = VectorSpec(name, dim, "binary", "scalar8bits")
        stage = Stage(name, dim, 1, rescore=False)
        score = "qdrant asymmetric"
    elif config.mode == "rescore":
        spec = VectorSpec(name, dim, "binary")
        stage = Stage(name, dim, 1, rescore=True, oversampling=mult)
    else:
        spec = VectorSpec(name, dim, "binary")
        stage = Stage(name, dim, 1, rescore=False)
        score, divisor = "sign agreement", float(dim)
    funnel = options.matryoshka == "funnel" and dim < full_dim
    vectors = (spec, VectorSpec(FULL_VECTOR, full_dim)) if funnel else (spec,)
    if funnel:
        score, divisor = "cosine", 1.0
    return QdrantPlan(config=config, full_dim=full_dim, dim=dim, vectors=vectors, searched=stage, funnel=funnel,
                      hnsw_m=options.hnsw_m, indexing_threshold_kb=options.indexing_threshold_kb, score=score,
                      score_divisor=divisor)


def point_vectors(plan: QdrantPlan, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each named vector's coordinates for a block of corpus rows (prefixes for Matryoshka vectors)."""
    return {spec.name: np.ascontiguousarray(rows[:, : spec.size], dtype=np.float32) for spec in plan.vectors}


def query_coords(query: np.ndarray, stage: Stage) -> list[float]:
    """The stage's leading query coordinates as Python floats."""
    return [float(v) for v in np.asarray(query[: stage.size], dtype=np.float32)]


def check_queries(queries: np.ndarray, need: int, k: int) -> np.ndarray:
    """Queries as a float32 (n, >=need) matrix; DemoError for bad shapes, NaN/inf or k."""
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2:
        raise DemoError(f"query vectors must be a (n, dim) matrix, got shape {q.shape}")
    q = q.astype(np.float32, copy=False)
    if q.shape[1] < need:
        raise DemoError(f"query vectors have {q.shape[1]} dimensions, the index needs {need}")
    if not np.isfinite(q[:, :need]).all():
        raise DemoError("query vectors contain NaN or infinite values")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise DemoError(f"k must be a positive integer, got {k!r}")
    return q


def check_corpus(vectors: np.ndarray) -> np.ndarray:
    """Corpus rows as a float32 (n, dim) matrix; DemoError for bad shapes or NaN/inf."""
    x = np.asarray(vectors)
    if x.ndim != 2:
        raise DemoError(f"corpus vectors must be a (n, dim) matrix, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if x.shape[0] and not np.isfinite(x).all():
        raise DemoError("corpus vectors contain NaN or infinite values; re-embed the corpus")
    return x


def hits_from_points(results: Sequence[Sequence[Any]], k: int, n: int,
                     divisor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores / divisor) arrays from per-query lists of scored points; ties ordered by the lower id.

    Width min(k, n); a query with fewer hits is padded with id -1 and score -inf.
    """
    width = min(int(k), int(n))
    ids = np.full((len(results), width), -1, dtype=np.int64)
    scores = np.full((len(results), width), -np.inf, dtype=np.float32)
    for qi, points in enumerate(results):
        ordered = sorted(((float(p.score), int(p.id)) for p in points), key=lambda t: (-t[0], t[1]))[:width]
        for j, (s, pid) in enumerate(ordered):
            ids[qi, j], scores[qi, j] = pid, s
    if divisor != 1.0:
        scores /= np.float32(divisor)
    return ids, scores


def config_slug(config: IndexConfig) -> str:
    """A folder / collection name part for a configuration, e.g. 'binary-rescore-x4-256d'."""
    parts = [config.precision, config.mode]
    if config.mode != "plain":
        parts.append(f"x{config.rescore_multiplier}")
    if config.dim is not None:
        parts.append(f"{config.dim}d")
    return "-".join(parts)


def estimated_bytes(plan: QdrantPlan, n: int) -> int:
    """Float32 originals plus quantised codes for every named vector (payload and ids not counted)."""
    per_row = 0
    for spec in plan.vectors:
        per_row += 4 * spec.size
        if spec.quantization == "int8":
            per_row += spec.size
        elif spec.quantization == "binary":
            per_row += (spec.size + 7) // 8
    return per_row * int(n)


class Writer(Protocol):
    """What `upload` needs: an Edge shard writer or a server collection writer."""

    def upsert(self, ids: Sequence[int], rows: np.ndarray, payloads: Sequence[dict] | None = None) -> None: ...


def upload(writer: Writer, vectors: np.ndarray, batch: int, *,
           ids: np.ndarray | None = None, payloads: Callable[[int, int], list[dict]] | None = None,
           progress: Progress | None = None) -> float:
    """Upsert every row in batches (point id = `ids[i]`, default the row index); returns seconds."""
    n = vectors.shape[0]
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        block_ids = range(start, stop) if ids is None else ids[start:stop]
        writer.upsert(block_ids, vectors[start:stop], None if payloads is None else payloads(start, stop))
        if progress is not None:
            progress(stop, n)
    return time.perf_counter() - t0


class PlannedIndex:
    """What the Edge and the server index share: the plan they were built from and how many rows they hold."""

    family = QDRANT_FAMILY
    plan: QdrantPlan
    n: int

    @property
    def config(self) -> IndexConfig:
        return self.plan.config

    @property
    def dim(self) -> int:
        return self.plan.dim
