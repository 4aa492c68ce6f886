"""robots.txt: one origin's rules (parsed by protego) or the server error that closes the site
(RFC 9309), its Crawl-delay, and the read limit. `loop._Crawler` fetches and caches them per origin."""

from __future__ import annotations

from dataclasses import dataclass

from protego import Protego

_ROBOTS_MAX_BYTES = 500 * 1024  # what Google reads of a robots.txt

_MAX_CRAWL_DELAY_S = 10.0  # a robots.txt Crawl-delay above this would stall the demo


@dataclass
class _Robots:
    """One origin's robots.txt: its rules (None: no robots.txt, all allowed) or, after a server error,
    the status that closes the site."""

    rules: Protego | None = None
    closed_status: int | None = None

    def problem(self, url: str, user_agent: str) -> str | None:
        if self.closed_status is not None:
            return f"robots.txt answered HTTP {self.closed_status}, which means the site is closed to crawlers"
        if self.rules is not None and not self.rules.can_fetch(url, user_agent):
            return "disallowed by robots.txt"
        return None

    def crawl_delay(self, user_agent: str) -> float | None:
        delay = self.rules.crawl_delay(user_agent) if self.rules is not None else None
        return float(delay) if delay else None


class _RobotsUnreachable(Exception):
    """robots.txt could not be fetched at all (network error or timeout)."""
