"""Command line: `python -m pplx_demo [--db PATH] <command> ...` (argparse, no UI needed).

Commands: ingest, crawl, sample, corpora, delete, embed, search, eval, contextual-demo. Each takes
`--json` for scripting; long work shows progress bars on stderr (tqdm; hidden when stderr is not a terminal
or with --no-progress). A DemoError ends the run with exit status 1 and a one-line reason on stderr.

Adding a command (e.g. `eval`): write `add_<name>_parser(subparsers, common)` that calls
`subparsers.add_parser(name, parents=[common], ...)` and `set_defaults(handler=<fn>)`, where the
handler takes `(args, ctx: Context)` and returns an `Output`; then append it to `COMMANDS`.
Corpora created here are shared (owner None). Read-only commands never create a database file.
"""

from __future__ import annotations

import argparse
import json
import re
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
    notes: list[str] = field(default_factory=list)  # worth knowing; payload["notes"] in --json
    warnings: list[str] = field(default_factory=list)  # something went worse than asked; payload["warnings"]


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
        """The store at db_path, created if missing (commands that write)."""
        if self._store is None:
            from pplx_demo.store import Store  # noqa: PLC0415 - DuckDB only when a command needs it

            try:
                self._store = Store(self.db_path)
            except DemoError as exc:
                raise _locked_error(self.db_path, exc) or exc from exc.__cause__
        return self._store

    def existing_store(self) -> Any:
        """The store at db_path; DemoError instead of creating a file (or folders) that is not there."""
        if self._store is None and not self.db_path.is_file():
            raise DemoError(f"no database at {self.db_path} (ingest something first, or pass --db PATH)")
        return self.store

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


@dataclass
class ChunkingPlan:
    """How new documents will be chunked: the tokenizer's model, sizes in tokens, and why."""

    encoder: Any
    model_key: str
    variant: str
    chunk_tokens: int
    overlap_tokens: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What the corpus records (and `corpora` lists) about its chunking."""
        return {"model_key": self.model_key, "variant": self.variant, "chunk_tokens": self.chunk_tokens,
                "overlap_tokens": self.overlap_tokens}


def _plan_chunking(args: argparse.Namespace, existing: Any = None) -> ChunkingPlan:
    """Chunk sizes from the options, the model's defaults, or (--append) the corpus' own chunking.

    An omitted overlap is min(model default, chunk size // 4), and the plan says so; sizes the
    model cannot read, or an overlap that is not below the chunk size, are DemoErrors.
    """
    from pplx_demo.ingest.chunking import default_chunking, validate_chunking  # noqa: PLC0415

    recorded = (existing.chunking or {}) if existing is not None else {}
    model_key = args.model or recorded.get("model_key") or DEFAULT_MODEL
    variant = args.variant or (recorded.get("variant") if model_key == recorded.get("model_key") else None)
    encoder = _encoder(model_key, variant)
    default_tokens, default_overlap = default_chunking(model_key, encoder.variant)
    notes: list[str] = []
    adopt = existing is not None and recorded and args.model is None and args.chunk_tokens is None \
        and args.overlap_tokens is None and "chunk_tokens" in recorded
    if adopt:  # --append with no chunking options: continue exactly as the corpus was chunked
        tokens, overlap = int(recorded["chunk_tokens"]), int(recorded.get("overlap_tokens", 0))
    elif args.chunk_tokens is None:
        tokens = default_tokens
        overlap = default_overlap if args.overlap_tokens is None else args.overlap_tokens
    else:
        tokens = args.chunk_tokens
        if args.overlap_tokens is None:
            overlap = min(default_overlap, tokens // 4)
            if overlap != default_overlap:
                notes.append(f"Overlap set to {overlap} tokens: at most a quarter of --chunk-tokens {tokens} "
                             f"(the model's default is {default_overlap}); pass --overlap-tokens to choose.")
        else:
            overlap = args.overlap_tokens
    validate_chunking(tokens, overlap, encoder)
    plan = ChunkingPlan(encoder, model_key, encoder.variant, tokens, overlap, notes)
    if existing is not None:
        _check_same_chunking(existing, plan)
    return plan


def _check_same_chunking(existing: Any, plan: ChunkingPlan) -> None:
    """--append keeps one chunking per corpus: refuse sizes or a tokenizer other than the recorded ones."""
    recorded = existing.chunking
    if not recorded or "chunk_tokens" not in recorded:
        return  # nothing recorded to compare with (a corpus stored by other code)
    same_sizes = (int(recorded["chunk_tokens"]), int(recorded.get("overlap_tokens", 0))) == \
        (plan.chunk_tokens, plan.overlap_tokens)
    if "model_key" in recorded:
        same_tokenizer, tokenizer = recorded["model_key"] == plan.model_key, str(recorded["model_key"])
    else:  # the studio records the tokenizer's model name
        tokenizer = str(recorded.get("tokenizer", "?"))
        same_tokenizer = tokenizer in (plan.encoder.name, plan.model_key)
    if same_sizes and same_tokenizer:
        return
    raise DemoError(
        f"corpus {existing.name!r} was chunked into {recorded['chunk_tokens']}-token chunks with overlap "
        f"{recorded.get('overlap_tokens', 0)} ({tokenizer} tokenizer); --append would add "
        f"{plan.chunk_tokens}-token chunks with overlap {plan.overlap_tokens} ({plan.model_key} tokenizer) and mix "
        f"the two. Leave out --model/--chunk-tokens/--overlap-tokens to append with the corpus' own chunking, "
        f"or ingest into a new --corpus."
    )


def _target_corpus(ctx: Context, args: argparse.Namespace, name: str, allow_sample: bool = False) -> Any:
    """The corpus --append adds to, or None for a new one; checked before anything is fetched or parsed."""
    from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME  # noqa: PLC0415

    if name.strip().lower() == SAMPLE_CORPUS_NAME.lower() and not allow_sample:
        raise DemoError(f"{SAMPLE_CORPUS_NAME!r} is the name of the built-in starter sample (shared, read-only; "
                        f"`python -m pplx_demo sample` builds it); choose another --corpus")
    existing = ctx.store.find_corpus(name.strip(), None)
    if existing is not None and not args.append:
        raise DemoError(
            f"a shared corpus named {existing.name!r} already exists in {ctx.db_path} (id {existing.id}, "
            f"{existing.n_documents} documents): add to it with --append, remove it first with "
            f"`python -m pplx_demo delete --corpus {_quote(existing.name)}`, or choose another --corpus"
        )
    return existing


def _store_documents(ctx: Context, name: str, existing: Any, plan: ChunkingPlan, documents: list[Document],
                     source: str) -> tuple[int, int]:
    """Chunk with the plan's tokenizer, record each document's language, store; (corpus id, chunks added)."""
    from pplx_demo.ingest.chunking import chunk_documents  # noqa: PLC0415
    from pplx_demo.stats import document_language  # noqa: PLC0415 - the same guess as the studio's

    with ctx.progress("chunking", "doc") as bar:
        chunks = chunk_documents([d.text for d in documents], plan.encoder.tokenizer, plan.chunk_tokens,
                                 plan.overlap_tokens, bar)
    for doc in documents:  # the store lists a corpus' languages from metadata["lang"]
        if not doc.metadata.get("lang"):
            lang = document_language(doc)
            if lang:
                doc.metadata["lang"] = lang
    if existing is not None:
        ctx.store.add_documents(existing.id, documents, chunks)
        corpus_id = existing.id
    else:
        corpus_id = ctx.store.add_corpus(name.strip(), documents, chunks, owner=None, chunking=plan.as_dict(),
                                         source=source)
    return corpus_id, sum(len(c) for c in chunks)


def _stored_output(ctx: Context, corpus_id: int, n_docs: int, n_chunks: int, plan: ChunkingPlan,
                   extra: dict) -> Output:
    info = ctx.store.get_corpus(corpus_id)
    chunking = plan.as_dict()
    payload = {
        "corpus_id": corpus_id,
        "corpus": info.name,
        "documents_added": n_docs,
        "chunks_added": n_chunks,
        "corpus_documents": info.n_documents,
        "corpus_chunks": info.n_chunks,
        "chunking": chunking,
        "languages": info.languages,
        **extra,
    }
    line = (
        f"Corpus {info.name!r} (id {corpus_id}): +{n_docs} documents, +{n_chunks} chunks "
        f"({chunking['chunk_tokens']} tokens, overlap {chunking['overlap_tokens']}, {chunking['model_key']} tokenizer); "
        f"now {info.n_documents} documents / {info.n_chunks} chunks"
        + (f", languages {', '.join(info.languages)}." if info.languages else ".")
    )
    return Output(payload, [line], notes=list(plan.notes))


def _resolve_corpus(ctx: Context, name: str) -> Any:
    store = ctx.existing_store()
    info = store.find_corpus(name, None)
    if info is None:
        known = ", ".join(repr(c.name) for c in _visible_corpora(store.list_corpora(None))) or "none yet"
        raise DemoError(f"no shared corpus named {name!r} in {ctx.db_path} (corpora: {known})")
    return info


def _visible_corpora(corpora: list[Any], include_eval: bool = False) -> list[Any]:
    """User corpora; the evaluation runs' own `[eval] ...` corpora only when asked for."""
    from pplx_demo.evaluate.runner import is_eval_corpus  # noqa: PLC0415

    return [c for c in corpora if include_eval or not is_eval_corpus(c.name)]


def _embedding_warnings(matrix: Any, encoder: Any) -> list[str]:
    """A warning when the encoder had to cut chunks (their tail cannot be found by any search)."""
    from pplx_demo.ingest.chunking import encoder_token_budget  # noqa: PLC0415

    if not matrix.truncated_now:
        return []
    budget = encoder_token_budget(encoder)
    return [f"{matrix.truncated_now} of {matrix.embedded_now} chunks embedded now were longer than {encoder.name} "
            f"reads ({budget} tokens of text) and were cut: the rest of those chunks cannot be found. Re-ingest "
            f"with --chunk-tokens {budget} or less (with --model {encoder.model_key})."]


def _late_chunking_notes(info: Any, encoder: Any) -> list[str]:
    overlap = int((info.chunking or {}).get("overlap_tokens", 0) or 0)
    if encoder.variant != "contextual" or overlap <= 0:
        return []
    return [f"Note: {info.name!r} was chunked with a {overlap}-token overlap; late chunking (the contextual "
            f"variant) expects non-overlapping chunks, so overlapping text is read twice in one window."]


# ---------------------------------------------------------------- commands


def _cmd_ingest(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.ingest.formats import load_files  # noqa: PLC0415

    existing = _target_corpus(ctx, args, args.corpus)
    plan = _plan_chunking(args, existing)
    report = load_files(args.paths, ctx.settings)
    rejected = [{"name": r.name, "reason": r.reason} for r in report.rejected]
    if not report.documents:
        first = f" (first: {report.rejected[0]})" if report.rejected else ""
        raise DemoError(f"nothing to ingest: no document could be read from {len(args.paths)} path(s){first}")
    corpus_id, n_chunks = _store_documents(ctx, args.corpus, existing, plan, report.documents, "upload")
    out = _stored_output(ctx, corpus_id, len(report.documents), n_chunks, plan, {"rejected": rejected})
    out.lines += report.summary_lines()
    return out


def _cmd_crawl(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.ingest.crawler import CrawlOptions, crawl  # noqa: PLC0415

    existing = _target_corpus(ctx, args, args.corpus)
    plan = _plan_chunking(args, existing)
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
    corpus_id, n_chunks = _store_documents(ctx, args.corpus, existing, plan, report.documents, "crawl")
    out = _stored_output(ctx, corpus_id, len(report.documents), n_chunks, plan, summary)
    out.lines += report.summary_lines()
    return out


def full_sample_name(languages: Sequence[str]) -> str:
    """The corpus name `sample --full` uses: every XQuAD paragraph of these languages."""
    return f"XQuAD full {','.join(languages)} (CC BY-SA 4.0)"


def _cmd_sample(args: argparse.Namespace, ctx: Context) -> Output:
    """The app's starter sample under its shared name, or (--full) every paragraph under another name."""
    from pplx_demo.ingest.sample import (  # noqa: PLC0415
        SAMPLE_ATTRIBUTION,
        SAMPLE_CORPUS_NAME,
        STARTER_LANGUAGES,
        sample_documents,
        starter_documents,
    )

    if args.full:
        languages = _split_list(args.languages or "en")
        if not languages:
            raise DemoError("--languages needs at least one XQuAD language, e.g. --languages en,de")
        name = args.corpus or full_sample_name(languages)
    else:
        if args.languages is not None:
            raise DemoError(f"the starter sample is always {','.join(STARTER_LANGUAGES)} (as in the app); "
                            f"use `sample --full --languages {args.languages}` for every paragraph of other languages")
        languages = list(STARTER_LANGUAGES)
        name = args.corpus or SAMPLE_CORPUS_NAME
    is_shared_sample = name.strip().lower() == SAMPLE_CORPUS_NAME.lower()
    if is_shared_sample:
        custom = [flag for flag, value in (("--full", args.full), ("--append", args.append),
                                            ("--model", args.model not in (None, DEFAULT_MODEL)),
                                            ("--variant", args.variant not in (None, "standard")),
                                            ("--chunk-tokens", args.chunk_tokens is not None),
                                            ("--overlap-tokens", args.overlap_tokens is not None)) if value]
        if custom:
            raise DemoError(f"{SAMPLE_CORPUS_NAME!r} is the shared starter sample and is built exactly as the app "
                            f"builds it, so {', '.join(custom)} cannot apply to it; pass --corpus NAME for a "
                            f"corpus of your own")
        found = ctx.store.find_corpus(SAMPLE_CORPUS_NAME, None)
        if found is not None:
            payload = {"corpus_id": found.id, "corpus": found.name, "documents_added": 0, "chunks_added": 0,
                       "corpus_documents": found.n_documents, "corpus_chunks": found.n_chunks,
                       "chunking": found.chunking, "languages": found.languages, "already_present": True}
            return Output(payload, [f"Corpus {found.name!r} (id {found.id}) is already there: {found.n_documents} "
                                    f"documents / {found.n_chunks} chunks. Source: {SAMPLE_ATTRIBUTION}"])
    existing = _target_corpus(ctx, args, name, allow_sample=is_shared_sample)
    plan = _plan_chunking(args, existing)
    documents = sample_documents(languages) if args.full else starter_documents(languages)
    corpus_id, n_chunks = _store_documents(ctx, name, existing, plan, documents, "sample")
    out = _stored_output(ctx, corpus_id, len(documents), n_chunks, plan, {"full": bool(args.full)})
    out.lines.append(f"Source: {SAMPLE_ATTRIBUTION}")
    return out


def _cmd_corpora(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.storage import human_bytes  # noqa: PLC0415

    store = ctx.existing_store()
    every = store.list_corpora(None)
    corpora = _visible_corpora(every, include_eval=args.all)
    hidden = len(every) - len(corpora)
    payload = {
        "database": str(ctx.db_path),
        "database_bytes": store.file_size(),
        "hidden_eval_corpora": hidden,
        "corpora": [
            {
                "id": c.id, "name": c.name, "source": c.source, "documents": c.n_documents,
                "chunks": c.n_chunks, "tokens": c.n_tokens, "languages": c.languages, "chunking": c.chunking,
            }
            for c in corpora
        ],
    }
    rows = [[str(c.id), c.name, c.source, str(c.n_documents), str(c.n_chunks), str(c.n_tokens),
             ",".join(c.languages)] for c in corpora]
    lines = _table(["id", "name", "source", "docs", "chunks", "tokens", "langs"], rows) if rows else [
        f"No shared corpora in {ctx.db_path} yet: try `python -m pplx_demo sample`."]
    lines.append(f"Database {ctx.db_path}: {human_bytes(payload['database_bytes'])}"
                 + (f"; {hidden} evaluation corpora hidden (--all shows them)." if hidden else "."))
    return Output(payload, lines)


def _cmd_delete(args: argparse.Namespace, ctx: Context) -> Output:
    info = _resolve_corpus(ctx, args.corpus)
    ctx.store.delete_corpus(info.id)
    payload = {"deleted": True, "corpus_id": info.id, "corpus": info.name, "documents": info.n_documents,
               "chunks": info.n_chunks}
    return Output(payload, [f"Deleted corpus {info.name!r} (id {info.id}): {info.n_documents} documents, "
                            f"{info.n_chunks} chunks, and the cached vectors no other corpus uses."])


def _cmd_embed(args: argparse.Namespace, ctx: Context) -> Output:
    info = _resolve_corpus(ctx, args.corpus)
    encoder = _encoder(args.model, args.variant)
    with ctx.progress(f"embedding ({encoder.model_key})", "chunk") as bar:
        matrix = ctx.store.embeddings(info.id, encoder, progress=bar)
    payload = {
        "corpus_id": info.id, "corpus": info.name, "model_key": encoder.model_key, "model": encoder.name,
        "variant": encoder.variant, "chunks": int(matrix.vectors.shape[0]), "dim": int(matrix.vectors.shape[1]),
        "embedded_now": matrix.embedded_now, "cached": int(matrix.vectors.shape[0]) - matrix.embedded_now,
        "truncated_now": matrix.truncated_now,
    }
    line = (
        f"{info.name!r}: {payload['chunks']} chunks x {payload['dim']} dims with {encoder.name} "
        f"({encoder.variant}); embedded now {matrix.embedded_now}, from cache {payload['cached']}."
    )
    return Output(payload, [line], notes=_late_chunking_notes(info, encoder),
                  warnings=_embedding_warnings(matrix, encoder))


def _search_configs(args: argparse.Namespace) -> list[Any]:
    """One IndexConfig per --precision entry, named as `eval --precisions` names them."""
    from pplx_demo.evaluate.cli import PRECISION_CHOICES  # noqa: PLC0415 - one set of names for both commands
    from pplx_demo.index import IndexConfig  # noqa: PLC0415

    names = list(dict.fromkeys(_split_list(args.precision)))
    if not names:
        raise DemoError("--precision needs at least one of " + ", ".join(PRECISION_CHOICES))
    if args.rescore is not None and "binary+rescore" not in names:
        # --rescore N: the binary+rescore column, next to plain binary when that is listed.
        at = names.index("binary") + 1 if "binary" in names else len(names)
        names.insert(at, "binary+rescore")
    multiplier = args.rescore or 4
    configs = []
    for name in names:
        if name == "binary+rescore":
            configs.append(IndexConfig("binary", "rescore", args.dim, rescore_multiplier=multiplier))
        elif name in ("binary+asymmetric", "binary+asym"):
            configs.append(IndexConfig("binary", "asymmetric", args.dim))
        elif name in ("float32", "int8", "binary"):
            configs.append(IndexConfig(name, "plain", args.dim))
        else:
            raise DemoError(f"unknown precision {name!r} in --precision; use {', '.join(PRECISION_CHOICES)}")
    return configs


MIN_DIM = 8  # below this a Matryoshka prefix ranks little better than chance


def check_dim(dim: int | None, model_key: str, full_dim: int) -> None:
    """DemoError unless `dim` is None, one of the model's Matryoshka sizes, or within MIN_DIM..full size."""
    from pplx_demo.index import matryoshka_sizes  # noqa: PLC0415
    from pplx_demo.models.registry import MODELS  # noqa: PLC0415

    spec = MODELS.get(model_key)
    sizes = list(spec.matryoshka_dims) if spec is not None else matryoshka_sizes(full_dim)
    if dim is None or dim in sizes or MIN_DIM <= dim <= full_dim:
        return
    raise DemoError(f"--dim {dim} does not fit {model_key} ({full_dim} dimensions): use one of its Matryoshka "
                    f"sizes {', '.join(map(str, sizes))}, or any size from {MIN_DIM} to {full_dim}")


def _cmd_search(args: argparse.Namespace, ctx: Context) -> Output:
    from pplx_demo.search import SearchService  # noqa: PLC0415

    info = _resolve_corpus(ctx, args.corpus)
    configs = _search_configs(args)
    encoder = _encoder(args.model, args.variant)
    check_dim(args.dim, encoder.model_key, int(encoder.dim))
    service = SearchService(ctx.store)
    with ctx.progress(f"embedding {info.name!r} (first search only)", "chunk") as bar:
        matrix = ctx.store.embeddings(info.id, encoder, progress=bar)  # cached in the store from now on
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
    return Output(payload, _search_lines(response, info.name), notes=_late_chunking_notes(info, encoder),
                  warnings=_embedding_warnings(matrix, encoder))


def _search_lines(response: Any, corpus_name: str) -> list[str]:
    """The side-by-side table: one column per configuration, then per-column quality and cost lines."""
    from pplx_demo.storage import human_bytes  # noqa: PLC0415

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
            f"{human_bytes(col.storage.bytes_per_vector)}/vector ({col.storage.ratio_vs_float32:.1%} of float32), "
            f"search {col.timings_ms.get('search', 0.0) + col.timings_ms.get('rescore', 0.0):.2f} ms"
        )
    return lines


# ---------------------------------------------------------------- parsers


def _add_chunking_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("chunking")
    group.add_argument("--model", default=None, metavar="KEY",
                       help=f"model whose tokenizer sizes the chunks (default: {DEFAULT_MODEL}, or with --append "
                            f"the corpus' own)")
    group.add_argument("--variant", choices=("standard", "contextual"), default=None,
                       help="embedding variant the chunks are for (default: the model's own)")
    group.add_argument("--chunk-tokens", type=_positive_int, default=None, metavar="N",
                       help="tokens per chunk, at most what the model reads (default: per model)")
    group.add_argument("--overlap-tokens", type=_non_negative_int, default=None, metavar="N",
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
    p.set_defaults(handler=_cmd_ingest)


def add_crawl_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("crawl", parents=[common], help="crawl a website (polite, SSRF-guarded) into a corpus",
                       description="Crawl from start URLs, honouring robots.txt, within page/depth/byte/time limits.")
    p.add_argument("urls", nargs="+", help="start URLs (http/https)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--max-pages", type=_positive_int, default=None, metavar="N",
                   help="pages to fetch at most (default: settings)")
    p.add_argument("--max-depth", type=_non_negative_int, default=None, metavar="D",
                   help="link depth from the start URLs")
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
    from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME, STARTER_LANGUAGES  # noqa: PLC0415

    p = sub.add_parser("sample", parents=[common], help="load the built-in XQuAD sample corpus (CC BY-SA 4.0)",
                       description=f"Without --full: the app's starter sample {SAMPLE_CORPUS_NAME!r} (first paragraph "
                                   f"of each XQuAD article in {','.join(STARTER_LANGUAGES)}), shared and read-only. "
                                   f"With --full: every paragraph of --languages under {full_sample_name(['LANGS'])!r}.")
    p.add_argument("--full", action="store_true", help="every XQuAD paragraph of --languages (a separate corpus)")
    p.add_argument("--languages", default=None, metavar="LANGS",
                   help="with --full: comma-separated XQuAD languages (default: en)")
    p.add_argument("--corpus", default=None,
                   help=f"corpus name (default: {SAMPLE_CORPUS_NAME!r}, with --full {full_sample_name(['LANGS'])!r})")
    _add_chunking_options(p)
    p.set_defaults(handler=_cmd_sample)


def add_corpora_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("corpora", parents=[common], help="list the shared corpora")
    p.add_argument("--all", action="store_true", help="also list the evaluation runs' [eval] corpora")
    p.set_defaults(handler=_cmd_corpora)


def add_delete_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("delete", parents=[common], help="delete a shared corpus (documents, chunks, unused vectors)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.set_defaults(handler=_cmd_delete)


def add_embed_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("embed", parents=[common], help="embed a corpus (cached: only missing chunks are computed)")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=("standard", "contextual"), default=None)
    p.set_defaults(handler=_cmd_embed)


def add_search_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from pplx_demo.evaluate.cli import PRECISION_CHOICES  # noqa: PLC0415

    p = sub.add_parser("search", parents=[common], help="search a corpus at several precisions, side by side")
    p.add_argument("query", help="the query text")
    p.add_argument("--corpus", required=True, help="corpus name")
    p.add_argument("--model", default=DEFAULT_MODEL, metavar="KEY", help="model key (default: %(default)s)")
    p.add_argument("--variant", choices=("standard", "contextual"), default=None)
    p.add_argument("--precision", "--precisions", default="float32,int8,binary", metavar="LIST",
                   help=f"comma-separated, one column each, from {','.join(PRECISION_CHOICES)} "
                        f"(default: %(default)s)")
    p.add_argument("--k", type=_positive_int, default=10, metavar="N", help="results per configuration (default: %(default)s)")
    p.add_argument("--rescore", type=_positive_int, default=None, metavar="MULTIPLIER",
                   help="binary+rescore re-scores k*MULTIPLIER Hamming candidates with int8 codes (default 4); "
                        "given alone, adds the binary+rescore column")
    p.add_argument("--dim", type=_positive_int, default=None, metavar="N",
                   help="Matryoshka size: one of the model's sizes or 8..full size (default: the full size)")
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
    add_delete_parser,
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
        payload = dict(output.payload)
        if output.notes:
            payload["notes"] = output.notes
        if output.warnings:
            payload["warnings"] = output.warnings
        print(json.dumps(payload, ensure_ascii=False, default=str))
    else:
        for line in [*output.lines, *output.notes, *(f"WARNING: {w}" for w in output.warnings)]:
            print(line)
    return 0


# ---------------------------------------------------------------- helpers


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None


def _positive_int(value: str) -> int:
    number = _whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return number


def _non_negative_int(value: str) -> int:
    number = _whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return number


def _locked_error(path: Path, exc: DemoError) -> DemoError | None:
    """A clearer DemoError when `exc` means another process holds the database's lock, else None."""
    text = str(exc)
    if "lock" not in text.lower():
        return None
    pid = re.search(r"PID (\d+)", text)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return DemoError(f"the database {path} is in use by {holder} (the running studio?): stop the studio, "
                     f"or pass another --db PATH")


def _quote(text: str) -> str:
    """`text` as one shell word (for commands suggested in messages)."""
    import shlex  # noqa: PLC0415

    return shlex.quote(text)


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _table(headers: list[str], rows: list[list[str]], width: int | None = None,
           keep: Sequence[int] = ()) -> list[str]:
    """A plain-text table fitted to the terminal: the widest columns not in `keep` are cut with an ellipsis."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    cuttable = [i for i in range(len(widths)) if i not in keep]
    while cuttable and sum(widths) + gaps > width and max(widths[i] for i in cuttable) > 8:
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1

    def cell(text: str, w: int) -> str:
        text = " ".join(text.split())
        return text.ljust(w) if len(text) <= w else text[: w - 1] + "…"

    lines = ["  ".join(cell(h, w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def _shorten(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(text.split()), width=max(width, 10), placeholder="…")
