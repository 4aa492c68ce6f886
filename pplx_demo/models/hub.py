"""Finding and loading encoders: `ModelHub` (one per process, created by the entry point with its Settings) and
the plain function `load_encoder` it is built on."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from pplx_demo.config import Settings
from pplx_demo.errors import ModelUnavailable
from pplx_demo.models.encoder import (RUNTIME_LABELS, RUNTIMES, Encoder, Runtime, Variant, folder_text, model_kind,
                                      read_config, weights_fingerprint)
from pplx_demo.models.registry import MODELS, VARIANTS, Availability, ModelSpec, availability, pplx_key
from pplx_demo.models.resolve import resolve_folder




REMOTE_PREFIXES = ("tei:", "pplx-api:")  # "tei:" (the TEI server of PPLX_DEMO_TEI_URL), "pplx-api:<model>"


def load_remote_encoder(key: str, settings: Settings) -> Encoder:
    """A remote embedder: "tei:" / "tei:<hub id>" (Text Embeddings Inference) or "pplx-api:<model>" (the
    Perplexity API). They return int8 codes; the encoder's float view is codes / 127 (int8 scheme "codes")."""
    from pplx_demo.models.remote import pplx_api_encoder, qwen_tokenizer, tei_encoder

    service, _, model = key.partition(":")
    tokenizer = qwen_tokenizer(settings.tokenizer_dir / "qwen3-tokenizer.json")
    if service == "tei":
        return tei_encoder(settings, model=model or None, tokenizer=tokenizer)  # type: ignore[return-value]
    if not model:
        raise ModelUnavailable("name the API model after 'pplx-api:', e.g. pplx-api:pplx-embed-v1-0.6b")
    return pplx_api_encoder(settings, model, tokenizer=tokenizer)  # type: ignore[return-value]


def load_encoder(key_or_path: str, variant: Variant | None, settings: Settings, runtime: Runtime = "torch"
                 ) -> Encoder:
    """Load an encoder from a registry key, a hub id or a local folder, on a runtime. Never runs remote code.

    `variant` None means the model's own; pplx-embed models have a fixed variant, while the stand-in and unknown
    folders accept "contextual" to demonstrate late chunking.
    """
    from pplx_demo.models.torch_runtime import resolve_device

    if key_or_path.startswith(REMOTE_PREFIXES):
        return load_remote_encoder(key_or_path, settings)
    if runtime not in RUNTIMES:
        raise ModelUnavailable(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        device, _ = resolve_device(settings.device, settings.dtype)  # fp16 / bf16-on-CPU refused before loading
    else:
        _check_onnx_settings(settings)
        device = None
    folder, spec, model_key = resolve_folder(key_or_path, settings, runtime)
    raw = read_config(folder)
    kind = model_kind(raw, folder)  # refuses causal Qwen3 folders and unknown model types
    if spec is not None and spec.is_pplx:
        if variant not in (None, spec.variant):
            raise ModelUnavailable(f"{spec.display_name} is a {spec.variant} model; for the {variant} variant "
                                   f"choose {pplx_key(spec.size_label, variant)}")  # type: ignore[arg-type]
        variant = spec.variant
    if variant is None:
        archs = " ".join(raw.get("architectures") or [])
        variant = "contextual" if "Contextual" in archs else "standard"
    if variant not in VARIANTS:
        raise ModelUnavailable(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    on_gpu = device is not None and device.type == "cuda"
    cap = settings.max_tokens_gpu if on_gpu else settings.max_tokens_cpu
    text = folder_text(folder, raw, kind, cap)
    name = _display_name(spec, folder, kind, variant, runtime, "float32")
    # Registry models are identified by their key; a bare folder also by its weights (re-pointed folders).
    fingerprint = "" if spec is not None else weights_fingerprint(folder)
    common = dict(name=name, model_key=model_key, variant=variant, max_tokens=text.max_tokens,
                  is_pplx=kind == "pplx", int8_scheme="tanh" if kind == "pplx" else "calibrated",
                  batch_size=settings.batch_size, fingerprint=fingerprint)
    if runtime == "torch":
        from pplx_demo.models.torch_runtime import load_torch_encoder

        enc = load_torch_encoder(folder, raw, text, device=settings.device, dtype=settings.dtype, **common)
        enc.name = _display_name(spec, folder, kind, variant, runtime, enc.dtype)  # e.g. "... · bfloat16"
        return enc
    from pplx_demo.models.export import onnx_graph_for
    from pplx_demo.models.onnx_runtime import load_onnx_encoder

    graph = onnx_graph_for(folder, model_key, runtime, settings)
    return load_onnx_encoder(graph, text, runtime=runtime, threads=settings.onnx_threads, **common)


def _check_onnx_settings(settings: Settings) -> None:
    if settings.device == "cuda":
        raise ModelUnavailable("the ONNX runtimes run on the CPU (the pinned onnxruntime package has no CUDA); "
                               "use runtime torch for PPLX_DEMO_DEVICE=cuda")
    if settings.dtype == "fp16":
        from pplx_demo.models.torch_runtime import resolve_device

        resolve_device("cpu", "fp16")  # the same refusal, with its reason
    if settings.dtype == "bf16":
        raise ModelUnavailable("dtype bf16 applies to runtime torch on CUDA; the ONNX runtimes compute in float32 "
                               "(onnx) or with int8 weights (onnx-int8)")


def _display_name(spec: ModelSpec | None, folder: Path, kind: str, variant: str, runtime: Runtime,
                  dtype: str) -> str:
    if spec is not None:
        name = spec.display_name
        if not spec.is_pplx and variant == "contextual":
            name = name.replace(" (", " with late chunking (", 1)
    elif kind == "pplx":
        name = f"{folder.name} (pplx-embed layout, local folder)"
    else:
        name = f"{folder.name} (BERT, local folder, not pplx-embed)"
    if runtime != "torch":
        name += f" · {RUNTIME_LABELS[runtime]}"
    elif dtype and dtype != "float32":
        name += f" · {dtype}"
    return name


CacheKey = tuple[str, str | None, str]


class ModelHub:
    """The encoders of one process: each (model, variant, runtime) loads once, on first use, and at most
    `max_cached` stay loaded (least recently used dropped). Thread-safe; create one per entry point."""

    def __init__(self, settings: Settings, *, max_cached: int = 3) -> None:
        self.settings = settings
        self.max_cached = max_cached
        self._lock = threading.Lock()
        self._cache: OrderedDict[CacheKey, Encoder] = OrderedDict()
        self._load_locks: dict[CacheKey, threading.Lock] = {}

    def spec(self, model_key: str) -> ModelSpec:
        """The registry entry for a key (ModelUnavailable naming the known keys otherwise)."""
        if model_key not in MODELS:
            raise ModelUnavailable(f"{model_key!r} is not a known model key ({', '.join(MODELS)})")
        return MODELS[model_key]

    def availability(self, model_key: str, *, check_hub: bool = True) -> Availability:
        """Whether a registry model can be loaded here, from where, and if not why and how to enable it."""
        self.spec(model_key)
        return availability(model_key, self._settings(), check_hub=check_hub)

    def load(self, key_or_path: str, variant: Variant | None = None, runtime: Runtime = "torch") -> Encoder:
        """A freshly loaded encoder (not cached)."""
        return load_encoder(key_or_path, variant, self._settings(), runtime)

    def get(self, model_key: str, variant: Variant | None = None, runtime: Runtime = "torch") -> Encoder:
        """The cached encoder for (model, variant, runtime); (key, None) and (key, its own variant) are one model."""
        if variant is None and model_key in MODELS:
            variant = MODELS[model_key].variant
        key: CacheKey = (model_key, variant, runtime)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            enc = self.load(model_key, variant, runtime)
            with self._lock:
                self._cache[key] = enc
                while len(self._cache) > self.max_cached:
                    self._cache.popitem(last=False)
            return enc

    def forget(self, model_key: str | None = None) -> None:
        """Drop cached encoders (of one model key, or all), e.g. after its folder changed."""
        with self._lock:
            for key in [k for k in self._cache if model_key is None or k[0] == model_key]:
                del self._cache[key]

    def _settings(self) -> Settings:
        return self.settings
