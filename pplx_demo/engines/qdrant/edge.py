"""Qdrant Edge: the real Rust engine in this process (qdrant-edge-py), one shard folder per index."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo.engines import QDRANT_FAMILY
from pplx_demo.engines.qdrant.plan import (
    PlannedIndex, Progress, QdrantOptions, QdrantPlan, Stage, check_corpus, check_queries, config_slug,
    hits_from_points, plan_for, point_vectors, query_coords, upload)
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig, SearchHits

EDGE_PACKAGE = "qdrant-edge-py"
SHARD_MARKER = "edge_config.json"  # a Qdrant Edge shard folder holds this file


def _edge() -> Any:
    try:
        return importlib.import_module("qdrant_edge")
    except ImportError:
        raise DemoError(f"Qdrant Edge is not installed: pip install {EDGE_PACKAGE}==0.9.0") from None


def edge_version() -> str:
    """The installed qdrant-edge-py version."""
    try:
        return importlib.metadata.version(EDGE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def edge_config(plan: QdrantPlan, wal: bool | None = None) -> Any:
    """`qdrant_edge.EdgeConfig` for the plan's collection (None for `wal` = Qdrant's default, enabled)."""
    qe = _edge()
    vectors = {}
    for spec in plan.vectors:
        quant = None
        if spec.quantization == "int8":
            quant = qe.ScalarQuantizationConfig(qe.ScalarType.Int8)
        elif spec.quantization == "binary":
            encoding = (qe.BinaryQuantizationQueryEncoding.Scalar8Bits if spec.query_encoding == "scalar8bits"
                        else None)
            quant = qe.BinaryQuantizationConfig(query_encoding=encoding)
        vectors[spec.name] = qe.EdgeVectorParams(size=spec.size, distance=qe.Distance.Cosine,
                                                 quantization_config=quant)
    return qe.EdgeConfig(
        vectors=vectors,
        hnsw_config=qe.HnswIndexConfig(m=plan.hnsw_m, ef_construct=100, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=plan.indexing_threshold_kb),
        wal_enabled=wal)


def _edge_params(stage: Stage) -> Any:
    qe = _edge()
    quant = None
    if stage.rescore is not None:
        quant = qe.QuantizationSearchParams(rescore=stage.rescore, oversampling=stage.oversampling)
    if not stage.exact and quant is None:
        return None
    return qe.SearchParams(exact=stage.exact, quantization=quant)


def edge_request(plan: QdrantPlan, query: np.ndarray, k: int, with_payload: bool = False) -> Any:
    """`qdrant_edge.QueryRequest` for one float query (full-size or at least `plan.query_dim` long)."""
    qe = _edge()
    first, final = plan.stages(k)
    prefetches = None
    if first is not None:
        nearest = qe.Query.Nearest(query_coords(query, first), using=first.using)
        prefetches = [qe.Prefetch(limit=first.limit, query=nearest, params=_edge_params(first))]
    return qe.QueryRequest(limit=final.limit, query=qe.Query.Nearest(query_coords(query, final), using=final.using),
                           prefetches=prefetches, params=_edge_params(final), with_payload=with_payload)


class EdgeWriter:
    """Creates (or reopens) a Qdrant Edge shard for a plan and upserts points into it."""

    def __init__(self, path: Path, plan: QdrantPlan, *, wal: bool | None, replace: bool) -> None:
        qe = _edge()
        self.path, self.plan = Path(path), plan
        if replace:
            remove_shard(self.path)
        cfg = edge_config(plan, wal)
        try:
            if (self.path / SHARD_MARKER).exists():
                self.shard = qe.EdgeShard.load(str(self.path), cfg)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self.shard = qe.EdgeShard.create(str(self.path), cfg)
        except Exception as exc:  # the bindings raise plain Exception with Qdrant's message
            raise DemoError(f"cannot open a Qdrant Edge shard at {self.path}: {exc}") from exc

    def upsert(self, ids: Sequence[int], rows: np.ndarray, payloads: Sequence[dict] | None = None) -> None:
        qe = _edge()
        # Python lists cross into Rust about twice as fast as numpy rows (measured, 1024-d)
        named = {name: v.tolist() for name, v in point_vectors(self.plan, rows).items()}
        points = [qe.Point(int(pid), {name: v[i] for name, v in named.items()},
                           None if payloads is None else payloads[i]) for i, pid in enumerate(ids)]
        try:
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        except Exception as exc:
            raise DemoError(f"Qdrant Edge refused an upsert into {self.path}: {exc}") from exc

    def finish(self) -> dict[str, float]:
        """Flush, then optimise (builds the quantised codes); returns seconds per step."""
        t0 = time.perf_counter()
        self.shard.flush()
        t1 = time.perf_counter()
        self.shard.optimize()
        self.shard.flush()
        return {"flush": t1 - t0, "optimize": time.perf_counter() - t1}

    def close(self) -> None:
        self.shard.close()


def remove_shard(path: Path) -> None:
    """Delete a Qdrant Edge shard folder; refuses a non-empty folder that is not one."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir() or (any(path.iterdir()) and not (path / SHARD_MARKER).exists()):
        raise DemoError(f"{path} exists and is not a Qdrant Edge shard; choose an empty or new folder")
    shutil.rmtree(path)


def _allocated_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            blocks = getattr(st, "st_blocks", None)  # sparse, preallocated files count what they use
            total += st.st_size if blocks is None else blocks * 512
    return total


class QdrantEdgeIndex(PlannedIndex):
    """One configuration in a Qdrant Edge shard; point id = row index in the built matrix."""

    def __init__(self, shard: Any, path: Path, plan: QdrantPlan, n: int, timings: dict[str, float],
                 tmp: tempfile.TemporaryDirectory | None) -> None:
        self._shard, self.path, self.plan, self.n = shard, path, plan, n
        self.build_timings = timings  # seconds: "upsert", "flush", "optimize"
        self._tmp = tmp
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_shard, shard, tmp)

    @property
    def engine(self) -> str:
        return f"Qdrant Edge {edge_version()}"

    @property
    def description(self) -> str:
        return f"{self.engine} · {self.plan.config.label} · {self.plan.description}"

    @property
    def nbytes(self) -> int:
        """Bytes the shard's files occupy on disk (allocated blocks: originals, codes, payload, ids)."""
        return _allocated_bytes(self.path)

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        if self.closed:
            raise DemoError("this Qdrant Edge index was closed; build it again")
        q = check_queries(queries, self.plan.query_dim, k)
        qe = _edge()
        t0 = time.perf_counter()
        requests = [edge_request(self.plan, row, int(k)) for row in q]
        try:
            results = self._shard.query_batch(qe.QueryBatchRequest(requests)) if len(requests) > 1 else \
                [self._shard.query(requests[0])]
        except Exception as exc:
            raise DemoError(f"Qdrant Edge search failed: {exc}") from exc
        ids, scores = hits_from_points(results, int(k), self.n, self.plan.score_divisor)
        return SearchHits(ids, scores, {"search": time.perf_counter() - t0}, "qdrant")  # type: ignore[arg-type]

    def searching_as(self, config: IndexConfig, options: QdrantOptions | None = None) -> "QdrantEdgeIndex":
        """The same shard searched with another configuration of the same collection layout
        (e.g. "binary" and "binary + rescore xM" share 1-bit codes). Closing the view leaves the shard
        open; closing the original closes it for every view."""
        plan = plan_for(config, self.plan.full_dim, options)
        if plan.vectors != self.plan.vectors:
            raise DemoError(f"{config.label!r} needs another collection layout than {self.config.label!r}; build it")
        view = QdrantEdgeIndex.__new__(QdrantEdgeIndex)
        view.__dict__.update(self.__dict__)
        view.plan, view._owner = plan, self
        view._finalizer = weakref.finalize(view, lambda: None)  # the owner's finalizer releases the shard
        return view

    def close(self) -> None:
        """Release the shard (and delete its folder if it was a temporary one)."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        owner = getattr(self, "_owner", None)
        return self._closed or (owner is not None and owner.closed)

    def __enter__(self) -> "QdrantEdgeIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_shard(shard: Any, tmp: tempfile.TemporaryDirectory | None) -> None:
    try:
        shard.close()
    finally:
        if tmp is not None:
            tmp.cleanup()


class QdrantEdgeEngine:
    """Builds indexes as Qdrant Edge shards: in `root/<name>` when a root folder is set, else in a temp folder."""

    family = QDRANT_FAMILY

    def __init__(self, root: Path | None = None, options: QdrantOptions | None = None) -> None:
        self.root = None if root is None else Path(root).expanduser()
        self.options = options or QdrantOptions()

    @property
    def name(self) -> str:
        return f"Qdrant Edge {edge_version()}"

    def build(self, vectors: np.ndarray, config: IndexConfig, name: str | None = None,
              progress: Progress | None = None) -> QdrantEdgeIndex:
        """Upsert the corpus rows (point id = row), optimise, return the searchable index.

        `name` is the shard's folder under `root` (replaced if it is a shard); ignored without a root.
        """
        x = check_corpus(vectors)
        plan = plan_for(config, x.shape[1], self.options)
        tmp = None
        if self.root is None:
            tmp = tempfile.TemporaryDirectory(prefix="qdrant-edge-")
            path = Path(tmp.name) / "shard"
        else:
            path = self.root / (name or config_slug(config))
        try:
            writer = EdgeWriter(path, plan, wal=self.options.wal, replace=True)
            timings = {"upsert": upload(writer, x, self.options.upsert_batch, progress=progress)}
            timings.update(writer.finish())
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
        return QdrantEdgeIndex(writer.shard, path, plan, x.shape[0], timings, tmp)
