"""A scale run of a stored corpus, shared by the CLI (`scale`) and the studio's Scale panel.

`scale_corpus(store, corpus_id, encoder, sizes, settings=...)` embeds what the corpus lacks, takes
its float vectors, embeds real XQuAD questions (in the corpus' languages where XQuAD has them) as
the timed queries, compiles the scan kernels (never timed), grows a throwaway disk index to each
size with synthetic vectors (`scale.run_scale`: budget refusals, cancel, files removed) and prices
every configuration's RAM and disk at those sizes (`deployment.deployment_costs`).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pplx_demo import workflows
from pplx_demo.config import Settings
from pplx_demo.deployment import COST_SOURCES, DeploymentCost, deployment_costs
from pplx_demo.embedding import embed_corpus
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.datasets import XQUAD_LANGUAGES
from pplx_demo.index import IndexConfig, warm_up
from pplx_demo.ingest.sample import sample_queries
from pplx_demo.scale import (ScaleBudget, ScalePlan, ScaleReport, as_stored, default_scale_configs, plan_scale,
                             run_scale)
from pplx_demo.store import Store

QUERIES = 20  # real questions timed per configuration and size
SIZE_CHOICES: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)  # what the studio offers

Progress = Callable[[int, int], None]


@dataclass
class ScaleRun:
    """A finished scale run: the latency report, the cost of each configuration at each size, and what ran."""

    corpus_id: int
    corpus_name: str
    model_name: str
    full_dim: int
    sizes: list[int]
    configs: list[IndexConfig]
    n_questions: int
    report: ScaleReport
    costs: list[DeploymentCost]

    def to_dict(self) -> dict[str, Any]:
        return {"corpus": self.corpus_name, "corpus_id": self.corpus_id, "model": self.model_name,
                **self.report.to_dict(), "costs": [c.to_dict() for c in self.costs]}


def scale_questions(languages: Sequence[str], n: int = QUERIES) -> list[str]:
    """`n` real XQuAD questions in the corpus' languages that XQuAD has (English otherwise)."""
    langs = [lang for lang in languages if lang in XQUAD_LANGUAGES] or ["en"]
    return [q for lang in langs for q in sample_queries(lang, n)][:n]


def price_note(settings: Settings) -> str:
    """The prices used and where their defaults come from (the settings that change them)."""
    sources = "; ".join(f"{c.resource}: {c.what} ({c.url}, {c.as_of})" for c in COST_SOURCES)
    return (f"RAM ${settings.ram_usd_per_gb_month:g}/GiB-month, disk ${settings.disk_usd_per_gb_month:g}/GiB-month "
            f"(settings PPLX_DEMO_RAM_USD_PER_GB_MONTH / PPLX_DEMO_DISK_USD_PER_GB_MONTH); defaults: {sources}")


def scale_configs(encoder: Any, configs: Sequence[IndexConfig] | None = None) -> list[IndexConfig]:
    """The configurations a scale run times for this encoder (the defaults when none are given), resolved."""
    dim, scheme = int(encoder.dim), encoder.int8_scheme
    chosen = list(configs) if configs else default_scale_configs(dim, scheme)
    return list(dict.fromkeys(as_stored(c.dense.for_model(dim, scheme)) for c in chosen))


def scale_plan(encoder: Any, sizes: Sequence[int], configs: Sequence[IndexConfig] | None = None) -> ScalePlan:
    """RAM and disk the largest size needs (before anything is embedded or written)."""
    if not sizes:
        raise DemoError("choose at least one corpus size to grow to", field="sizes")
    return plan_scale(int(encoder.dim), max(int(s) for s in sizes), scale_configs(encoder, configs),
                      encoder.int8_scheme)


def scale_corpus(store: Store, corpus_id: int, encoder: Any, sizes: Sequence[int], *, settings: Settings,
                 configs: Sequence[IndexConfig] | None = None, workdir: Path | None = None,
                 embed_progress: Progress | None = None, progress: Progress | None = None,
                 cancel: threading.Event | None = None, repeats: int = 3, k: int = 10,
                 meter: Any = None) -> ScaleRun:
    """Embed the corpus if needed, then grow its vectors to each size and time every configuration."""
    info = store.get_corpus(corpus_id)
    targets = sorted({int(s) for s in sizes})
    if not targets or targets[0] < 1:
        raise DemoError("choose at least one corpus size to grow to", field="sizes")
    chosen = scale_configs(encoder, configs)
    workflows.embed(store, corpus_id, encoder, meter=meter, progress=embed_progress, cancel=cancel)
    base = embed_corpus(store, corpus_id, encoder).vectors  # the vectors just made (a cache hit)
    questions = scale_questions(info.languages)
    queries = np.asarray(encoder.encode(questions), dtype=np.float32)
    warm_up(settings.kernels)  # compilation is never timed as latency
    report = run_scale(base, queries, targets, chosen, workdir=Path(workdir or tempfile.gettempdir()),
                       budget=ScaleBudget.from_settings(settings), progress=progress, cancel=cancel,
                       repeats=repeats, k=k, max_queries=QUERIES, int8_scheme=encoder.int8_scheme,
                       kernels=settings.kernels)
    costs = deployment_costs(chosen, int(encoder.dim), targets, ram_usd_per_gb_month=settings.ram_usd_per_gb_month,
                             disk_usd_per_gb_month=settings.disk_usd_per_gb_month)
    return ScaleRun(int(corpus_id), info.name, str(encoder.name), int(encoder.dim), targets, chosen,
                    len(questions), report, costs)
