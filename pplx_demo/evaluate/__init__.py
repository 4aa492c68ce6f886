"""Labelled evaluation: datasets, trec_eval-style metrics, a BM25 baseline and the configuration runner."""

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
    "RetrievalDataset",
    "evaluate_run",
    "load_beir",
    "load_xquad",
    "qrels_from_file",
    "queries_from_file",
    "retention",
]
