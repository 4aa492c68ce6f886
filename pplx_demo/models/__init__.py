"""Model registry, loading (registry key, hub id or folder) and a per-process encoder cache."""

from __future__ import annotations

import threading
from pathlib import Path

from pplx_demo.config import Settings
from pplx_demo.errors import ModelUnavailable
from pplx_demo.models.encoder import BERT_MODEL_TYPES, PPLX_MODEL_TYPES, EncodeStats, Encoder, read_config
from pplx_demo.models.registry import (MODELS, STAND_IN_KEY, VARIANTS, Availability, ModelSpec, availability,
                                       pplx_key)

__all__ = ["MODELS", "STAND_IN_KEY", "VARIANTS", "Availability", "EncodeStats", "Encoder", "ModelSpec", "availability",
           "get_encoder", "load_encoder", "pplx_key"]


def _download(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as exc:  # network / auth / disk: the user needs the reason
        raise ModelUnavailable(f"could not download {hub_id}: {exc}") from exc


def _resolve(key_or_path: str, settings: Settings) -> tuple[Path, ModelSpec | None, str]:
    """(folder, registry spec if known, model_key) for a registry key, a hub id or a folder."""
    if key_or_path in MODELS:
        spec = MODELS[key_or_path]
        avail = availability(key_or_path, settings)
        if not avail.available:
            raise ModelUnavailable(f"{spec.display_name} is not available here: {avail.reason}. "
                                   f"To enable it: {avail.how_to_enable}.")
        assert avail.source is not None
        if avail.source == "hub":
            return _download(spec.hub_id), spec, spec.key
        return Path(avail.source.removeprefix("hf-cache:")), spec, spec.key
    path = Path(key_or_path).expanduser()
    if path.is_dir():
        return path, None, str(path.resolve())
    by_hub = {s.hub_id.lower(): s for s in MODELS.values()}
    if key_or_path.lower() in by_hub:
        return _resolve(by_hub[key_or_path.lower()].key, settings)
    if key_or_path.count("/") == 1 and not path.exists():
        return _download(key_or_path), None, key_or_path
    known = ", ".join(MODELS)
    raise ModelUnavailable(f"{key_or_path!r} is not a known model key ({known}), a folder, or a hub id")


def load_encoder(key_or_path: str, variant: str | None = None, settings: Settings | None = None) -> Encoder:
    """Load an encoder from a registry key, a hub id or a local folder. Never runs remote code.

    `variant` defaults to the model's own; pplx-embed models have a fixed variant, while the
    stand-in and unknown folders accept "contextual" to demonstrate late chunking.
    """
    from pplx_demo.models.encoder import load_bert_folder, load_qwen_folder, pick_device, weights_fingerprint

    settings = settings or Settings.from_env()
    folder, spec, model_key = _resolve(key_or_path, settings)
    raw = read_config(folder)
    model_type = raw.get("model_type")
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
    device, _ = pick_device(settings.device)
    cap = settings.max_tokens_gpu if device.type == "cuda" else settings.max_tokens_cpu
    # Registry models are identified by their key; a bare folder also by its weights (re-pointed folders).
    fingerprint = "" if spec is not None else weights_fingerprint(folder)
    if model_type in PPLX_MODEL_TYPES:
        is_pplx = model_type == "bidirectional_pplx_qwen3"
        if spec is not None:
            name = spec.display_name
        else:
            kind = "pplx-embed layout" if is_pplx else "Qwen3 layout"
            name = f"{folder.name} ({kind}, local folder)"
        return load_qwen_folder(folder, name=name, model_key=model_key, variant=variant,  # type: ignore[arg-type]
                                max_tokens=cap, is_pplx=is_pplx, batch_size=settings.batch_size,
                                device=settings.device, fingerprint=fingerprint)
    if model_type in BERT_MODEL_TYPES:
        if spec is not None:
            name = spec.display_name if variant == "standard" else \
                spec.display_name.replace(" (", " with late chunking (", 1)
        else:
            name = f"{folder.name} (BERT, local folder, not pplx-embed)"
        return load_bert_folder(folder, name=name, model_key=model_key, variant=variant,  # type: ignore[arg-type]
                                max_tokens=512, batch_size=settings.batch_size, device=settings.device,
                                fingerprint=fingerprint)
    raise ModelUnavailable(f"{folder}: model_type {model_type!r} is not supported (expected "
                           f"{', '.join(PPLX_MODEL_TYPES + BERT_MODEL_TYPES)})")


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str | None], Encoder] = {}
_load_locks: dict[tuple[str, str | None], threading.Lock] = {}
MAX_CACHED_ENCODERS = 3


def get_encoder(model_key: str, variant: str | None = None) -> Encoder:
    """A process-wide cached encoder (each model loads once; least recently used dropped past 3)."""
    if variant is None and model_key in MODELS:  # (key, None) and (key, its own variant) are one model
        variant = MODELS[model_key].variant
    key = (model_key, variant)
    with _cache_lock:
        if key in _cache:
            enc = _cache.pop(key)
            _cache[key] = enc
            return enc
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        enc = load_encoder(model_key, variant)
        with _cache_lock:
            _cache[key] = enc
            while len(_cache) > MAX_CACHED_ENCODERS:
                _cache.pop(next(iter(_cache)))
        return enc
