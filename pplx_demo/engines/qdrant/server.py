"""A Qdrant server or cluster by URL, through qdrant-client (`url=` only, never its local mode)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pplx_demo.engines import QDRANT_FAMILY
from pplx_demo.engines.qdrant.plan import (
    PlannedIndex, Progress, QdrantOptions, QdrantPlan, Stage, check_corpus, check_queries, config_slug, estimated_bytes,
    hits_from_points, plan_for, point_vectors, query_coords, upload)
from pplx_demo.engines.qdrant.targets import check_server_url, url_host
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig, SearchHits


def _models() -> Any:
    try:
        return importlib.import_module("qdrant_client.models")
    except ImportError:
        raise DemoError("qdrant-client is not installed: pip install qdrant-client==1.20.0") from None


def client_collection(plan: QdrantPlan) -> dict[str, Any]:
    """Keyword arguments for `QdrantClient.create_collection` (besides the collection name)."""
    m = _models()
    vectors = {}
    for spec in plan.vectors:
        quant = None
        if spec.quantization == "int8":
            quant = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8))
        elif spec.quantization == "binary":
            encoding = m.BinaryQuantizationQueryEncoding.SCALAR8BITS if spec.query_encoding == "scalar8bits" else None
            quant = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(query_encoding=encoding))
        vectors[spec.name] = m.VectorParams(size=spec.size, distance=m.Distance.COSINE, quantization_config=quant)
    return {"vectors_config": vectors,
            "hnsw_config": m.HnswConfigDiff(m=plan.hnsw_m),
            "optimizers_config": m.OptimizersConfigDiff(indexing_threshold=plan.indexing_threshold_kb)}


def _client_params(stage: Stage) -> Any:
    m = _models()
    quant = None
    if stage.rescore is not None:
        quant = m.QuantizationSearchParams(rescore=stage.rescore, oversampling=stage.oversampling)
    if not stage.exact and quant is None:
        return None
    return m.SearchParams(exact=stage.exact, quantization=quant)


def client_request(plan: QdrantPlan, query: np.ndarray, k: int, with_payload: bool = False) -> Any:
    """`qdrant_client.models.QueryRequest` for one float query: the same stages as `edge_request`."""
    m = _models()
    first, final = plan.stages(k)
    prefetch = None
    if first is not None:
        prefetch = [m.Prefetch(query=query_coords(query, first), using=first.using, limit=first.limit,
                               params=_client_params(first))]
    return m.QueryRequest(query=query_coords(query, final), using=final.using, limit=final.limit, prefetch=prefetch,
                          params=_client_params(final), with_payload=with_payload)


def client_points(plan: QdrantPlan, ids: Sequence[int], rows: np.ndarray,
                  payloads: Sequence[dict] | None = None) -> list[Any]:
    """`qdrant_client.models.PointStruct`s for corpus rows (ids = point ids)."""
    m = _models()
    named = point_vectors(plan, rows)
    return [m.PointStruct(id=int(pid), vector={name: v[i].tolist() for name, v in named.items()},
                          payload=None if payloads is None else payloads[i])
            for i, pid in enumerate(ids)]


class ServerWriter:
    """Creates a collection on a Qdrant server and upserts points into it (wait=True per batch)."""

    def __init__(self, connection: "ServerConnection", collection: str, plan: QdrantPlan, *, replace: bool) -> None:
        self.conn, self.collection, self.plan = connection, collection, plan
        client = connection.client()
        with connection.errors(f"creating collection {collection!r}"):
            if client.collection_exists(collection):
                if not replace:
                    raise DemoError(f"collection {collection!r} already exists on {connection.host}; "
                                    f"choose another name or allow replacing it")
                client.delete_collection(collection)
            client.create_collection(collection, **client_collection(plan))

    def upsert(self, ids: Sequence[int], rows: np.ndarray, payloads: Sequence[dict] | None = None) -> None:
        with self.conn.errors(f"upserting into {self.collection!r}"):
            self.conn.client().upsert(self.collection, points=client_points(self.plan, ids, rows, payloads), wait=True)

    def finish(self, timeout_s: float = 600.0) -> dict[str, float]:
        """Wait until the server has optimised the collection (status green); seconds waited."""
        m = _models()
        client, t0 = self.conn.client(), time.perf_counter()
        with self.conn.errors(f"waiting for {self.collection!r} to be optimised"):
            while True:
                status = client.get_collection(self.collection).status
                if status == m.CollectionStatus.GREEN:
                    break
                if status == m.CollectionStatus.GREY:  # optimisations pending until an update triggers them
                    client.update_collection(self.collection, optimizers_config=m.OptimizersConfigDiff())
                if time.perf_counter() - t0 > timeout_s:
                    raise DemoError(f"collection {self.collection!r} on {self.conn.host} is still {status} after "
                                    f"{timeout_s:.0f} s; search it later")
                time.sleep(0.5)
        return {"optimize": time.perf_counter() - t0}

    def close(self) -> None:
        pass


class ServerConnection:
    """A qdrant-client connection to one server; the API key is held here and never shown."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: int = 60) -> None:
        self.url = check_server_url(url)
        self.host = url_host(self.url)
        self._api_key = api_key or None
        self._timeout_s = int(timeout_s)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"ServerConnection(host={self.host!r})"

    def client(self) -> Any:
        if self._client is None:
            try:
                qdrant_client = importlib.import_module("qdrant_client")
            except ImportError:
                raise DemoError("qdrant-client is not installed: pip install qdrant-client==1.20.0") from None
            # url= only (never location/path: local mode is a simulation); no version probe at construction.
            self._client = qdrant_client.QdrantClient(url=self.url, api_key=self._api_key, timeout=self._timeout_s,
                                                      check_compatibility=False)
        return self._client

    def redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def errors(self, doing: str) -> "_ServerErrors":
        return _ServerErrors(self, doing)


class _ServerErrors:
    """Turns transport and API errors into DemoError, without the API key."""

    def __init__(self, conn: ServerConnection, doing: str) -> None:
        self.conn, self.doing = conn, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, DemoError) or not isinstance(exc, Exception):
            return False
        detail = self.conn.redact(f"{type(exc).__name__}: {exc}")[:300]
        raise DemoError(f"Qdrant server {self.conn.host}: {self.doing} failed ({detail})") from None


class QdrantServerIndex(PlannedIndex):
    """One configuration as a collection on a Qdrant server; point id = row index in the built matrix."""

    def __init__(self, conn: ServerConnection, collection: str, plan: QdrantPlan, n: int,
                 timings: dict[str, float]) -> None:
        self.conn, self.collection, self.plan, self.n = conn, collection, plan, n
        self.build_timings = timings

    @property
    def engine(self) -> str:
        return f"Qdrant server {self.conn.host}"

    @property
    def description(self) -> str:
        return f"{self.engine} · collection {self.collection} · {self.plan.config.label} · {self.plan.description}"

    @property
    def nbytes(self) -> int:
        """Estimated bytes (originals + codes; the server does not report its own usage through this API)."""
        return estimated_bytes(self.plan, self.n)

    def search(self, queries: np.ndarray, k: int) -> SearchHits:
        q = check_queries(queries, self.plan.query_dim, k)
        t0 = time.perf_counter()
        requests = [client_request(self.plan, row, int(k)) for row in q]
        with self.conn.errors(f"searching {self.collection!r}"):
            responses = self.conn.client().query_batch_points(self.collection, requests=requests)
        ids, scores = hits_from_points([r.points for r in responses], int(k), self.n, self.plan.score_divisor)
        return SearchHits(ids, scores, {"search": time.perf_counter() - t0}, "qdrant")  # type: ignore[arg-type]


class QdrantServerEngine:
    """Builds indexes as collections on a Qdrant server or cluster (`collection_prefix` + configuration)."""

    family = QDRANT_FAMILY

    def __init__(self, url: str, api_key: str | None = None, options: QdrantOptions | None = None,
                 collection_prefix: str = "pplx_demo", timeout_s: int = 60) -> None:
        self.conn = ServerConnection(url, api_key, timeout_s)
        self.options = options or QdrantOptions()
        self.collection_prefix = collection_prefix

    def __repr__(self) -> str:
        return f"QdrantServerEngine(host={self.conn.host!r})"

    @property
    def name(self) -> str:
        return f"Qdrant server {self.conn.host}"

    def build(self, vectors: np.ndarray, config: IndexConfig, name: str | None = None,
              progress: Progress | None = None) -> QdrantServerIndex:
        """Recreate the collection, upsert the rows (point id = row), wait for optimisation."""
        x = check_corpus(vectors)
        plan = plan_for(config, x.shape[1], self.options)
        collection = name or f"{self.collection_prefix}_{config_slug(config).replace('-', '_')}"
        writer = ServerWriter(self.conn, collection, plan, replace=True)
        timings = {"upsert": upload(writer, x, self.options.upsert_batch, progress=progress)}
        timings.update(writer.finish())
        return QdrantServerIndex(self.conn, collection, plan, x.shape[0], timings)
