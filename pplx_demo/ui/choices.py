"""The studio's widget vocabularies: what each control offers and how a value becomes a domain argument."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pplx_demo.charts import short_model_name
from pplx_demo.errors import DemoError
from pplx_demo.index import DENSE_FAMILIES, FAMILIES, IndexConfig
from pplx_demo.ingest.sample import STARTER_LANGUAGES, sample_queries
from pplx_demo.models import MODELS, STAND_IN_KEY, encoder_args, model_key_for

QUALITY_METRIC = "ndcg@10"
AUTO_EMBED_SECONDS = 60.0  # embed right after ingestion when the estimate is below this
HISTORY_RUNS = 20
MAX_TOP_K = 50
MAX_RESCORE_MULTIPLIER = 10
DEFAULT_EVAL_QUERIES = 300
PAIR_CHUNK_TOKENS = 64  # late chunking needs several chunks per document: XQuAD paragraphs are ~150 tokens

# The configurations a user can tick, in display order (IndexConfig.parse-able names); the first is the reference.
HYBRID_CHOICE = "hybrid: BM25 + binary + rescore"
CONFIG_CHOICES: tuple[str, ...] = (*DENSE_FAMILIES, HYBRID_CHOICE)
RUNTIME_CHOICES: tuple[tuple[str, str], ...] = (("PyTorch", "torch"), ("ONNX float32", "onnx"),
                                                ("ONNX int8", "onnx-int8"))
VIEW_CHOICES: tuple[tuple[str, str], ...] = (("auto", "auto"), ("columns", "columns"), ("rank table", "table"))
SCALE_SIZE_CHOICES: tuple[tuple[str, int], ...] = (("100k", 100_000), ("1M", 1_000_000), ("10M", 10_000_000))
DEFAULT_SCALE_SIZES: tuple[int, ...] = (100_000, 1_000_000)
QUALITY_FLOOR = 99.0  # % of float32 the sweep's recommendation must keep, by default
DEFAULT_CONFIGS: tuple[str, ...] = ("float32", "int8", "binary", "binary + rescore")
DATASET_CHOICES: tuple[tuple[str, str], ...] = (
    ("XQuAD (built in; 12 languages, cross-lingual)", "xquad"),
    ("BEIR folder (zip upload)", "beir"),
    ("The corpus chosen in Search + queries and qrels files", "corpus"),
)
SIZES: tuple[tuple[str, str], ...] = (("pplx-embed 0.6B", "0.6B"), ("pplx-embed 4B", "4B"),
                                      ("all-MiniLM-L6-v2 (offline stand-in)", "stand-in"))
VARIANTS = ("standard", "contextual")


@dataclass(frozen=True)
class ModelChoices:
    sizes: list[tuple[str, str]]
    variants: list[tuple[str, str]]


def variant_keys_for(model_size: str) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """((key, variant) standard, (key, variant) late chunking), for a model size."""
    return encoder_args(model_size, "standard"), encoder_args(model_size, "contextual")


def variant_choices(model_size: str) -> list[tuple[str, str]]:
    """The Variant radio's labels, naming the model that each choice really runs."""
    if model_size == "stand-in":
        name = short_model_name(MODELS[STAND_IN_KEY].display_name)
        return [(f"standard ({name})", "standard"), (f"late chunking ({name}, not trained for it)", "contextual")]
    return [(f"standard ({MODELS[model_key_for(model_size, 'standard')].display_name})", "standard"),
            (f"late chunking ({MODELS[model_key_for(model_size, 'contextual')].display_name})", "contextual")]


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high]; DemoError naming the parameter otherwise (3.0 is fine, 2.5 is not)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or not low <= number <= high:
        raise DemoError(f"{name} must be a whole number from {low} to {high} (got {value!r}).", field=name)
    return int(number)


def configs_for(names: Sequence[str], matryoshka: str | int | None, rescore_multiplier: int,
                rrf_k: int | None = None) -> list[IndexConfig]:
    """IndexConfigs for the ticked configurations (any spelling IndexConfig.parse takes), the Matryoshka
    size applied to all, in display order (float32, the reference, first). `rrf_k` sets the RRF constant
    of hybrids whose name does not give one."""
    if not names:
        raise DemoError("Tick at least one configuration to compare.", field="configurations")
    if matryoshka in (None, "", "full"):
        dim = None
    else:
        dim = whole_number(matryoshka, "matryoshka", 1, 1 << 16)
    configs = []
    for name in names:
        config = IndexConfig.parse(str(name), dim=dim, rescore_multiplier=rescore_multiplier)
        if config.hybrid and rrf_k is not None and "rrf" not in str(name).lower():
            config = replace(config, rrf_k=int(rrf_k))
        configs.append(config)
    order = {family: i for i, family in enumerate(FAMILIES)}
    return list(dict.fromkeys(sorted(configs, key=lambda c: order[c.family])))


def example_questions() -> list[str]:
    """Eight questions answerable from the starter corpus: half in its first language, the rest
    shared by the others, each language asking about different articles."""
    counts = [8 - 2 * (len(STARTER_LANGUAGES) - 1)] + [2] * (len(STARTER_LANGUAGES) - 1)
    picks: list[str] = []
    for lang, count in zip(STARTER_LANGUAGES, counts):
        picks.extend(sample_queries(lang, 8)[len(picks):len(picks) + count])
    return picks
