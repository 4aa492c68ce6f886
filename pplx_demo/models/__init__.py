"""Model registry, loading (registry key, hub id or folder; runtime torch or ONNX) and the per-process ModelHub.

New code: create one `ModelHub(settings)` at the entry point and call `hub.get(key, variant, runtime)`.
The module functions `get_encoder`, `load_encoder` and `availability` are thin shims kept for callers that have not
moved to a hub yet; they read the settings from the environment (through config.py) at each load.
"""

from __future__ import annotations

import threading

from pplx_demo.config import Settings
from pplx_demo.models import hub as _hub
from pplx_demo.models.encoder import (BERT_MODEL_TYPES, PPLX_MODEL_TYPES, RUNTIMES, EncodeStats, Encoder, Runtime,
                                      read_config)
from pplx_demo.models.export import ExportResult, export_onnx
from pplx_demo.models.hub import ModelHub
from pplx_demo.models.registry import (MODELS, SIZES, STAND_IN_KEY, VARIANTS, Availability, ModelSpec, encoder_args,
                                       model_key_for, pplx_key, variant_keys)
from pplx_demo.models.registry import availability as _availability

__all__ = ["BERT_MODEL_TYPES", "MODELS", "PPLX_MODEL_TYPES", "RUNTIMES", "SIZES", "STAND_IN_KEY", "VARIANTS",
           "Availability", "EncodeStats", "Encoder", "ExportResult", "ModelHub", "ModelSpec", "Runtime",
           "availability", "encoder_args", "export_onnx", "get_encoder", "load_encoder", "model_key_for", "pplx_key",
           "read_config", "variant_keys"]

MAX_CACHED_ENCODERS = 3


class _EnvHub(ModelHub):
    """The shims' hub: settings re-read from the environment at each load, as the old functions did."""

    def _settings(self) -> Settings:
        return Settings.from_env()


_default_lock = threading.Lock()
_default: _EnvHub | None = None


def _default_hub() -> _EnvHub:
    global _default
    with _default_lock:
        if _default is None:
            _default = _EnvHub(Settings(), max_cached=MAX_CACHED_ENCODERS)
        return _default


def get_encoder(model_key: str, variant: str | None = None, runtime: Runtime = "torch") -> Encoder:
    """Shim: a process-wide cached encoder (each loads once; least recently used dropped past 3)."""
    return _default_hub().get(model_key, variant, runtime)  # type: ignore[arg-type]


def load_encoder(key_or_path: str, variant: str | None = None, settings: Settings | None = None,
                 runtime: Runtime = "torch") -> Encoder:
    """Shim: load an encoder (settings from the environment when not given). New code: `ModelHub.load`."""
    resolved = settings if settings is not None else Settings.from_env()
    return _hub.load_encoder(key_or_path, variant, resolved, runtime)  # type: ignore[arg-type]


def availability(key: str, settings: Settings | None = None, *, check_hub: bool = True) -> Availability:
    """Shim: can `key` be loaded here (settings from the environment when not given)? New code:
    `ModelHub.availability`."""
    return _availability(key, settings if settings is not None else Settings.from_env(), check_hub=check_hub)


def __getattr__(name: str):
    # `_cache` was the old module-level cache dict; some callers pop from it. It is the default hub's cache now.
    if name == "_cache":
        return _default_hub()._cache
    raise AttributeError(name)
