"""Command line: `python -m pplx_demo [--db PATH] <command> ...` (argparse, no UI needed).

Commands: ingest, crawl, sample, corpora, embed, search, eval, contextual-demo. Each takes `--json`
for scripting; long work shows progress bars on stderr (tqdm; hidden when stderr is not a terminal
or with --no-progress). A DemoError ends the run with exit status 1 and a one-line reason on stderr.

Adding a command (e.g. `eval`): write `add_<name>_parser(subparsers, common)` that calls
`subparsers.add_parser(name, parents=[common], ...)` and `set_defaults(handler=<fn>)`, where the
handler takes `(args, ctx: Context)` and returns an `Output`; then append it to `COMMANDS`.
Corpora created here are shared (owner None).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.errors import DemoError

DEFAULT_MODEL = "minilm-l6"
Progress = Callable[[int, int], None]


@dataclass
class Output:
    """What a command produced: a JSON-able payload and the lines a person reads."""

    payload: dict[str, Any]
    lines: list[str] = field(default_factory=list)


@dataclass
class Context:
    """Settings and lazily opened resources shared by one CLI run."""

    settings: Settings
    db_path: Path
    json: bool = False
    show_progress: bool = True
    _store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from pplx_demo.store import Store  # noqa: PLC0415 - DuckDB only when a command needs it

            self._store = Store(self.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @contextmanager
    def progress(self, description: str, unit: str = "it") -> Iterator[Progress | None]:
        """A (done, total) callback drawing a tqdm bar on stderr, or None when bars are off."""
        if not self.show_progress:
            yield None
            return
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(desc=description, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh()

        try:
            yield update
        finally:
            bar.close()


# ---------------------------------------------------------------- shared steps


def _encoder(model_key: str, variant: str | None) -> Any:
    from pplx_demo.models import get_encoder  # noqa: PLC0415 - torch loads only when needed

    return get_encoder(model_key, variant)


def _chunk_and_store(
    ctx: Context, args: argparse.Namespace, documents: list[Document], source: str
) -> tuple[int, int, dict[str, Any]]:
    """Chunk with the tokenizer of --model and store as a new (or --append) shared corpus."""
    from pplx_demo.ingest.chunking import chunk_documents, default_chunking  # noqa: PLC0415

    encoder = _encoder(args.model, args.variant)
    tokens, overlap = default_chunking(args.model, encoder.variant)
    tokens = args.chunk_tokens or tokens
    overlap = args.overlap_tokens if args.overlap_tokens is not None else min(overlap, max(0, tokens - 1))
    with ctx.progress("chunking", "doc") as bar:
        chunks = chunk_documents([d.text for d in documents], encoder.tokenizer, tokens, overlap, bar)
    chunking = {"model_key": args.model, "variant": encoder.variant, "chunk_tokens": tokens, "overlap_tokens": overlap}
    existing = ctx.store.find_corpus(args.corpus, None)
    if existing is not None and args.append:
        ctx.store.add_documents(existing.id, documents, chunks)
        corpus_id = existing.id
    else:
        corpus_id = ctx.store.add_corpus(args.corpus, documents, chunks, owner=None, chunking=chunking, source=source)
    return corpus_id, sum(len(c) for c in chunks), chunking


def _stored_output(ctx: Context, corpus_id: int, n_docs: int, n_chunks: int, chunking: dict, extra: dict) -> Output:
    info = ctx.store.get_corpus(corpus_id)
    payload = {
        "corpus_id": corpus_id,
        "corpus": info.name,
        "documents_added": n_docs,
        "chunks_added": n_chunks,
        "corpus_documents": info.n_documents,
        "corpus_chunks": info.n_chunks,
        "chunking": chunking,
        **extra,
    }
    line = (
        f"Corpus {info.name!r} (id {corpus_id}): +{n_docs} documents, +{n_chunks} chunks "
        f"({chunking['chunk_tokens']} tokens, overlap {chunking['overlap_tokens']}, {chunking['model_key']} tokenizer); "
        f"now {info.n_documents} documents / {info.n_chunks} chunks."
    )
    return Output(payload, [line])


def _resolve_corpus(ctx: Context, name: str) -> Any:
    info = ctx.store.find_corpus(name, None)
    if info is None:
        known = ", ".join(repr(c.name) for c in ctx.store.list_corpora(None)) or "none yet"
        raise DemoError(f"no shared corpus named {name!r} in {ctx.db_path} (corpora: {known})")
    return info


# ---------------------------------------------------------------- commands


def _cmd_ingest(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.ingest.formats import load_files  # noqa: PLC0415

    report = load_files(args.paths, ctx.settings)
    rejected = [{"name": r.name, "reason": r.reason} for r in report.rejected]
    if not report.documents:
        first = f" (first: {report.rejected[0]})" if report.rejected else ""
        raise DemoError(f"nothing to ingest: no document could be read from {len(args.paths)} path(s){first}")
    corpus_id, n_chunks, chunking = _chunk_and_store(ctx, args, report.documents, "upload")
    out = _stored_output(ctx, corpus_id, len(report.documents), n_chunks, chunking, {"rejected": rejected})
    out.lines += report.summary_lines()
    return out


def _cmd_crawl(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.ingest.crawler import CrawlOptions, crawl  # noqa: PLC0415

    options = CrawlOptions.from_settings(
        ctx.settings,
        max_pages=args.max_pages,
        max_depth=args.max_depth,
        path_prefix=args.path_prefix,
        delay_s=args.delay,
        timeout_s=args.timeout,
        max_seconds=args.max_seconds,
        same_host=not args.all_hosts,
        allow_private=True if args.allow_private else None,
    )
    with ctx.progress("crawling", "page") as bar:
        report = crawl(args.urls, options, progress=bar)
    summary = {
        "fetched": report.fetched,
        "skipped": [{"url": u, "reason": r} for u, r in report.skipped],
        "failed": [{"url": u, "reason": r} for u, r in report.failed],
        "stopped": report.stopped,
    }
    if not report.documents:
        reasons = report.failed + report.skipped
        first = f" (first: {reasons[0][0]}: {reasons[0][1]})" if reasons else ""
        raise DemoError(f"the crawl found no usable page{first}")
    corpus_id, n_chunks, chunking = _chunk_and_store(ctx, args, report.documents, "crawl")
    out = _stored_output(ctx, corpus_id, len(report.documents), n_chunks, chunking, summary)
    out.lines += report.summary_lines()
    return out


def _cmd_sample(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.ingest.sample import SAMPLE_ATTRIBUTION, sample_documents  # noqa: PLC0415

    languages = _split_list(args.languages)
    documents = sample_documents(languages)
    corpus_id, n_chunks, chunking = _chunk_and_store(ctx, args, documents, "sample")
    out = _stored_output(ctx, corpus_id, len(documents), n_chunks, chunking, {"languages": languages})
    out.lines.append(f"Source: {SAMPLE_ATTRIBUTION}")
    return out


def _cmd_corpora(args: argparse.Namespace, ctx: Context) -> Output:
    corpora = ctx.store.list_corpora(None)
    payload = {
        "corpora": [
            {
                "id": c.id, "name": c.name, "source": c.source, "documents": c.n_documents,
                "chunks": c.n_chunks, "tokens": c.n_tokens, "languages": c.languages, "chunking": c.chunking,
            }
            for c in corpora
        ]
    }
    rows = [[str(c.id), c.name, c.source, str(c.n_documents), str(c.n_chunks), str(c.n_tokens),
             ",".join(c.languages)] for c in corpora]
    lines = _table(["id", "name", "source", "docs", "chunks", "tokens", "langs"], rows) if rows else [
        f"No shared corpora in {ctx.db_path} yet: try `python -m pplx_demo sample`."]
    return Output(payload, lines)


def _cmd_embed(args: argparse.Namespace, ctx: Context) -> Output:
    info = _resolve_corpus(ctx, args.corpus)
    encoder = _encoder(args.model, args.variant)
    with ctx.progress(f"embedding ({encoder.model_key})", "chunk") as bar:
        matrix = ctx.store.embeddings(info.id, encoder, progress=bar)
    payload = {
        "corpus_id": info.id, "corpus": info.name, "model_key": encoder.model_key, "model": encoder.name,
        "variant": encoder.variant, "chunks": int(matrix.vectors.shape[0]), "dim": int(matrix.vectors.shape[1]),
        "embedded_now": matrix.embedded_now, "cached": int(matrix.vectors.shape[0]) - matrix.embedded_now,
    }
    line = (
        f"{info.name!r}: {payload['chunks']} chunks x {payload['dim']} dims with {encoder.name} "
        f"({encoder.variant}); embedded now {matrix.embedded_now}, from cache {payload['cached']}."
    )
    return Output(payload, [line])


def _search_configs(args: argparse.Namespace) -> list[Any]:
    """One IndexConfig per --precision entry (binary re-scored when --rescore is given)."""
    from pplx_demo.index import IndexConfig  # noqa: PLC0415

    names = _split_list(args.precision)
    if not names:
        raise DemoError("--precision needs at least one of float32, int8, binary")
    configs = []
    for name in dict.fromkeys(names):
        if name == "binary" and args.rescore:
            configs.append(IndexConfig("binary", "rescore", args.dim, rescore_multiplier=args.rescore))
        else:
            configs.append(IndexConfig(name, "plain", args.dim))  # DemoError names a bad precision
    return configs


def _cmd_search(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.search import SearchService  # noqa: PLC0415

    info = _resolve_corpus(ctx, args.corpus)
    configs = _search_configs(args)
    service = SearchService(ctx.store)
    encoder = _encoder(args.model, args.variant)
    with ctx.progress(f"embedding {info.name!r} (first search only)", "chunk") as bar:
        ctx.store.embeddings(info.id, encoder, progress=bar)  # cached in the store from now on
    response = service.search(info.id, args.model, encoder.variant, configs, args.query, args.k)
    payload = {
        "query": response.query, "corpus_id": response.corpus_id, "corpus": info.name,
        "model": response.model_name, "model_key": response.model_key, "variant": response.variant, "k": response.k,
        "columns": [
            {
                "label": col.label, "precision": col.config.precision, "mode": col.config.mode, "dim": col.config.dim,
                "overlap_at_k": col.overlap_at_k, "rank_correlation": col.rank_correlation,
                "timings_ms": col.timings_ms, "bytes_per_vector": col.storage.bytes_per_vector,
                "ratio_vs_float32": col.storage.ratio_vs_float32,
                "hits": [
                    {"rank": h.rank, "score": h.score, "chunk_id": h.chunk_id, "title": h.title, "uri": h.uri,
                     "text": h.text, "baseline_rank": h.baseline_rank}
                    for h in col.hits
                ],
            }
            for col in response.columns
        ],
    }
    return Output(payload, _search_lines(response, info.name))


def _search_lines(response: Any, corpus_name: str) -> list[str]:
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
                row.append(_shorten(f"{hit.score:.3f}{moved} {hit.title}: {hit.text}", cell_width))
            else:
                row.append("")
        if any(row[1:]):
            rows.append(row)
    lines = [f"{response.query!r} in {corpus_name!r} with {response.model_name} ({response.variant}), top {response.k}",
             "[was N]: rank under float32 at full size; [new]: not in the float32 top-k.", ""]
    lines += _table(["#"] + [col.label for col in response.columns], rows, width)
    lines.append("")
    for col in response.columns:
        rho = "n/a" if col.rank_correlation is None else f"{col.rank_correlation:.2f}"
        lines.append(
            f"{col.label}: overlap@{response.k} with float32 {col.overlap_at_k:.0%}, Spearman {rho}, "
            f"{col.storage.bytes_per_vector} B/vector ({col.storage.ratio_vs_float32:.1%} of float32), "
            f"search {col.timings_ms.get('search', 0.0) + col.timings_ms.get('rescore', 0.0):.2f} ms"
        )
    return lines


# ---------------------------------------------------------------- parsers


def _add_chunking_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("chunking")
    group.add_argument("--model", default=DEFAULT_MODEL, help="model whose tokenizer sizes the chunks (default: %(default)s)")
    group.add_argument("--variant", choices=("standard", "contextual"), default=None,
                       help="embedding variant the chunks are for (default: the model's own)")
    group.add_argument("--chunk-tokens", type=_positive_int, default=None, help="tokens per chunk (default: per model)")
    group.add_argument("--overlap-tokens", type=_non_negative_int, default=None, help="overlap in tokens (default: per model)")
    group.add_argument("--append", action="store_true", help="add to the corpus if it exists instead of failing")


def add_ingest_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], help="load files (txt md html pdf docx csv tsv json jsonl zip) into a corpus",
                       description="Load files or folders into a shared corpus, chunked with the model's tokenizer.")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--corpus", required=True, help="corpus name")
    _add_chunking_options(p)
    p.set_defaults(handler=_cmd_ingest)


def add_crawl_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("crawl", parents=[common], help="crawl a website (polite, SSRF-guarded) into a corpus",
                       description="Crawl from start URLs, honouring robots.txt, within page/depth/byte/time limits.")
    p.add_argument("urls", nargs="+", help="start URLs (http/https)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--max-pages", type=_positive_int, default=None, help="pages to fetch at most (default: settings)")
    p.add_argument("--max-depth", type=_non_negative_int, default=None, help="link depth from the start URLs")
    p.add_argument("--path-prefix", default=None, help="only follow URLs whose path starts with this")
    p.add_argument("--all-hosts", action="store_true", help="follow links to other hosts too")
    p.add_argument("--delay", type=float, default=None, help="seconds between requests to one host")
    p.add_argument("--timeout", type=float, default=None, help="seconds per request")
    p.add_argument("--max-seconds", type=float, default=None, help="wall-time limit of the crawl")
    p.add_argument("--allow-private", action="store_true",
                   help="allow private/loopback addresses (local use only; never on a public server)")
    _add_chunking_options(p)
    p.set_defaults(handler=_cmd_crawl)


def add_sample_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME  # noqa: PLC0415

    p = sub.add_parser("sample", parents=[common], help="load the built-in XQuAD sample corpus (CC BY-SA 4.0)")
    p.add_argument("--languages", default="en", help="comma-separated XQuAD languages (default: en)")
    p.add_argument("--corpus", default=SAMPLE_CORPUS_NAME, help="corpus name (default: %(default)s)")
    _add_chunking_options(p)
    p.set_defaults(handler=_cmd_sample)


def add_corpora_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("corpora", parents=[common], help="list the shared corpora")
    p.set_defaults(handler=_cmd_corpora)


def add_embed_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("embed", parents=[common], help="embed a corpus (cached: only missing chunks are computed)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=("standard", "contextual"), default=None)
    p.set_defaults(handler=_cmd_embed)


def add_search_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="search a corpus at several precisions, side by side")
    p.add_argument("query", help="the query text")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=("standard", "contextual"), default=None)
    p.add_argument("--precision", default="float32,int8,binary",
                   help="comma-separated precisions, one column each (default: %(default)s)")
    p.add_argument("--k", type=_positive_int, default=10, help="results per configuration (default: %(default)s)")
    p.add_argument("--rescore", type=_positive_int, default=None, metavar="MULTIPLIER",
                   help="binary: re-score k*MULTIPLIER Hamming candidates with int8 codes")
    p.add_argument("--dim", type=_positive_int, default=None, help="Matryoshka size (default: the model's full size)")
    p.set_defaults(handler=_cmd_search)


def add_eval_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from pplx_demo.evaluate.cli import add_eval_parser as add  # noqa: PLC0415 - lives with the evaluation code

    add(sub, common)


def add_contextual_demo_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from pplx_demo.evaluate.cli import add_contextual_demo_parser as add  # noqa: PLC0415

    add(sub, common)


# The subcommands, in --help order. Another module adds one by appending its add_*_parser here.
COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    add_ingest_parser,
    add_crawl_parser,
    add_sample_parser,
    add_corpora_parser,
    add_embed_parser,
    add_search_parser,
    add_eval_parser,
    add_contextual_demo_parser,
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 DemoError, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    ctx = Context(
        settings=settings,
        db_path=Path(args.db) if args.db else settings.db_path,
        json=bool(args.json),
        show_progress=not args.no_progress,
    )
    try:
        output = args.handler(args, ctx)
    except DemoError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if ctx.json:
            print(json.dumps({"error": message, "type": type(exc).__name__}))
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()
    if ctx.json:
        print(json.dumps(output.payload, ensure_ascii=False, default=str))
    else:
        for line in output.lines:
            print(line)
    return 0


# ---------------------------------------------------------------- helpers


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return number


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _table(headers: list[str], rows: list[list[str]], width: int | None = None) -> list[str]:
    """A plain-text table fitted to the terminal: the widest columns are cut with an ellipsis."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    while sum(widths) + gaps > width and max(widths) > 8:
        widths[widths.index(max(widths))] -= 1

    def cell(text: str, w: int) -> str:
        text = " ".join(text.split())
        return text.ljust(w) if len(text) <= w else text[: w - 1] + "…"

    lines = ["  ".join(cell(h, w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _shorten(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(text.split()), width=max(width, 10), placeholder="…")
