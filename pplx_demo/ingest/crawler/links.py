"""URLs and links: the canonical form of a URL (`normalise_url`), the crawl's scope (start hosts, path
prefix), and the links and meta robots values of an HTML page."""

from __future__ import annotations

import posixpath
from typing import Sequence
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from pplx_demo.ingest.crawler.options import CrawlOptions

_MAX_LINKS_PER_PAGE = 1000


def normalise_url(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical http(s) URL (lower-case scheme/host, no default port, no fragment,
    dot-segments resolved, stable percent-encoding), or None when it is not a crawlable web URL."""
    try:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(absolute)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname.lower().rstrip(".")
        if ":" in host:
            host = f"[{host}]"
        else:
            host = host.encode("idna").decode("ascii")
        port = parts.port
    except (ValueError, UnicodeError):
        return None
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    path = parts.path or "/"
    trailing = path.endswith("/")
    path = posixpath.normpath(path)
    path = "/" if path in (".", "/", "//") else path.replace("//", "/")
    if trailing and not path.endswith("/"):
        path += "/"
    path = quote(unquote(path), safe="/:@!$&'()*+,;=-._~")
    query = parts.query
    return urlunsplit((scheme, netloc, path, query, ""))


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Scope:
    """Which URLs the crawl may visit: hosts of the start URLs (by default) and a path prefix."""

    def __init__(self, start_urls: Sequence[str], options: CrawlOptions) -> None:
        self.hosts = {_host(u) for u in start_urls}
        self.same_host = options.same_host
        prefix = options.path_prefix
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.prefix = prefix

    def problem(self, url: str) -> str | None:
        if self.same_host and _host(url) not in self.hosts:
            return "other host (the crawl stays on the start hosts)"
        if self.prefix and not urlsplit(url).path.startswith(self.prefix):
            return f"outside the path prefix {self.prefix}"
        return None


def _meta_robots(html: str) -> set[str]:
    try:
        import lxml.html  # noqa: PLC0415

        root = lxml.html.fromstring(html)
    except Exception:  # noqa: BLE001 - unparsable markup simply has no meta robots
        return set()
    values: set[str] = set()
    for meta in root.xpath("//meta[@name]"):
        if meta.get("name", "").strip().lower() in ("robots", "pplx-embed-studio"):
            values |= {v.strip().lower() for v in meta.get("content", "").split(",")}
    return values


def _extract_links(html: str, base_url: str) -> list[str]:
    """Absolute, normalised http(s) links of <a href> elements (not rel=nofollow), in page order."""
    try:
        import lxml.html  # noqa: PLC0415

        root = lxml.html.fromstring(html)
    except Exception:  # noqa: BLE001
        return []
    base = base_url
    base_el = root.find(".//base[@href]")
    if base_el is not None:
        base = urljoin(base_url, base_el.get("href"))
    links: list[str] = []
    for a in root.iter("a"):
        href = a.get("href")
        if not href or "nofollow" in (a.get("rel") or "").lower():
            continue
        url = normalise_url(href, base)
        if url is not None:
            links.append(url)
        if len(links) >= _MAX_LINKS_PER_PAGE:
            break
    return list(dict.fromkeys(links))
