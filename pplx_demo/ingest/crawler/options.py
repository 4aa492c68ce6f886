"""What one crawl may do and what it produced: `CrawlOptions` (limits and scope, from `Settings`) and
`CrawlReport` (documents, fetched, skipped and failed URLs with reasons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pplx_demo.config import Settings
from pplx_demo.documents import Document

USER_AGENT = "pplx-embed-studio/0.1 (+demo)"


@dataclass(frozen=True)
class CrawlOptions:
    """Limits and scope of one crawl. Build it with `CrawlOptions.from_settings`: the limits have no
    defaults here, so they cannot drift from `Settings`; keyword overrides change one crawl."""

    settings: Settings  # where the limits came from; page text obeys its upload limits too
    max_pages: int
    max_depth: int
    max_page_bytes: int
    max_total_bytes: int
    max_seconds: float
    timeout_s: float
    concurrency: int
    delay_s: float
    allow_private: bool
    allow_link_local: bool  # link-local / cloud-metadata addresses: never implied by allow_private
    same_host: bool = True
    path_prefix: str | None = None
    user_agent: str = USER_AGENT
    private_allowlist: tuple[str, ...] = ()  # networks allowed although private, e.g. ("127.0.0.1/32",)
    max_redirects: int = 5
    respect_robots: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "CrawlOptions":
        """Options with every limit from `settings`; `overrides` that are not None replace fields."""
        values: dict[str, Any] = dict(
            settings=settings,
            max_pages=settings.crawl_max_pages,
            max_depth=settings.crawl_max_depth,
            max_page_bytes=settings.crawl_max_page_bytes,
            max_total_bytes=settings.crawl_max_total_bytes,
            max_seconds=settings.crawl_max_seconds,
            timeout_s=settings.crawl_timeout_s,
            concurrency=settings.crawl_concurrency,
            delay_s=settings.crawl_delay_s,
            allow_private=settings.allow_private_addresses,
            allow_link_local=settings.allow_link_local_addresses,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class CrawlReport:
    """What a crawl produced: documents, URLs fetched, and (url, reason) for skipped / failed ones."""

    documents: list[Document] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None  # why the crawl ended early (a limit), None when the frontier emptied
    # URL -> (setting, cli_flag) that would have let the crawl fetch it (blocked addresses), so each
    # front end can word the hint itself ("(--allow-private)" / "the server setting ...").
    hints: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def summary_lines(self, max_lines: int = 20) -> list[str]:
        """One line of totals, the early-stop reason, then skipped / failed URLs with reasons."""
        lines = [
            f"Fetched {len(self.fetched)} page{'s' if len(self.fetched) != 1 else ''}, "
            f"kept {len(self.documents)} document{'s' if len(self.documents) != 1 else ''}; "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed."
        ]
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}.")
        entries = [f"Failed {u}: {r}" for u, r in self.failed] + [f"Skipped {u}: {r}" for u, r in self.skipped]
        lines += entries[:max_lines]
        if len(entries) > max_lines:
            lines.append(f"... and {len(entries) - max_lines} more.")
        return lines
