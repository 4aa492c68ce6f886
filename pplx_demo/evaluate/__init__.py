"""Labelled evaluation: datasets, trec_eval-style metrics, a BM25 baseline and the configuration runner.

Domain code only (no Gradio); the UI and `python -m pplx_demo eval` wire it.
"""

from pplx_demo.evaluate.datasets import (
    RetrievalDataset,
    load_beir,
    load_xquad,
    qrels_from_file,
    queries_from_file,
)
from pplx_demo.evaluate.metrics import METRICS, evaluate_run, retention

__all__ = [
    "METRICS",
    "EvalConfigResult",
    "EvalReport",
    "RetrievalDataset",
    "bm25_run",
    "contextual_demo",
    "evaluate_run",
    "load_beir",
    "load_reproduction",
    "load_xquad",
    "pareto_frontier",
    "qrels_from_file",
    "queries_from_file",
    "retention",
    "run_corpus_evaluation",
    "run_evaluation",
    "run_variant_pair",
]


def __getattr__(name: str):
    # The runner pulls in the store / index / models; load it only when asked for.
    if name in ("EvalConfigResult", "EvalReport", "pareto_frontier", "run_evaluation", "run_corpus_evaluation",
                "run_variant_pair"):
        from pplx_demo.evaluate import runner

        return getattr(runner, name)
    if name == "bm25_run":
        from pplx_demo.evaluate.bm25 import bm25_run

        return bm25_run
    if name == "contextual_demo":
        from pplx_demo.evaluate.contextual import contextual_demo

        return contextual_demo
    if name == "load_reproduction":
        from pplx_demo.evaluate.reproduction import load_reproduction

        return load_reproduction
    raise AttributeError(f"module 'pplx_demo.evaluate' has no attribute {name!r}")
