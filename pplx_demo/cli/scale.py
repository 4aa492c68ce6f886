"""`scale`: latency and memory at 100k-10M vectors (the corpus' own vectors grown with synthetic ones)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pplx_demo.cli.common import Context, Output, format_table, split_list
from pplx_demo.cli.corpus import resolve_corpus
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig
from pplx_demo.scale_run import price_note, scale_corpus
from pplx_demo.storage import human_bytes


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
    configs = IndexConfig.parse_list(args.configs) if args.configs else None
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.gettempdir())
    with ctx.progress(f"embedding {info.name!r}", "chunk") as embed_bar, \
            ctx.progress("growing and timing the index", "vector") as bar:
        run = scale_corpus(ctx.store, info.id, encoder, sizes, settings=ctx.settings, configs=configs,
                           workdir=workdir, embed_progress=embed_bar, progress=bar, repeats=args.repeats, k=args.k)
    report = run.report
    cost_at = {(c.config, c.n_vectors): c for c in run.costs}
    rows = []
    for p in report.points:
        c = cost_at.get((p.config, p.n_vectors))
        rows.append([str(p.config), f"{p.n_vectors:,}", f"{p.p50_ms:.2f}", f"{p.p95_ms:.2f}",
                     human_bytes(c.ram_bytes) if c else "", human_bytes(c.disk_bytes) if c else "",
                     f"${c.total_usd_month:,.2f}" if c else ""])
    lines = [f"{info.name!r} grown to {', '.join(f'{n:,}' for n in run.sizes)} vectors with {encoder.name}: "
             f"{report.note}; one query, top-{report.k}, {report.n_queries} real questions x {report.repeats}",
             *format_table(["configuration", "vectors", "p50 ms", "p95 ms", "RAM", "disk", "$/month"], rows,
                           keep=(0,)),
             "RAM = what every query scans (binary codes, or the int8 / float32 rows a plain scan reads); disk = "
             "what is read only for rescoring candidates. 'float32 raw': the disk index compares float rows as "
             "stored (for pplx-embed, not tanh(x); the scan costs the same).",
             "Prices: " + price_note(ctx.settings)]
    return Output(run.to_dict(), lines)
