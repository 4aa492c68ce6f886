"""Export a corpus and its vectors as Parquet, or upload it into a Qdrant collection.

`export_corpus` writes four files that pandas, DuckDB, LanceDB or pyarrow read as they are
(format: docs/EXPORT.md):
- chunks.parquet: chunk_id, document_id, order, text, char_start, char_end, token_count
- documents.parquet: id, position, uri, title, metadata (JSON text), external_id, lang
- vectors.parquet: chunk_id, float32 (fixed_size_list<float>[dim], the pooled vectors, not normalised),
  int8 (fixed_size_list<int8>[dim], the model's int8 scheme), binary (fixed_size_binary[ceil(dim/8)],
  sign bits packed MSB-first like numpy.packbits), rows in the corpus' chunk order
- metadata.json and metadata.parquet (key, value JSON text): model, variant, dim, int8 scheme and
  calibration ranges, bit order, created, project version (also in vectors.parquet's schema metadata)

`export_to_qdrant` upserts the same chunks into a Qdrant collection (payload: chunk text, title, uri
and ids; point id = chunk id) on Qdrant Edge (`edge:PATH`) or a server (`http(s)://...`).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import pplx_demo
from pplx_demo.embedding import Progress, embed_corpus
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig
from pplx_demo.models.registry import MODELS
from pplx_demo.quantize import (
    Int8Calibration,
    Int8Scheme,
    calibrate_int8,
    int8_calibrated,
    int8_codes,
    int8_tanh,
)
from pplx_demo.store import ChunkTable, EmbeddingMatrix, Store

FORMAT = "pplx-demo-export"
FORMAT_VERSION = 1
FILES = ("chunks", "documents", "vectors", "metadata")
BIT_ORDER = "MSB-first"  # numpy.packbits(bits, bitorder="big"): coordinate 0 is bit 7 (0x80) of byte 0
_ROW_GROUP = 8192  # vectors per Parquet row group (about 45 MB at 1024-d with every precision)


@dataclass(frozen=True)
class ModelInfo:
    """What produced the vectors: recorded in the export, never guessed from the vectors."""

    model_key: str  # registry key or folder ("minilm-l6", "pplx-embed-v1-0.6b")
    cache_key: str  # the embedding cache key (model, weights fingerprint, dtype, window)
    display_name: str
    variant: str
    int8_scheme: Int8Scheme


@dataclass
class ExportResult:
    """Files written by `export_corpus` and what they hold."""

    out_dir: Path
    files: dict[str, Path]  # "chunks", "documents", "vectors", "metadata" (json), "metadata_parquet"
    n_documents: int
    n_chunks: int
    dim: int
    model: ModelInfo
    bytes_written: int
    seconds: float
    embedded_now: int = 0  # chunks embedded by this export (0 when every vector was cached)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class QdrantExportResult:
    """A corpus upserted into a Qdrant collection."""

    target: str  # "edge:PATH" or the server's host (never credentials)
    engine: str  # "Qdrant Edge 0.9.0" or "Qdrant server host"
    collection: str  # the server collection; for Qdrant Edge the shard folder is the collection
    n_points: int
    vector_names: list[str]
    config_label: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    embedded_now: int = 0


# ---------------------------------------------------------------------------------------------
# inputs


def model_info(source: Any, *, display_name: str | None = None, int8_scheme: Int8Scheme | None = None) -> ModelInfo:
    """ModelInfo from an encoder, or from an EmbeddingMatrix plus the registry (arguments override)."""
    if isinstance(source, EmbeddingMatrix):
        cache_key = source.cache_key
        key = cache_key.split("|", 1)[0]
        spec = MODELS.get(key)
        name = display_name or (spec.display_name if spec else key)
        scheme = int8_scheme or (spec.int8_scheme if spec else "calibrated")
        return ModelInfo(key, cache_key, name, source.variant, scheme)  # type: ignore[arg-type]
    try:
        key, variant = str(source.model_key), str(source.variant)
    except AttributeError:
        raise DemoError("export needs an encoder or an EmbeddingMatrix as its vector source") from None
    cache_key = str(getattr(source, "cache_key", key))
    name = display_name or str(getattr(source, "name", key))
    scheme = int8_scheme or getattr(source, "int8_scheme", None) or "calibrated"
    if scheme not in ("tanh", "calibrated", "codes"):
        raise DemoError(f"unknown int8 scheme {scheme!r}: use 'tanh', 'calibrated' or 'codes'")
    return ModelInfo(key, cache_key, name, variant, scheme)


def _corpus_vectors(store: Store, corpus_id: int, source: Any,
                    progress: Progress | None) -> tuple[ChunkTable, EmbeddingMatrix]:
    table = store.chunk_table(corpus_id)
    matrix = source if isinstance(source, EmbeddingMatrix) else embed_corpus(store, corpus_id, source, progress=progress)
    if not np.array_equal(table.chunk_ids, matrix.chunk_ids):
        raise DemoError(f"corpus {corpus_id} changed since its vectors were read; export again")
    if not np.isfinite(matrix.vectors).all():
        raise DemoError("the corpus vectors contain NaN or infinite values; re-embed the corpus")
    return table, matrix


def _embedded_now(source: Any, matrix: EmbeddingMatrix) -> int:
    """Chunks this call embedded: none when the caller handed over the vectors."""
    return 0 if isinstance(source, EmbeddingMatrix) else int(matrix.embedded_now)


def int8_codes_for(vectors: np.ndarray, scheme: Int8Scheme) -> tuple[Int8Calibration | None, Any]:
    """(calibration or None, codes(block) function) exactly as `QuantizedIndex` quantises the corpus."""
    if scheme == "tanh":
        return None, int8_tanh
    if scheme == "codes":  # vectors that are a service's int8 codes / 127: export those exact codes
        return None, int8_codes
    n, dim = vectors.shape
    if n >= 2:
        cal = calibrate_int8(vectors)
    else:  # one vector: a symmetric range around it (as the index does)
        edge = np.abs(vectors).max(axis=0) if n else np.ones(dim, np.float32)
        cal = Int8Calibration(-edge.astype(np.float32), edge.astype(np.float32))
    return cal, lambda block: int8_calibrated(block, cal)


# ---------------------------------------------------------------------------------------------
# Parquet


def _pa() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DemoError("export needs pyarrow: pip install pyarrow==26.0.1") from None
    return pa, pq


def _prepare_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    ours = {f"{name}.parquet" for name in FILES} | {"metadata.json"}
    present = [p.name for p in out_dir.iterdir()]
    if not present:
        return
    foreign = [name for name in present if name not in ours]
    if foreign or not overwrite:
        what = f"other files ({', '.join(sorted(foreign)[:3])})" if foreign else "an earlier export"
        raise DemoError(f"{out_dir} already holds {what}; choose an empty folder"
                        + ("" if foreign else " or allow overwriting"))


def export_corpus(store: Store, corpus_id: int, source: Any, out_dir: str | Path, *, overwrite: bool = False,
                  display_name: str | None = None, int8_scheme: Int8Scheme | None = None,
                  progress: Progress | None = None) -> ExportResult:
    """Write a corpus' chunks, documents and vectors (float32, int8, binary) as Parquet into `out_dir`.

    `source` is an encoder (vectors come from the store's cache, missing ones are embedded) or an
    `EmbeddingMatrix` of this corpus. `progress(done, total)` reports vectors written.
    """
    pa, pq = _pa()
    t0 = time.perf_counter()
    out = Path(out_dir).expanduser()
    _prepare_dir(out, overwrite)
    info = store.get_corpus(corpus_id)
    table, matrix = _corpus_vectors(store, corpus_id, source, None)
    model = model_info(source if not isinstance(source, EmbeddingMatrix) else matrix,
                       display_name=display_name, int8_scheme=int8_scheme)
    vectors = np.ascontiguousarray(matrix.vectors, dtype=np.float32)
    n, dim = vectors.shape
    calibration, to_codes = int8_codes_for(vectors, model.int8_scheme)
    meta = _metadata(info.id, info.name, model, n, dim, calibration)
    files = {name: out / f"{name}.parquet" for name in ("chunks", "documents", "vectors")}

    chunks = pa.table({
        "chunk_id": pa.array(table.chunk_ids, pa.int64()),
        "document_id": pa.array(table.document_ids, pa.int64()),
        "order": pa.array(table.orders, pa.int32()),
        "text": pa.array(table.texts, pa.string()),
        "char_start": pa.array(_ints(table.char_starts, n), pa.int64()),
        "char_end": pa.array(_ints(table.char_ends, n), pa.int64()),
        "token_count": pa.array(table.token_counts, pa.int32()),
    })
    pq.write_table(chunks, files["chunks"])
    docs = store.document_table(corpus_id)
    documents = pa.table({
        "id": pa.array(docs["id"].to_numpy(np.int64), pa.int64()),
        "position": pa.array(docs["position"].to_numpy(np.int32), pa.int32()),
        "uri": pa.array(list(docs["uri"]), pa.string()),
        "title": pa.array(list(docs["title"]), pa.string()),
        "metadata": pa.array(list(docs["metadata"]), pa.string()),
        "external_id": pa.array([_text_or_none(v) for v in docs["external_id"]], pa.string()),
        "lang": pa.array([_text_or_none(v) for v in docs["lang"]], pa.string()),
    })
    pq.write_table(documents, files["documents"])

    n_bytes = (dim + 7) // 8
    schema = pa.schema([
        pa.field("chunk_id", pa.int64(), nullable=False),
        pa.field("float32", pa.list_(pa.float32(), dim), nullable=False),
        pa.field("int8", pa.list_(pa.int8(), dim), nullable=False),
        pa.field("binary", pa.binary(n_bytes), nullable=False),
    ], metadata={b"pplx_demo": json.dumps(meta).encode("utf-8")})
    with pq.ParquetWriter(files["vectors"], schema) as writer:
        for start in range(0, max(n, 1), _ROW_GROUP):
            block = vectors[start:start + _ROW_GROUP]
            if block.shape[0] == 0 and n:
                break
            bits = np.packbits(block >= 0, axis=1)  # bitorder="big": MSB-first
            batch = pa.record_batch([
                pa.array(table.chunk_ids[start:start + _ROW_GROUP], pa.int64()),
                pa.FixedSizeListArray.from_arrays(pa.array(block.ravel(), pa.float32()), dim),
                pa.FixedSizeListArray.from_arrays(pa.array(to_codes(block).ravel(), pa.int8()), dim),
                pa.FixedSizeBinaryArray.from_buffers(pa.binary(n_bytes), block.shape[0],
                                                     [None, pa.py_buffer(bits.tobytes())]),
            ], schema=schema)
            writer.write_batch(batch)
            if progress is not None:
                progress(min(start + _ROW_GROUP, n), n)

    files["metadata"] = out / "metadata.json"
    files["metadata"].write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files["metadata_parquet"] = out / "metadata.parquet"
    pq.write_table(pa.table({"key": list(meta), "value": [json.dumps(v, ensure_ascii=False) for v in meta.values()]}),
                   files["metadata_parquet"])
    written = sum(p.stat().st_size for p in files.values())
    return ExportResult(out_dir=out, files=files, n_documents=len(docs), n_chunks=n, dim=dim, model=model,
                        bytes_written=written, seconds=time.perf_counter() - t0,
                        embedded_now=_embedded_now(source, matrix), metadata=meta)


def _ints(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, np.int64) if values is None else np.asarray(values, np.int64)


def _text_or_none(value: Any) -> str | None:
    """A DataFrame cell as text; None for SQL NULL (None, NaN or pd.NA)."""
    return None if value is None or pd.isna(value) else str(value)


def _metadata(corpus_id: int, corpus_name: str, model: ModelInfo, n: int, dim: int,
              calibration: Int8Calibration | None) -> dict[str, Any]:
    if model.int8_scheme == "tanh":
        formula = "int8 = clip(round_half_even(tanh(x) * 127), -128, 127)"
    else:
        formula = ("int8 = clip(round_half_even((x - low) / scale), 0, 255) - 128 with scale = (high - low) / 255 "
                   "per dimension (1 where high == low); low/high = per-dimension min/max over this corpus")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "project_version": pplx_demo.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "corpus_id": int(corpus_id),
        "corpus_name": corpus_name,
        "model_key": model.model_key,
        "model_cache_key": model.cache_key,
        "model_display_name": model.display_name,
        "variant": model.variant,
        "dim": int(dim),
        "n_chunks": int(n),
        "float32": "pooled (masked-mean) vectors as the model returns them, not normalised",
        "int8_scheme": model.int8_scheme,
        "int8_formula": formula,
        "binary_rule": "bit = 1 where the float32 coordinate >= 0",
        "binary_bit_order": f"{BIT_ORDER} (numpy.packbits bitorder='big'): coordinate i is bit 7 - i % 8 "
                            f"of byte i // 8; the last byte is zero-padded",
        "row_order": "documents by position, then chunks by position (the studio's index row order)",
    }
    if calibration is not None:
        meta["int8_calibration_low"] = [float(v) for v in calibration.low]
        meta["int8_calibration_high"] = [float(v) for v in calibration.high]
    return meta


# ---------------------------------------------------------------------------------------------
# Qdrant


def export_to_qdrant(store: Store, corpus_id: int, source: Any, target: str, *, api_key: str | None = None,
                     collection: str = "pplx_demo_chunks", config: IndexConfig | None = None,
                     batch: int = 256, replace: bool = False, progress: Progress | None = None) -> QdrantExportResult:
    """Upsert a corpus' chunks into a Qdrant collection on `target` ('edge:PATH' or an http(s) URL).

    Point id = chunk id; payload = chunk_id, document_id, order, text, title, uri, external_id,
    char_start, char_end, token_count. `config` picks the collection's vectors and quantisation
    (`pplx_demo.engines.qdrant.plan_for`; default binary quantisation, searched with rescoring).
    An existing Edge shard is updated in place (same layout) unless `replace`; a server collection
    that exists is refused unless `replace`. `progress(done, total)` reports points upserted.
    """
    from pplx_demo.engines import qdrant as q

    parsed = q.parse_target(target)  # refuses ':memory:' and local paths before anything runs
    if not isinstance(batch, int) or batch < 1:
        raise DemoError(f"batch must be a positive integer, got {batch!r}")
    t0 = time.perf_counter()
    table, matrix = _corpus_vectors(store, corpus_id, source, None)
    vectors = np.ascontiguousarray(matrix.vectors, dtype=np.float32)
    config = config or IndexConfig("binary", "rescore")
    plan = q.plan_for(config, vectors.shape[1], q.QdrantOptions(upsert_batch=batch))
    writer: q.EdgeWriter | q.ServerWriter
    if isinstance(parsed, q.EdgeTarget):
        writer = q.EdgeWriter(parsed.path, plan, wal=None, replace=replace)
        where, engine, name = f"edge:{parsed.path}", f"Qdrant Edge {q.edge_version()}", str(parsed.path)
    else:
        conn = q.ServerConnection(parsed.url, api_key)
        writer = q.ServerWriter(conn, collection, plan, replace=replace)
        where, engine, name = conn.host, f"Qdrant server {conn.host}", collection

    def payloads(start: int, stop: int) -> list[dict]:
        return [_payload(table, i) for i in range(start, stop)]

    try:
        timings = {"upsert": q.upload(writer, vectors, batch, ids=table.chunk_ids, payloads=payloads,
                                      progress=progress)}
        timings.update(writer.finish())
    finally:
        writer.close()
    return QdrantExportResult(target=where, engine=engine, collection=name, n_points=int(vectors.shape[0]),
                              vector_names=[v.name for v in plan.vectors], config_label=config.label,
                              seconds=time.perf_counter() - t0, timings=timings,
                              embedded_now=_embedded_now(source, matrix))


def _payload(table: ChunkTable, i: int) -> dict[str, Any]:
    return {
        "chunk_id": int(table.chunk_ids[i]),
        "document_id": int(table.document_ids[i]),
        "order": int(table.orders[i]),
        "text": table.texts[i],
        "title": table.titles[i],
        "uri": table.uris[i],
        "external_id": table.external_ids[i] if table.external_ids else None,
        "char_start": None if table.char_starts is None else int(table.char_starts[i]),
        "char_end": None if table.char_ends is None else int(table.char_ends[i]),
        "token_count": int(table.token_counts[i]),
    }
