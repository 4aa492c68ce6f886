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
        raise DemoError(f"setting {name}={value!r} is not a valid {kind.__name__}") from None


def _int(name: str, default: int) -> int:
    return _number(name, default, int)


def _float(name: str, default: float) -> float:
    return _number(name, default, float)


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (os.environ.get(name) or default).strip().lower()
    if value not in allowed:
        raise DemoError(f"setting {name}={value!r} must be one of {', '.join(allowed)}")
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
    extra: dict[str, str] = field(default_factory=dict)
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
            qdrant_url=(os.environ.get("PPLX_DEMO_QDRANT_URL") or "").strip() or None,
            qdrant_api_key=os.environ.get("QDRANT_API_KEY") or None,  # the name Qdrant's own tools use
            qdrant_edge_dir=_path("PPLX_DEMO_QDRANT_EDGE_DIR", None),
        )
