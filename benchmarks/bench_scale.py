"""Out-of-core search at scale: binary codes in RAM + int8 rescoring from a memory-mapped file, against
faiss IndexBinaryFlat + an in-RAM int8 rescore, in one process, on the same generated data.

    python benchmarks/bench_scale.py --n 1000000                 # quick: 1M x 1024
    python benchmarks/bench_scale.py --n 10000000 --drop-caches  # 10M x 1024: ~11.6 GB of files under --workdir

Builds a `pplx_demo.disk_index.DiskIndex` (binary + int8 only; float32 is never written) from seeded
Gaussian unit vectors, block by block (the float matrix never exists in RAM), reopens it the way
a restarted server would (bits read into RAM, int8 memory-mapped), then times one-query top-k
searches with x`--multiplier` rescoring:

- ours: Hamming scan of the RAM bits (numba kernels, all cores), then the k x multiplier candidate
  rows read from the int8 memory map and re-scored with the float query (`DiskIndex.search`);
- peer: faiss `IndexBinaryFlat.search` for the same candidates, then the same re-scoring in numpy
  against int8 codes held in RAM (`np.fromfile`; `--faiss-int8 mmap` shares the page-cached map
  instead when RAM is short).

Queries alternate between the two (noise hits both alike). With `--drop-caches` (root only) the page
cache is dropped once and a first pass of fresh queries measures ours with cold int8 pages.
Data files live under --workdir (default /tmp) and are deleted at the end unless --keep.
Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pplx_demo.disk_index import DiskIndex, first_batch_calibration, int8_affine, level_files  # noqa: E402
from pplx_demo.index import IndexConfig  # noqa: E402
from pplx_demo.scale import process_memory  # noqa: E402

GB = 1e9


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def mem_available() -> int:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def gaussian_unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as exc:
        print(f"# drop_caches refused: {exc}")
        return False


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="corpus vectors")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--multiplier", type=int, default=4, help="rescore candidates = k x multiplier")
    ap.add_argument("--queries", type=int, default=50, help="distinct one-query searches per round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds over the queries (each side)")
    ap.add_argument("--block", type=int, default=16384, help="rows generated + appended per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp"))
    ap.add_argument("--faiss-int8", choices=("auto", "ram", "mmap"), default="auto",
                    help="where the peer's int8 codes live (auto: RAM when MemAvailable leaves 6 GB spare)")
    ap.add_argument("--faiss-threads", type=int, default=0,
                    help="OpenMP threads for faiss (0: its default); on a loaded box 1 avoids OpenMP spin-waits")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache once for a cold pass (root)")
    ap.add_argument("--keep", action="store_true", help="keep the index files")
    args = ap.parse_args()

    import faiss

    import numba
    if args.faiss_threads:
        faiss.omp_set_num_threads(args.faiss_threads)
    n, dim, k, mult = args.n, args.dim, args.k, args.multiplier
    folder = args.workdir / f"pplx-bench-scale-{n}"
    disk_need = n * (8 + dim + 4 + dim // 8)
    print(f"# {os.cpu_count()} CPUs, numpy {np.__version__}, numba {numba.__version__}, faiss {faiss.__version__} "
          f"(omp threads {faiss.omp_get_max_threads()})")
    print(f"# uptime: {sh('uptime')}")
    print(f"# df -h {args.workdir}: {sh(f'df -h {args.workdir} | tail -1')}")
    print(f"# MemAvailable {mem_available() / GB:.1f} GB; this run writes {disk_need / GB:.1f} GB under {folder}")
    if shutil.disk_usage(args.workdir).free < disk_need + (2 << 30):
        sys.exit("not enough free disk for the index files")
    if folder.exists():
        shutil.rmtree(folder)

    config = IndexConfig("binary", "rescore", rescore_multiplier=mult, rescore_with="int8", int8_scheme="calibrated")
    rng = np.random.default_rng(args.seed)
    try:
        # -- build -------------------------------------------------------------------------
        t_gen = 0.0
        t0 = time.perf_counter()
        first = gaussian_unit(rng, min(args.block, n), dim)
        t_gen += time.perf_counter() - t0
        ix = DiskIndex.create(folder, dim, store=("binary", "int8"), int8_scheme="calibrated",
                              calibration=first_batch_calibration(first))
        written = 0
        block = first
        while True:
            ix.append(block, np.arange(written, written + block.shape[0]))
            written += block.shape[0]
            if written >= n:
                break
            t1 = time.perf_counter()
            block = gaussian_unit(rng, min(args.block, n - written), dim)
            t_gen += time.perf_counter() - t1
        build_s = time.perf_counter() - t0
        ix.close()
        del ix, block, first
        gc.collect()
        print(f"# build: {build_s:.1f} s for {n:,} x {dim} ({t_gen:.1f} s of it generating vectors; quantise, "
              f"hash and write {build_s - t_gen:.1f} s = {n / max(1e-9, build_s - t_gen):,.0f} rows/s)")

        # -- open as after a restart --------------------------------------------------------
        before = process_memory()
        t0 = time.perf_counter()
        ix = DiskIndex.open(folder)
        open_s = time.perf_counter() - t0
        after = process_memory()
        sizes = ix.file_sizes()
        print(f"# open: {open_s:.2f} s (reads the bits into RAM); index arrays in RAM {ix.ram_nbytes / GB:.3f} GB; "
              f"RssAnon +{(after['RssAnon'] - before['RssAnon']) / GB:.3f} GB; disk {ix.disk_nbytes / GB:.2f} GB "
              f"({', '.join(f'{k_}: {v / GB:.2f} GB' for k_, v in sizes.items())})")

        qrng = np.random.default_rng(args.seed + 1)
        queries = gaussian_unit(qrng, args.queries * 2, dim)
        cold_q, warm_q = queries[: args.queries], queries[args.queries:]

        view = ix.quantized(config)
        view.search(warm_q[:1], k)  # numba load, untimed

        cold = None
        if args.drop_caches and drop_caches():
            cold_total, cold_rescore = [], []
            for i in range(cold_q.shape[0]):
                t0 = time.perf_counter()
                hits = view.search(cold_q[i:i + 1], k)
                cold_total.append(time.perf_counter() - t0)
                cold_rescore.append(hits.timings["rescore"])
            cold = (pct(cold_total, 50), pct(cold_total, 95), pct(cold_rescore, 50), pct(cold_rescore, 95))

        # -- the peer: faiss binary scan + int8 rescore in RAM -------------------------------
        codes_spec = level_files(dim, ix.store)["int8"]
        where = args.faiss_int8
        if where == "auto":
            where = "ram" if mem_available() - sizes[codes_spec.name] > 6e9 else "mmap"
        fb = faiss.IndexBinaryFlat(dim)
        raw_bits = ix.quantized(IndexConfig("binary"))._bits.view(np.uint8)
        for i in range(0, n, 1 << 20):
            fb.add(np.ascontiguousarray(raw_bits[i:i + (1 << 20), : dim // 8]))
        if where == "ram":
            codes = np.fromfile(folder / codes_spec.name, dtype=np.int8).reshape(n, dim)
        else:
            codes = view._codes
        inv_norm = np.fromfile(folder / f"d{dim}.int8_inv_norm", dtype="<f4")
        scale, offset = int8_affine("calibrated", ix.calibration, dim)
        mem_peer = process_memory()
        print(f"# peer: IndexBinaryFlat {fb.ntotal:,} codes + int8 codes in {where} "
              f"({'np.fromfile' if where == 'ram' else 'shared memory map'}); RssAnon now {mem_peer['RssAnon'] / GB:.2f} GB")

        def peer(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            qbits = np.packbits(q >= 0, axis=1)
            _, cand = fb.search(qbits, k * mult)
            t1 = time.perf_counter()
            c = cand[0]
            w = q[0] * scale
            s = (codes[c].astype(np.float32) @ w + np.float32(q[0] @ offset)) * inv_norm[c]
            order = np.lexsort((c, -s))[:k]
            return c[order], s[order] / np.float32(np.linalg.norm(q[0])), time.perf_counter() - t1

        peer(warm_q[:1])
        ours_t, peer_t, ours_r, peer_r, agree = [], [], [], [], []
        for _ in range(args.rounds):
            for i in range(warm_q.shape[0]):
                q = warm_q[i:i + 1]
                t0 = time.perf_counter()
                hits = view.search(q, k)
                ours_t.append(time.perf_counter() - t0)
                ours_r.append(hits.timings["rescore"])
                t0 = time.perf_counter()
                ids, _, rescore_s = peer(q)
                peer_t.append(time.perf_counter() - t0)
                peer_r.append(rescore_s)
                agree.append(len(set(hits.ids[0].tolist()) & set(ids.tolist())) / k)
        mem_end = process_memory()

        o50, o95, f50, f95 = pct(ours_t, 50), pct(ours_t, 95), pct(peer_t, 50), pct(peer_t, 95)
        print(f"\n| {n:,} x {dim}, top-{k}, rescore x{mult} (one query) | p50 ms | p95 ms | rescore p50 ms "
              f"| rescore p95 ms |")
        print("|---|---:|---:|---:|---:|")
        print(f"| ours: RAM bits + int8 memmap (warm page cache) | {o50:.1f} | {o95:.1f} | {pct(ours_r, 50):.2f} | "
              f"{pct(ours_r, 95):.2f} |")
        if cold is not None:
            print(f"| ours, first pass after drop_caches (cold int8 pages) | {cold[0]:.1f} | {cold[1]:.1f} | "
                  f"{cold[2]:.2f} | {cold[3]:.2f} |")
        print(f"| faiss IndexBinaryFlat + int8 rescore ({where}) | {f50:.1f} | {f95:.1f} | {pct(peer_r, 50):.2f} | "
              f"{pct(peer_r, 95):.2f} |")
        print(f"\n# samples: {len(ours_t)} per side ({args.rounds} rounds x {warm_q.shape[0]} queries, alternating)")
        print(f"# speed ratio (faiss / ours): p50 {f50 / o50:.2f}x, p95 {f95 / o95:.2f}x")
        print(f"# top-{k} agreement ours vs peer: {np.mean(agree):.3f} (Hamming ties at the candidate cut may differ)")
        print(f"# memory: index arrays in RAM {ix.ram_nbytes / GB:.3f} GB; VmRSS {mem_end['VmRSS'] / GB:.2f} GB "
              f"(RssAnon {mem_end['RssAnon'] / GB:.2f} GB incl. the peer's copies, RssFile "
              f"{mem_end['RssFile'] / GB:.2f} GB mapped pages); VmHWM {mem_end['VmHWM'] / GB:.2f} GB")
        print(f"# uptime at end: {sh('uptime')}")
        ram_ok = ix.ram_nbytes <= 1.5e9
        print(f"# goals: index RAM {ix.ram_nbytes / GB:.2f} GB <= 1.5 GB: {'meets' if ram_ok else 'MISSES'}; "
              f"p50 {o50:.1f} ms <= 100 ms: {'meets' if o50 <= 100 else 'MISSES'}; "
              f"ratio {f50 / o50:.2f}x >= 1.0x: {'meets' if f50 / o50 >= 1.0 else 'MISSES'}")
        ix.close()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
