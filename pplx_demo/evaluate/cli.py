"""`python -m pplx_demo eval`: labelled evaluation of several configurations from the command line.

    python -m pplx_demo eval --beir DIR [--split test] --model KEY [--variant V] \\
        --precisions float32,int8,binary[,binary+rescore,binary+asymmetric] [--dims 384,256] [--json OUT]
    python -m pplx_demo eval --xquad en,de [--query-lang de] ...

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


def report_lines(report: Any) -> list[str]:
    """A plain-text table of one EvalReport (metrics x 100)."""
    from pplx_demo.cli import _table
    from pplx_demo.evaluate.metrics import METRICS

    chunking = "whole documents" if report.chunking is None else \
        f"chunks of {report.chunking[0]} tokens, overlap {report.chunking[1]}, documents scored by their best chunk"
    lines = [f"{report.dataset}: {report.n_documents} documents ({report.n_chunks} inputs, {chunking}), "
             f"{report.n_queries} queries; {report.model_name} ({report.variant}); embedded now {report.embedded_now}"]
    headers = ["configuration", *METRICS, "% float32 (nDCG@10)", "bytes/vector", "search ms/query"]
    rows = [[r.label, *(_fmt(100 * r.metrics[m]) for m in METRICS), _fmt(r.pct_of_float32["ndcg@10"], 1),
             str(r.bytes_per_vector), _fmt(r.search_ms, 3)] for r in report.results]
    if report.bm25 is not None:
        rows.append(["BM25", *(_fmt(100 * report.bm25[m]) for m in METRICS), "", "", ""])
    lines += _table(headers, rows)
    if report.bm25 is not None:
        lines.append(f"BM25: {report.bm25_setup}")
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
    reports = []
    for dataset in _datasets(args):
        with ctx.progress(f"embedding {dataset.name}", "text") as bar:
            if args.late_chunking_pair:
                reports += run_variant_pair(ctx.store, dataset, args.model, configs, chunking=chunking, progress=bar,
                                            bm25=not args.no_bm25, bm25_language=args.bm25_language)
            else:
                reports.append(run_evaluation(ctx.store, dataset, args.model, args.variant, configs,
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
    p.add_argument("--model", default="minilm-l6", help="model key (default: %(default)s)")
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
