"""`eval` and `contextual-demo`: labelled evaluation and the late-chunking illustration in the terminal.

    python -m pplx_demo eval --beir DIR [--split test] --model KEY [--variant V] \\
        --precisions float32,int8,binary[,binary+rescore,binary+asymmetric] [--dims 384,256] [--json OUT]
    python -m pplx_demo eval --xquad en,de [--query-lang de] ...
    python -m pplx_demo contextual-demo [--model minilm-l6] [--query "Berlin population"] [--json]

`--json` alone prints the JSON on stdout; `--json OUT` writes it to OUT and prints the table.
"""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import replace
import shutil
from pathlib import Path
from typing import Any

from pplx_demo.cli.common import Context, Output, format_table, shorten, split_list
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.contextual import ContextualDemo, contextual_demo
from pplx_demo.evaluate.datasets import RetrievalDataset, load_beir, load_xquad
from pplx_demo.evaluate.metrics import METRICS
from pplx_demo.evaluate.runner import EvalReport
from pplx_demo.evaluate.runs import run_evaluation, run_variant_pair
from pplx_demo.evaluate.reports import report_json, report_warnings, warning_text
from pplx_demo.evaluate.confidence import report_confidence, significance_marker
from pplx_demo.evaluate.sweep import SweepResult, run_sweep
from pplx_demo.index import IndexConfig, warm_up


def parse_configs(precisions: str, dims: str | None, rescore_multiplier: int = 4) -> list[IndexConfig]:
    """IndexConfigs for every precision x Matryoshka size (any spelling IndexConfig.parse takes)."""
    sizes: list[int | None] = [None]
    if dims:
        try:
            sizes = [int(d) for d in split_list(dims)]
        except ValueError:
            raise DemoError(f"Matryoshka sizes must be comma-separated whole numbers, got {dims!r}",
                            cli_flag="--dims") from None
    configs = [c for dim in sizes
               for c in IndexConfig.parse_list(precisions, dim=dim, rescore_multiplier=rescore_multiplier)]
    return list(dict.fromkeys(configs))


def datasets_of(args: argparse.Namespace) -> list[RetrievalDataset]:
    if bool(args.beir) == bool(args.xquad):
        raise DemoError("give exactly one of --beir DIR or --xquad LANG[,LANG]")
    if args.beir:
        return [load_beir(args.beir, split=args.split)]
    languages = split_list(args.xquad)
    if not languages:
        raise DemoError("--xquad needs at least one language, e.g. --xquad en,de")
    return [load_xquad(lang, query_language=args.query_lang) for lang in languages]


def _fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None or x != x else f"{x:.{digits}f}"


def _pct_cell(pct: dict[str, float]) -> str:
    """Every metric's % of float32 in one cell, in METRICS order: "99.9/100.0/100.0/99.8"."""
    return "/".join(_fmt(pct.get(m), 1) or "-" for m in METRICS)


def report_lines(report: EvalReport, resamples: int = 0, seed: int = 0) -> list[str]:
    """A plain-text table of one EvalReport (metrics x 100, each also as % of float32), then warnings.

    With `resamples`, nDCG@10 as % of float32 gets its paired bootstrap 95% interval, and a `*` marks a
    difference from float32 that a paired permutation test finds significant (p < 0.05)."""
    chunking = "whole documents" if report.chunking is None else \
        f"chunks of {report.chunking[0]} tokens, overlap {report.chunking[1]}, documents scored by their best chunk"
    variant = "late chunking" if report.variant == "contextual" else report.variant
    lines = [f"{report.dataset}: {report.n_documents} documents ({report.n_chunks} inputs, {chunking}), "
             f"{report.n_queries} queries; {report.model_name} ({variant}); embedded now {report.embedded_now}"]
    confidence = {c.label: c for c in report_confidence(report, "ndcg@10", n_resamples=resamples, seed=seed)} \
        if resamples and report.reference_per_query else {}
    headers = ["configuration", *METRICS, "% of float32", "bytes/vec", "ms/query"]
    if confidence:
        headers.insert(len(METRICS) + 2, "nDCG@10 % of float32 [95% CI]")
    rows = []
    for r in report.results:
        row = [r.label, *(_fmt(100 * r.metrics[m]) for m in METRICS), _pct_cell(r.pct_of_float32)]
        if confidence:
            c = confidence.get(r.label)
            row.append("" if c is None or c.pct_of_float32 is None else
                       c.pct_of_float32.format_pct() + significance_marker(c.test_vs_float32))
        rows.append(row + [str(r.bytes_per_vector), _fmt(r.search_ms, 3)])
    if report.bm25 is not None:
        rows.append(["BM25", *(_fmt(100 * report.bm25[m]) for m in METRICS), "", *([""] if confidence else []), "",
                     ""])
    # Configuration names (with @dims) and the retention cell are never cut; the table may then wrap.
    lines += format_table(headers, rows, keep=(0, len(METRICS) + 1, len(METRICS) + 2) if confidence else
                          (0, len(METRICS) + 1))
    lines.append("% of float32: " + " / ".join(METRICS) + " each as a share of full-size float32 "
                 "(same model and variant)")
    if confidence:
        lines.append(f"[95% CI]: paired bootstrap over the {report.n_queries} queries ({resamples} resamples, seed "
                     f"{seed}); *: differs from float32 (paired permutation test, p < 0.05)")
    if report.bm25 is not None:
        lines.append(f"BM25: {report.bm25_setup}")
    pools = sorted({(r.config.rescore_multiplier, r.candidates.get("k@10"), r.candidates.get("pool@10"))
                    for r in report.results if r.config.mode == "rescore" and r.candidates})
    for mult, k, pool in pools:
        cap = f" (all {pool} chunks here)" if pool < k * mult else ""
        lines.append(f"rescore x{mult}: the @10 metrics re-score {k} x {mult} = {k * mult} Hamming candidates{cap}, "
                     "as a top-10 search in the app does; Recall@100 comes from a top-100 search")
    lines += [f"WARNING: {warning_text(w, '--chunk-tokens')}" for w in report_warnings(report)]
    lines.append("")
    return lines


def sweep_lines(sweep: SweepResult, floor: float) -> list[str]:
    """The sweep as a table (bytes, nDCG@10 and Recall@10 with intervals), its frontier and recommendation."""
    front = {p.config for p in sweep.frontier()}
    rows = []
    for p in sorted(sweep.points, key=lambda p: (p.bytes_per_vector, str(p.config))):
        cells = [str(p.config), f"{p.bytes_per_vector:,}"]
        for metric in ("ndcg@10", "recall@10"):
            c = p.confidence.get(metric)
            cells.append(_fmt(100 * p.metrics[metric]))
            cells.append("" if c is None or c.pct_of_float32 is None else c.pct_of_float32.format_pct())
        cells.append("frontier" if p.config in front else "")
        rows.append(cells)
    lines = [f"Sweep of {sweep.dataset} with {sweep.model_name} ({sweep.variant}): {sweep.n_queries} queries"]
    lines += format_table(["configuration", "bytes/vec", "ndcg@10", "% of float32 [95% CI]", "recall@10",
                           "% of float32 [95% CI]", ""], rows, keep=(0, 3, 5))
    rec = sweep.recommend(floor)
    lines.append(f"Recommended for >= {floor:.0%} of float32 nDCG@10 at the fewest bytes: "
                 + (rec.reason if rec is not None else "none of the configurations reaches it"))
    lines += sweep.notes
    return lines + [""]


def evaluate(args: argparse.Namespace, ctx: Context) -> Output:
    configs = parse_configs(args.precisions, args.dims, args.rescore)
    if args.hybrid:
        configs += [replace(c, hybrid=True) for c in configs if not c.hybrid]
    chunking = None
    if args.chunk_tokens is not None:
        chunking = (args.chunk_tokens, args.overlap_tokens or 0)
    if args.late_chunking_pair and chunking is None:
        raise DemoError("--late-chunking-pair compares chunks of one document: give --chunk-tokens too")
    models = split_list(args.model)
    if not models:
        raise DemoError("--model needs at least one model key")
    warm_up(ctx.settings.kernels)  # one-off compilation never lands in the ms/query column
    loader = functools.partial(ctx.encoder, runtime=args.runtime)
    if args.sweep:
        return _sweep(args, ctx, models, chunking, loader)
    reports = []
    common = dict(progress=None, bm25=not args.no_bm25, bm25_language=args.bm25_language,
                  encoder_loader=loader, kernels=ctx.settings.kernels)
    for dataset in datasets_of(args):
        for model in models:  # model x variant x precision x Matryoshka size, each model from its own cache
            with ctx.progress(f"embedding {dataset.name} with {model}", "text") as bar:
                common["progress"] = bar
                if args.late_chunking_pair:
                    reports += run_variant_pair(ctx.store, dataset, model, configs, chunking=chunking, **common)
                else:
                    reports.append(run_evaluation(ctx.store, dataset, model, args.variant, configs,
                                                  chunking=chunking, **common))
    payload = {"reports": [json.loads(report_json(r)) for r in reports]}
    resamples, seed = ctx.settings.confidence_resamples, ctx.settings.confidence_seed
    lines = [line for r in reports for line in report_lines(r, resamples, seed)]
    return _written(args, ctx, payload, lines)


def _sweep(args: argparse.Namespace, ctx: Context, models: list[str], chunking: tuple[int, int] | None,
           loader: Any) -> Output:
    sweeps = []
    for dataset in datasets_of(args):
        for model in models:
            with ctx.progress(f"sweeping {dataset.name} with {model}", "text") as bar:
                sweeps.append(run_sweep(ctx.store, dataset, model, args.variant, chunking=chunking, progress=bar,
                                        bm25=not args.no_bm25, bm25_language=args.bm25_language,
                                        n_resamples=ctx.settings.confidence_resamples,
                                        seed=ctx.settings.confidence_seed, encoder_loader=loader))
    payload = {"sweeps": [{
        "dataset": s.dataset, "model_key": s.model_key, "model": s.model_name, "variant": s.variant,
        "n_queries": s.n_queries, "n_resamples": s.n_resamples, "seed": s.seed, "notes": s.notes,
        "frontier": [str(p.config) for p in s.frontier()],
        "recommended": (lambda r: None if r is None else {"configuration": str(r.point.config), "reason": r.reason})(
            s.recommend(args.floor)),
        "points": [{"configuration": str(p.config), "bytes_per_vector": p.bytes_per_vector, **p.metrics,
                    "pct_of_float32": p.pct_of_float32,
                    "intervals": {m: {"pct_of_float32": None if c.pct_of_float32 is None else
                                      [c.pct_of_float32.estimate, c.pct_of_float32.low, c.pct_of_float32.high]}
                                  for m, c in p.confidence.items()}} for p in s.points]}
        for s in sweeps]}
    return _written(args, ctx, payload, [line for s in sweeps for line in sweep_lines(s, args.floor)])


def _written(args: argparse.Namespace, ctx: Context, payload: dict, lines: list[str]) -> Output:
    if isinstance(args.json, str) and args.json != "-":
        out = Path(args.json)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise DemoError(f"cannot write {out}: {exc}") from None
        ctx.json = False  # the file holds the JSON; the terminal gets the table
        lines.append(f"JSON written to {out}")
    return Output(payload, lines)


# --------------------------------------------------------------------------- contextual-demo


def contextual_demo_payload(demo: ContextualDemo) -> dict[str, Any]:
    """JSON-ready: the query, both models, both rankings (chunk orders, best first) and every chunk's ranks."""
    return {
        "query": demo.query, "title": demo.title, "model": demo.model_name,
        "contextual_model": demo.contextual_model_name, "changed": demo.changed,
        "ranking": {"independent": [c.order for c in demo.ranking("standard")],
                    "late_chunking": [c.order for c in demo.ranking("contextual")]},
        "chunks": [{"order": c.order, "text": c.text, "independent_rank": c.standard_rank,
                    "late_chunking_rank": c.contextual_rank, "independent_score": c.standard_score,
                    "late_chunking_score": c.contextual_score, "moved": c.moved} for c in demo.chunks],
        "moved": [c.order for c in demo.moves()],
    }


def contextual_demo_lines(demo: ContextualDemo, width: int | None = None) -> list[str]:
    """Both rankings side by side (rank, score, chunk number, text) and which chunks moved."""
    width = width or shutil.get_terminal_size((160, 24)).columns
    cell = max(30, (width - 8) // 2)
    standard, contextual = demo.ranking("standard"), demo.ranking("contextual")
    rows = []
    for rank, (a, b) in enumerate(zip(standard, contextual), 1):
        moved = "" if b.moved == 0 else f" [was {b.standard_rank}]"
        rows.append([str(rank), shorten(f"{a.standard_score:.3f} #{a.order} {a.text}", cell),
                     shorten(f"{b.contextual_score:.3f}{moved} #{b.order} {b.text}", cell)])
    lines = [f"{demo.query!r} in the illustrative article {demo.title!r} ({len(demo.chunks)} sentence chunks)",
             f"independent chunks: {demo.model_name} (each sentence embedded alone)",
             f"late chunking: {demo.contextual_model_name} (the article embedded once, each sentence pooled "
             "from its own tokens)",
             "#N = sentence number in the article; [was N] = its rank when embedded alone.", ""]
    lines += format_table(["#", "independent chunks", "late chunking"], rows, width)
    lines.append("")
    if not demo.changed:
        lines.append("Late chunking did not change the order for this query.")
    for c in demo.moves():
        direction = "up" if c.moved > 0 else "down"
        lines.append(f"moved {direction} {abs(c.moved)}: #{c.order} rank {c.standard_rank} -> {c.contextual_rank} "
                     f"({c.standard_score:.3f} -> {c.contextual_score:.3f}): {shorten(c.text, 90)}")
    return lines


def contextual(args: argparse.Namespace, ctx: Context) -> Output:
    demo = contextual_demo(ctx.store, args.model, args.query, encoder_loader=ctx.encoder)
    return Output(contextual_demo_payload(demo), contextual_demo_lines(demo))
