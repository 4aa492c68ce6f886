"""Command line: `python -m pplx_demo [--db PATH] <command> ...` (argparse, no UI needed).

Commands: ingest, crawl, sample, corpora, delete, embed, search, eval, contextual-demo, scale, export, export-onnx.
Each takes
`--json` for scripting; long work shows progress bars on stderr (tqdm; hidden when stderr is not a terminal
or with --no-progress). A DemoError ends the run with exit status 1 and a one-line reason on stderr.

This module holds only the parsers. Each command's code lives in a module of this package
(`corpus`, `search`, `eval`) that imports its heavy dependencies at module level; `main` imports
that module only when its command runs, so `--help` never loads torch or DuckDB.

Adding a command: write `add_<name>_parser(subparsers, common)` that calls
`subparsers.add_parser(name, parents=[common], ...)` and `set_defaults(handler=...)`, where the
handler is `"module:function"` in this package (imported when the command runs) or a callable
taking `(args, ctx: Context)` and returning an `Output`; then append it to `COMMANDS`.
Corpora created here are shared (owner None). Read-only commands never create a database file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pplx_demo.cli.common import (DEFAULT_MODEL, Context, Output, error_line, non_negative_int, positive_int,
                                  print_output)
from pplx_demo.config import Settings
from pplx_demo.errors import DemoError

__all__ = ["COMMANDS", "Context", "Output", "build_parser", "main"]

VARIANT_CHOICES = ("standard", "contextual")
RUNTIME_CHOICES = ("torch", "onnx", "onnx-int8", "onnx-q4")  # pplx_demo.models.RUNTIMES (torch is not imported here)


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=RUNTIME_CHOICES, default="torch",
                        help="how the model runs: torch, ONNX Runtime float32, or ONNX int8 (exported on first use, "
                             "or with `export-onnx`); vectors of different runtimes are cached apart "
                             "(default: %(default)s)")


def _add_chunking_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("chunking")
    group.add_argument("--model", default=None, metavar="KEY",
                       help=f"model whose tokenizer sizes the chunks (default: {DEFAULT_MODEL}, or with --append "
                            f"the corpus' own)")
    group.add_argument("--variant", choices=VARIANT_CHOICES, default=None,
                       help="embedding variant the chunks are for (default: the model's own)")
    group.add_argument("--chunk-tokens", type=positive_int, default=None, metavar="N",
                       help="tokens per chunk, at most what the model reads (default: per model)")
    group.add_argument("--overlap-tokens", type=non_negative_int, default=None, metavar="N",
                       help="overlap in tokens, below --chunk-tokens (default: the model's, at most a quarter "
                            "of --chunk-tokens)")
    group.add_argument("--append", action="store_true",
                       help="add to the corpus if it exists (with the chunking it was built with)")


def add_ingest_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], help="load files (txt md html pdf docx csv tsv json jsonl zip) into a corpus",
                       description="Load files or folders into a shared corpus, chunked with the model's tokenizer.")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--corpus", required=True, help="corpus name")
    _add_chunking_options(p)
    p.set_defaults(handler="corpus:ingest")


def add_crawl_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("crawl", parents=[common], help="crawl a website (polite, SSRF-guarded) into a corpus",
                       description="Crawl from start URLs, honouring robots.txt, within page/depth/byte/time limits.")
    p.add_argument("urls", nargs="+", help="start URLs (http/https)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--max-pages", type=positive_int, default=None, metavar="N",
                   help="pages to fetch at most (default: settings)")
    p.add_argument("--max-depth", type=non_negative_int, default=None, metavar="D",
                   help="link depth from the start URLs")
    p.add_argument("--path-prefix", default=None, help="only follow URLs whose path starts with this")
    p.add_argument("--all-hosts", action="store_true", help="follow links to other hosts too")
    p.add_argument("--delay", type=float, default=None, help="seconds between requests to one host")
    p.add_argument("--timeout", type=float, default=None, help="seconds per request")
    p.add_argument("--max-seconds", type=float, default=None, help="wall-time limit of the crawl")
    p.add_argument("--allow-private", action="store_true",
                   help="allow private/loopback addresses (local use only; never on a public server)")
    _add_chunking_options(p)
    p.set_defaults(handler="corpus:crawl")


def add_sample_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    name = "XQuAD full LANGS (CC BY-SA 4.0)"
    p = sub.add_parser("sample", parents=[common], help="load the built-in XQuAD sample corpus (CC BY-SA 4.0)",
                       description="Without --full: the app's shared starter sample (first paragraph of each XQuAD "
                                   f"article in en, de, es), read-only. With --full: every paragraph of --languages "
                                   f"under {name!r}.")
    p.add_argument("--full", action="store_true", help="every XQuAD paragraph of --languages (a separate corpus)")
    p.add_argument("--languages", default=None, metavar="LANGS",
                   help="with --full: comma-separated XQuAD languages (default: en)")
    p.add_argument("--corpus", default=None, help=f"corpus name (default: the starter's, with --full {name!r})")
    _add_chunking_options(p)
    p.set_defaults(handler="corpus:sample")


def add_corpora_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("corpora", parents=[common], help="list the shared corpora")
    p.add_argument("--all", action="store_true", help="also list the corpora evaluation runs store for themselves")
    p.set_defaults(handler="corpus:corpora")


def add_delete_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("delete", parents=[common], help="delete a shared corpus (documents, chunks, unused vectors)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.set_defaults(handler="corpus:delete")


def add_embed_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("embed", parents=[common], help="embed a corpus (cached: only missing chunks are computed)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=VARIANT_CHOICES, default=None)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray Data actor pool (one actor per GPU, CPU actors otherwise), "
                        "resumable: a rerun embeds only what is missing (default: %(default)s)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: the cluster to join (default: start a local one)")
    p.add_argument("--actors", type=positive_int, default=None, help="with --engine ray: actor pool size")
    p.add_argument("--parquet", default=None, metavar="DIR",
                   help="with --engine ray: write the vectors as Parquet files here (for corpora too big for the "
                        "cache) and import them into the store")
    _add_runtime_option(p)
    p.set_defaults(handler="corpus:embed")


def add_search_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search a corpus at several precisions, side by side")
    p.add_argument("query", help="the query text")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=VARIANT_CHOICES, default=None)
    p.add_argument("--precision", "--precisions", default="float32,int8,binary", metavar="LIST",
                   help="comma-separated configurations, one column each: float32, int8, binary, binary+rescore, "
                        "binary+asymmetric (also 'binary + rescore x8 (float32)', 'int8 calibrated', '@256d'; "
                        "default: %(default)s)")
    p.add_argument("--k", type=positive_int, default=10, metavar="N", help="results per configuration (default: %(default)s)")
    p.add_argument("--rescore", type=positive_int, default=None, metavar="MULTIPLIER",
                   help="binary+rescore re-scores k*MULTIPLIER Hamming candidates with int8 codes (default 4); "
                        "given alone, adds the binary+rescore column")
    p.add_argument("--dim", type=positive_int, default=None, metavar="N",
                   help="Matryoshka size: one of the model's sizes or 8..full size (default: the full size)")
    p.add_argument("--hybrid", action="store_true",
                   help="add a 'hybrid: BM25 + <configuration> (RRF k=60)' column for every listed configuration")
    p.add_argument("--engine", default="numpy", metavar="LIST",
                   help="who answers each configuration, comma-separated: numpy (exact, in this process), qdrant "
                        "(Qdrant Edge, or the server of PPLX_DEMO_QDRANT_URL); both side by side with numpy,qdrant "
                        "(default: %(default)s)")
    p.add_argument("--explain", action="store_true",
                   help="say why each hit matched: its sentence closest to the query, and the query terms it holds")
    _add_runtime_option(p)
    p.set_defaults(handler="search:search")


def add_eval_parser(sub: Any, common: argparse.ArgumentParser) -> None:
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
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="model key(s) or folder(s), comma-separated: one table per model (default: %(default)s)")
    p.add_argument("--variant", choices=VARIANT_CHOICES, default=None)
    p.add_argument("--precisions", default="float32,int8,binary",
                   help="comma-separated configurations, as `search --precision` takes them (default: %(default)s)")
    p.add_argument("--dims", default=None, help="Matryoshka sizes, comma-separated (default: full size)")
    p.add_argument("--rescore", type=positive_int, default=4, metavar="MULTIPLIER",
                   help="binary+rescore candidates per result (default: %(default)s)")
    p.add_argument("--chunk-tokens", type=positive_int, default=None,
                   help="chunk documents (default: one input per document, truncated by the model as MTEB does)")
    p.add_argument("--overlap-tokens", type=non_negative_int, default=0)
    p.add_argument("--late-chunking-pair", action="store_true",
                   help="evaluate independent chunks and late chunking on the same chunks")
    p.add_argument("--no-bm25", action="store_true", help="skip the BM25 baseline")
    p.add_argument("--bm25-language", default=None,
                   help="stemmer / stop words for BM25 (default: the corpus language; MTEB uses en everywhere)")
    p.add_argument("--hybrid", action="store_true",
                   help="also evaluate 'hybrid: BM25 + <configuration> (RRF k=60)' for every listed configuration")
    p.add_argument("--sweep", action="store_true",
                   help="sweep the rescore multiplier (1,2,4,8,16) and every precision x Matryoshka size: "
                        "quality vs bytes with intervals, the Pareto frontier and a recommendation")
    p.add_argument("--floor", type=float, default=0.99,
                   help="with --sweep: recommend the fewest bytes keeping this share of float32 nDCG@10 "
                        "(default: %(default)s)")
    _add_runtime_option(p)
    p.set_defaults(handler="eval:evaluate")


def add_contextual_demo_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("contextual-demo", parents=[common],
                       help="rank the built-in article's sentences with and without late chunking",
                       description="Search the built-in illustrative article (later sentences say 'it' or 'the "
                                   "city', not 'Berlin') with independent chunk embeddings and with late chunking, "
                                   "side by side, and list which sentences moved.")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model key (default: %(default)s)")
    p.add_argument("--query", default="Berlin population", help="query text (default: %(default)r)")
    p.set_defaults(handler="eval:contextual")


def add_scale_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("scale", parents=[common], help="latency and memory at 100k-10M vectors (synthetic growth)",
                       description="Grow the corpus' index with synthetic unit vectors of the same dimension to each "
                                   "size (speed and memory only, not quality), then time every configuration on real "
                                   "questions: p50 / p95, RAM, disk and $ per month. Bounded by the settings "
                                   "PPLX_DEMO_SCALE_RAM_BUDGET_BYTES and PPLX_DEMO_SCALE_DISK_BUDGET_BYTES.")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=VARIANT_CHOICES, default=None)
    p.add_argument("--sizes", default="100000,1000000", help="vectors per step (default: %(default)s)")
    p.add_argument("--configs", default=None, metavar="LIST",
                   help="configurations to time (default: float32, int8, binary, binary + rescore from disk, "
                        "asymmetric, binary + rescore @512d)")
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--repeats", type=positive_int, default=3, help="timed searches per question (default: 3)")
    p.add_argument("--workdir", default=None, help="where the temporary index files go (default: the temp folder)")
    _add_runtime_option(p)
    p.set_defaults(handler="scale:scale")


def add_export_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export a corpus and its vectors (Parquet) or into Qdrant",
                       description="Parquet files of chunks, documents and vectors (float32, int8 codes, packed "
                                   "binary; format in docs/EXPORT.md) that Qdrant, LanceDB, DuckDB or pandas read "
                                   "as is; or upsert the corpus into a Qdrant collection (edge:PATH for Qdrant Edge, "
                                   "or a server URL with the API key in QDRANT_API_KEY).")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=VARIANT_CHOICES, default=None)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="DIR", help="folder for the Parquet files")
    where.add_argument("--qdrant", metavar="URL|edge:PATH", help="a Qdrant server URL, or edge:PATH for Qdrant Edge")
    p.add_argument("--collection", default="pplx_demo_chunks", help="Qdrant collection (default: %(default)s)")
    p.add_argument("--config", default=None, metavar="CONFIG",
                   help="the collection's quantisation, e.g. 'binary + rescore x4' (default: that)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export / collection")
    _add_runtime_option(p)
    p.set_defaults(handler="export:export")


def add_export_onnx_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export-onnx", parents=[common], help="export a model to ONNX (token states exposed; int8 too)",
                       description="Export the bidirectional encoder with its token states exposed (late chunking "
                                   "works on the contextual variant), checked against torch; --quantize int8 adds "
                                   "an ONNX Runtime dynamic int8 graph.")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key or folder (default: %(default)s)")
    p.add_argument("--quantize", choices=("int8",), default=None)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: where --runtime onnx looks, setting PPLX_DEMO_ONNX_DIR)")
    p.set_defaults(handler="runtime:export_onnx")


# The subcommands, in --help order. Another module adds one by appending its add_*_parser here.
COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    add_ingest_parser,
    add_crawl_parser,
    add_sample_parser,
    add_corpora_parser,
    add_delete_parser,
    add_embed_parser,
    add_search_parser,
    add_eval_parser,
    add_contextual_demo_parser,
    add_scale_parser,
    add_export_parser,
    add_export_onnx_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options, then one subparser per entry of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="python -m pplx_demo",
        description="pplx-embed search studio: ingest, embed and search corpora at float32 / int8 / binary precision.",
    )
    _add_global_options(parser, after_command=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, after_command=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub, common)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """--db / --json / --no-progress, accepted before and after the command name."""
    # After the command, SUPPRESS keeps a value given before it instead of resetting it.
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    parser.add_argument("--db", type=Path, metavar="PATH", help="DuckDB file (default: Settings.db_path, PPLX_DEMO_DB)",
                        **(unset or {"default": None}))
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of text",
                        **(unset or {"default": False}))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars", **(unset or {"default": False}))


def _handler(spec: Any) -> Callable[[argparse.Namespace, Context], Output]:
    """The command function: a callable, or "module:function" in this package, imported now."""
    if callable(spec):
        return spec
    module_name, _, function = str(spec).partition(":")
    module = importlib.import_module(f"pplx_demo.cli.{module_name}")
    return getattr(module, function)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 DemoError, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()  # the one place the command line reads the environment
    except DemoError as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return 1
    ctx = Context(settings=settings, db_path=Path(args.db) if args.db else settings.db_path, json=bool(args.json),
                  show_progress=not args.no_progress)
    try:
        output = _handler(args.handler)(args, ctx)
    except DemoError as exc:
        message = error_line(exc)
        if ctx.json:
            print(json.dumps({"error": message, "type": type(exc).__name__,
                              **({"field": exc.field} if exc.field else {})}))
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()
    print_output(output, ctx.json)
    return 0
