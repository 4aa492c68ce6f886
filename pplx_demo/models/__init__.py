"""Model registry, loading (registry key, hub id or folder; runtime torch or ONNX) and the per-process ModelHub.

Create one `ModelHub(settings)` at the entry point and call `hub.get(key, variant, runtime)`; nothing below the
entry points reads the environment.
"""

from __future__ import annotations

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
           "availability", "encoder_args", "export_onnx", "load_encoder", "model_key_for", "pplx_key",
           "read_config", "variant_keys"]

def load_encoder(key_or_path: str, variant: str | None, settings: Settings, runtime: Runtime = "torch") -> Encoder:
    """Load an encoder (uncached) from a registry key, a hub id or a folder. Most code wants `ModelHub.get`."""
    return _hub.load_encoder(key_or_path, variant, settings, runtime)  # type: ignore[arg-type]


def availability(key: str, settings: Settings, *, check_hub: bool = True) -> Availability:
    """Can `key` be loaded here, from where, and if not why and how to enable it."""
    return _availability(key, settings, check_hub=check_hub)
