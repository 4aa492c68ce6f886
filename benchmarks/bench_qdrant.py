"""Qdrant Edge (the real Qdrant engine, in-process) against the project's numpy engine, same data, same process.

Synthetic low-rank unit vectors (seeded) and queries near corpus points. For each configuration and
each engine: build time (numpy: quantise; Qdrant: upsert + optimise), single-query latency p50/p95,
recall@10 against the exact float32 top-10, and the Qdrant/numpy ratios.

    python benchmarks/bench_qdrant.py --n 100000        # quick
    python benchmarks/bench_qdrant.py                   # 1,000,000 x 1024 (~9 GB RAM, ~5 GB disk at a time)

Qdrant runs with no HNSW graph (`QdrantOptions(hnsw_m=0)`): both engines scan every vector, so the
comparison is about the scan and the quantisation, not about graph search. "binary" and
"binary + rescore" search one Qdrant shard (same 1-bit codes). Latencies are wall times of one
query at a time after one warm-up query; the machine may be shared, so `uptime` is printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pplx_demo.engines import qdrant as q  # noqa: E402
from pplx_demo.index import IndexConfig, QuantizedIndex  # noqa: E402

CONFIGS = [
    IndexConfig("float32"),
    IndexConfig("int8"),
    IndexConfig("binary"),
    IndexConfig("binary", "rescore", rescore_with="float32"),
    IndexConfig("binary", "asymmetric"),
]


def generate(n: int, dim: int, rank: int, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows x = (z @ basis + noise) / norm, block-wise; queries = corpus rows + small noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim), dtype=np.float32) / np.float32(np.sqrt(rank))
    x = np.empty((n, dim), dtype=np.float32)
    step = 65536
    for i in range(0, n, step):
        m = min(step, n - i)
        block = rng.standard_normal((m, rank), dtype=np.float32) @ basis
        block += np.float32(0.5) * rng.standard_normal((m, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[i:i + m] = block
    picks = rng.choice(n, n_queries, replace=False)
    queries = x[picks] + np.float32(0.3) * rng.standard_normal((n_queries, dim), dtype=np.float32) / np.float32(
        np.sqrt(dim))
    return x, queries


def latencies(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """(top-k ids of every query, p50 ms, p95 ms) searching one query at a time after a warm-up."""
    index.search(queries[:1], k)
    times, ids = [], []
    for row in queries:
        t0 = time.perf_counter()
        hits = index.search(row[None, :], k)
        times.append(time.perf_counter() - t0)
        ids.append(hits.ids[0])
    t = np.array(times) * 1e3
    return np.stack(ids), float(np.percentile(t, 50)), float(np.percentile(t, 95))


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(ids, truth)]))


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "uptime unavailable"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--rank", type=int, default=64, help="rank of the synthetic data before noise")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=2000, help="points per Qdrant upsert call")
    ap.add_argument("--edge-dir", type=Path, default=None, help="folder for the shards (default: a temp folder)")
    ap.add_argument("--kernels", default=None, help="numpy engine kernels: auto | numpy | numba")
    args = ap.parse_args()

    print(f"# Qdrant Edge {q.edge_version()} vs numpy engine: n={args.n:,} dim={args.dim} rank={args.rank} "
          f"queries={args.queries} k={args.k} seed={args.seed}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# load at start: {uptime()}")
    t0 = time.perf_counter()
    x, queries = generate(args.n, args.dim, args.rank, args.queries, args.seed)
    print(f"# data generated in {time.perf_counter() - t0:.1f} s")
    k = args.k

    root = args.edge_dir or Path(tempfile.mkdtemp(prefix="bench-qdrant-"))
    engine = q.QdrantEdgeEngine(root, q.QdrantOptions(upsert_batch=args.batch))
    rows, truth, shared = [], None, None
    for config in CONFIGS:
        t0 = time.perf_counter()
        ours = QuantizedIndex.build(x, config, args.kernels)
        np_build = time.perf_counter() - t0
        np_ids, np_p50, np_p95 = latencies(ours, queries, k)
        if truth is None:  # the float32 configuration comes first: its exact top-k is the reference
            assert config.precision == "float32"
            truth = np_ids
        np_recall = recall(np_ids, truth)
        del ours
        gc.collect()

        if shared is not None and config.precision == "binary" and config.mode == "rescore":
            qd, qd_build, qd_detail = shared.searching_as(config, engine.options), 0.0, "shares the binary shard"
        else:
            if shared is not None:
                shared.close()
                shared = None
            t0 = time.perf_counter()
            qd = engine.build(x, config, name="bench")
            qd_build = time.perf_counter() - t0
            qd_detail = (f"upsert {qd.build_timings['upsert']:.1f} s + optimise {qd.build_timings['optimize']:.1f} s,"
                         f" {qd.nbytes / 2**20:,.0f} MiB on disk")
            if config.precision == "binary" and config.mode == "plain":
                shared = qd
        qd_ids, qd_p50, qd_p95 = latencies(qd, queries, k)
        qd_recall = recall(qd_ids, truth)
        if qd is not shared:
            qd.close()
        rows.append((config.label, np_build, qd_build, np_p50, np_p95, qd_p50, qd_p95, np_recall, qd_recall,
                     qd_detail))
        print(f"  {config.label}: numpy {np_p50:.2f} ms, Qdrant {qd_p50:.2f} ms ({qd_detail})", flush=True)
    if shared is not None:
        shared.close()

    print()
    print("| configuration | build numpy s | build Qdrant s | numpy p50 / p95 ms | Qdrant p50 / p95 ms | "
          "Qdrant/numpy p50 | recall@10 numpy | recall@10 Qdrant |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, nb, qb, n50, n95, q50, q95, nr, qr, _ in rows:
        ratio = q50 / n50 if n50 > 0 else float("nan")
        qb_text = f"{qb:.1f}" if qb else "(shared)"
        print(f"| {label} | {nb:.1f} | {qb_text} | {n50:.2f} / {n95:.2f} | {q50:.2f} / {q95:.2f} | {ratio:.2f}x | "
              f"{nr:.3f} | {qr:.3f} |")
    print(f"\n# Qdrant: no HNSW graph (scan), Distance.Cosine, rescoring from float32 originals; "
          f"numpy kernels: {QuantizedIndex.build(x[:1], IndexConfig('binary'), args.kernels).kernels}")
    print(f"# load at end: {uptime()}")
    if args.edge_dir is None:
        import shutil
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
