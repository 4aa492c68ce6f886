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

Modules: `plan` (the request model, shared), `targets` (edge:PATH or a server URL), `edge` (Qdrant
Edge in this process), `server` (a server through qdrant-client).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pplx_demo.engines.qdrant.edge import (
    EDGE_PACKAGE, EdgeWriter, QdrantEdgeEngine, QdrantEdgeIndex, edge_config, edge_request, edge_version,
    remove_shard)
from pplx_demo.engines.qdrant.plan import (
    FULL_VECTOR, QdrantOptions, QdrantPlan, Stage, VectorSpec, estimated_bytes, hits_from_points, plan_for,
    point_vectors, upload, vector_name)
from pplx_demo.engines.qdrant.server import (
    QdrantServerEngine, QdrantServerIndex, ServerConnection, ServerWriter, client_collection, client_points,
    client_request)
from pplx_demo.engines.qdrant.targets import (
    EDGE_PREFIX, EdgeTarget, ServerTarget, check_server_url, parse_target, url_host)


def engine_for(target: str | None, *, api_key: str | None = None, edge_root: Path | None = None,
               options: QdrantOptions | None = None) -> QdrantEdgeEngine | QdrantServerEngine:
    """Qdrant Edge (target None or 'edge:PATH', PATH = the folder shards go in) or a server by URL."""
    if target is None:
        return QdrantEdgeEngine(edge_root, options)
    parsed = parse_target(target)
    if isinstance(parsed, EdgeTarget):
        return QdrantEdgeEngine(parsed.path, options)
    return QdrantServerEngine(parsed.url, api_key, options)


def engine_from_settings(settings: Any, options: QdrantOptions | None = None) -> QdrantEdgeEngine | QdrantServerEngine:
    """The Qdrant engine the settings choose: the server at `qdrant_url`, else Qdrant Edge in `qdrant_edge_dir`."""
    return engine_for(settings.qdrant_url, api_key=settings.qdrant_api_key, edge_root=settings.qdrant_edge_dir,
                      options=options)


__all__ = [
    "EDGE_PACKAGE", "EDGE_PREFIX", "FULL_VECTOR", "EdgeTarget", "EdgeWriter", "QdrantEdgeEngine", "QdrantEdgeIndex",
    "QdrantOptions", "QdrantPlan", "QdrantServerEngine", "QdrantServerIndex", "ServerConnection", "ServerTarget",
    "ServerWriter", "Stage", "VectorSpec", "check_server_url", "client_collection", "client_points", "client_request",
    "edge_config", "edge_request", "edge_version", "engine_for", "engine_from_settings", "estimated_bytes",
    "hits_from_points", "parse_target", "plan_for", "point_vectors", "remove_shard", "upload", "url_host",
    "vector_name",
]
