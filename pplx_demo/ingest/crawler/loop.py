"""The crawl itself: `crawl` runs a pool of workers over a queue of URLs; `_Crawler` holds what they
share (guarded client, robots.txt cache, politeness clock, byte count, parser process), fetches one
URL with redirects followed by hand, and the helpers record pages and queue their links."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence

import httpx
from protego import Protego

from pplx_demo.documents import Document
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.ingest.crawler.guard import BlockedAddress, _AddressPolicy, _GuardedTransport
from pplx_demo.ingest.crawler.links import _host, _origin, _Scope, normalise_url
from pplx_demo.ingest.crawler.options import CrawlOptions, CrawlReport
from pplx_demo.ingest.crawler.pages import _content_kind, _Page, parse_page
from pplx_demo.ingest.crawler.robots import _MAX_CRAWL_DELAY_S, _ROBOTS_MAX_BYTES, _Robots, _RobotsUnreachable
from pplx_demo.ingest.worker import ParseStopped, ParseTimeout, ParseWorker, WorkerDied

_REDIRECT_CODES = (301, 302, 303, 307, 308)


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


class _TooLarge(Exception):
    """The page (or the crawl) went over a byte limit."""


class _SlowPage(Exception):
    """The page kept trickling in past the request time limit."""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
