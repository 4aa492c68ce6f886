"""Qdrant as a second search engine, embedded (Qdrant Edge, the default) or a server/cluster by URL.

One request model serves both targets: `plan_for(config, full_dim)` maps an `IndexConfig` onto a
Qdrant collection (`VectorSpec`s) and query stages (`Stage`s); `edge_*` and `client_*` translate
that plan into qdrant-edge-py objects or qdrant-client models. The Edge target runs the real Rust
engine in this process (tests exercise it); the server target sends the same plan over HTTP.

Configuration mapping (every vector uses Distance.Cosine; Qdrant normalises on insert):

| IndexConfig | collection | query |
|---|---|---|
| float32 | no quantisation | `exact=True`: a scan of the float vectors |
| int8 | scalar quantisation int8 | `rescore=True, oversampling=rescore_multiplier` (`int8_rescore`) |
| binary | binary quantisation, 1 bit | `rescore=False` |
| binary + rescore xM | binary quantisation, 1 bit | `rescore=True, oversampling=M`, originals are float32 |
| binary asymmetric | binary quantisation, `query_encoding=scalar8bits` | `rescore=False` |
| dim=D (Matryoshka) | "prefix": one vector "mrlD" holding the first D coordinates | query the prefix |
|  | "funnel": "mrlD" (quantised as above) + "full" (float32) | `prefetch` k x M on "mrlD", then full-dim cosine |

Why: "prefix" scores exactly what the numpy engine scores (cosine of the truncated, re-normalised
vectors), so the two engines can be compared row for row; "funnel" is Qdrant's multi-stage
alternative (a cheap first pass, then full-size rescoring) and is chosen explicitly.

Graph: `hnsw_m=0` (the default) builds no HNSW graph, so every search scans all (quantised) vectors,
like the numpy engine; only quantisation differs. Segments are optimised right after the upload
(`indexing_threshold_kb=1`), which is when Qdrant builds the quantised codes.

Scores, higher is better: cosine (float32, every rescored configuration, int8 with rescore);
binary without rescore: Qdrant's agreements minus disagreements divided by dim, which is the numpy
engine's 1 - 2 * hamming / dim; asymmetric: Qdrant's internal 8-bit-query x 1-bit score (its scale
varies per query; compare ranks, not values). The IndexConfig's int8 scheme (tanh, calibrated) has no
Qdrant twin: Qdrant SQ calibrates one range (quantile) over the collection. `rescore_with="int8"`
also has none: Qdrant rescores with the stored float32 originals.

Never qdrant-client's `:memory:` or `path=` local mode: it is a pure-Python brute-force simulation
that ignores quantisation (qdrant_client/local/qdrant_local.py, `_has_ignored_search_params`);
`check_server_url` refuses it. Use `edge:PATH` for the real engine in-process.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from pplx_demo.engines import QDRANT_FAMILY
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig, SearchHits

Quantization = Literal["none", "int8", "binary"]
QueryEncoding = Literal["default", "scalar8bits"]
ScoreKind = Literal["cosine", "sign agreement", "qdrant asymmetric"]
Matryoshka = Literal["prefix", "funnel"]
Progress = Callable[[int, int], None]

FULL_VECTOR = "full"
EDGE_PREFIX = "edge:"
EDGE_PACKAGE = "qdrant-edge-py"
_SHARD_MARKER = "edge_config.json"  # a Qdrant Edge shard folder holds this file
_LOCAL_MODE_REASON = ("qdrant-client's local mode (':memory:' or path=) is a pure-Python simulation that ignores "
                      "quantisation; it is not Qdrant. Use 'edge:PATH' for the real Qdrant engine in-process, "
                      "or an http(s):// URL of a Qdrant server")


# ---------------------------------------------------------------------------------------------
# the shared request model


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


# ---------------------------------------------------------------------------------------------
# targets


@dataclass(frozen=True)
class EdgeTarget:
    """A Qdrant Edge shard folder."""

    path: Path


@dataclass(frozen=True)
class ServerTarget:
    """A Qdrant server or cluster by URL (credentials never part of it)."""

    url: str

    @property
    def host(self) -> str:
        return url_host(self.url)


def check_server_url(url: str) -> str:
    """The URL of a Qdrant server, stripped; DemoError for local-mode values or anything not http(s)."""
    text = (url or "").strip() if isinstance(url, str) else ""
    if not text:
        raise DemoError("a Qdrant server URL is empty; give http(s)://HOST:6333 or edge:PATH")
    lowered = text.lower()
    if lowered == ":memory:" or lowered.startswith(("path=", "file:", "/", "./", "../", "~")) or \
            (os.sep in text and "://" not in text):
        raise DemoError(f"refused Qdrant target {_safe_url(text)!r}: {_LOCAL_MODE_REASON}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DemoError(f"refused Qdrant target {_safe_url(text)!r}: a server URL starts with http:// or https:// "
                        f"and names a host ({_LOCAL_MODE_REASON})")
    if parts.username or parts.password:
        raise DemoError("put the Qdrant API key in QDRANT_API_KEY, not in the URL")
    return text


def url_host(url: str) -> str:
    """host[:port] of a URL (no scheme, path or credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _safe_url(text: str) -> str:
    """A user-given target for an error message, without any user:password part."""
    parts = urlsplit(text)
    if parts.password or parts.username:
        return f"{parts.scheme}://{url_host(text)}"
    return text[:200]


def parse_target(target: str) -> EdgeTarget | ServerTarget:
    """'edge:PATH' -> EdgeTarget; 'http(s)://...' -> ServerTarget; anything else is refused."""
    text = (target or "").strip() if isinstance(target, str) else ""
    if text.lower().startswith(EDGE_PREFIX):
        path = text[len(EDGE_PREFIX):].strip()
        if not path or path == ":memory:":
            raise DemoError("edge: needs a folder, e.g. edge:./data/qdrant/my-corpus")
        return EdgeTarget(Path(path).expanduser())
    return ServerTarget(check_server_url(text))


# ---------------------------------------------------------------------------------------------
# Qdrant Edge translation


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
        prefetches = [qe.Prefetch(limit=first.limit, query=qe.Query.Nearest(_coords(query, first), using=first.using),
                                  params=_edge_params(first))]
    return qe.QueryRequest(limit=final.limit, query=qe.Query.Nearest(_coords(query, final), using=final.using),
                           prefetches=prefetches, params=_edge_params(final), with_payload=with_payload)


def _coords(query: np.ndarray, stage: Stage) -> list[float]:
    return [float(v) for v in np.asarray(query[: stage.size], dtype=np.float32)]


# ---------------------------------------------------------------------------------------------
# qdrant-client (server) translation


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
        prefetch = [m.Prefetch(query=_coords(query, first), using=first.using, limit=first.limit,
                               params=_client_params(first))]
    return m.QueryRequest(query=_coords(query, final), using=final.using, limit=final.limit, prefetch=prefetch,
                          params=_client_params(final), with_payload=with_payload)


def client_points(plan: QdrantPlan, ids: Sequence[int], rows: np.ndarray,
                  payloads: Sequence[dict] | None = None) -> list[Any]:
    """`qdrant_client.models.PointStruct`s for corpus rows (ids = point ids)."""
    m = _models()
    named = point_vectors(plan, rows)
    return [m.PointStruct(id=int(pid), vector={name: v[i].tolist() for name, v in named.items()},
                          payload=None if payloads is None else payloads[i])
            for i, pid in enumerate(ids)]


# ---------------------------------------------------------------------------------------------
# writers: one upload path for indexes and exports


class EdgeWriter:
    """Creates (or reopens) a Qdrant Edge shard for a plan and upserts points into it."""

    def __init__(self, path: Path, plan: QdrantPlan, *, wal: bool | None, replace: bool) -> None:
        qe = _edge()
        self.path, self.plan = Path(path), plan
        if replace:
            remove_shard(self.path)
        cfg = edge_config(plan, wal)
        try:
            if (self.path / _SHARD_MARKER).exists():
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
    if not path.is_dir() or (any(path.iterdir()) and not (path / _SHARD_MARKER).exists()):
        raise DemoError(f"{path} exists and is not a Qdrant Edge shard; choose an empty or new folder")
    shutil.rmtree(path)


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


def upload(writer: EdgeWriter | ServerWriter, vectors: np.ndarray, batch: int, *,
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


# ---------------------------------------------------------------------------------------------
# indexes


def _check_queries(queries: np.ndarray, need: int, k: int) -> np.ndarray:
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


def _check_corpus(vectors: np.ndarray) -> np.ndarray:
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


class QdrantEdgeIndex:
    """One configuration in a Qdrant Edge shard; point id = row index in the built matrix."""

    family = QDRANT_FAMILY

    def __init__(self, shard: Any, path: Path, plan: QdrantPlan, n: int, timings: dict[str, float],
                 tmp: tempfile.TemporaryDirectory | None) -> None:
        self._shard, self.path, self.plan, self.n = shard, path, plan, n
        self.build_timings = timings  # seconds: "upsert", "flush", "optimize"
        self._tmp = tmp
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_shard, shard, tmp)

    @property
    def config(self) -> IndexConfig:
        return self.plan.config

    @property
    def dim(self) -> int:
        return self.plan.dim

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
        q = _check_queries(queries, self.plan.query_dim, k)
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
        x = _check_corpus(vectors)
        plan = plan_for(config, x.shape[1], self.options)
        tmp = None
        if self.root is None:
            tmp = tempfile.TemporaryDirectory(prefix="qdrant-edge-")
            path = Path(tmp.name) / "shard"
        else:
            path = self.root / (name or _slug(config))
        try:
            writer = EdgeWriter(path, plan, wal=self.options.wal, replace=True)
            timings = {"upsert": upload(writer, x, self.options.upsert_batch, progress=progress)}
            timings.update(writer.finish())
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
        return QdrantEdgeIndex(writer.shard, path, plan, x.shape[0], timings, tmp)


def _slug(config: IndexConfig) -> str:
    parts = [config.precision, config.mode]
    if config.mode != "plain":
        parts.append(f"x{config.rescore_multiplier}")
    if config.dim is not None:
        parts.append(f"{config.dim}d")
    return "-".join(parts)


# ---------------------------------------------------------------------------------------------
# server


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


class QdrantServerIndex:
    """One configuration as a collection on a Qdrant server; point id = row index in the built matrix."""

    family = QDRANT_FAMILY

    def __init__(self, conn: ServerConnection, collection: str, plan: QdrantPlan, n: int,
                 timings: dict[str, float]) -> None:
        self.conn, self.collection, self.plan, self.n = conn, collection, plan, n
        self.build_timings = timings

    @property
    def config(self) -> IndexConfig:
        return self.plan.config

    @property
    def dim(self) -> int:
        return self.plan.dim

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
        q = _check_queries(queries, self.plan.query_dim, k)
        t0 = time.perf_counter()
        requests = [client_request(self.plan, row, int(k)) for row in q]
        with self.conn.errors(f"searching {self.collection!r}"):
            responses = self.conn.client().query_batch_points(self.collection, requests=requests)
        ids, scores = hits_from_points([r.points for r in responses], int(k), self.n, self.plan.score_divisor)
        return SearchHits(ids, scores, {"search": time.perf_counter() - t0}, "qdrant")  # type: ignore[arg-type]


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
        x = _check_corpus(vectors)
        plan = plan_for(config, x.shape[1], self.options)
        collection = name or f"{self.collection_prefix}_{_slug(config).replace('-', '_')}"
        writer = ServerWriter(self.conn, collection, plan, replace=True)
        timings = {"upsert": upload(writer, x, self.options.upsert_batch, progress=progress)}
        timings.update(writer.finish())
        return QdrantServerIndex(self.conn, collection, plan, x.shape[0], timings)


def engine_for(target: str | None, *, api_key: str | None = None, edge_root: Path | None = None,
               options: QdrantOptions | None = None) -> QdrantEdgeEngine | QdrantServerEngine:
    """Qdrant Edge (target None or 'edge:PATH', PATH = the folder shards go in) or a server by URL."""
    if target is None:
        return QdrantEdgeEngine(edge_root, options)
    parsed = parse_target(target)
    if isinstance(parsed, EdgeTarget):
        return QdrantEdgeEngine(parsed.path, options)
    return QdrantServerEngine(parsed.url, api_key, options)


__all__ = [
    "EdgeTarget", "EdgeWriter", "FULL_VECTOR", "QdrantEdgeEngine", "QdrantEdgeIndex", "QdrantOptions", "QdrantPlan",
    "QdrantServerEngine", "QdrantServerIndex", "ServerConnection", "ServerTarget", "ServerWriter", "Stage",
    "VectorSpec", "check_server_url", "client_collection", "client_points", "client_request", "edge_config",
    "edge_request", "edge_version", "engine_for", "engine_from_settings", "estimated_bytes", "hits_from_points", "parse_target",
    "plan_for", "point_vectors", "remove_shard", "upload", "url_host", "vector_name",
]



def engine_from_settings(settings: Any, options: QdrantOptions | None = None) -> QdrantEdgeEngine | QdrantServerEngine:
    """The Qdrant engine the settings choose: the server at `qdrant_url`, else Qdrant Edge in `qdrant_edge_dir`."""
    return engine_for(settings.qdrant_url, api_key=settings.qdrant_api_key, edge_root=settings.qdrant_edge_dir,
                      options=options)
