"""`python -m pplx_demo eval`: labelled evaluation of several configurations from the command line.

    python -m pplx_demo eval --beir DIR [--split test] --model KEY [--variant V] \\
        --precisions float32,int8,binary[,binary+rescore,binary+asymmetric] [--dims 384,256] [--json OUT]
    python -m pplx_demo eval --xquad en,de [--query-lang de] ...
    python -m pplx_demo contextual-demo [--model minilm-l6] [--query "Berlin population"] [--json]

`--json` alone prints the JSON on stdout; `--json OUT` writes it to OUT and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pplx_demo.errors import DemoError

PRECISION_CHOICES = ("float32", "int8", "binary", "binary+rescore", "binary+asymmetric")


def parse_configs(precisions: str, dims: str | None, rescore_multiplier: int = 4) -> list[Any]:
    """IndexConfigs for every precision x Matryoshka size ("binary+rescore" re-scores with int8)."""
    from pplx_demo.index import IndexConfig

    names = [p.strip() for p in precisions.split(",") if p.strip()]
    if not names:
        raise DemoError("--precisions needs at least one of " + ", ".join(PRECISION_CHOICES))
    sizes: list[int | None] = [None]
    if dims:
        try:
            sizes = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            raise DemoError(f"--dims must be comma-separated whole numbers, got {dims!r}") from None
    configs = []
    for dim in sizes:
        for name in dict.fromkeys(names):
            if name == "binary+rescore":
                configs.append(IndexConfig("binary", "rescore", dim, rescore_multiplier=rescore_multiplier))
            elif name in ("binary+asymmetric", "binary+asym"):
                configs.append(IndexConfig("binary", "asymmetric", dim))
            elif name in ("float32", "int8", "binary"):
                configs.append(IndexConfig(name, "plain", dim))
            else:
                raise DemoError(f"unknown precision {name!r} in --precisions; use {', '.join(PRECISION_CHOICES)}")
    return configs


def _datasets(args: argparse.Namespace) -> list[Any]:
    from pplx_demo.evaluate.datasets import load_beir, load_xquad

    if bool(args.beir) == bool(args.xquad):
        raise DemoError("give exactly one of --beir DIR or --xquad LANG[,LANG]")
    if args.beir:
        return [load_beir(args.beir, split=args.split)]
    languages = [x.strip() for x in args.xquad.split(",") if x.strip()]
    if not languages:
        raise DemoError("--xquad needs at least one language, e.g. --xquad en,de")
    return [load_xquad(lang, query_language=args.query_lang) for lang in languages]


def _fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None or x != x else f"{x:.{digits}f}"


def _pct_cell(pct: dict[str, float]) -> str:
    """Every metric's % of float32 in one cell, in METRICS order: "99.9/100.0/100.0/99.8"."""
    from pplx_demo.evaluate.metrics import METRICS

    return "/".join(_fmt(pct.get(m), 1) or "-" for m in METRICS)


def report_lines(report: Any) -> list[str]:
    """A plain-text table of one EvalReport (metrics x 100, each also as % of float32), then warnings."""
    from pplx_demo.cli import _table
    from pplx_demo.evaluate.metrics import METRICS
    from pplx_demo.evaluate.runner import report_warnings

    chunking = "whole documents" if report.chunking is None else \
        f"chunks of {report.chunking[0]} tokens, overlap {report.chunking[1]}, documents scored by their best chunk"
    lines = [f"{report.dataset}: {report.n_documents} documents ({report.n_chunks} inputs, {chunking}), "
             f"{report.n_queries} queries; {report.model_name} ({report.variant}); embedded now {report.embedded_now}"]
    headers = ["configuration", *METRICS, "% of float32", "bytes/vec", "ms/query"]
    rows = [[r.label, *(_fmt(100 * r.metrics[m]) for m in METRICS), _pct_cell(r.pct_of_float32),
             str(r.bytes_per_vector), _fmt(r.search_ms, 3)] for r in report.results]
    if report.bm25 is not None:
        rows.append(["BM25", *(_fmt(100 * report.bm25[m]) for m in METRICS), "", "", ""])
    # Configuration labels (with @dims) and the retention cell are never cut; the table may then wrap.
    lines += _table(headers, rows, keep=(0, len(METRICS) + 1))
    lines.append("% of float32: " + " / ".join(METRICS) + " each as a share of full-size float32 "
                 "(same model and variant)")
    if report.bm25 is not None:
        lines.append(f"BM25: {report.bm25_setup}")
    pools = sorted({(r.config.rescore_multiplier, r.candidates.get("k@10"), r.candidates.get("pool@10"))
                    for r in report.results if r.config.mode == "rescore" and r.candidates})
    for mult, k, pool in pools:
        cap = f" (all {pool} chunks here)" if pool < k * mult else ""
        lines.append(f"rescore x{mult}: the @10 metrics re-score {k} x {mult} = {k * mult} Hamming candidates{cap}, "
                     "as a top-10 search in the app does; Recall@100 comes from a top-100 search")
    lines += [f"WARNING: {w}" for w in report_warnings(report)]
    lines.append("")
    return lines


def _cmd_eval(args: argparse.Namespace, ctx: Any) -> Any:
    from pplx_demo.cli import Output
    from pplx_demo.evaluate.runner import report_json, run_evaluation, run_variant_pair

    configs = parse_configs(args.precisions, args.dims, args.rescore)
    chunking = None
    if args.chunk_tokens is not None:
        chunking = (args.chunk_tokens, args.overlap_tokens or 0)
    if args.late_chunking_pair and chunking is None:
        raise DemoError("--late-chunking-pair compares chunks of one document: give --chunk-tokens too")
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not models:
        raise DemoError("--model needs at least one model key")
    reports = []
    for dataset in _datasets(args):
        for model in models:  # model x variant x precision x Matryoshka size, each model from its own cache
            with ctx.progress(f"embedding {dataset.name} with {model}", "text") as bar:
                if args.late_chunking_pair:
                    reports += run_variant_pair(ctx.store, dataset, model, configs, chunking=chunking,
                                                progress=bar, bm25=not args.no_bm25,
                                                bm25_language=args.bm25_language)
                else:
                    reports.append(run_evaluation(ctx.store, dataset, model, args.variant, configs,
                                                  chunking=chunking, progress=bar, bm25=not args.no_bm25,
                                                  bm25_language=args.bm25_language))
    payload = {"reports": [json.loads(report_json(r)) for r in reports]}
    lines = [line for r in reports for line in report_lines(r)]
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


def add_eval_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `eval` (called from pplx_demo.cli.COMMANDS)."""
    del common  # its --json is a flag; eval's --json also takes an optional file name
    p = sub.add_parser("eval", help="labelled evaluation: nDCG@10, Recall@10/100, MRR@10 per configuration",
                       description="Evaluate precisions / Matryoshka sizes on a BEIR folder or XQuAD from one set "
                                   "of cached embeddings, with a BM25 baseline.")
    p.add_argument("--db", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="DuckDB file")
    p.add_argument("--json", nargs="?", const="-", default=argparse.SUPPRESS, metavar="OUT",
                   help="JSON: alone on stdout; with OUT written to that file (the table still prints)")
    p.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    src = p.add_argument_group("dataset")
    src.add_argument("--beir", metavar="DIR", default=None, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    src.add_argument("--split", default="test", help="qrels split for --beir (default: %(default)s)")
    src.add_argument("--xquad", metavar="LANG[,LANG]", default=None, help="XQuAD corpus languages, e.g. en,de,es")
    src.add_argument("--query-lang", default=None, help="XQuAD: ask the questions in this language (cross-lingual)")
    p.add_argument("--model", default="minilm-l6",
                   help="model key(s) or folder(s), comma-separated: one table per model (default: %(default)s)")
    p.add_argument("--variant", choices=("standard", "contextual"), default=None)
    p.add_argument("--precisions", default="float32,int8,binary",
                   help=f"comma-separated, from {', '.join(PRECISION_CHOICES)} (default: %(default)s)")
    p.add_argument("--dims", default=None, help="Matryoshka sizes, comma-separated (default: full size)")
    p.add_argument("--rescore", type=int, default=4, metavar="MULTIPLIER",
                   help="binary+rescore candidates per result (default: %(default)s)")
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="chunk documents (default: one input per document, truncated by the model as MTEB does)")
    p.add_argument("--overlap-tokens", type=int, default=0)
    p.add_argument("--late-chunking-pair", action="store_true",
                   help="evaluate independent chunks and late chunking on the same chunks")
    p.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    p.add_argument("--bm25-language", default=None,
                   help="stemmer / stop words for BM25 (default: the corpus language; MTEB uses en everywhere)")
    p.set_defaults(handler=_cmd_eval)


# --------------------------------------------------------------------------- contextual-demo


def contextual_demo_payload(demo: Any) -> dict[str, Any]:
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


def contextual_demo_lines(demo: Any, width: int | None = None) -> list[str]:
    """Both rankings side by side (rank, score, chunk number, text) and which chunks moved."""
    import shutil

    from pplx_demo.cli import _shorten, _table

    width = width or shutil.get_terminal_size((160, 24)).columns
    cell = max(30, (width - 8) // 2)
    standard, contextual = demo.ranking("standard"), demo.ranking("contextual")
    rows = []
    for rank, (a, b) in enumerate(zip(standard, contextual), 1):
        moved = "" if b.moved == 0 else f" [was {b.standard_rank}]"
        rows.append([str(rank), _shorten(f"{a.standard_score:.3f} #{a.order} {a.text}", cell),
                     _shorten(f"{b.contextual_score:.3f}{moved} #{b.order} {b.text}", cell)])
    lines = [f"{demo.query!r} in the illustrative article {demo.title!r} ({len(demo.chunks)} sentence chunks)",
             f"independent chunks: {demo.model_name} (each sentence embedded alone)",
             f"late chunking: {demo.contextual_model_name} (the article embedded once, each sentence pooled "
             "from its own tokens)",
             "#N = sentence number in the article; [was N] = its rank when embedded alone.", ""]
    lines += _table(["#", "independent chunks", "late chunking"], rows, width)
    lines.append("")
    if not demo.changed:
        lines.append("Late chunking did not change the order for this query.")
    for c in demo.moves():
        direction = "up" if c.moved > 0 else "down"
        lines.append(f"moved {direction} {abs(c.moved)}: #{c.order} rank {c.standard_rank} -> {c.contextual_rank} "
                     f"({c.standard_score:.3f} -> {c.contextual_score:.3f}): {_shorten(c.text, 90)}")
    return lines


def _cmd_contextual_demo(args: argparse.Namespace, ctx: Any) -> Any:
    from pplx_demo.cli import Output
    from pplx_demo.evaluate.contextual import contextual_demo

    demo = contextual_demo(ctx.store, args.model, args.query)
    return Output(contextual_demo_payload(demo), contextual_demo_lines(demo))


def add_contextual_demo_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `contextual-demo` (called from pplx_demo.cli.COMMANDS)."""
    from pplx_demo.evaluate.contextual import DEFAULT_QUERY

    p = sub.add_parser("contextual-demo", parents=[common],
                       help="rank the built-in article's sentences with and without late chunking",
                       description="Search the built-in illustrative article (later sentences say 'it' or 'the "
                                   "city', not 'Berlin') with independent chunk embeddings and with late chunking, "
                                   "side by side, and list which sentences moved.")
    p.add_argument("--model", default="minilm-l6", help="model key (default: %(default)s)")
    p.add_argument("--query", default=DEFAULT_QUERY, help="query text (default: %(default)r)")
    p.set_defaults(handler=_cmd_contextual_demo)
