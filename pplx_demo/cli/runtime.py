"""`export-onnx`: our ONNX export of a model (token states exposed), optionally int8-quantised."""

from __future__ import annotations

import argparse
from pathlib import Path

from pplx_demo.cli.common import Context, Output
from pplx_demo.models import export_onnx as export
from pplx_demo.storage import human_bytes


def export_onnx(args: argparse.Namespace, ctx: Context) -> Output:
    with ctx.progress(f"exporting {args.model} to ONNX", "step"):
        result = export(args.model, Path(args.out) if args.out else None, quantize=args.quantize,
                        settings=ctx.settings)
    payload = {"model_key": result.model_key, "out_dir": str(result.out_dir), "fp32_file": str(result.fp32_file),
               "int8_file": str(result.int8_file) if result.int8_file else None, "outputs": list(result.outputs),
               "seconds": round(result.seconds, 2), "bytes_written": result.bytes_written,
               "fp32_min_cosine": result.fp32_min_cosine, "int8_min_cosine": result.int8_min_cosine}
    lines = [f"{result.model_key}: ONNX in {result.out_dir} ({human_bytes(result.bytes_written)} written in "
             f"{result.seconds:.1f} s); outputs {', '.join(result.outputs)}",
             f"float32 graph vs torch: min cosine {result.fp32_min_cosine:.6f}"]
    if result.int8_min_cosine is not None:
        lines.append(f"int8 graph vs torch float32: min cosine {result.int8_min_cosine:.4f}")
    lines.append(f"Use it with --runtime onnx{'-int8' if result.int8_file else ''}.")
    return Output(payload, lines)
