"""Embed a corpus with Ray Data: the project's own encoder in an actor pool, results streamed back in batches.

`embed_corpus_ray(store, corpus_id, model_key, variant)` asks the store (one snapshot) what the corpus lacks,
builds a Ray Dataset of it (standard: one row per unique text; contextual: one row per WHOLE document, since
late chunking must see every chunk of a document in one pass), and runs `map_batches` with `_EmbedActor`: a
callable class that loads `get_encoder(model_key, variant, runtime)` once per actor (one GPU per actor where
the cluster has GPUs, one CPU otherwise). The vectors are the single-process path's vectors: same encoder
code, same cache key (each actor checks its key against the driver's and refuses to run under another).

Where vectors go (the driver writes; workers never touch the store):
- default: the store's embedding cache, one `put_embeddings` transaction per written batch as results stream
  back, so a killed driver or cluster loses only the batch in flight. Ray restarts a killed actor and retries
  its batch itself.
- `parquet_dir`: one Parquet file per written batch (for corpora too big for the DuckDB cache), optionally
  imported into the store at the end (`import_into_store`, or later with `import_parquet`).

Parquet layout: `<parquet_dir>/part-<run>-<seq>.parquet`, each file written under a temporary name and
renamed, so a file either exists whole or not at all. Columns: `chunk_hash` (string, sha256 of the chunk
text), `context_key` (string: '' for standard; '<document chunk-list hash>:<position>' for contextual),
`vector` (fixed_size_list<float32>[dim], the pooled float32 vector: no normalisation, no quantisation). The
schema metadata holds `pplx_demo.cache_key`, `pplx_demo.variant`, `pplx_demo.dim`; a directory holds one
encoder's vectors only. Rows are unique per (chunk_hash, context_key) within a run.

Resumable: a rerun embeds only what is still missing (the store says what it lacks; keys already in
`parquet_dir` are skipped). A cancel (`cancel` event, checked as each batch arrives) raises `Cancelled`;
the batches already written are kept.

Cluster: `address=None` starts a local cluster (all CPUs, no dashboard, usage stats off unless the environment
says otherwise, workers find this package through PYTHONPATH) and shuts it down afterwards; an `address`
connects to a running cluster, whose nodes must have this package and its dependencies installed (or pass a
`runtime_env`). A Ray already initialised in this process is reused as it is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pplx_demo.config import Settings
from pplx_demo.embedding import DOCUMENTS_PER_CALL, TEXTS_PER_CALL, checked_vectors
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.store import MissingEmbeddings, Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Key = tuple[str, str]  # (chunk hash, context key)

WRITE_ROWS = 2048  # vectors per written batch (one store transaction or one Parquet file)
META_CACHE_KEY, META_VARIANT, META_DIM = b"pplx_demo.cache_key", b"pplx_demo.variant", b"pplx_demo.dim"


@dataclass(frozen=True)
class EncoderIdentity:
    """What keys an encoder's vectors in the cache: its cache key, variant and dimension (and its name)."""

    cache_key: str
    variant: str
    dim: int
    name: str = ""

    @classmethod
    def of(cls, encoder: Any) -> "EncoderIdentity":
        return cls(str(encoder.cache_key), str(encoder.variant), int(encoder.dim), str(encoder.name))


@dataclass(frozen=True)
class RayEmbedOutcome:
    """What one Ray embedding run did, where, and how long each part took."""

    corpus_id: int
    model_key: str
    model_name: str
    cache_key: str
    variant: str
    dim: int
    missing: int  # inputs the store lacked at the start (texts; contextual: every chunk of each listed document)
    skipped: int  # of those, found in parquet_dir from an earlier run and not embedded again
    embedded_now: int  # vectors the actors computed in this run
    written: int  # rows written (store or Parquet), each (chunk hash, context key) once
    batches: int  # written batches (store transactions or Parquet files)
    imported: int  # rows imported from parquet_dir into the store
    truncated_now: int  # inputs the encoder cut at its token window in this run
    seconds: float  # the whole call, cluster start included
    cluster_start_s: float  # ray.init (0 when a running Ray was reused)
    started_cluster: bool  # True: this call started (and stopped) a local cluster
    address: str  # the cluster's GCS address
    actors: int
    actor_resources: dict[str, float] = field(default_factory=dict)  # what each actor reserved
    cluster_resources: dict[str, float] = field(default_factory=dict)  # CPU / GPU / memory of the cluster
    parquet_files: tuple[str, ...] = ()  # written in this run

    def as_payload(self) -> dict[str, Any]:
        """A JSON-ready dict (for `python -m pplx_demo embed --engine ray --json`)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["parquet_files"] = list(self.parquet_files)
        out["seconds"], out["cluster_start_s"] = round(self.seconds, 3), round(self.cluster_start_s, 3)
        return out

    def summary(self) -> str:
        """One line for a terminal."""
        where = f"{len(self.parquet_files)} Parquet file(s)" if self.parquet_files else "the store"
        start = f", cluster start {self.cluster_start_s:.1f} s" if self.started_cluster else ""
        return (f"{self.model_name} ({self.variant}) on Ray: embedded now {self.embedded_now} of {self.missing} "
                f"missing ({self.skipped} already in Parquet), wrote {self.written} rows in {self.batches} batch(es) "
                f"to {where}, imported {self.imported}; {self.actors} actor(s) x {self.actor_resources}; "
                f"{self.seconds:.1f} s{start}.")


# ---------------------------------------------------------------------------------------------
# the actor (runs on the workers)


class _EmbedActor:
    """Ray Data callable class: one encoder per actor, rows in, (chunk_hash, context_key, vector) rows out."""

    def __init__(self, model_key: str, variant: str, runtime: str, expected_key: str, settings: Settings) -> None:
        # A failure here is raised from the first call instead: Ray reports an actor's __init__ error as text
        # only (ActorDiedError), a call's error with the DemoError itself.
        self.error: DemoError | None = None
        try:
            self.encoder = _load_encoder(model_key, variant, runtime, settings)
        except DemoError as exc:
            self.error = exc
            return
        self.dim = int(self.encoder.dim)
        if str(self.encoder.cache_key) != expected_key:
            self.error = DemoError(f"a Ray worker loaded {model_key!r} as {self.encoder.cache_key!r}, but the driver "
                                   f"expected {expected_key!r}: give every node the same model files and settings")

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.error is not None:
            raise self.error
        from pplx_demo.models import EncodeStats

        stats = EncodeStats()
        if "texts" in batch.column_names:  # contextual: one row per whole document
            docs = batch.column("texts").to_pylist()
            per_doc = self.encoder.encode_documents(docs, stats=stats)
            vectors = [checked_vectors(v, len(d), self.dim) for v, d in zip(per_doc, docs)]
            hashes = [h for row in batch.column("chunk_hashes").to_pylist() for h in row]
            keys = [k for row in batch.column("context_keys").to_pylist() for k in row]
            matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        else:
            texts = batch.column("text").to_pylist()
            matrix = checked_vectors(self.encoder.encode(texts, stats=stats), len(texts), self.dim)
            hashes = batch.column("chunk_hash").to_pylist()
            keys = [""] * len(hashes)
        truncated = np.zeros(len(hashes), dtype=np.int32)
        if len(hashes):
            truncated[0] = stats.truncated  # the batch's count rides on its first row
        return pa.table({"chunk_hash": pa.array(hashes, pa.string()), "context_key": pa.array(keys, pa.string()),
                         "vector": _vector_array(matrix, self.dim), "truncated": pa.array(truncated)})


def _load_encoder(model_key: str, variant: str | None, runtime: str, settings: Settings) -> Any:
    """The encoder, loaded on a worker with the driver's settings (workers read no environment)."""
    from pplx_demo.models import load_encoder

    return load_encoder(model_key, variant, settings, runtime)  # type: ignore[arg-type]


def _identity_task(model_key: str, variant: str | None, runtime: str, settings: Settings) -> EncoderIdentity:
    return EncoderIdentity.of(_load_encoder(model_key, variant, runtime, settings))


# ---------------------------------------------------------------------------------------------
# the driver


def embed_corpus_ray(store: Store, corpus_id: int, model_key: str, variant: str | None = None, *,
                     settings: Settings, address: str | None = None, num_actors: int | None = None, batch_size: int | None = None,
                     write_rows: int = WRITE_ROWS, parquet_dir: str | Path | None = None,
                     import_into_store: bool = False, runtime: str = "torch",
                     identity: EncoderIdentity | None = None, runtime_env: dict | None = None,
                     progress: Progress | None = None, cancel: threading.Event | None = None) -> RayEmbedOutcome:
    """Embed what corpus `corpus_id` lacks for `model_key` on a Ray cluster (see the module docstring).

    `batch_size`: inputs per actor call (texts, or whole documents for contextual; default as the
    single-process path). `write_rows`: vectors per written batch. `identity`: the encoder's identity when the
    caller already knows it (skips a probe task and, when nothing is missing, the cluster start).
    `progress(done, total)` after each written batch, in vectors. DemoError for a user-fixable problem.
    """
    started = time.perf_counter()
    _check_cancel(cancel, 0)
    if num_actors is not None and num_actors < 1:
        raise DemoError(f"--actors must be at least 1 (got {num_actors})", cli_flag="--actors")
    if write_rows < 1 or (batch_size is not None and batch_size < 1):
        raise DemoError("batch sizes must be at least 1", cli_flag="--batch-size")
    out_dir = Path(parquet_dir) if parquet_dir is not None else None
    cluster: _Cluster | None = None
    try:
        if identity is None:
            cluster = _connect(address, runtime_env)
            identity = _probe_identity(cluster, model_key, variant, runtime, settings)
        missing = store.missing_embeddings(corpus_id, identity.cache_key, identity.variant, identity.dim)
        wanted = _keys_of(missing)
        done_before: set[Key] = set()
        if out_dir is not None:
            done_before = parquet_keys(out_dir, identity)
        todo = _without(missing, done_before)
        writer = _ParquetWriter(out_dir, identity) if out_dir is not None else None
        result = _Result()
        if todo:
            if cluster is None:
                cluster = _connect(address, runtime_env)
            result = _run(cluster, store, todo, identity, model_key, variant, runtime, num_actors, batch_size,
                          write_rows, writer, progress, cancel, settings)
        imported = 0
        if out_dir is not None and import_into_store and wanted:
            _check_cancel(cancel, result.written)
            imported = import_parquet(store, out_dir, identity, only=wanted)
        return RayEmbedOutcome(
            corpus_id=int(corpus_id), model_key=model_key, model_name=identity.name, cache_key=identity.cache_key,
            variant=identity.variant, dim=identity.dim, missing=missing.n_inputs,
            skipped=missing.n_inputs - todo.n_inputs, embedded_now=result.embedded, written=result.written,
            batches=result.batches, imported=imported, truncated_now=result.truncated,
            seconds=time.perf_counter() - started, cluster_start_s=cluster.start_s if cluster else 0.0,
            started_cluster=bool(cluster and cluster.started), address=cluster.address if cluster else "",
            actors=result.actors, actor_resources=result.actor_resources,
            cluster_resources=cluster.resources if cluster else {},
            parquet_files=tuple(writer.files) if writer is not None else ())
    finally:
        if cluster is not None and cluster.started:
            import ray

            ray.shutdown()


@dataclass
class _Result:
    embedded: int = 0
    written: int = 0
    batches: int = 0
    truncated: int = 0
    actors: int = 0
    actor_resources: dict[str, float] = field(default_factory=dict)


def _run(cluster: "_Cluster", store: Store, todo: MissingEmbeddings, identity: EncoderIdentity, model_key: str,
         variant: str | None, runtime: str, num_actors: int | None, batch_size: int | None, write_rows: int,
         writer: "_ParquetWriter | None", progress: Progress | None,
         cancel: threading.Event | None, settings: Settings) -> _Result:
    import ray

    gpus = cluster.resources.get("GPU", 0.0)
    per_actor = {"CPU": 1.0, "GPU": 1.0} if gpus >= 1 else {"CPU": 1.0}
    actors = num_actors or max(1, int(gpus if gpus >= 1 else cluster.resources.get("CPU", 1.0)))
    if todo.documents:
        items = [{"chunk_hashes": [h for h, _, _ in doc], "context_keys": [k for _, k, _ in doc],
                  "texts": [t for _, _, t in doc]} for doc in todo.documents]
        per_call = batch_size or DOCUMENTS_PER_CALL
    else:
        items = [{"chunk_hash": h, "text": t} for h, t in todo.texts]
        per_call = batch_size or TEXTS_PER_CALL
    dataset = ray.data.from_items(items).map_batches(
        _EmbedActor, batch_size=per_call, batch_format="pyarrow",
        fn_constructor_kwargs={"model_key": model_key, "variant": variant, "runtime": runtime,
                               "expected_key": identity.cache_key, "settings": settings},
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=per_actor["CPU"],
        num_gpus=per_actor.get("GPU", 0.0))
    result = _Result(actors=actors, actor_resources=per_actor)
    total, seen = todo.n_inputs, set()
    try:
        for batch in dataset.iter_batches(batch_size=write_rows, batch_format="pyarrow"):
            _check_cancel(cancel, result.written)
            rows = _unique_rows(batch, identity.dim, seen)
            if writer is not None:
                writer.write(rows)
            else:
                store.put_embeddings(identity.cache_key, identity.variant, identity.dim,
                                     list(zip(rows.hashes, rows.keys, rows.vectors)))
            result.embedded += batch.num_rows
            result.written += len(rows.hashes)
            result.batches += 1
            result.truncated += int(pc.sum(batch.column("truncated")).as_py() or 0)
            if progress is not None:
                progress(result.embedded, total)
    except DemoError:  # the driver's own (a cancel, a write that failed): already what the caller should see
        raise
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        raise user_error from exc
    return result


@dataclass
class _Rows:
    hashes: list[str]
    keys: list[str]
    vectors: np.ndarray  # (n, dim) float32


def _unique_rows(batch: pa.Table, dim: int, seen: set[Key]) -> _Rows:
    """The batch's rows whose key this run has not written yet (identical documents share vectors)."""
    vectors = _vectors_of(batch.column("vector"), dim)
    hashes, keys, keep = [], [], []
    for i, key in enumerate(zip(batch.column("chunk_hash").to_pylist(), batch.column("context_key").to_pylist())):
        if key not in seen:
            seen.add(key)
            hashes.append(key[0])
            keys.append(key[1])
            keep.append(i)
    return _Rows(hashes, keys, vectors[keep])


# ---------------------------------------------------------------------------------------------
# Parquet


class _ParquetWriter:
    """One file per written batch, renamed into place whole (see the module docstring for the layout)."""

    def __init__(self, out_dir: Path, identity: EncoderIdentity) -> None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"cannot create the Parquet directory {out_dir}: {exc.strerror or exc}",
                            cli_flag="--parquet-dir") from None
        self.out_dir = out_dir
        self.identity = identity
        self.run = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.files: list[str] = []

    def write(self, rows: _Rows) -> None:
        if not rows.hashes:
            return
        table = pa.table({"chunk_hash": pa.array(rows.hashes, pa.string()),
                          "context_key": pa.array(rows.keys, pa.string()),
                          "vector": _vector_array(rows.vectors, self.identity.dim)},
                         metadata=_metadata(self.identity))
        path = self.out_dir / f"part-{self.run}-{len(self.files):06d}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise DemoError(f"cannot write {path}: {exc.strerror or exc}", cli_flag="--parquet-dir") from None
        self.files.append(str(path))


def parquet_files(parquet_dir: str | Path) -> list[Path]:
    """The complete vector files in `parquet_dir` (temporary files of an interrupted write excluded), sorted."""
    root = Path(parquet_dir)
    return sorted(root.glob("part-*.parquet")) if root.is_dir() else []


def parquet_keys(parquet_dir: str | Path, identity: EncoderIdentity) -> set[Key]:
    """(chunk hash, context key) of every vector already in `parquet_dir`; DemoError if it holds another
    encoder's vectors or a file that cannot be read."""
    keys: set[Key] = set()
    for path in parquet_files(parquet_dir):
        table = _read_checked(path, identity, ["chunk_hash", "context_key"])
        keys.update(zip(table.column("chunk_hash").to_pylist(), table.column("context_key").to_pylist()))
    return keys


def read_parquet_vectors(parquet_dir: str | Path, identity: EncoderIdentity) -> tuple[list[Key], np.ndarray]:
    """Every (key, float32 vector) in `parquet_dir`, in file order (keys may repeat across runs)."""
    keys: list[Key] = []
    parts: list[np.ndarray] = []
    for path in parquet_files(parquet_dir):
        table = _read_checked(path, identity, None)
        keys.extend(zip(table.column("chunk_hash").to_pylist(), table.column("context_key").to_pylist()))
        parts.append(_vectors_of(table.column("vector"), identity.dim))
    return keys, (np.concatenate(parts) if parts else np.zeros((0, identity.dim), np.float32))


def import_parquet(store: Store, parquet_dir: str | Path, identity: EncoderIdentity, *,
                   only: set[Key] | None = None) -> int:
    """Put the vectors of `parquet_dir` (those keyed in `only`, when given) into the store's cache, one
    transaction per file; returns the rows given (vectors already cached are kept)."""
    imported = 0
    for path in parquet_files(parquet_dir):
        table = _read_checked(path, identity, None)
        vectors = _vectors_of(table.column("vector"), identity.dim)
        rows = [(h, k, vectors[i]) for i, (h, k) in enumerate(zip(table.column("chunk_hash").to_pylist(),
                                                                  table.column("context_key").to_pylist()))
                if only is None or (h, k) in only]
        imported += store.put_embeddings(identity.cache_key, identity.variant, identity.dim, rows)
    return imported


def _read_checked(path: Path, identity: EncoderIdentity, columns: list[str] | None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns)
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise DemoError(f"cannot read the vector file {path} ({exc}); move it aside and run again to "
                        f"recompute its vectors", cli_flag="--parquet-dir") from None
    if _metadata(identity) != {k: meta.get(k) for k in (META_CACHE_KEY, META_VARIANT, META_DIM)}:
        found = (meta.get(META_CACHE_KEY, b"?").decode(), meta.get(META_VARIANT, b"?").decode())
        raise DemoError(f"{path} holds vectors of {found[0]} ({found[1]}), not {identity.cache_key} "
                        f"({identity.variant}): use another Parquet directory per model", cli_flag="--parquet-dir")
    return table


def _metadata(identity: EncoderIdentity) -> dict[bytes, bytes]:
    return {META_CACHE_KEY: identity.cache_key.encode(), META_VARIANT: identity.variant.encode(),
            META_DIM: str(identity.dim).encode()}


def _vector_array(matrix: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    flat = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


def _vectors_of(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = arr.flatten().to_numpy(zero_copy_only=False)  # flatten() honours slice offsets
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


# ---------------------------------------------------------------------------------------------
# what is missing


def _keys_of(missing: MissingEmbeddings) -> set[Key]:
    return {(h, "") for h, _ in missing.texts} | {(h, k) for doc in missing.documents for h, k, _ in doc}


def _without(missing: MissingEmbeddings, done: set[Key]) -> MissingEmbeddings:
    """`missing` less what `done` holds: texts one by one, documents only when every chunk is done."""
    if not done:
        return missing
    texts = [(h, t) for h, t in missing.texts if (h, "") not in done]
    documents = [doc for doc in missing.documents if any((h, k) not in done for h, k, _ in doc)]
    return MissingEmbeddings(missing.snapshot, texts, documents)


# ---------------------------------------------------------------------------------------------
# the cluster


@dataclass(frozen=True)
class _Cluster:
    started: bool
    start_s: float
    address: str
    resources: dict[str, float]


def _connect(address: str | None, runtime_env: dict | None) -> _Cluster:
    """Reuse this process' Ray, else start a local cluster (address None) or connect to `address`."""
    import ray

    _configure_ray_data()
    if ray.is_initialized():
        return _Cluster(False, 0.0, ray.get_runtime_context().gcs_address, _resources())
    # Offline clusters must not try to report usage; an explicit setting in the environment wins.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    try:
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, runtime_env=runtime_env or _package_path_env())
        else:
            ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise DemoError(f"cannot start or reach {where}: {' '.join(str(exc).split())[:300]}",
                        cli_flag="--address") from None
    return _Cluster(True, time.perf_counter() - start, ray.get_runtime_context().gcs_address, _resources())


def _package_path_env() -> dict:
    """Workers of a local cluster import this package from where the driver did, whatever their cwd."""
    root = str(Path(__file__).resolve().parent.parent)
    return {"env_vars": {"PYTHONPATH": f"{root}{os.pathsep}${{PYTHONPATH}}"}}


def _resources() -> dict[str, float]:
    import ray

    res = ray.cluster_resources()
    return {k: float(res[k]) for k in ("CPU", "GPU", "memory", "object_store_memory") if k in res}


def _configure_ray_data() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller's progress callback reports instead
    context.print_on_execution_start = False
    context.raise_original_map_exception = True  # a worker's DemoError reaches the driver as itself
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _probe_identity(cluster: _Cluster, model_key: str, variant: str | None, runtime: str,
                    settings: Settings) -> EncoderIdentity:
    """The encoder's identity as a worker with an actor's resources loads it (settings there may differ)."""
    import ray

    gpus = 1.0 if cluster.resources.get("GPU", 0.0) >= 1 else 0.0
    task = ray.remote(_identity_task).options(num_cpus=1, num_gpus=gpus, max_retries=0)
    try:
        return ray.get(task.remote(model_key, variant, runtime, settings))
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        raise user_error from exc


def _user_error(exc: BaseException) -> DemoError | None:
    """The DemoError a worker raised, found in Ray's wrappers (a copy with the same message and hints)."""
    stack: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DemoError):  # Ray's RayTaskError(DemoError) carries the original as .cause
            inner = getattr(current, "cause", None)
            source = inner if isinstance(inner, DemoError) else current
            return type(source)(getattr(source, "message", "") or str(source), setting=getattr(source, "setting", None),
                                cli_flag=getattr(source, "cli_flag", None), field=getattr(source, "field", None))
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    return None


def _check_cancel(cancel: threading.Event | None, written: int) -> None:
    if cancel is not None and cancel.is_set():
        kept = f"the {written} vectors written so far are kept; " if written else ""
        raise Cancelled(f"embedding was cancelled: {kept}run it again to embed the rest")
