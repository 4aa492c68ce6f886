"""Evaluation runs: a dataset (XQuAD, BEIR) or a stored corpus with qrels, every configuration scored.

Dense configurations come from `runner.evaluate_vectors`; hybrid ones ("hybrid: BM25 + <dense> (RRF
k=..)") from `hybrid_eval.evaluate_hybrid` on the same vectors, so both share candidate pools,
document scoring and the float32 reference. See `runner` for the conventions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.bm25 import bm25_run, bm25_setup
from pplx_demo.evaluate.datasets import RetrievalDataset
from pplx_demo.evaluate.hybrid_eval import evaluate_hybrid
from pplx_demo.evaluate.metrics import per_query_metrics
from pplx_demo.evaluate.runner import (DOC_SCORINGS, RAW_FLOAT, EvalConfigResult, EvalReport, EvalVectors, Progress, _chunking_of,
                                       _max_tokens, _means, checked_chunking, corpus_vectors, dataset_vectors,
                                       evaluate_vectors)
from pplx_demo.index import IndexConfig
from pplx_demo.models.registry import variant_keys
from pplx_demo.store import Store


def evaluate_configs(vec: EvalVectors, qrels: dict[str, dict[str, int]], encoder: Any,
                     configs: Sequence[IndexConfig], *, language: str | None = None, kernels: str = "auto"
                     ) -> tuple[list[EvalConfigResult], EvalConfigResult]:
    """(results in the order asked, float32 reference): dense configurations scored directly, hybrid ones
    by fusing their dense leg with BM25 (stemmer / stop words of `language`)."""
    dense = [c for c in configs if not c.hybrid]
    results, reference = evaluate_vectors(vec, qrels, encoder, dense, kernels)
    by_config = {r.config: r for r in results}
    fused: dict[IndexConfig, EvalConfigResult] = {}
    for config in dict.fromkeys(c for c in configs if c.hybrid):
        [row] = evaluate_hybrid(vec, qrels, encoder, [config.dense], language=language, rrf_k=config.rrf_k,
                                kernels=kernels)
        fused[config] = row
    native = getattr(encoder, "int8_scheme", "tanh")
    out: list[EvalConfigResult] = []
    for c in configs:
        r = fused.get(c) if c.hybrid else by_config.get(c.for_model(int(encoder.dim), native))
        if r is not None and r not in out:
            out.append(r)
            if r.config == reference.config and RAW_FLOAT in by_config:  # pplx: the raw pooled cosine, once
                out.append(by_config[RAW_FLOAT])
    return out, reference


def run_evaluation(store: Store, dataset: RetrievalDataset, model_key: str, variant: str | None,
                   configs: list[IndexConfig], *, doc_scoring: str = "max_chunk",
                   chunking: tuple[int, int] | None = None, progress: Progress | None = None,
                   bm25: bool = True, bm25_language: str | None = None, owner: str | None = None,
                   encoder_loader: Callable[[str, str | None], Any], kernels: str = "auto",
                   cancel: Any = None) -> EvalReport:
    """Score every configuration on `dataset` from one set of cached float embeddings.

    `chunking` = (chunk_tokens, overlap_tokens) or None (each document one input, truncated by the
    model as MTEB does). Documents score their best chunk. `bm25` adds the bm25s baseline, stemmed
    for `bm25_language` (default: the corpus language; "en" is MTEB's setting for every language).
    """
    if doc_scoring not in DOC_SCORINGS:
        raise DemoError(f"unknown document scoring {doc_scoring!r}: use one of {', '.join(DOC_SCORINGS)}")
    if not configs:
        raise DemoError("choose at least one configuration to evaluate")
    if not dataset.corpus or not dataset.queries:
        raise DemoError(f"dataset {dataset.name} needs documents and queries")
    if not dataset.judged_queries():
        raise DemoError(f"dataset {dataset.name} has no query with a relevant document; check the qrels ids")
    encoder = encoder_loader(model_key, variant)
    chunking = checked_chunking(chunking, encoder)
    vec = dataset_vectors(store, dataset, encoder, chunking, owner=owner, progress=progress, cancel=cancel)
    setup = bm25_setup(bm25_language or dataset.language)
    results, reference = evaluate_configs(vec, dataset.qrels, encoder, configs, language=setup.language,
                                          kernels=kernels)
    bm25_scores = per_query_metrics(bm25_run(dataset, language=setup.language), dataset.qrels) if bm25 else {}
    return EvalReport(dataset=dataset.name, model_key=str(encoder.model_key), model_name=str(encoder.name),
                      variant=str(encoder.variant), results=results,
                      bm25=_means(bm25_scores) if bm25 else None,
                      embedded_now=vec.embedded_now, n_documents=len(dataset.corpus), n_chunks=vec.n_chunks,
                      n_queries=len(dataset.queries), chunking=chunking, doc_scoring=doc_scoring,
                      bm25_setup=setup.describe() if bm25 else "", language=dataset.language, embed_s=vec.seconds,
                      truncated=vec.truncated, max_tokens=_max_tokens(encoder), bm25_per_query=bm25_scores,
                      reference_per_query=reference.per_query)


def run_corpus_evaluation(store: Store, corpus_id: int, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                          model_key: str, variant: str | None, configs: list[IndexConfig], *,
                          progress: Progress | None = None, owner: str | None = None,
                          encoder_loader: Callable[[str, str | None], Any], kernels: str = "auto",
                          cancel: Any = None) -> EvalReport:
    """Evaluate a corpus already in the store with uploaded queries and qrels.

    Qrels name documents by their source id (`external_id`: BEIR `_id`, file name...) or, failing
    that, their uri; chunks are the corpus' own.
    """
    info = store.check_access(corpus_id, owner)
    if not configs:
        raise DemoError("choose at least one configuration to evaluate")
    table = store.chunk_table(corpus_id)
    known = {x for x in table.external_ids if x is not None} | set(table.uris)
    judged = {q: j for q, j in qrels.items() if q in queries}
    if not judged:
        raise DemoError("none of the qrels' query ids is in the queries file")
    named = {d for j in judged.values() for d in j}
    if not named & known:
        raise DemoError(f"none of the {len(named)} document ids in the qrels matches a document of corpus "
                        f"{info.name!r} (ids are compared with the documents' source ids or uris)")
    encoder = encoder_loader(model_key, variant)
    vec = corpus_vectors(store, corpus_id, queries, judged, encoder, owner=owner, progress=progress, table=table,
                         cancel=cancel)
    language = info.languages[0] if len(info.languages) == 1 else None
    results, reference = evaluate_configs(vec, judged, encoder, configs, language=language, kernels=kernels)
    return EvalReport(dataset=info.name, model_key=str(encoder.model_key), model_name=str(encoder.name),
                      variant=str(encoder.variant), results=results, bm25=None, embedded_now=vec.embedded_now,
                      n_documents=info.n_documents, n_chunks=vec.n_chunks, n_queries=len(judged),
                      chunking=_chunking_of(info.chunking), language=info.languages[0] if len(info.languages) == 1 else None,
                      embed_s=vec.seconds, truncated=vec.truncated, max_tokens=_max_tokens(encoder),
                      reference_per_query=reference.per_query)


def run_variant_pair(store: Store, dataset: RetrievalDataset, model_key: str, configs: list[IndexConfig], *,
                     chunking: tuple[int, int], progress: Progress | None = None, bm25: bool = True,
                     bm25_language: str | None = None, owner: str | None = None,
                     encoder_loader: Callable[[str, str | None], Any], kernels: str = "auto",
                     cancel: Any = None) -> tuple[EvalReport, EvalReport]:
    """Independent chunks vs late chunking on the same corpus and the same chunks."""
    standard_key, contextual_key = variant_keys(model_key)
    common = dict(chunking=chunking, progress=progress, owner=owner, encoder_loader=encoder_loader, kernels=kernels,
                  cancel=cancel)
    standard = run_evaluation(store, dataset, standard_key, "standard", configs, bm25=bm25,
                              bm25_language=bm25_language, **common)
    contextual = run_evaluation(store, dataset, contextual_key, "contextual", configs, bm25=False, **common)
    contextual.bm25, contextual.bm25_setup = standard.bm25, standard.bm25_setup
    return standard, contextual


# --------------------------------------------------------------------------- reports as text / JSON
