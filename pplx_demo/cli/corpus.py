"""Corpus commands: ingest, crawl, sample, corpora, delete, embed (the workflow is `pplx_demo.workflows`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pplx_demo import workflows
from pplx_demo.cli.common import DEFAULT_MODEL, Context, Output, format_table, quote, split_list
from pplx_demo.documents import Document
from pplx_demo.errors import DemoError
from pplx_demo.ingest.crawler import CrawlOptions, crawl as crawl_site
from pplx_demo.ingest.formats import load_files
from pplx_demo.ingest.sample import (SAMPLE_ATTRIBUTION, SAMPLE_CORPUS_NAME, STARTER_LANGUAGES, sample_documents,
                                     starter_documents)
from pplx_demo.storage import human_bytes
from pplx_demo.store import CorpusInfo, SOURCES


def full_sample_name(languages: Sequence[str]) -> str:
    """The corpus name `sample --full` uses: every XQuAD paragraph of these languages."""
    return f"XQuAD full {','.join(languages)} (CC BY-SA 4.0)"


# ---------------------------------------------------------------- shared steps


def plan_for(ctx: Context, args: argparse.Namespace, existing: CorpusInfo | None = None
             ) -> tuple[Any, workflows.ChunkingPlan]:
    """(encoder, plan): the model from --model, else the corpus' own (with --append), else the default."""
    recorded = (existing.chunking or {}) if existing is not None else {}
    model_key = args.model or recorded.get("model_key") or DEFAULT_MODEL
    variant = args.variant or (recorded.get("variant") if model_key == recorded.get("model_key") else None)
    encoder = ctx.encoder(model_key, variant)
    # --model given: compare its chunking with the corpus' (refused if different); else adopt the corpus'.
    chunk_tokens, overlap = args.chunk_tokens, args.overlap_tokens
    return encoder, workflows.plan_chunking(encoder, chunk_tokens, overlap, existing=existing)


def target_corpus(ctx: Context, args: argparse.Namespace, name: str, allow_sample: bool = False) -> CorpusInfo | None:
    """The corpus --append adds to, or None for a new one; checked before anything is fetched or parsed."""
    if name.strip().lower() == SAMPLE_CORPUS_NAME.lower() and not allow_sample:
        raise DemoError(f"{SAMPLE_CORPUS_NAME!r} is the name of the built-in starter sample (shared, read-only; "
                        f"`python -m pplx_demo sample` builds it); choose another corpus name", cli_flag="--corpus")
    existing = ctx.store.find_corpus(name.strip(), None)
    if existing is not None and not args.append:
        raise DemoError(
            f"a shared corpus named {existing.name!r} already exists in {ctx.db_path} (id {existing.id}, "
            f"{existing.n_documents} documents): add to it with --append, remove it first with "
            f"`python -m pplx_demo delete --corpus {quote(existing.name)}`, or choose another --corpus")
    return existing


def store_documents(ctx: Context, name: str, existing: CorpusInfo | None, encoder: Any,
                    plan: workflows.ChunkingPlan, documents: list[Document], source: str) -> workflows.CorpusBuilt:
    with ctx.progress("chunking", "doc") as bar:
        return workflows.build_corpus(ctx.store, name, documents, encoder, plan, owner=None, source=source,
                                      existing=existing, progress=bar)


def stored_output(ctx: Context, built: workflows.CorpusBuilt, extra: dict) -> Output:
    info = ctx.store.get_corpus(built.corpus_id)
    chunking = built.plan.as_dict()
    payload = {
        "corpus_id": built.corpus_id, "corpus": info.name, "documents_added": built.stats.documents,
        "chunks_added": built.stats.chunks, "corpus_documents": info.n_documents, "corpus_chunks": info.n_chunks,
        "chunking": chunking, "languages": info.languages, **extra,
    }
    line = (
        f"Corpus {info.name!r} (id {built.corpus_id}): +{built.stats.documents} documents, +{built.stats.chunks} "
        f"chunks ({chunking['chunk_tokens']} tokens, overlap {chunking['overlap_tokens']}, {chunking['model_key']} "
        f"tokenizer); now {info.n_documents} documents / {info.n_chunks} chunks"
        + (f", languages {', '.join(info.languages)}." if info.languages else ".")
    )
    lines = [line] + [f"Rejected {uri}: {reason}" for uri, reason in built.rejected]
    return Output(payload, lines, notes=list(built.plan.notes))


def resolve_corpus(ctx: Context, name: str) -> CorpusInfo:
    store = ctx.existing_store()
    info = store.find_corpus(name, None)
    if info is None:
        known = ", ".join(repr(c.name) for c in store.list_corpora(None)) or "none yet"
        raise DemoError(f"no shared corpus named {name!r} in {ctx.db_path} (corpora: {known})")
    return info


def truncation_warnings(report: workflows.TruncationReport) -> list[str]:
    """A warning when the encoder had to cut chunks (their tail cannot be found by any search)."""
    if not report:
        return []
    return [f"{report.truncated} of {report.embedded} chunks embedded now were longer than {report.model_name} "
            f"reads ({report.budget_tokens} tokens of text) and were cut: the rest of those chunks cannot be found. "
            f"Re-ingest with --chunk-tokens {report.budget_tokens} or less (with --model {report.model_key})."]


def late_chunking_notes(info: CorpusInfo, encoder: Any) -> list[str]:
    overlap = int((info.chunking or {}).get("overlap_tokens", 0) or 0)
    if encoder.variant != "contextual" or overlap <= 0:
        return []
    return [f"Note: {info.name!r} was chunked with a {overlap}-token overlap; late chunking (the contextual "
            f"variant) expects non-overlapping chunks, so overlapping text is read twice in one window."]


# ---------------------------------------------------------------- commands


def ingest(args: argparse.Namespace, ctx: Context) -> Output:
    existing = target_corpus(ctx, args, args.corpus)
    encoder, plan = plan_for(ctx, args, existing)
    report = load_files(args.paths, ctx.settings)
    rejected = [{"name": r.name, "reason": r.reason} for r in report.rejected]
    if not report.documents:
        first = f" (first: {report.rejected[0]})" if report.rejected else ""
        raise DemoError(f"nothing to ingest: no document could be read from {len(args.paths)} path(s){first}")
    built = store_documents(ctx, args.corpus, existing, encoder, plan, report.documents, "upload")
    rejected += [{"name": uri, "reason": reason} for uri, reason in built.rejected]
    out = stored_output(ctx, built, {"rejected": rejected})
    out.lines += report.summary_lines()
    return out


def crawl(args: argparse.Namespace, ctx: Context) -> Output:
    existing = target_corpus(ctx, args, args.corpus)
    encoder, plan = plan_for(ctx, args, existing)
    options = CrawlOptions.from_settings(
        ctx.settings, max_pages=args.max_pages, max_depth=args.max_depth, path_prefix=args.path_prefix,
        delay_s=args.delay, timeout_s=args.timeout, max_seconds=args.max_seconds, same_host=not args.all_hosts,
        allow_private=True if args.allow_private else None,
    )
    with ctx.progress("crawling", "page") as bar:
        report = crawl_site(args.urls, options, progress=bar)
    summary = {
        "fetched": report.fetched,
        "skipped": [{"url": u, "reason": r} for u, r in report.skipped],
        "failed": [{"url": u, "reason": r} for u, r in report.failed],
        "stopped": report.stopped,
    }
    if not report.documents:
        reasons = report.failed + report.skipped
        first = f" (first: {reasons[0][0]}: {reasons[0][1]})" if reasons else ""
        setting, flag = next(iter(report.hints.values()), (None, None))  # what would let a refused page in
        raise DemoError(f"the crawl found no usable page{first}", setting=setting, cli_flag=flag)
    built = store_documents(ctx, args.corpus, existing, encoder, plan, report.documents, "crawl")
    out = stored_output(ctx, built, summary)
    out.lines += report.summary_lines()
    out.notes += [f"{url}: refused; {flag or setting} would allow it" for url, (setting, flag) in report.hints.items()
                  if flag or setting][:5]
    return out


def sample(args: argparse.Namespace, ctx: Context) -> Output:
    """The app's starter sample under its shared name, or (--full) every paragraph under another name."""
    if args.full:
        languages = split_list(args.languages or "en")
        if not languages:
            raise DemoError("--languages needs at least one XQuAD language, e.g. --languages en,de")
        name = args.corpus or full_sample_name(languages)
    else:
        if args.languages is not None:
            raise DemoError(f"the starter sample is always {','.join(STARTER_LANGUAGES)} (as in the app); "
                            f"use `sample --full --languages {args.languages}` for every paragraph of other languages")
        languages = list(STARTER_LANGUAGES)
        name = args.corpus or SAMPLE_CORPUS_NAME
    if name.strip().lower() == SAMPLE_CORPUS_NAME.lower():
        return _shared_sample(args, ctx)
    existing = target_corpus(ctx, args, name)
    encoder, plan = plan_for(ctx, args, existing)
    documents = sample_documents(languages) if args.full else starter_documents(languages)
    built = store_documents(ctx, name, existing, encoder, plan, documents, "sample")
    out = stored_output(ctx, built, {"full": bool(args.full)})
    out.lines.append(f"Source: {SAMPLE_ATTRIBUTION}")
    return out


def _shared_sample(args: argparse.Namespace, ctx: Context) -> Output:
    """The shared starter, built exactly as the app builds it (workflows.ensure_sample), or found."""
    custom = [flag for flag, value in (("--full", args.full), ("--append", args.append),
                                        ("--model", args.model not in (None, DEFAULT_MODEL)),
                                        ("--variant", args.variant not in (None, "standard")),
                                        ("--chunk-tokens", args.chunk_tokens is not None),
                                        ("--overlap-tokens", args.overlap_tokens is not None)) if value]
    if custom:
        raise DemoError(f"{SAMPLE_CORPUS_NAME!r} is the shared starter sample and is built exactly as the app "
                        f"builds it, so {', '.join(custom)} cannot apply to it; pass --corpus NAME for a "
                        f"corpus of your own")
    encoder = ctx.encoder(DEFAULT_MODEL, "standard")
    corpus_id, added = workflows.ensure_sample(ctx.store, encoder, embed_it=False)
    info = ctx.store.get_corpus(corpus_id)
    payload = {"corpus_id": info.id, "corpus": info.name, "documents_added": added,
               "chunks_added": info.n_chunks if added == info.n_documents else None,
               "corpus_documents": info.n_documents, "corpus_chunks": info.n_chunks, "chunking": info.chunking,
               "languages": info.languages, "already_present": added == 0}
    if added == 0:
        lines = [f"Corpus {info.name!r} (id {info.id}) is already there: {info.n_documents} documents / "
                 f"{info.n_chunks} chunks. Source: {SAMPLE_ATTRIBUTION}"]
    else:
        chunking = info.chunking or {}
        lines = [f"Corpus {info.name!r} (id {info.id}): +{added} documents ({chunking.get('chunk_tokens')} tokens, "
                 f"overlap {chunking.get('overlap_tokens')}, {chunking.get('model_key')} tokenizer); now "
                 f"{info.n_documents} documents / {info.n_chunks} chunks, languages {', '.join(info.languages)}.",
                 f"Source: {SAMPLE_ATTRIBUTION}"]
    return Output(payload, lines)


def corpora(args: argparse.Namespace, ctx: Context) -> Output:
    store = ctx.existing_store()
    every = store.list_corpora(None, sources=SOURCES)
    shown = every if args.all else store.list_corpora(None)
    hidden = len(every) - len(shown)
    payload = {
        "database": str(ctx.db_path),
        "database_bytes": store.file_size(),
        "hidden_eval_corpora": hidden,
        "corpora": [{"id": c.id, "name": c.name, "source": c.source, "documents": c.n_documents,
                     "chunks": c.n_chunks, "tokens": c.n_tokens, "languages": c.languages, "chunking": c.chunking}
                    for c in shown],
    }
    rows = [[str(c.id), c.name, c.source, str(c.n_documents), str(c.n_chunks), str(c.n_tokens),
             ",".join(c.languages)] for c in shown]
    lines = format_table(["id", "name", "source", "docs", "chunks", "tokens", "langs"], rows) if rows else [
        f"No shared corpora in {ctx.db_path} yet: try `python -m pplx_demo sample`."]
    lines.append(f"Database {ctx.db_path}: {human_bytes(payload['database_bytes'])}"
                 + (f"; {hidden} evaluation corpora hidden (--all shows them)." if hidden else "."))
    return Output(payload, lines)


def delete(args: argparse.Namespace, ctx: Context) -> Output:
    info = resolve_corpus(ctx, args.corpus)
    ctx.store.delete_corpus(info.id)
    payload = {"deleted": True, "corpus_id": info.id, "corpus": info.name, "documents": info.n_documents,
               "chunks": info.n_chunks}
    return Output(payload, [f"Deleted corpus {info.name!r} (id {info.id}): {info.n_documents} documents, "
                            f"{info.n_chunks} chunks, and the cached vectors no other corpus uses."])


def embed(args: argparse.Namespace, ctx: Context) -> Output:
    info = resolve_corpus(ctx, args.corpus)
    if args.engine == "ray":
        return _embed_ray(args, ctx, info)
    encoder = ctx.encoder(args.model, args.variant, args.runtime)
    with ctx.progress(f"embedding ({encoder.model_key})", "chunk") as bar:
        outcome = workflows.embed(ctx.store, info.id, encoder, progress=bar)
    payload = {
        "corpus_id": info.id, "corpus": info.name, "model_key": encoder.model_key, "model": encoder.name,
        "variant": encoder.variant, "chunks": outcome.chunks, "dim": int(encoder.dim),
        "embedded_now": outcome.embedded, "cached": outcome.chunks - outcome.embedded,
        "truncated_now": outcome.truncated, "seconds": round(outcome.seconds, 3),
    }
    line = (f"{info.name!r}: {outcome.chunks} chunks x {payload['dim']} dims with {encoder.name} ({encoder.variant}); "
            f"embedded now {outcome.embedded}, from cache {payload['cached']}.")
    return Output(payload, [line], notes=late_chunking_notes(info, encoder),
                  warnings=truncation_warnings(outcome.truncation))


def _embed_ray(args: argparse.Namespace, ctx: Context, info: CorpusInfo) -> Output:
    """`embed --engine ray`: the same cache, filled by a Ray Data actor pool (resumable)."""
    from pplx_demo.distributed import EncoderIdentity, embed_corpus_ray  # noqa: PLC0415 - ray loads only here

    encoder = ctx.encoder(args.model, args.variant, args.runtime)
    with ctx.progress(f"embedding on Ray ({encoder.model_key})", "vector") as bar:
        outcome = embed_corpus_ray(ctx.store, info.id, args.model, args.variant, settings=ctx.settings,
                                   address=args.address, num_actors=args.actors, parquet_dir=args.parquet,
                                   import_into_store=args.parquet is not None, runtime=args.runtime,
                                   identity=EncoderIdentity.of(encoder), progress=bar)
    payload = {"corpus_id": info.id, "corpus": info.name, "model_key": encoder.model_key, "model": encoder.name,
               "variant": encoder.variant, "engine": "ray", **outcome.as_payload()}
    return Output(payload, [f"{info.name!r} with {encoder.name} on Ray: {outcome.summary()}"],
                  notes=late_chunking_notes(info, encoder))

