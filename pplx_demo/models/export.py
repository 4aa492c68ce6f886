"""Export an encoder to ONNX (token states exposed) and quantise it to int8 with ONNX Runtime.

Where exports live (runtime "onnx" / "onnx-int8"):
- a model folder that ships the official layout (onnx/model.onnx + external data, onnx/model_q4.onnx) is used as is;
- otherwise our export in `Settings.onnx_dir/<model>-<weights fingerprint>/` (default data/onnx/), a folder in the
  same layout: config.json, tokenizer files, onnx/model.onnx + onnx/model.onnx_data, onnx/model_int8.onnx, and
  export.json (what was exported, from which weights, with which versions; written last, so a folder without it
  is an interrupted export and is redone);
- when that folder has no export yet, the first use exports it (logged, with the time and memory it needs) if
  `Settings.onnx_auto_export` (PPLX_DEMO_ONNX_AUTO_EXPORT, on by default), else loading refuses and says how:
  `python -m pplx_demo export-onnx --model KEY [--quantize int8]` (the lead wires the command onto `export_onnx`).

The exported graph is `torch_runtime.TokenStatesModule` traced by the TorchScript exporter (dynamo=False, opset 18,
dynamic batch and sequence axes): outputs `last_hidden_state` (batch, seq, dim) and `sentence_embedding` (batch,
dim, the masked mean). One export serves both variants: late chunking pools spans of the token states.
int8 is `onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, per_channel=True, reduce_range=True)`: int8
weights for every MatMul and the embedding Gather, activations quantised on the fly. Per channel, because a tensor-wide
scale lost the stand-in's outlier columns (min cosine to torch 0.92 on probe texts; 0.98 per channel); 7-bit weights
(reduce_range), because full-range per-channel weights saturate the u8 x s8 pair sums of the AVX2 / AVX-512 kernels
(ONNX Runtime documents this) and lost accuracy on the Qwen3-shaped checkpoints.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import Runtime, model_kind, read_config, weights_fingerprint
from pplx_demo.models.resolve import resolve_folder

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
OPSET = 18
MANIFEST = "export.json"
FP32_FILE = "onnx/model.onnx"
FP32_DATA = "model.onnx_data"  # external data, beside onnx/model.onnx
INT8_FILE = "onnx/model_int8.onnx"
OUTPUTS = ("last_hidden_state", "sentence_embedding")
_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
               "sentence_bert_config.json", "modules.json")
# Texts run through torch and the exported graph after every export (a padded batch of unequal lengths).
PROBE_TEXTS = ("Hello world", "Berlin is the capital and largest city of Germany, by both area and population.",
               "Short one.", "what is the population of Berlin?")
FP32_MIN_COSINE = 0.9999  # an export that agrees less with torch than this is a broken export, not rounding


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote and how closely the graphs agree with torch float32 on the probe texts."""

    model_key: str
    out_dir: Path
    fp32_file: Path
    int8_file: Path | None
    outputs: tuple[str, ...]
    source_fingerprint: str
    seconds: float
    bytes_written: int
    fp32_min_cosine: float
    int8_min_cosine: float | None
    reused_fp32: bool  # the float32 graph was already there (same weights) and was not exported again


def cache_dir_for(model_key: str, folder: Path, settings: Settings) -> Path:
    """The export folder for a model's weights under settings.onnx_dir (new weights, new folder)."""
    name = model_key if "/" not in model_key and not Path(model_key).is_absolute() else folder.name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
    return settings.onnx_dir / f"{slug}-{weights_fingerprint(folder)}"


def read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _weights_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def export_memory_estimate(folder: Path) -> int:
    """Peak bytes an export of `folder` needs: the torch model, the traced graph and the ONNX proto (measured:
    7.8 GB peak for the 0.6B's 2.2 GB of weights, 3.5x)."""
    return int(3.5 * _weights_bytes(folder)) + (1 << 29)


_export_locks: dict[str, threading.Lock] = {}
_export_locks_guard = threading.Lock()


def export_onnx(model_key_or_folder: str, out_dir: Path | None, *, quantize: Literal[None, "int8"] = None,
                settings: Settings) -> ExportResult:
    """Export a registry model, hub id or folder to ONNX in the official layout, token states exposed.

    `out_dir` None means the folder runtime="onnx" reads (`cache_dir_for`). With quantize="int8" the float32 graph is
    also quantised to onnx/model_int8.onnx; a float32 graph already exported from the same weights is reused.
    Every graph written is run on probe texts and compared with torch float32; float32 below cosine 0.9999 fails.
    """

    if quantize not in (None, "int8"):
        raise DemoError(f"unknown quantisation {quantize!r}: use int8 or nothing")
    folder, spec, model_key = resolve_folder(model_key_or_folder, settings, runtime="torch")
    raw = read_config(folder)
    kind = model_kind(raw, folder)
    out_dir = Path(out_dir) if out_dir is not None else cache_dir_for(model_key, folder, settings)
    with _export_locks_guard:
        lock = _export_locks.setdefault(str(out_dir.resolve()), threading.Lock())
    with lock:
        return _export_locked(folder, model_key, raw, kind, out_dir, quantize)


def _export_locked(folder: Path, model_key: str, raw: dict, kind: str, out_dir: Path,
                   quantize: Literal[None, "int8"]) -> ExportResult:
    t0 = time.perf_counter()
    fingerprint = weights_fingerprint(folder)
    manifest = read_manifest(out_dir)
    reuse = (manifest is not None and manifest.get("format") == EXPORT_FORMAT
             and manifest.get("source_fingerprint") == fingerprint and (out_dir / FP32_FILE).is_file())
    need = export_memory_estimate(folder)
    avail = _available_memory_bytes()
    if not reuse and avail is not None and need > avail:
        raise ModelUnavailable(f"exporting {model_key} to ONNX needs about {need / 2**30:.1f} GB of free memory "
                               f"(the weights are {_weights_bytes(folder) / 2**30:.1f} GB) and {avail / 2**30:.1f} GB "
                               "is free; export it on a larger machine (python -m pplx_demo export-onnx --model ... "
                               "--out DIR) and copy DIR here, or use runtime torch")
    import torch

    from pplx_demo.models.encoder import folder_text
    from pplx_demo.models.torch_runtime import TokenStatesModule, load_torch_model

    text = folder_text(folder, raw, kind, 512)  # type: ignore[arg-type]
    module = TokenStatesModule(load_torch_model(folder, raw, kind, torch.device("cpu"), torch.float32),
                               kind == "pplx").eval()
    ids, mask = _probe_batch(text)
    with torch.inference_mode():
        reference = module(torch.from_numpy(ids), torch.from_numpy(mask))[1].numpy()
    if not reuse:
        log.warning("exporting %s to ONNX in %s (this needs up to %.1f GB of memory)", model_key, out_dir,
                    need / 2**30)
        manifest = None
        (out_dir / MANIFEST).unlink(missing_ok=True)
        _trace_to_onnx(module, out_dir)
    del module
    gc.collect()
    if not reuse:
        _consolidate(out_dir)
        for name in _TEXT_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, out_dir / name)
    fp32_cos = _compare(out_dir / FP32_FILE, text, reference)
    if fp32_cos < FP32_MIN_COSINE:
        raise DemoError(f"the ONNX export of {model_key} disagrees with torch (min cosine {fp32_cos:.6f} on "
                        f"probe texts, expected >= {FP32_MIN_COSINE}); not using it")
    int8_cos: float | None = None
    int8_file: Path | None = None
    if quantize == "int8":
        int8_file = out_dir / INT8_FILE
        if not (reuse and manifest and manifest.get("int8") and int8_file.is_file()):
            _quantize_int8(out_dir / FP32_FILE, int8_file)
        int8_cos = _compare(int8_file, text, reference)
        if int8_cos < 0.99:
            log.warning("int8 ONNX graph of %s: min cosine %.4f to torch float32 on probe texts", model_key, int8_cos)
    elif manifest and manifest.get("int8") and (out_dir / INT8_FILE).is_file():
        int8_file = out_dir / INT8_FILE  # an earlier int8 export of the same weights stays valid
        int8_cos = manifest.get("int8_min_cosine")
    _write_manifest(out_dir, model_key, folder, fingerprint, fp32_cos, int8_file, int8_cos)
    written = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    return ExportResult(model_key=model_key, out_dir=out_dir, fp32_file=out_dir / FP32_FILE, int8_file=int8_file,
                        outputs=OUTPUTS, source_fingerprint=fingerprint, seconds=time.perf_counter() - t0,
                        bytes_written=written, fp32_min_cosine=fp32_cos, int8_min_cosine=int8_cos,
                        reused_fp32=reuse)


def _probe_batch(text) -> tuple[np.ndarray, np.ndarray]:
    seqs = [list(text.layout.prefix) + text.tokenizer(t, add_special_tokens=False)["input_ids"]
            + list(text.layout.suffix) for t in PROBE_TEXTS]
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), text.layout.pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = s, 1
    return ids, mask


def _compare(graph: Path, text, reference: np.ndarray) -> float:
    """Min cosine between the graph's pooled output and torch's on the probe batch."""
    from pplx_demo.models.onnx_runtime import graph_roles, open_session

    session = open_session(graph)
    roles = graph_roles(session)
    ids, mask = _probe_batch(text)
    (pooled,) = session.run([roles.pooled], {"input_ids": ids, "attention_mask": mask})
    del session
    num = (pooled * reference).sum(axis=1)
    den = np.linalg.norm(pooled, axis=1) * np.linalg.norm(reference, axis=1)
    return float((num / np.maximum(den, 1e-30)).min())


def _trace_to_onnx(module, out_dir: Path) -> None:
    """TorchScript-export a TokenStatesModule to out_dir/onnx/.export-tmp/model.onnx (weights maybe split out)."""
    import warnings

    import torch

    tmp = out_dir / "onnx" / ".export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # A padded batch of two unequal rows, so no shape is baked in as a constant.
    ids = torch.tensor([[11, 12, 13, 14, 15, 16], [11, 12, 13, 0, 0, 0]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes (the mask is given)
        torch.onnx.export(module, (ids, mask), str(tmp / "model.onnx"), dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask"], output_names=list(OUTPUTS),
                          dynamic_axes=axes, do_constant_folding=True)


def _consolidate(out_dir: Path) -> None:
    """Rewrite the traced graph as onnx/model.onnx with every weight in one external file, onnx/model.onnx_data."""
    import onnx

    onnx_dir = out_dir / "onnx"
    tmp = onnx_dir / ".export-tmp"
    proto = onnx.load(str(tmp / "model.onnx"))  # pulls in external data when the exporter split it out
    (onnx_dir / "model.onnx").unlink(missing_ok=True)
    (onnx_dir / FP32_DATA).unlink(missing_ok=True)
    onnx.save_model(proto, str(onnx_dir / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=FP32_DATA, size_threshold=1024)
    del proto
    gc.collect()
    shutil.rmtree(tmp, ignore_errors=True)


def _quantize_int8(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation of every MatMul and the embedding Gather (QInt8 weights per channel, 7-bit)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        int8.unlink(missing_ok=True)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         use_external_data_format=fp32.stat().st_size + _data_size(fp32) > 6 * 2**30)
    finally:
        root.setLevel(level)


def _data_size(fp32: Path) -> int:
    data = fp32.parent / FP32_DATA
    return data.stat().st_size if data.is_file() else 0


def _write_manifest(out_dir: Path, model_key: str, folder: Path, fingerprint: str, fp32_cos: float,
                    int8_file: Path | None, int8_cos: float | None) -> None:
    import onnx
    import onnxruntime
    import torch
    import transformers

    manifest = {
        "format": EXPORT_FORMAT, "model_key": model_key, "source_folder": str(folder),
        "source_fingerprint": fingerprint, "opset": OPSET, "exporter": "torch.onnx.export(dynamo=False)",
        "outputs": list(OUTPUTS), "fp32": FP32_FILE, "fp32_min_cosine": fp32_cos,
        "int8": INT8_FILE if int8_file is not None else None, "int8_min_cosine": int8_cos,
        "int8_method": "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, per_channel=True, "
                       "reduce_range=True)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out_dir / MANIFEST)


def onnx_graph_for(folder: Path, model_key: str, runtime: Runtime, settings: Settings) -> Path:
    """The ONNX graph runtime="onnx" / "onnx-int8" / "onnx-q4" runs for a model folder (see the module docstring)."""
    from pplx_demo.models.onnx_runtime import ONNX_FILES

    official = folder / "onnx" / ONNX_FILES[runtime]
    if official.is_file():
        return official
    if runtime == "onnx-q4":
        raise ModelUnavailable(f"{folder} ships no onnx/model_q4.onnx: 4-bit graphs come only from the official "
                               "repositories (this studio exports float32 and int8); use runtime onnx-int8")
    out_dir = cache_dir_for(model_key, folder, settings)
    graph = out_dir / (FP32_FILE if runtime == "onnx" else INT8_FILE)
    manifest = read_manifest(out_dir)
    if manifest is not None and manifest.get("source_fingerprint") == weights_fingerprint(folder) and graph.is_file():
        return graph
    quantize = "int8" if runtime == "onnx-int8" else None
    if not settings.onnx_auto_export:
        flag = " --quantize int8" if quantize else ""
        raise ModelUnavailable(f"no {runtime} export of {model_key} in {out_dir}: run `python -m pplx_demo export-onnx "
                               f"--model {model_key}{flag} --out {out_dir}` first, or set "
                               "PPLX_DEMO_ONNX_AUTO_EXPORT=1 to export on first use")
    log.warning("first use of %s with runtime %s: exporting it to %s", model_key, runtime, out_dir)
    result = export_onnx(str(folder) if model_key not in _registry_keys() else model_key, out_dir,
                         quantize=quantize, settings=settings)
    return result.fp32_file if runtime == "onnx" else result.int8_file  # type: ignore[return-value]


def _registry_keys() -> set[str]:
    from pplx_demo.models.registry import MODELS

    return set(MODELS)
