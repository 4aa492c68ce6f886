"""`scale`: latency and memory at 100k-10M vectors (the corpus' own vectors grown with synthetic ones)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pplx_demo import workflows
from pplx_demo.cli.common import Context, Output, format_table, split_list
from pplx_demo.cli.corpus import resolve_corpus
from pplx_demo.deployment import COST_SOURCES, deployment_costs
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig, warm_up
from pplx_demo.ingest.sample import sample_queries
from pplx_demo.scale import ScaleBudget, default_scale_configs, run_scale
from pplx_demo.storage import human_bytes

QUERIES = 20  # real questions (XQuAD, the corpus' languages where it has them) timed per configuration


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(x)) for x in split_list(text)]
    except ValueError:
        raise DemoError(f"sizes must be comma-separated numbers of vectors, got {text!r}", cli_flag="--sizes") from None
    if not sizes or min(sizes) < 1:
        raise DemoError("give at least one positive size, e.g. --sizes 100000,1000000", cli_flag="--sizes")
    return sorted(set(sizes))


def scale(args: argparse.Namespace, ctx: Context) -> Output:
    info = resolve_corpus(ctx, args.corpus)
    sizes = _sizes(args.sizes)
    encoder = ctx.encoder(args.model, args.variant, args.runtime)
    configs = (IndexConfig.parse_list(args.configs) if args.configs
               else default_scale_configs(int(encoder.dim), encoder.int8_scheme))
    configs = [c.for_model(int(encoder.dim), encoder.int8_scheme) for c in configs]
    with ctx.progress(f"embedding {info.name!r}", "chunk") as bar:
        workflows.embed(ctx.store, info.id, encoder, progress=bar)
    from pplx_demo.embedding import embed_corpus  # noqa: PLC0415 - the vectors just made (cache hit)

    base = embed_corpus(ctx.store, info.id, encoder).vectors
    languages = [lang for lang in info.languages if lang in ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th",
                                                            "tr", "vi", "zh")] or ["en"]
    questions = [q for lang in languages for q in sample_queries(lang, QUERIES)][:QUERIES]
    queries = np.asarray(encoder.encode(questions), dtype=np.float32)
    warm_up(ctx.settings.kernels)  # compilation is never timed as latency
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    with ctx.progress("growing and timing the index", "vector") as bar:
        report = run_scale(base, queries, sizes, configs, workdir=workdir,
                           budget=ScaleBudget.from_settings(ctx.settings), progress=bar, repeats=args.repeats,
                           k=args.k, kernels=ctx.settings.kernels)
    costs = deployment_costs(configs, int(encoder.dim), sizes, ram_usd_per_gb_month=ctx.settings.ram_usd_per_gb_month,
                             disk_usd_per_gb_month=ctx.settings.disk_usd_per_gb_month)
    cost_at = {(c.config, c.n_vectors): c for c in costs}
    rows = []
    for p in report.points:
        c = cost_at.get((p.config, p.n_vectors))
        rows.append([str(p.config), f"{p.n_vectors:,}", f"{p.p50_ms:.2f}", f"{p.p95_ms:.2f}",
                     human_bytes(c.ram_bytes) if c else "", human_bytes(c.disk_bytes) if c else "",
                     f"${c.total_usd_month:,.2f}" if c else ""])
    lines = [f"{info.name!r} grown to {', '.join(f'{n:,}' for n in sizes)} vectors with {encoder.name}: "
             f"{report.note}; one query, top-{report.k}, {report.n_queries} real questions x {report.repeats}",
             *format_table(["configuration", "vectors", "p50 ms", "p95 ms", "RAM", "disk", "$/month"], rows,
                           keep=(0,)),
             "RAM = what every query scans (binary codes, or the int8 / float32 rows a plain scan reads); disk = "
             "what is read only for rescoring candidates.",
             f"Prices: RAM ${ctx.settings.ram_usd_per_gb_month}/GB-month, disk ${ctx.settings.disk_usd_per_gb_month}"
             "/GB-month (settings PPLX_DEMO_RAM_USD_PER_GB_MONTH / PPLX_DEMO_DISK_USD_PER_GB_MONTH); defaults: "
             + "; ".join(f"{c.resource}: {c.what} ({c.url}, {c.as_of})" for c in COST_SOURCES)]
    payload = {"corpus": info.name, "corpus_id": info.id, "model": encoder.name, **report.to_dict(),
               "costs": [c.to_dict() for c in costs]}
    return Output(payload, lines)
