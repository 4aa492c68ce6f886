"""Where a model's files are: a registry key, a hub id or a local folder resolved to a folder on disk."""

from __future__ import annotations

from pathlib import Path

from pplx_demo.config import Settings
from pplx_demo.errors import ModelUnavailable
from pplx_demo.models.encoder import Runtime
from pplx_demo.models.registry import MODELS, ModelSpec, availability, stand_in_mismatch

_ONNX_PATTERNS = {"torch": [], "onnx": ["onnx/model.onnx", "onnx/model.onnx_data*"],
                  "onnx-int8": ["onnx/model_int8.onnx*"], "onnx-q4": ["onnx/model_q4.onnx*"]}


def _download(hub_id: str, settings: Settings, runtime: Runtime) -> Path:
    from huggingface_hub import snapshot_download

    if settings.hf_offline:
        raise ModelUnavailable(f"{hub_id} is not on this machine and HF_HUB_OFFLINE is set: no download attempted")
    patterns = ["*.json", "*.safetensors", "*.txt", "*.model"] + _ONNX_PATTERNS[runtime]
    cache_dir = str(settings.hf_cache_dir) if settings.hf_cache_dir is not None else None
    try:
        return Path(snapshot_download(hub_id, allow_patterns=patterns, cache_dir=cache_dir,
                                      endpoint=settings.hf_endpoint))
    except Exception as exc:  # network / auth / disk: the user needs the reason
        raise ModelUnavailable(f"could not download {hub_id}: {exc}") from exc


def resolve_folder(key_or_path: str, settings: Settings, runtime: Runtime = "torch"
                   ) -> tuple[Path, ModelSpec | None, str]:
    """(folder, registry spec if known, model_key) for a registry key, a hub id or a folder.

    The stand-in's files are checked against the official all-MiniLM-L6-v2 hashes here (a mismatch is refused).
    """
    if key_or_path in MODELS:
        spec = MODELS[key_or_path]
        avail = availability(key_or_path, settings)
        if not avail.available:
            how = f" To enable it: {avail.how_to_enable}." if avail.how_to_enable else ""
            raise ModelUnavailable(f"{spec.display_name} is not available here: {avail.reason}.{how}")
        assert avail.source is not None
        if avail.source == "hub":
            folder = _download(spec.hub_id, settings, runtime)
        else:
            folder = Path(avail.source.removeprefix("hf-cache:"))
        if spec.family == "stand-in":
            problem = stand_in_mismatch(folder)  # availability checked too; the folder may have changed since
            if problem is not None:
                raise ModelUnavailable(f"{spec.display_name} refused: {problem}")
        return folder, spec, spec.key
    path = Path(key_or_path).expanduser()
    if path.is_dir():
        return path, None, str(path.resolve())
    by_hub = {s.hub_id.lower(): s for s in MODELS.values()}
    if key_or_path.lower() in by_hub:
        return resolve_folder(by_hub[key_or_path.lower()].key, settings, runtime)
    if key_or_path.count("/") == 1 and not path.exists():
        return _download(key_or_path, settings, runtime), None, key_or_path
    known = ", ".join(MODELS)
    raise ModelUnavailable(f"{key_or_path!r} is not a known model key ({known}), a folder, or a hub id")
