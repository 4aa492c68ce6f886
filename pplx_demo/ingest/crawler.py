"""A small, polite web crawler with a server-side request forgery (SSRF) guard.

Polite: robots.txt (parsed by protego: wildcards and `$` anchors as Google reads them) honoured for
the user agent `pplx-embed-studio`; a 4xx robots.txt allows everything, a 5xx (or none reachable)
closes the site (RFC 9309). A delay between requests to one host (robots.txt Crawl-delay when
larger, capped), few connections, a user agent naming the app.
Bounded: pages, depth, bytes per page (streamed; reading stops past the limit), total bytes, wall
time, per-request timeouts, redirect hops; a page's text obeys the upload limits (characters per
document; HTML too large to be worth parsing is refused before parsing). Scope: http/https only,
the start hosts by default, an optional path prefix. Every document is `clean_document`-ed.

SSRF guard: every TCP connection (first request and every redirect hop, robots.txt included) goes
through `_GuardedBackend`, which resolves the host once, refuses it if ANY address is loopback,
private, link-local, multicast, reserved, unspecified or otherwise not globally routable (IPv4,
IPv6 and IPv4-mapped / 6to4 forms), then connects to that validated address. TLS still verifies
the certificate against, and sends SNI for, the host name. DNS rebinding cannot swap the address
between the check and the connection. Proxies from the environment are ignored (trust_env=False),
so no connection bypasses the guard. `allow_private=True` (PPLX_DEMO_ALLOW_PRIVATE) lifts the
guard for local use, and `private_allowlist` for listed networks only, but neither opens
link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254,
100.100.100.200, 168.63.129.16, ... and their IPv4-mapped / compatible / 6to4 / NAT64 / Teredo
forms): only `allow_link_local=True` (PPLX_DEMO_ALLOW_LINK_LOCAL) does.

Why httpx: streaming bodies, separate connect/read timeouts and connection pooling come for free,
and its transport layer (httpcore) lets the guard own the socket connect. Redirects are followed
by hand (follow_redirects=False) so scope, robots.txt and loop checks run on every hop.
"""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import socket
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from protego import Protego

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.ingest.archive import UnusableInput
from pplx_demo.ingest.text import clean_document
from pplx_demo.ingest.worker import ParseStopped, ParseTimeout, ParseWorker, WorkerDied

USER_AGENT = "pplx-embed-studio/0.1 (+demo)"
_ROBOTS_MAX_BYTES = 500 * 1024  # what Google reads of a robots.txt
_MAX_CRAWL_DELAY_S = 10.0  # a robots.txt Crawl-delay above this would stall the demo
_MAX_LINKS_PER_PAGE = 1000
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
_PDF_TYPES = ("application/pdf", "application/x-pdf")


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


# ---------------------------------------------------------------- SSRF guard


class BlockedAddress(DemoError):
    """A connection the SSRF guard refused; the message names the host, the address and why."""


def address_problem(address: str) -> str | None:
    """Why `address` (an IPv4/IPv6 literal) must not be contacted from a public server, or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = address_problem(str(ip.ipv4_mapped))
            return f"IPv4-mapped {inner}" if inner else None
        if ip.sixtofour is not None:
            inner = address_problem(str(ip.sixtofour))
            if inner:
                return f"6to4 {inner}"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local address"
    if ip.is_reserved:
        return "reserved address"
    if ip.is_private:
        return "private address"
    if not ip.is_global:
        return "not globally routable address"
    return None


# Link-local ranges: cloud metadata services (AWS, GCP, Azure, OCI, DigitalOcean, ECS tasks, ...) and
# router / host-internal services answer here. Plus metadata addresses outside them.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA = {
    ipaddress.ip_address("fd00:ec2::254"): "AWS metadata (IPv6) address",
    ipaddress.ip_address("100.100.100.200"): "Alibaba Cloud metadata address",
    ipaddress.ip_address("168.63.129.16"): "Azure host services (WireServer) address",
    ipaddress.ip_address("192.0.0.192"): "Oracle Cloud metadata address",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_PRIVATE_SETTING = "PPLX_DEMO_ALLOW_PRIVATE"
_LINK_LOCAL_SETTING = "PPLX_DEMO_ALLOW_LINK_LOCAL"


def link_local_problem(address: str) -> str | None:
    """Why `address` is a link-local or cloud-metadata address (also inside IPv4-mapped, IPv4-compatible,
    6to4, NAT64 and Teredo IPv6 forms), or None. Allowing private addresses never opens these."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    for form, candidate in _address_forms(ip):
        if candidate in _METADATA:
            return form + _METADATA[candidate]
        if any(candidate.version == net.version and candidate in net for net in _LINK_LOCAL):
            return form + "link-local address"
    return None


def _address_forms(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[tuple[str, Any]]:
    """The address itself, then every IPv4 address an IPv6 address carries, each with its form's name."""
    forms: list[tuple[str, Any]] = [("", ip)]
    if isinstance(ip, ipaddress.IPv6Address):
        packed = ip.packed
        if ip.ipv4_mapped is not None:
            forms.append(("IPv4-mapped ", ip.ipv4_mapped))
        if packed[:12] == bytes(12) and int(ip) > 1:
            forms.append(("IPv4-compatible ", ipaddress.IPv4Address(packed[12:])))
        if ip.sixtofour is not None:
            forms.append(("6to4 ", ip.sixtofour))
        if ip.teredo is not None:
            forms.append(("Teredo ", ip.teredo[1]))
        if ip in _NAT64:
            forms.append(("NAT64 ", ipaddress.IPv4Address(packed[12:])))
        if ip in _NAT64_LOCAL:  # RFC 6052 /48 layout: the IPv4 address straddles the u-octet
            forms.append(("NAT64 ", ipaddress.IPv4Address(packed[6:8] + packed[9:11])))
    return forms


class _AddressPolicy:
    """Which resolved addresses a connection may use."""

    def __init__(self, allow_private: bool, allow_link_local: bool, allowlist: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_link_local = allow_link_local
        self.allowlist = [ipaddress.ip_network(n, strict=False) for n in allowlist]

    def problem(self, address: str) -> tuple[str, str] | None:
        """(why the address is refused, the setting that would allow it), or None."""
        special = link_local_problem(address)
        if special is not None:
            return None if self.allow_link_local else (special, _LINK_LOCAL_SETTING)
        if self.allow_private:
            return None
        reason = address_problem(address)
        if reason is None:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip.version == net.version and ip in net for net in self.allowlist):
            return None
        return reason, _PRIVATE_SETTING


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore network backend: resolve once, validate every address, connect to a validated one."""

    def __init__(self, policy: _AddressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host!r} ({exc})") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            refused = self.policy.problem(address)
            if refused:
                reason, setting = refused
                target = f"{host}, a {reason}" if host == address else f"{host}: it resolves to {address}, a {reason}"
                if setting == _LINK_LOCAL_SETTING:
                    raise BlockedAddress(
                        f"refused {target}; link-local and cloud-metadata addresses stay refused when private "
                        "addresses are allowed, unless they are allowed explicitly too",
                        setting=_LINK_LOCAL_SETTING,
                    )
                raise BlockedAddress(
                    f"refused {target}; private and local addresses are refused unless explicitly allowed",
                    setting=_PRIVATE_SETTING,
                    cli_flag="--allow-private",
                )
        last_error: Exception | None = None
        for address in addresses:
            try:
                # Connect to the address just validated, never to the name (no second DNS lookup).
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
            except httpcore.ConnectTimeout as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectError(f"no address for host {host!r}")


class _GuardedTransport(httpx.HTTPTransport):
    """httpx transport whose connection pool dials through `_GuardedBackend` (no proxies)."""

    def __init__(self, policy: _AddressPolicy, max_connections: int) -> None:
        super().__init__(trust_env=False, limits=httpx.Limits(max_connections=max_connections))
        ssl_context = httpx.create_ssl_context(trust_env=False)
        # httpx 0.28 builds its pool in __init__ with the default backend; swap in a guarded one.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            network_backend=_GuardedBackend(policy),
        )


# ---------------------------------------------------------------- URLs and scope


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


# ---------------------------------------------------------------- the crawl


@dataclass
class _Page:
    """The outcome of fetching one queued URL."""

    url: str
    final_url: str | None = None
    document: Document | None = None
    links: list[str] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None
    hint: tuple[str | None, str | None] | None = None  # (setting, cli_flag) that would allow it


class _Crawler:
    """State shared by the workers of one crawl: client, robots.txt cache, politeness clock, byte count."""

    def __init__(self, start_urls: list[str], options: CrawlOptions, cancel: threading.Event) -> None:
        self.seen: set[str] = set(start_urls)  # queued or fetched; only the coordinator adds to it
        self.options = options
        self.cancel = cancel  # the caller's
        self.abort = threading.Event()  # ours: set when the crawl ends abnormally
        self.scope = _Scope(start_urls, options)
        self.policy = _AddressPolicy(options.allow_private, options.allow_link_local, options.private_allowlist)
        self.client = httpx.Client(
            transport=_GuardedTransport(self.policy, max(1, options.concurrency) + 1),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(options.timeout_s),
            headers={
                "User-Agent": options.user_agent,
                "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/pdf;q=0.8,*/*;q=0.1",
                # Uncompressed bodies: the byte limits then bound memory, no decompression bombs.
                "Accept-Encoding": "identity",
            },
        )
        self.lock = threading.Lock()
        self.robots: dict[str, _Robots | _RobotsUnreachable] = {}
        self.robots_locks: dict[str, threading.Lock] = {}
        self.next_time: dict[str, float] = {}
        self.total_bytes = 0
        self.over_total = False
        self.parser = ParseWorker(options.settings.parse_timeout_s)  # started by the first page worth parsing
        # The clock starts once the client exists: building TLS contexts can take a loaded machine ~0.5 s.
        self.deadline = time.monotonic() + options.max_seconds

    # -- limits

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_running(self) -> None:
        if self.cancel.is_set() or self.abort.is_set():
            raise Cancelled("Crawl cancelled.")

    # -- robots.txt

    def _robots_for(self, url: str) -> _Robots:
        """The robots.txt rules of the URL's origin (fetched once, cached).

        Raises _RobotsUnreachable (cached too) when robots.txt cannot be fetched at all.
        """
        origin = _origin(url)
        with self.lock:
            origin_lock = self.robots_locks.setdefault(origin, threading.Lock())
        with origin_lock:  # one fetch per origin even with several workers
            if origin not in self.robots:
                try:
                    self.robots[origin] = self._fetch_robots(origin)
                except _RobotsUnreachable as exc:
                    self.robots[origin] = exc
            cached = self.robots[origin]
        if isinstance(cached, _RobotsUnreachable):
            raise cached
        return cached

    def _fetch_robots(self, origin: str) -> _Robots:
        url = origin + "/robots.txt"
        status, body = 404, b""
        try:
            for _ in range(self.options.max_redirects + 1):
                with self.client.stream("GET", url, timeout=self._request_timeout()) as response:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_CODES and location:
                        nxt = normalise_url(location, url)
                        if nxt is None or nxt == url:
                            break
                        url = nxt
                        continue
                    status = response.status_code
                    if status == 200:
                        body = self._read_limited(response, _ROBOTS_MAX_BYTES, count_total=False, truncate=True)
                    break
        except httpx.TimeoutException:
            raise _RobotsUnreachable(f"robots.txt timed out (limit {self.options.timeout_s:g} s)")
        except httpx.HTTPError as exc:
            raise _RobotsUnreachable(f"robots.txt unreachable ({_describe(exc)})")
        if 400 <= status < 500:
            return _Robots()  # RFC 9309: no robots.txt, everything allowed
        if status != 200:
            # RFC 9309: a server error (5xx, or no usable answer) means the whole site is off limits.
            return _Robots(closed_status=status)
        return _Robots(Protego.parse(body.decode("utf-8", errors="replace")))

    def _robots_problem(self, url: str) -> str | None:
        if not self.options.respect_robots:
            return None
        return self._robots_for(url).problem(url, self.options.user_agent)

    def _wait_politely(self, url: str) -> None:
        """Keep `delay_s` (or the robots.txt Crawl-delay, capped) between requests to one host."""
        delay = self.options.delay_s
        robots = self.robots.get(_origin(url))
        if isinstance(robots, _Robots):
            crawl_delay = robots.crawl_delay(self.options.user_agent)
            if crawl_delay:
                delay = max(delay, min(crawl_delay, _MAX_CRAWL_DELAY_S))
        host = _host(url)
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_time.get(host, 0.0))
            self.next_time[host] = start + delay
        pause = start - time.monotonic()
        while pause > 0:
            self.check_running()
            time.sleep(min(pause, 0.05))
            pause = start - time.monotonic()

    # -- fetching

    def _request_timeout(self) -> httpx.Timeout:
        budget = max(0.05, min(self.options.timeout_s, self.remaining()))
        return httpx.Timeout(budget)

    def _read_limited(self, response: httpx.Response, limit: int, count_total: bool, truncate: bool = False) -> bytes:
        """The body, read in blocks; raises _TooLarge past `limit` (or cuts when `truncate`)."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit and not truncate:
            raise _TooLarge(f"page is {int(declared):,} bytes, over the limit of {limit:,} bytes (Content-Length)")
        out = bytearray()
        started = time.monotonic()
        for block in response.iter_bytes():
            self.check_running()
            if time.monotonic() - started > self.options.timeout_s or self.remaining() <= 0:
                raise _SlowPage("timed out while reading the page")
            if count_total:
                with self.lock:
                    if self.total_bytes + len(block) > self.options.max_total_bytes:
                        self.over_total = True
                        raise _TooLarge(f"total byte limit of {self.options.max_total_bytes:,} reached")
                    self.total_bytes += len(block)
            out += block
            if len(out) > limit:
                if truncate:
                    return bytes(out[:limit])
                raise _TooLarge(f"page is over the limit of {limit:,} bytes (stopped reading)")
        return bytes(out)

    def fetch(self, url: str, depth: int) -> _Page:
        """Fetch one URL, following redirects by hand with every check on every hop."""
        page = _Page(url)
        try:
            self.check_running()
            problem = self._robots_problem(url)
            if problem:
                page.skipped = problem
                return page
            chain = [url]
            current = url
            while True:
                self._wait_politely(current)
                with self.client.stream("GET", current, timeout=self._request_timeout()) as response:
                    if response.status_code in _REDIRECT_CODES:
                        location = response.headers.get("location")
                        nxt = normalise_url(location, current) if location else None
                        if nxt is None:
                            page.failed = f"redirect to an unusable location ({location!r})"
                            return page
                        if nxt in chain:
                            page.failed = f"redirect loop ({' -> '.join(chain + [nxt])})"
                            return page
                        if len(chain) - 1 >= self.options.max_redirects:
                            page.failed = f"too many redirects (more than {self.options.max_redirects})"
                            return page
                        problem = self.scope.problem(nxt) or self._robots_problem(nxt)
                        if problem:
                            page.skipped = f"redirects to {nxt}: {problem}"
                            return page
                        if nxt in self.seen:
                            page.skipped = f"redirects to {nxt}, which the crawl already has"
                            return page
                        chain.append(nxt)
                        current = nxt
                        continue
                    page.final_url = current
                    if response.status_code != 200:
                        page.failed = f"HTTP {response.status_code}"
                        return page
                    kind = _content_kind(response.headers.get("content-type", ""), current)
                    if kind is None:
                        page.skipped = f"unsupported content type {response.headers.get('content-type', '?')!r}"
                        return page
                    self.parser.start_in_background()  # ~1 s of imports, overlapping the body download
                    body = self._read_limited(response, self.options.max_page_bytes, count_total=True)
                    charset = response.charset_encoding
                    break
            page = self._parse(page, kind, body, charset, depth)  # after the connection went back to the pool
        except Cancelled:
            raise
        except BlockedAddress as exc:
            page.skipped = f"blocked: {exc} ({exc.setting}=1)"
            page.hint = (exc.setting, exc.cli_flag)
        except _RobotsUnreachable as exc:
            page.failed = str(exc)
        except _TooLarge as exc:
            page.skipped = str(exc)
        except _SlowPage as exc:
            page.failed = str(exc)
        except httpx.TimeoutException:
            page.failed = f"timed out (limit {self.options.timeout_s:g} s)"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            page.failed = _describe(exc)
        except Exception as exc:  # noqa: BLE001 - hostile content must fail one page, not the crawl
            page.failed = f"could not be processed ({_describe(exc)})"
        return page

    def _parse(self, page: _Page, kind: str, body: bytes, charset: str | None, depth: int) -> _Page:
        """`parse_page` in the parser process, within Settings.parse_timeout_s (a hostile page that
        makes trafilatura or pypdf spin fails alone; the app and the other workers go on)."""
        try:
            return self.parser.call(parse_page, page, kind, body, charset, depth, self.options.settings,
                                    self.options.max_page_bytes, stop=self._stopping)
        except ParseStopped:
            raise Cancelled("Crawl cancelled.") from None
        except ParseTimeout as exc:
            page.failed = str(exc)
        except (WorkerDied, RuntimeError) as exc:
            page.failed = f"could not be processed (the parser process failed: {exc})"
        return page

    def _stopping(self) -> bool:
        return self.cancel.is_set() or self.abort.is_set()


def parse_page(page: _Page, kind: str, body: bytes, charset: str | None, depth: int, settings: Settings,
               max_page_bytes: int) -> _Page:
    """Fill `page` (document, links, or why it is skipped) from a fetched body; runs in the parser process."""
    from pplx_demo.ingest import formats  # noqa: PLC0415 - formats imports trafilatura lazily

    url = page.final_url or page.url
    max_chars = settings.max_chars_per_document
    metadata: dict[str, Any] = {"format": kind, "url": url, "depth": depth, "source": url}
    if kind == "pdf":
        report = formats.load_bytes(_pdf_name(url), body, settings, max_bytes=max_page_bytes)
        if not report.documents:
            page.failed = report.rejected[0].reason if report.rejected else "no text in the PDF"
            return page
        doc = report.documents[0]
        metadata.update({k: v for k, v in doc.metadata.items() if k in ("pages", "page_spans")})
        page.document = clean_document(Document(uri=url, title=doc.title, text=doc.text, metadata=metadata))
        return page
    try:
        if kind == "html":
            formats.check_html_size(len(body), max_chars)  # before lxml and trafilatura parse it
    except UnusableInput as exc:
        page.skipped = str(exc)
        return page
    text = _decode(body, charset)
    if text is None:
        page.skipped = "binary data, not text"
        return page
    if kind == "text":
        title = urlsplit(url).path.rsplit("/", 1)[-1] or _host(url)
        content = text.replace("\r\n", "\n").strip()
    else:
        robots_meta = _meta_robots(text)
        if "nofollow" not in robots_meta:
            page.links = _extract_links(text, url)
        if "noindex" in robots_meta:
            page.skipped = "page asks not to be indexed (meta robots noindex)"
            return page
        content, found_title = formats.html_to_text(text)
        title = found_title or url
    document = clean_document(Document(uri=url, title=title, text=content, metadata=metadata))
    if not document.text.strip():
        page.skipped = "no readable text on the page"
        return page
    if len(document.text) > max_chars:
        page.skipped = (f"text is {len(document.text):,} characters; the limit is {max_chars:,} per document "
                        "(PPLX_DEMO_MAX_CHARS_PER_DOCUMENT)")
        return page
    page.document = document
    return page


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


class _TooLarge(Exception):
    """The page (or the crawl) went over a byte limit."""


class _SlowPage(Exception):
    """The page kept trickling in past the request time limit."""


class _RobotsUnreachable(Exception):
    """robots.txt could not be fetched at all (network error or timeout)."""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _content_kind(content_type: str, url: str) -> str | None:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in _HTML_TYPES:
        return "html"
    if ctype in _TEXT_TYPES:
        return "text"
    if ctype in _PDF_TYPES:
        return "pdf"
    if not ctype or ctype == "application/octet-stream":
        path = urlsplit(url).path.lower()
        if path.endswith(".pdf"):
            return "pdf"
        if path.endswith((".txt", ".md")):
            return "text"
        if path.endswith((".html", ".htm", "/")):
            return "html"
    return None


def _pdf_name(url: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1] or "page"
    return name if name.lower().endswith(".pdf") else name + ".pdf"


def _decode(body: bytes, charset: str | None) -> str | None:
    from pplx_demo.ingest.archive import UnusableInput  # noqa: PLC0415
    from pplx_demo.ingest.formats import decode_text  # noqa: PLC0415

    if charset:
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return decode_text(body)[0]
    except UnusableInput:
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


def crawl(
    start_urls: Sequence[str],
    options: CrawlOptions,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> CrawlReport:
    """Crawl from `start_urls` within `options`; documents are in discovery order.

    progress(done, total) is called from the calling thread after each page; `total` is the number
    of pages known so far (capped at max_pages). Raises Cancelled when `cancel` is set, DemoError
    for start URLs that are not http(s) web addresses.
    """
    starts = _validate_starts(start_urls)
    crawler = _Crawler(starts, options, cancel or threading.Event())
    report = CrawlReport()
    seen = crawler.seen
    queue: deque[tuple[str, int, int]] = deque((url, 0, i) for i, url in enumerate(starts))
    discovered = len(starts)  # discovery index of the next queued URL: documents keep this order
    started = completed = 0
    results: list[tuple[int, Document]] = []
    content_seen: dict[str, str] = {}
    in_flight: dict[Future[_Page], tuple[int, int]] = {}
    workers = max(1, options.concurrency)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl") as pool:
            try:
                while queue or in_flight:
                    crawler.check_running()
                    stop = _stop_reason(crawler, started, options)
                    if stop is None:
                        while queue and len(in_flight) < workers and started < options.max_pages:
                            url, depth, index = queue.popleft()
                            in_flight[pool.submit(crawler.fetch, url, depth)] = (depth, index)
                            started += 1
                    elif queue:
                        report.stopped = report.stopped or stop
                        report.skipped.extend((url, f"not fetched: {stop}") for url, _, _ in queue)
                        queue.clear()
                    if not in_flight:
                        continue
                    done, _ = wait(list(in_flight), timeout=0.1, return_when=FIRST_COMPLETED)
                    for future in done:
                        depth, index = in_flight.pop(future)
                        page = future.result()
                        completed += 1
                        _record(page, index, report, results, content_seen)
                        discovered = _enqueue(page, depth, crawler, options, seen, queue, report, discovered)
                        if progress is not None:
                            total = min(options.max_pages, completed + len(in_flight) + len(queue))
                            progress(completed, max(completed, total))
                if report.stopped is None and (crawler.over_total or crawler.remaining() <= 0):
                    report.stopped = _stop_reason(crawler, started, options)
            except BaseException:
                crawler.abort.set()  # in-flight workers stop at their next block
                raise
    finally:
        crawler.client.close()
        crawler.parser.close()
    report.documents = [doc for _, doc in sorted(results, key=lambda item: item[0])]
    return report


_NOT_QUEUED = "not queued: "


def _validate_starts(start_urls: Sequence[str]) -> list[str]:
    if not start_urls:
        raise DemoError("Give at least one start URL (http:// or https://).")
    starts = []
    for raw in start_urls:
        url = normalise_url(raw)
        if url is None:
            raise DemoError(f"Not a web address the crawler can fetch: {raw!r} (only http:// and https:// URLs).")
        starts.append(url)
    return list(dict.fromkeys(starts))


def _stop_reason(crawler: _Crawler, started_pages: int, options: CrawlOptions) -> str | None:
    """Which limit stops further fetching, or None."""
    if crawler.over_total:
        return f"total byte limit of {options.max_total_bytes:,} reached"
    if crawler.remaining() <= 0:
        return f"time limit of {options.max_seconds:g} s reached"
    if started_pages >= options.max_pages:
        return f"page limit of {options.max_pages} reached"
    return None


def _record(
    page: _Page,
    index: int,
    report: CrawlReport,
    results: list[tuple[int, Document]],
    content_seen: dict[str, str],
) -> None:
    if page.failed:
        report.failed.append((page.url, page.failed))
        return
    if page.skipped:
        report.skipped.append((page.url, page.skipped))
        if page.hint is not None:
            report.hints[page.url] = page.hint
        return
    report.fetched.append(page.final_url or page.url)
    doc = page.document
    if doc is None:
        return
    digest = hashlib.sha1(doc.text.encode("utf-8", errors="replace")).hexdigest()
    if digest in content_seen:
        report.skipped.append((page.final_url or page.url, f"same text as {content_seen[digest]}"))
        return
    content_seen[digest] = doc.uri
    results.append((index, doc))


def _enqueue(
    page: _Page,
    depth: int,
    crawler: _Crawler,
    options: CrawlOptions,
    seen: set[str],
    queue: deque[tuple[str, int, int]],
    report: CrawlReport,
    discovered: int,
) -> int:
    """Queue the page's new in-scope links one level deeper; out-of-scope ones are reported skipped."""
    if page.final_url:
        seen.add(page.final_url)
    for link in page.links:
        if link in seen:
            continue
        seen.add(link)
        problem = crawler.scope.problem(link)
        if problem is None and depth + 1 > options.max_depth:
            problem = f"depth limit of {options.max_depth} reached"
        if problem:
            report.skipped.append((link, _NOT_QUEUED + problem))
            continue
        queue.append((link, depth + 1, discovered))
        discovered += 1
    return discovered
