"""`export`: a corpus with its vectors as Parquet (float32, int8, packed binary), or into a Qdrant collection."""

from __future__ import annotations

import argparse

from pplx_demo.cli.common import Context, Output
from pplx_demo.cli.corpus import resolve_corpus
from pplx_demo.export import export_corpus, export_to_qdrant
from pplx_demo.index import IndexConfig
from pplx_demo.storage import human_bytes


def export(args: argparse.Namespace, ctx: Context) -> Output:
    info = resolve_corpus(ctx, args.corpus)
    encoder = ctx.encoder(args.model, args.variant, args.runtime)
    if args.qdrant:
        config = IndexConfig.parse(args.config) if args.config else None
        with ctx.progress(f"upserting {info.name!r} into Qdrant", "point") as bar:
            result = export_to_qdrant(ctx.store, info.id, encoder, args.qdrant, api_key=ctx.settings.qdrant_api_key,
                                      collection=args.collection, config=config, replace=args.overwrite,
                                      progress=bar)
        payload = {"corpus": info.name, "target": result.target, "engine": result.engine,
                   "collection": result.collection, "points": result.n_points, "vectors": result.vector_names,
                   "configuration": result.config_label, "seconds": round(result.seconds, 3),
                   "embedded_now": result.embedded_now}
        return Output(payload, [f"{info.name!r}: {result.n_points:,} points in {result.engine} ({result.target}, "
                                f"collection {result.collection}) as {result.config_label}; vectors "
                                f"{', '.join(result.vector_names)}; {result.seconds:.1f} s"])
    with ctx.progress(f"exporting {info.name!r}", "chunk") as bar:
        result = export_corpus(ctx.store, info.id, encoder, args.to, overwrite=args.overwrite, progress=bar)
    payload = {"corpus": info.name, "out_dir": str(result.out_dir),
               "files": {k: str(v) for k, v in result.files.items()}, "documents": result.n_documents,
               "chunks": result.n_chunks, "dim": result.dim, "bytes_written": result.bytes_written,
               "embedded_now": result.embedded_now, "metadata": result.metadata}
    return Output(payload, [f"{info.name!r}: {result.n_documents:,} documents, {result.n_chunks:,} chunks x "
                            f"{result.dim} dims with {encoder.name} -> {result.out_dir} "
                            f"({human_bytes(result.bytes_written)}: {', '.join(sorted(result.files))}); "
                            "format: docs/EXPORT.md"])
