"""Latency at scale: grow a corpus' disk index with synthetic vectors and time every configuration.

`run_scale(base_vectors, query_vectors, sizes, configs, workdir=..., budget=...)` writes a throwaway
`DiskIndex` under `workdir`: first the corpus' real vectors, then seeded synthetic vectors of the
same dimension (Gaussian directions scaled to the corpus' median norm), generated, quantised and
appended block by block, so the float matrix never exists in RAM (float32 rows go straight to their
file, and only if a configuration needs them). At each size it times one-query searches with the
REAL query vectors for every configuration and records p50 / p95, RAM and disk used, and build time.
The synthetic rows make the numbers about speed and memory only, never about quality.

The run is refused before anything is written when its largest size does not fit the budget
(Settings `scale_ram_budget_bytes` / `scale_disk_budget_bytes`), the free disk of `workdir`, or the
available RAM. It can be cancelled between blocks (raises `Cancelled`); its files are always removed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo.disk_index import DiskIndex, bits_row_bytes, first_batch_calibration, level_files
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.index import IndexConfig
from pplx_demo.quantize import Int8Scheme

SYNTHETIC_NOTE = "synthetic vectors: speed and memory only, not quality"
_BLOCK_BYTES = 64 << 20  # float32 bytes of one synthetic block
_WORK_BYTES = 6 * _BLOCK_BYTES  # RAM for one block and its quantisation temporaries
_DISK_MARGIN = 1 << 30  # free disk to leave on the volume

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ScaleBudget:
    """What a scale run may use: RAM held by the index and work buffers, bytes written to disk."""

    ram_bytes: int
    disk_bytes: int

    @classmethod
    def from_settings(cls, settings: Any) -> "ScaleBudget":
        return cls(int(settings.scale_ram_budget_bytes), int(settings.scale_disk_budget_bytes))


@dataclass
class ScalePoint:
    """One configuration at one corpus size: one-query latency over the real queries."""

    config: IndexConfig
    n_vectors: int
    p50_ms: float
    p95_ms: float
    search_p50_ms: float  # the scan (Hamming / int8 / float32) stage
    rescore_p50_ms: float  # reading the candidates from disk and re-scoring them (0 without rescoring)
    samples: int
    kernel: str  # SearchHits.kernel: "numba" or "numpy"
    ram_bytes: int  # arrays held in RAM for this configuration (packed bits)
    scanned_bytes: int  # bytes every query scans in full (RAM bits, or memory-mapped codes / floats)
    candidate_bytes_per_query: int  # bytes read from disk per query for rescoring (k x multiplier rows)

    @property
    def config_label(self) -> str:
        return str(self.config)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["config"] = out["config_label"] = str(self.config)
        return out


@dataclass
class ScaleSize:
    """The index at one size: how it was grown and what it occupies."""

    n_vectors: int
    n_real: int
    n_synthetic: int
    build_seconds: float  # time to grow the index from the previous size to this one
    disk_bytes: int  # index files
    index_ram_bytes: int  # arrays the index holds in RAM (packed bits)
    rss_bytes: int  # this process' resident memory after timing (anonymous + mapped file pages)
    rss_anon_bytes: int  # of which anonymous memory (heap, numpy arrays): not the page cache of mapped files

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScaleReport:
    """Latency and memory per configuration and size; `note` says the vectors are synthetic."""

    full_dim: int
    k: int
    n_queries: int
    repeats: int
    int8_scheme: str
    configs: list[str]
    sizes: list[ScaleSize] = field(default_factory=list)
    points: list[ScalePoint] = field(default_factory=list)
    note: str = SYNTHETIC_NOTE
    machine: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "full_dim": self.full_dim, "k": self.k, "n_queries": self.n_queries, "repeats": self.repeats,
            "int8_scheme": self.int8_scheme, "configs": list(self.configs), "note": self.note,
            "machine": dict(self.machine), "sizes": [s.to_dict() for s in self.sizes],
            "points": [p.to_dict() for p in self.points],
        }


def as_stored(config: IndexConfig) -> IndexConfig:
    """What a disk index computes for `config`: its float32 rows are compared as stored, so a "tanh" float form
    (pplx-embed's) is timed and labelled "raw" (the scans cost the same; see `DiskIndex.resolve`)."""
    return replace(config, float_form="raw") if config.float_form == "tanh" else config


def default_scale_configs(full_dim: int, int8_scheme: Int8Scheme | None = None) -> list[IndexConfig]:
    """float32, int8, binary, binary + rescore from disk, asymmetric, and Matryoshka binary + rescore."""
    mrl = 512 if full_dim > 512 else max(1, full_dim // 2)
    return [
        IndexConfig("float32"),
        IndexConfig("int8", int8_scheme=int8_scheme),
        IndexConfig("binary"),
        IndexConfig("binary", "rescore", rescore_with="int8", int8_scheme=int8_scheme),
        IndexConfig("binary", "asymmetric"),
        IndexConfig("binary", "rescore", dim=mrl, rescore_with="int8", int8_scheme=int8_scheme),
    ]


# ---------------------------------------------------------------------------------------------
# planning


@dataclass(frozen=True)
class ScalePlan:
    """What the largest size needs, decided before anything is written."""

    dims: tuple[int, ...]
    store: tuple[str, ...]
    int8_scheme: Int8Scheme
    disk_bytes_per_vector: int
    ram_bytes_per_vector: int
    disk_bytes: int
    ram_bytes: int


def _level(config: IndexConfig, full_dim: int) -> int:
    return full_dim if config.dim is None else min(int(config.dim), full_dim)


def plan_scale(full_dim: int, max_size: int, configs: Sequence[IndexConfig],
               int8_scheme: Int8Scheme = "tanh") -> ScalePlan:
    """Stored sizes, code kinds and the RAM / disk the largest size needs (pure arithmetic)."""
    if not configs:
        raise DemoError("choose at least one configuration to time")
    schemes = {c.int8_scheme for c in configs if c.uses_int8 and c.int8_scheme is not None}
    if len(schemes) > 1:
        raise DemoError(f"the configurations ask for several int8 schemes ({', '.join(sorted(schemes))}); "
                        f"one scale run stores one")
    scheme: Int8Scheme = schemes.pop() if schemes else int8_scheme
    dims = tuple(sorted({_level(c, full_dim) for c in configs} | {full_dim}, reverse=True))
    kinds = set()
    for c in configs:
        if c.precision == "float32" or (c.mode == "rescore" and c.rescore_with == "float32"):
            kinds.add("float32")
        if c.uses_int8:
            kinds.add("int8")
        if c.precision == "binary":
            kinds.add("binary")
    store = tuple(s for s in ("binary", "int8", "float32") if s in kinds)
    disk_pv = 8 + sum(spec.row_bytes for d in dims for spec in level_files(d, store).values())
    ram_pv = sum(bits_row_bytes(d) for d in dims) if "binary" in store else 0
    return ScalePlan(dims, store, scheme, disk_pv, ram_pv, disk_pv * max_size, ram_pv * max_size + _WORK_BYTES)


def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no /proc)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def process_memory() -> dict[str, int]:
    """This process' VmRSS / RssAnon / RssFile / VmHWM in bytes (empty where there is no /proc)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def check_budget(plan: ScalePlan, max_size: int, budget: ScaleBudget, workdir: Path) -> None:
    """DemoError saying what does not fit (budget, free disk, available RAM) and the largest size that does."""
    def refuse(what: str, need: int, have: int, per_vector: int, fixed: int, fix: str) -> None:
        fits = max(0, (have - fixed) // per_vector) if per_vector else 0
        raise DemoError(f"{max_size:,} vectors need {_gib(need)} of {what}, {_gib(have)} is available "
                        f"({fix}); the largest size that fits is {fits:,} vectors")

    if plan.disk_bytes > budget.disk_bytes:
        refuse("disk", plan.disk_bytes, budget.disk_bytes, plan.disk_bytes_per_vector, 0,
               "scale disk budget, setting PPLX_DEMO_SCALE_DISK_BUDGET_BYTES; configurations that need float32 "
               "rows cost 4 bytes per dimension")
    free = shutil.disk_usage(workdir).free - _DISK_MARGIN
    if plan.disk_bytes > free:
        refuse("disk", plan.disk_bytes, max(0, free), plan.disk_bytes_per_vector, 0,
               f"free space under {workdir}, keeping 1 GiB spare")
    if plan.ram_bytes > budget.ram_bytes:
        refuse("RAM", plan.ram_bytes, budget.ram_bytes, plan.ram_bytes_per_vector, _WORK_BYTES,
               "scale RAM budget, setting PPLX_DEMO_SCALE_RAM_BUDGET_BYTES")
    available = _mem_available()
    if available is not None and plan.ram_bytes > available:
        refuse("RAM", plan.ram_bytes, available, plan.ram_bytes_per_vector, _WORK_BYTES,
               "MemAvailable of this machine")


# ---------------------------------------------------------------------------------------------
# the run


def _synthetic_block(rng: np.random.Generator, rows: int, dim: int, norm: float) -> np.ndarray:
    block = rng.standard_normal((rows, dim), dtype=np.float32)
    block *= (np.float32(norm) / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)
    return block


def _percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q)) if samples else 0.0


def run_scale(base_vectors: np.ndarray, query_vectors: np.ndarray, sizes: Sequence[int],
              configs: Sequence[IndexConfig], *, workdir: Path, budget: ScaleBudget,
              progress: Progress | None = None, cancel: threading.Event | None = None, repeats: int = 3,
              k: int = 10, max_queries: int = 20, int8_scheme: Int8Scheme = "tanh", seed: int = 0,
              kernels: str | None = None) -> ScaleReport:
    """Grow a disk index of the corpus' vectors + synthetic ones to each size and time every configuration.

    `base_vectors` (n, dim): the corpus' pooled float vectors (used first, in order); `query_vectors`
    (q, dim): real queries, the first `max_queries` each searched alone `repeats` times per
    configuration and size (after one untimed warm-up search). `int8_scheme` applies to configurations
    that leave theirs unset. Returns a `ScaleReport`; the index files are deleted at the end.
    """
    base = np.asarray(base_vectors, dtype=np.float32)
    queries = np.asarray(query_vectors, dtype=np.float32)
    if base.ndim != 2 or queries.ndim != 2:
        raise DemoError("corpus and query vectors must be (n, dim) matrices")
    full_dim = base.shape[1]
    if queries.shape[1] != full_dim or queries.shape[0] == 0:
        raise DemoError(f"need at least one query vector of {full_dim} dimensions, got shape {queries.shape}")
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(k, int) or k < 1:
        raise DemoError("repeats and k must be positive integers")
    try:
        targets = sorted({int(s) for s in sizes})
    except (TypeError, ValueError):
        raise DemoError(f"sizes must be whole numbers of vectors, got {list(sizes)!r}") from None
    if not targets or targets[0] < 1:
        raise DemoError(f"sizes must be positive numbers of vectors, got {list(sizes)!r}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    plan = plan_scale(full_dim, targets[-1], configs, int8_scheme)
    check_budget(plan, targets[-1], budget, workdir)
    configs = [replace(c, int8_scheme=plan.int8_scheme) if c.uses_int8 and c.int8_scheme is None else c
               for c in configs]
    configs = list(dict.fromkeys(as_stored(c) for c in configs))
    queries = queries[:max_queries]

    folder = workdir / f"scale-{uuid.uuid4().hex[:12]}"
    calibration = None
    if plan.int8_scheme == "calibrated" and base.shape[0] and "int8" in plan.store:
        calibration = first_batch_calibration(base)
    block_rows = max(1, _BLOCK_BYTES // (4 * full_dim))
    norms = [np.linalg.norm(base[i:i + block_rows], axis=1) for i in range(0, base.shape[0], block_rows)]
    norm = float(np.median(np.concatenate(norms))) if norms else 1.0
    norm = norm if norm > 0 else 1.0
    rng = np.random.default_rng(seed)
    total = targets[-1] + len(targets) * len(configs)
    done = 0
    report = ScaleReport(full_dim=full_dim, k=k, n_queries=queries.shape[0], repeats=repeats,
                         int8_scheme=plan.int8_scheme, configs=[c.label for c in configs],
                         machine={"cpus": os.cpu_count() or 1, "load_avg_start": _load()})

    def tick(step: int) -> None:
        nonlocal done
        done += step
        if progress is not None:
            progress(done, total)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("scale run cancelled; its index files were removed")

    index = DiskIndex.create(folder, full_dim, dims=plan.dims, store=plan.store, int8_scheme=plan.int8_scheme,
                             calibration=calibration, meta={"purpose": "scale run", "note": SYNTHETIC_NOTE},
                             kernels=kernels)
    try:
        n_real = 0
        for target in targets:
            check_cancel()
            t0 = time.perf_counter()
            while index.n < target:
                check_cancel()
                start = index.n
                rows = min(block_rows, target - start)
                if start < base.shape[0]:
                    rows = min(rows, base.shape[0] - start)
                    block, ids = base[start:start + rows], np.arange(start, start + rows, dtype=np.int64)
                    n_real += rows
                else:  # synthetic rows carry negative chunk ids: they belong to no chunk
                    block = _synthetic_block(rng, rows, full_dim, norm)
                    ids = -1 - np.arange(start, start + rows, dtype=np.int64)
                index.append(block, ids, cancel=cancel)
                tick(rows)
            build_s = time.perf_counter() - t0
            index.load()
            for config in configs:
                check_cancel()
                report.points.append(_time_config(index, config, queries, k, repeats))
                tick(1)
            mem = process_memory()
            report.sizes.append(ScaleSize(target, n_real, target - n_real, build_s, index.disk_nbytes,
                                          index.ram_nbytes, mem.get("VmRSS", 0), mem.get("RssAnon", 0)))
        report.machine["load_avg_end"] = _load()
        return report
    finally:
        index.close()
        shutil.rmtree(folder, ignore_errors=True)


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _time_config(index: DiskIndex, config: IndexConfig, queries: np.ndarray, k: int, repeats: int) -> ScalePoint:
    view = index.quantized(config)
    view.search(queries[:1], k)  # untimed: numba compile or cache load, first page faults of the scan
    total, search, rescore = [], [], []
    kernel = "numpy"
    for _ in range(repeats):
        for i in range(queries.shape[0]):
            t0 = time.perf_counter()
            hits = view.search(queries[i:i + 1], k)
            total.append(time.perf_counter() - t0)
            search.append(hits.timings.get("search", 0.0))
            rescore.append(hits.timings.get("rescore", 0.0))
            kernel = hits.kernel
    foot = index.footprint(config)
    if config.mode == "rescore":
        rows = min(index.n, k * config.rescore_multiplier)
        candidates = foot.candidate_file_bytes // max(1, index.n) * rows
    else:
        candidates = 0
    return ScalePoint(
        config=config, n_vectors=index.n, p50_ms=_percentile_ms(total, 50),
        p95_ms=_percentile_ms(total, 95), search_p50_ms=statistics.median(search) * 1e3,
        rescore_p50_ms=statistics.median(rescore) * 1e3, samples=len(total), kernel=kernel,
        ram_bytes=foot.ram_bytes, scanned_bytes=foot.ram_bytes + foot.scanned_file_bytes,
        candidate_bytes_per_query=candidates)

