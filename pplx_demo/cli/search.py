"""`search`: one query against several configurations of a corpus, side by side in the terminal."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace

from pplx_demo import workflows
from pplx_demo.cli.common import Context, Output, format_table, shorten, split_list
from pplx_demo.cli.corpus import late_chunking_notes, resolve_corpus, truncation_warnings
from pplx_demo.index import IndexConfig, validate_dim, warm_up
from pplx_demo.models.registry import MODELS
from pplx_demo.search import SearchResponse, SearchService, response_payload
from pplx_demo.storage import human_bytes


def search_configs(args: argparse.Namespace) -> list[IndexConfig]:
    """One IndexConfig per --precision entry (any spelling IndexConfig.parse takes); --rescore N alone adds
    the binary + rescore column (after plain binary when listed)."""
    multiplier = args.rescore or 4
    configs = IndexConfig.parse_list(args.precision, dim=args.dim, rescore_multiplier=multiplier)
    if args.rescore is not None and not any(c.mode == "rescore" for c in configs):
        rescore = IndexConfig("binary", "rescore", args.dim, rescore_multiplier=multiplier)
        binary = [i for i, c in enumerate(configs) if c.family == "binary"]
        configs.insert(binary[0] + 1 if binary else len(configs), rescore)
    if getattr(args, "hybrid", False):
        configs += [replace(c, hybrid=True) for c in configs if not c.hybrid]
    return list(dict.fromkeys(configs))


def search(args: argparse.Namespace, ctx: Context) -> Output:
    info = resolve_corpus(ctx, args.corpus)
    configs = search_configs(args)
    encoder = ctx.encoder(args.model, args.variant, args.runtime)
    spec = MODELS.get(encoder.model_key)
    validate_dim(args.dim, int(encoder.dim), spec.matryoshka_dims if spec is not None else None)
    with ctx.progress(f"embedding {info.name!r} (first search only)", "chunk") as bar:
        outcome = workflows.embed(ctx.store, info.id, encoder, progress=bar)  # cached in the store from now on
    warm_up(ctx.settings.kernels)  # compiled once per machine; never timed as search latency
    service = SearchService(ctx.store, lambda key, variant: encoder, settings=ctx.settings)
    response = service.search(info.id, encoder.model_key, encoder.variant, configs, args.query, args.k,
                              explain=args.explain, engines=split_list(args.engine))
    payload = {"corpus": info.name, **response_payload(response)}
    return Output(payload, search_lines(response, info.name), notes=late_chunking_notes(info, encoder),
                  warnings=truncation_warnings(outcome.truncation))


def search_lines(response: SearchResponse, corpus_name: str) -> list[str]:
    """The side-by-side table: one column per configuration, then per-column quality and cost lines."""
    width = shutil.get_terminal_size((160, 24)).columns
    n = len(response.columns)
    cell_width = max(24, (width - 4 - 2 * n) // max(1, n))
    rows = []
    for rank in range(response.k):
        row = [str(rank + 1)]
        for col in response.columns:
            if rank < len(col.hits):
                hit = col.hits[rank]
                moved = "" if hit.baseline_rank == hit.rank else (
                    " [new]" if hit.baseline_rank is None else f" [was {hit.baseline_rank}]")
                text = hit.text
                if hit.explanation is not None and hit.explanation.best is not None:  # the sentence that matched
                    best = hit.explanation.best
                    text = f"»{hit.text[best.char_start:best.char_end]}«"
                row.append(shorten(f"{hit.score:.3f}{moved} {hit.title}: {text}", cell_width))
            else:
                row.append("")
        if any(row[1:]):
            rows.append(row)
    lines = [f"{response.query!r} in {corpus_name!r} with {response.model_name} ({response.variant}), top {response.k}",
             "[was N]: rank under float32 at full size; [new]: not in the float32 top-k.",
             f"embed query: {response.embed_query_ms:.1f} ms (once, shared by every column)"
             + (f"; why it matched: {response.explain_ms:.1f} ms ({response.explain_method}; »best sentence«)"
                if response.explain_ms is not None else ""), ""]
    engines = len({col.engine for col in response.columns}) > 1
    lines += format_table(["#"] + [f"{col.label} · {col.engine}" if engines else col.label
                                   for col in response.columns], rows, width)
    lines.append("")
    for col in response.columns:
        rho = "" if col.rank_correlation is None else f", Spearman {col.rank_correlation:.2f}"
        lines.append(
            f"{col.label} ({col.engine}): overlap@{response.k} with float32 {col.overlap_at_k:.0%}{rho}, "
            f"{human_bytes(col.storage.bytes_per_vector)}/vector ({col.storage.ratio_vs_float32:.1%} of float32), "
            f"search {col.search_ms:.2f} ms"
        )
    return lines

