"""Settings read from the environment once, with sane defaults; every limit is a setting."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pplx_demo.errors import DemoError

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"


def _number(name: str, default, kind):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError:
        raise DemoError(f"setting {name}={value!r} is not a valid {kind.__name__}", setting=name) from None


def _int(name: str, default: int) -> int:
    return _number(name, default, int)


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or default).strip().lower()
    if value not in allowed:
        raise DemoError(f"setting {name}={value!r} must be one of {', '.join(allowed)}", setting=name)
    return value


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass(frozen=True)
class Settings:
    """Everything configurable. `Settings.from_env()` reads PPLX_DEMO_* variables."""

    db_path: Path = DATA_DIR / "studio.duckdb"
    models_dir: Path | None = None  # folder holding <hub-name>/ weight folders
    hub_timeout_s: float = 3.0
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    max_tokens_cpu: int = 8192  # sequence cap for pplx models on CPU (memory, speed)
    max_tokens_gpu: int = 32768
    batch_size: int = 32
    # uploads
    max_file_bytes: int = 50 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024
    max_documents: int = 5000
    max_chars_per_document: int = 2_000_000
    max_queries: int = 10_000  # per uploaded evaluation set (BEIR zip, queries file)
    max_zip_entries: int = 2000
    max_zip_uncompressed_bytes: int = 500 * 1024 * 1024
    max_zip_ratio: float = 100.0
    # crawler
    allow_private_addresses: bool = False
    crawl_max_pages: int = 50
    crawl_max_depth: int = 2
    crawl_max_page_bytes: int = 5 * 1024 * 1024
    crawl_max_total_bytes: int = 50 * 1024 * 1024
    crawl_max_seconds: float = 120.0
    crawl_timeout_s: float = 10.0
    crawl_concurrency: int = 4
    crawl_delay_s: float = 0.2
    # sessions
    private_corpus_idle_s: int = 3600
    heavy_concurrency: int = 1
    # search
    kernels: str = "auto"  # int8 / Hamming scan kernels: "auto" (numba when importable), "numpy" or "numba"
    # remote embedders (pplx_demo/models/remote/): a Text Embeddings Inference server and the Perplexity API
    tei_url: str = ""  # base URL of a TEI server, e.g. http://127.0.0.1:8080; empty = no TEI
    tei_model: str = "perplexity-ai/pplx-embed-v1-0.6b"  # the model the TEI must serve (checked against /info)
    tei_api_key: str = field(default="", repr=False)  # bearer token for a TEI behind auth; never shown or logged
    tei_truncate: bool = True  # let TEI cut inputs over its max_input_length (counted in EncodeStats)
    tei_max_inputs: int = 32  # inputs per request (also capped by the server's max_client_batch_size)
    tei_max_request_chars: int = 500_000  # characters per request: < TEI's default 2 MB payload at 4 bytes/char
    pplx_api_key: str = field(default="", repr=False)  # Perplexity API key (env PPLX_API_KEY); never shown or logged
    pplx_api_base_url: str = "https://api.perplexity.ai"
    pplx_api_dimensions: int = 0  # Matryoshka size requested from the API (128..model size); 0 = full size
    pplx_api_max_inputs: int = 512  # texts (or documents, contextual) per request: the API's documented maximum
    pplx_api_max_chunks: int = 16_000  # chunks per contextual request: the API's documented maximum
    pplx_api_max_request_tokens: int = 120_000  # tokens per request: the API's documented maximum
    pplx_api_max_input_tokens: int = 32_000  # tokens per input (or per contextual document): the API's "32K"
    pplx_api_max_request_chars: int = 2_000_000  # characters per request (a guard when token counts are estimates)
    remote_timeout_s: float = 60.0  # read/write timeout of one request to a remote embedder
    remote_connect_timeout_s: float = 5.0
    remote_retries: int = 4  # retries after the first attempt on 429, 5xx and connection errors
    remote_backoff_s: float = 0.5  # first retry waits about this long (doubling, with jitter)
    remote_max_wait_s: float = 30.0  # longest single wait, Retry-After included; a longer Retry-After fails at once
    # models: read here only and passed down (pplx_demo.models reads no environment variables)
    # "auto" = float32 everywhere, GPU included (as the model card and TEI run it); "bf16" is an opt-in on CUDA;
    # "fp16" is refused (ports reported NaNs)
    dtype: str = "auto"
    # PPLX_DEMO_MODEL_<KEY>=<folder>: one model's weights, by key (any case; "-" and "." may be written "_")
    model_folders: dict[str, Path] = field(default_factory=dict)
    hf_offline: bool = False  # HF_HUB_OFFLINE: never contact the model hub
    hf_endpoint: str = "https://huggingface.co"  # HF_ENDPOINT: the hub to check and download from
    hf_cache_dir: Path | None = None  # HF_HUB_CACHE, else $HF_HOME/hub (None: huggingface_hub's default)
    onnx_dir: Path = DATA_DIR / "onnx"  # PPLX_DEMO_ONNX_DIR: our ONNX exports, one folder per model and weights
    onnx_auto_export: bool = True  # PPLX_DEMO_ONNX_AUTO_EXPORT: export on first use (logged); off: refuse, say how
    onnx_threads: int = 0  # PPLX_DEMO_ONNX_THREADS: ONNX Runtime intra-op threads (0: one per physical core)
    # crawler: link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254,
    # 100.100.100.200, ...) stay refused even with allow_private_addresses unless this is set too
    allow_link_local_addresses: bool = False
    # uploads: wall-clock seconds one file may take to parse in the worker process before it is refused
    parse_timeout_s: float = 60.0
    # out-of-core index and scale runs (pplx_demo.disk_index, pplx_demo.scale)
    index_dir: Path = DATA_DIR / "indexes"  # disk indexes: one folder per (corpus, model cache key, variant)
    scale_ram_budget_bytes: int = 4 << 30  # RAM a scale run may hold (packed bits + work buffers)
    scale_disk_budget_bytes: int = 16 << 30  # disk a scale run may write (10M x 1024 binary + int8 is ~11.6 GB)
    # Prices for the RAM vs disk cost report; sources and dates in pplx_demo.deployment.COST_SOURCES.
    ram_usd_per_gb_month: float = 5.75  # AWS r6i.xlarge on-demand, us-east-1: $0.252/h x 730 h / 32 GiB
    disk_usd_per_gb_month: float = 0.08  # AWS EBS gp3 SSD storage, us-east-1
    # hybrid search (pplx_demo.hybrid): each leg's candidates = top-k x this factor; the RRF constant
    hybrid_depth_factor: int = 4
    hybrid_rrf_k: int = 60
    # BM25 indexes kept in memory (one per corpus revision): at most this many, and about this many bytes
    bm25_cache_entries: int = 8
    bm25_cache_bytes: int = 512 * 1024 * 1024
    # "why it matched" (pplx_demo.explain): hits explained per column, sentences scored per hit, vectors cached
    explain_max_hits: int = 10
    explain_max_sentences: int = 24
    explain_cache_entries: int = 20_000
    # confidence intervals and paired tests (evaluate.confidence): bootstrap resamples / sign patterns, seed
    confidence_resamples: int = 2000
    confidence_seed: int = 0
    # studio (pplx_demo.ui): the key that encrypts what the browser keeps (its session key) in local storage;
    # empty = generated once and kept beside the database (<db>.secret, mode 0600), so private corpora survive restarts
    browser_state_secret: str = field(default="", repr=False)
    # studio: searches served at once (Gradio queue slots; query embeddings that arrive together are batched)
    search_concurrency: int = 32  # measured: 16 queued part of 20 clients in Gradio and cost ~15% throughput
    # query micro-batching (pplx_demo.query_batcher): most queries in one encode call, and how long the first
    # query of an idle encoder waits for company (queries that arrive while a batch runs wait for the next anyway)
    query_batch_max: int = 32
    query_batch_window_ms: float = 4.0

    tokenizer_dir: Path = DATA_DIR / "tokenizers"  # PPLX_DEMO_TOKENIZER_DIR: the Qwen3 tokenizer built for remote models
    # Qdrant (pplx_demo.engines.qdrant, pplx_demo.export)
    qdrant_url: str | None = None  # a Qdrant server or cluster, http(s)://host:6333; None = embedded Qdrant Edge
    qdrant_api_key: str | None = field(default=None, repr=False)  # from QDRANT_API_KEY; never logged or shown
    qdrant_edge_dir: Path | None = None  # folder for Qdrant Edge shards; None = a temporary folder per index

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        return cls(
            db_path=_path("PPLX_DEMO_DB", d.db_path) or d.db_path,
            models_dir=_path("PPLX_DEMO_MODELS_DIR", None),
            hub_timeout_s=_float("PPLX_DEMO_HUB_TIMEOUT_S", d.hub_timeout_s),
            device=_choice("PPLX_DEMO_DEVICE", d.device, ("auto", "cpu", "cuda")),
            max_tokens_cpu=_int("PPLX_DEMO_MAX_TOKENS_CPU", d.max_tokens_cpu),
            max_tokens_gpu=_int("PPLX_DEMO_MAX_TOKENS_GPU", d.max_tokens_gpu),
            batch_size=_int("PPLX_DEMO_BATCH_SIZE", d.batch_size),
            max_file_bytes=_int("PPLX_DEMO_MAX_FILE_BYTES", d.max_file_bytes),
            max_upload_bytes=_int("PPLX_DEMO_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            max_documents=_int("PPLX_DEMO_MAX_DOCUMENTS", d.max_documents),
            max_chars_per_document=_int("PPLX_DEMO_MAX_CHARS_PER_DOCUMENT", d.max_chars_per_document),
            max_queries=_int("PPLX_DEMO_MAX_QUERIES", d.max_queries),
            max_zip_entries=_int("PPLX_DEMO_MAX_ZIP_ENTRIES", d.max_zip_entries),
            max_zip_uncompressed_bytes=_int("PPLX_DEMO_MAX_ZIP_UNCOMPRESSED_BYTES", d.max_zip_uncompressed_bytes),
            max_zip_ratio=_float("PPLX_DEMO_MAX_ZIP_RATIO", d.max_zip_ratio),
            allow_private_addresses=_bool("PPLX_DEMO_ALLOW_PRIVATE", d.allow_private_addresses),
            crawl_max_pages=_int("PPLX_DEMO_CRAWL_MAX_PAGES", d.crawl_max_pages),
            crawl_max_depth=_int("PPLX_DEMO_CRAWL_MAX_DEPTH", d.crawl_max_depth),
            crawl_max_page_bytes=_int("PPLX_DEMO_CRAWL_MAX_PAGE_BYTES", d.crawl_max_page_bytes),
            crawl_max_total_bytes=_int("PPLX_DEMO_CRAWL_MAX_TOTAL_BYTES", d.crawl_max_total_bytes),
            crawl_max_seconds=_float("PPLX_DEMO_CRAWL_MAX_SECONDS", d.crawl_max_seconds),
            crawl_timeout_s=_float("PPLX_DEMO_CRAWL_TIMEOUT_S", d.crawl_timeout_s),
            crawl_concurrency=_int("PPLX_DEMO_CRAWL_CONCURRENCY", d.crawl_concurrency),
            crawl_delay_s=_float("PPLX_DEMO_CRAWL_DELAY_S", d.crawl_delay_s),
            private_corpus_idle_s=_int("PPLX_DEMO_PRIVATE_IDLE_S", d.private_corpus_idle_s),
            heavy_concurrency=_int("PPLX_DEMO_HEAVY_CONCURRENCY", d.heavy_concurrency),
            kernels=_choice("PPLX_DEMO_KERNELS", d.kernels, ("auto", "numpy", "numba")),
            # remote embedders
            tei_url=(os.environ.get("PPLX_DEMO_TEI_URL") or d.tei_url).strip(),
            tei_model=(os.environ.get("PPLX_DEMO_TEI_MODEL") or d.tei_model).strip(),
            tei_api_key=(os.environ.get("PPLX_DEMO_TEI_API_KEY") or "").strip(),
            tei_truncate=_bool("PPLX_DEMO_TEI_TRUNCATE", d.tei_truncate),
            tei_max_inputs=_int("PPLX_DEMO_TEI_MAX_INPUTS", d.tei_max_inputs),
            tei_max_request_chars=_int("PPLX_DEMO_TEI_MAX_REQUEST_CHARS", d.tei_max_request_chars),
            pplx_api_key=(os.environ.get("PPLX_API_KEY") or "").strip(),
            pplx_api_base_url=(os.environ.get("PPLX_DEMO_PPLX_API_URL") or d.pplx_api_base_url).strip(),
            pplx_api_dimensions=_int("PPLX_DEMO_PPLX_API_DIMENSIONS", d.pplx_api_dimensions),
            pplx_api_max_inputs=_int("PPLX_DEMO_PPLX_API_MAX_INPUTS", d.pplx_api_max_inputs),
            pplx_api_max_chunks=_int("PPLX_DEMO_PPLX_API_MAX_CHUNKS", d.pplx_api_max_chunks),
            pplx_api_max_request_tokens=_int("PPLX_DEMO_PPLX_API_MAX_REQUEST_TOKENS", d.pplx_api_max_request_tokens),
            pplx_api_max_input_tokens=_int("PPLX_DEMO_PPLX_API_MAX_INPUT_TOKENS", d.pplx_api_max_input_tokens),
            pplx_api_max_request_chars=_int("PPLX_DEMO_PPLX_API_MAX_REQUEST_CHARS", d.pplx_api_max_request_chars),
            remote_timeout_s=_float("PPLX_DEMO_REMOTE_TIMEOUT_S", d.remote_timeout_s),
            remote_connect_timeout_s=_float("PPLX_DEMO_REMOTE_CONNECT_TIMEOUT_S", d.remote_connect_timeout_s),
            remote_retries=_int("PPLX_DEMO_REMOTE_RETRIES", d.remote_retries),
            remote_backoff_s=_float("PPLX_DEMO_REMOTE_BACKOFF_S", d.remote_backoff_s),
            remote_max_wait_s=_float("PPLX_DEMO_REMOTE_MAX_WAIT_S", d.remote_max_wait_s),
            dtype=_choice("PPLX_DEMO_DTYPE", d.dtype, ("auto", "fp32", "bf16", "fp16")),
            model_folders=_model_folders(),
            hf_offline=_bool("HF_HUB_OFFLINE", d.hf_offline),
            hf_endpoint=(os.environ.get("HF_ENDPOINT") or d.hf_endpoint).rstrip("/"),
            hf_cache_dir=_hf_cache_dir(),
            onnx_dir=_path("PPLX_DEMO_ONNX_DIR", d.onnx_dir) or d.onnx_dir,
            onnx_auto_export=_bool("PPLX_DEMO_ONNX_AUTO_EXPORT", d.onnx_auto_export),
            onnx_threads=_int("PPLX_DEMO_ONNX_THREADS", d.onnx_threads),
            # crawler: opens link-local / metadata addresses (never implied by PPLX_DEMO_ALLOW_PRIVATE)
            allow_link_local_addresses=_bool("PPLX_DEMO_ALLOW_LINK_LOCAL", d.allow_link_local_addresses),
            # uploads: per-file parse time limit of the isolated parser (load_files_isolated)
            parse_timeout_s=_float("PPLX_DEMO_PARSE_TIMEOUT_S", d.parse_timeout_s),
            index_dir=_path("PPLX_DEMO_INDEX_DIR", d.index_dir) or d.index_dir,
            scale_ram_budget_bytes=_int("PPLX_DEMO_SCALE_RAM_BUDGET_BYTES", d.scale_ram_budget_bytes),
            scale_disk_budget_bytes=_int("PPLX_DEMO_SCALE_DISK_BUDGET_BYTES", d.scale_disk_budget_bytes),
            ram_usd_per_gb_month=_float("PPLX_DEMO_RAM_USD_PER_GB_MONTH", d.ram_usd_per_gb_month),
            disk_usd_per_gb_month=_float("PPLX_DEMO_DISK_USD_PER_GB_MONTH", d.disk_usd_per_gb_month),
            hybrid_depth_factor=_int("PPLX_DEMO_HYBRID_DEPTH_FACTOR", d.hybrid_depth_factor),
            hybrid_rrf_k=_int("PPLX_DEMO_HYBRID_RRF_K", d.hybrid_rrf_k),
            bm25_cache_entries=_int("PPLX_DEMO_BM25_CACHE_ENTRIES", d.bm25_cache_entries),
            bm25_cache_bytes=_int("PPLX_DEMO_BM25_CACHE_BYTES", d.bm25_cache_bytes),
            explain_max_hits=_int("PPLX_DEMO_EXPLAIN_MAX_HITS", d.explain_max_hits),
            explain_max_sentences=_int("PPLX_DEMO_EXPLAIN_MAX_SENTENCES", d.explain_max_sentences),
            explain_cache_entries=_int("PPLX_DEMO_EXPLAIN_CACHE_ENTRIES", d.explain_cache_entries),
            confidence_resamples=_int("PPLX_DEMO_CONFIDENCE_RESAMPLES", d.confidence_resamples),
            confidence_seed=_int("PPLX_DEMO_CONFIDENCE_SEED", d.confidence_seed),
            tokenizer_dir=_path("PPLX_DEMO_TOKENIZER_DIR", d.tokenizer_dir) or d.tokenizer_dir,
            qdrant_url=(os.environ.get("PPLX_DEMO_QDRANT_URL") or "").strip() or None,
            qdrant_api_key=os.environ.get("QDRANT_API_KEY") or None,  # the name Qdrant's own tools use
            qdrant_edge_dir=_path("PPLX_DEMO_QDRANT_EDGE_DIR", None),
            # studio: browser storage key; searches at once; query micro-batching
            browser_state_secret=(os.environ.get("PPLX_DEMO_BROWSER_STATE_SECRET") or "").strip(),
            search_concurrency=_int("PPLX_DEMO_SEARCH_CONCURRENCY", d.search_concurrency),
            query_batch_max=_int("PPLX_DEMO_QUERY_BATCH_MAX", d.query_batch_max),
            query_batch_window_ms=_float("PPLX_DEMO_QUERY_BATCH_WINDOW_MS", d.query_batch_window_ms),
        )


def _model_folders() -> dict[str, Path]:
    """PPLX_DEMO_MODEL_<KEY>=<folder> overrides (PPLX_DEMO_MODELS_DIR is the parent-folder setting, not one)."""
    prefix = "PPLX_DEMO_MODEL_"
    return {name[len(prefix):]: Path(value).expanduser() for name, value in os.environ.items()
            if name.startswith(prefix) and value}


def _hf_cache_dir() -> Path | None:
    """Where huggingface_hub keeps repositories: HF_HUB_CACHE, else $HF_HOME/hub (None: the library's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None
