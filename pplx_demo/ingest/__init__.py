"""Ingestion: uploads (formats, archive), the crawler, token-aware chunking and the sample corpus.

Every stage returns plain `Document` / `Chunk` records; nothing here touches the store or a UI.
"""

from pplx_demo.ingest.chunking import (
    chunk_documents,
    chunk_text,
    encoder_token_budget,
    validate_chunking,
)
from pplx_demo.ingest.crawler import CrawlOptions, CrawlReport, address_problem, crawl
from pplx_demo.ingest.formats import SUPPORTED_SUFFIXES, IngestReport, Rejection, load_bytes, load_files
from pplx_demo.ingest.text import clean_text
from pplx_demo.ingest.worker import ParseWorker, load_bytes_isolated, load_files_isolated
from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME, sample_documents, sample_queries

__all__ = [
    "SAMPLE_CORPUS_NAME",
    "SUPPORTED_SUFFIXES",
    "CrawlOptions",
    "CrawlReport",
    "IngestReport",
    "ParseWorker",
    "Rejection",
    "address_problem",
    "chunk_documents",
    "chunk_text",
    "clean_text",
    "crawl",
    "encoder_token_budget",
    "load_bytes",
    "load_bytes_isolated",
    "load_files",
    "load_files_isolated",
    "sample_documents",
    "sample_queries",
    "validate_chunking",
]
