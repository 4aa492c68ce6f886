"""The crawler against a real HTTP server on 127.0.0.1: scope, limits, robots.txt, redirects, the SSRF guard."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.ingest_files import make_pdf
from pplx_demo.config import Settings
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.ingest.crawler import (
    USER_AGENT,
    BlockedAddress,
    CrawlOptions,
    address_problem,
    crawl,
    link_local_problem,
    normalise_url,
)
from pplx_demo.ingest.crawler.guard import _AddressPolicy, _GuardedBackend


def _page(title: str, body: str, links: tuple[str, ...] = ()) -> bytes:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>"
        f"<p>{body}</p><ul>{anchors}</ul></main></body></html>"
    ).encode()


BIG = b"<html><body><p>" + b"lorem ipsum dolor " * 20_000 + b"</p></body></html>"  # ~360 KB

SITE: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"),
    "/": (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        _page(
            "Home",
            "Welcome to the test site about harbour cranes and their history.",
            (
                "/a.html", "/a.html#section", "b.html", "/private/secret.html", "/loop1", "/slow",
                "/big", "/big-stream", "/notes.txt", "/report.pdf", "/image.png", "/to-private",
                "/deep/1.html", "http://example.invalid/elsewhere", "mailto:someone@example.com",
                "/redirect-to-a", "/moved",
            ),
        ),
    ),
    "/a.html": (200, {"Content-Type": "text/html"}, _page("Page A", "Cranes lift containers off ships.", ("/",))),
    "/b.html": (200, {"Content-Type": "text/html"}, _page("Page B", "Bollards hold the mooring lines.")),
    "/private/secret.html": (200, {"Content-Type": "text/html"}, _page("Secret", "Robots must not read this.")),
    "/loop1": (302, {"Location": "/loop2"}, b""),
    "/loop2": (302, {"Location": "/loop1"}, b""),
    "/redirect-to-a": (301, {"Location": "/a.html"}, b""),
    "/moved": (301, {"Location": "/new/place.html"}, b""),
    "/new/place.html": (200, {"Content-Type": "text/html"}, _page("New place", "The page moved here.")),
    "/to-private": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
    "/to-aws-v6": (302, {"Location": "http://[fd00:ec2::254]/latest/meta-data/"}, b""),
    "/to-alibaba": (301, {"Location": "http://100.100.100.200/latest/meta-data/"}, b""),
    "/to-mapped": (307, {"Location": "http://[::ffff:169.254.169.254]/"}, b""),
    "/control.txt": (200, {"Content-Type": "text/plain; charset=utf-8"}, b"bell\x07 and escape\x1b text\x00."),
    "/spin.html": (200, {"Content-Type": "text/html"},
                   b"<html><body>" + b"<div><p>x <b>y</b></p></div>" * 20_000 + b"</body></html>"),
    "/big": (200, {"Content-Type": "text/html"}, BIG),
    "/notes.txt": (200, {"Content-Type": "text/plain; charset=utf-8"}, b"Plain notes about tide tables and quays."),
    "/report.pdf": (200, {"Content-Type": "application/pdf"}, make_pdf(["Annual report of the harbour authority."])),
    "/image.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    "/deep/1.html": (200, {"Content-Type": "text/html"}, _page("Deep 1", "Level one of the deep chain.", ("/deep/2.html",))),
    "/deep/2.html": (200, {"Content-Type": "text/html"}, _page("Deep 2", "Level two of the deep chain.", ("/deep/3.html",))),
    "/deep/3.html": (200, {"Content-Type": "text/html"}, _page("Deep 3", "Level three of the deep chain.")),
}
SLOW_SECONDS = 1.5


class _Handler(BaseHTTPRequestHandler):
    requests: list[tuple[str, str]] = []  # (path, user agent) of every request, for assertions
    times: list[tuple[str, float]] = []  # (path, time.monotonic()) of every request

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        type(self).requests.append((self.path, self.headers.get("User-Agent", "")))
        type(self).times.append((self.path, time.monotonic()))
        try:
            if self.path == "/slow":
                time.sleep(SLOW_SECONDS)
                self._send(200, {"Content-Type": "text/html"}, _page("Slow", "Finally here."))
            elif self.path == "/big-stream":
                # No Content-Length: the crawler must stop reading on its own.
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                for _ in range(400):
                    self.wfile.write(b"<p>" + b"x" * 1021)
            elif self.path in SITE:
                self._send(*SITE[self.path])
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the crawler hung up on purpose (timeout, size limit)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _options(settings: Settings | None = None, **overrides) -> CrawlOptions:
    values = dict(
        max_pages=40, max_depth=2, max_page_bytes=100_000, max_total_bytes=5_000_000, max_seconds=30,
        timeout_s=0.5, concurrency=3, delay_s=0.0, private_allowlist=("127.0.0.1/32",),
    )
    values.update(overrides)
    return CrawlOptions.from_settings(settings or Settings(), **values)


@pytest.fixture(scope="module")
def full_crawl(site):
    _Handler.requests.clear()
    calls: list[tuple[int, int]] = []
    report = crawl([site + "/"], _options(same_host=False), progress=lambda d, t: calls.append((d, t)))
    return report, calls, list(_Handler.requests)


def _reason(entries: list[tuple[str, str]], url: str) -> str:
    reasons = [r for u, r in entries if u == url]
    assert reasons, f"{url} not in {entries}"
    return reasons[0]


def test_follows_links_dedups_and_keeps_html_text_and_pdf(site, full_crawl):
    report, _, _ = full_crawl
    titles = {d.title for d in report.documents}
    assert {"Home", "Page A", "Page B", "Deep 1", "Deep 2"} <= titles
    uris = [d.uri for d in report.documents]
    assert len(uris) == len(set(uris))
    assert site + "/a.html" in uris and not any("#" in u for u in uris)
    pdf = next(d for d in report.documents if d.uri.endswith("/report.pdf"))
    assert "Annual report" in pdf.text and pdf.metadata["pages"] == 1
    notes = next(d for d in report.documents if d.uri.endswith("/notes.txt"))
    assert notes.text == "Plain notes about tide tables and quays."
    home = next(d for d in report.documents if d.title == "Home")
    assert "harbour cranes" in home.text and home.metadata["depth"] == 0
    assert report.documents[0].title == "Home"  # discovery order


def test_robots_txt_disallow_is_honoured_with_our_user_agent(site, full_crawl):
    report, _, requests = full_crawl
    assert _reason(report.skipped, site + "/private/secret.html") == "disallowed by robots.txt"
    paths = [p for p, _ in requests]
    assert "/private/secret.html" not in paths
    assert paths.count("/robots.txt") == 1
    assert {ua for _, ua in requests} == {USER_AGENT}


def test_redirect_loop_is_detected(site, full_crawl):
    report, _, _ = full_crawl
    assert "redirect loop" in _reason(report.failed, site + "/loop1")


def test_redirect_is_followed_to_its_target(site, full_crawl):
    report, _, _ = full_crawl
    moved = [d for d in report.documents if d.title == "New place"]
    assert [d.uri for d in moved] == [site + "/new/place.html"]
    # A redirect onto a page the crawl already has is not fetched twice.
    assert "already has" in _reason(report.skipped, site + "/redirect-to-a")
    assert sum(1 for d in report.documents if d.uri == site + "/a.html") == 1


def test_slow_page_times_out(site, full_crawl):
    report, _, _ = full_crawl
    assert "timed out" in _reason(report.failed, site + "/slow")


def test_oversized_pages_are_refused_with_and_without_content_length(site, full_crawl):
    report, _, _ = full_crawl
    assert "limit of 100,000" in _reason(report.skipped, site + "/big")
    assert "stopped reading" in _reason(report.skipped, site + "/big-stream")


def test_non_html_file_is_skipped_by_content_type(site, full_crawl):
    report, _, _ = full_crawl
    assert "image/png" in _reason(report.skipped, site + "/image.png")


def test_depth_limit_and_other_schemes(site, full_crawl):
    report, _, _ = full_crawl
    assert "depth limit of 2" in _reason(report.skipped, site + "/deep/3.html")
    assert not any(u.startswith("mailto:") for u, _ in report.skipped + report.failed)


def test_redirect_towards_a_private_address_is_refused_at_connection(site, full_crawl):
    report, _, _ = full_crawl
    reason = _reason(report.skipped, site + "/to-private")
    assert reason.startswith("blocked:") and "169.254.169.254" in reason and "link-local" in reason


def test_progress_is_reported_per_page(full_crawl):
    report, calls, _ = full_crawl
    assert calls, "no progress calls"
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == len(calls)
    assert all(d <= t for d, t in calls)


def test_same_host_by_default_and_path_prefix(site):
    report = crawl([site + "/"], _options())
    assert "other host" in _reason(report.skipped, "http://example.invalid/elsewhere")
    prefixed = crawl([site + "/deep/1.html"], _options(path_prefix="/deep/", max_depth=5))
    assert [d.title for d in prefixed.documents] == ["Deep 1", "Deep 2", "Deep 3"]
    assert all("/deep/" in u for u in prefixed.fetched)


def test_page_limit_stops_the_crawl(site):
    report = crawl([site + "/"], _options(max_pages=3, concurrency=1))
    assert len(report.fetched) + len(report.failed) + sum(
        1 for _, r in report.skipped if not r.startswith(("not queued", "not fetched"))
    ) == 3
    assert report.stopped == "page limit of 3 reached"
    assert any(r == "not fetched: page limit of 3 reached" for _, r in report.skipped)


def test_total_byte_limit_stops_the_crawl(site):
    limit = len(SITE["/"][2]) + 50  # the home page fits, the next page does not
    report = crawl([site + "/"], _options(max_total_bytes=limit, concurrency=1))
    assert report.stopped == f"total byte limit of {limit:,} reached"
    assert [d.title for d in report.documents] == ["Home"]
    assert any(r == f"total byte limit of {limit:,} reached" for _, r in report.skipped)
    assert any(r.startswith("not fetched: total byte limit") for _, r in report.skipped)


def test_time_limit(site):
    began = time.monotonic()
    report = crawl([site + "/slow"], _options(max_seconds=0.3, timeout_s=5))
    assert time.monotonic() - began < 1.4
    assert report.failed and "timed out" in report.failed[0][1]


def test_politeness_delay_spaces_requests(site):
    _Handler.times.clear()
    began = time.monotonic()
    report = crawl([site + "/a.html"], _options(delay_s=0.4, concurrency=2, max_depth=1))
    assert report.fetched == [site + "/a.html", site + "/"]  # two pages: one pause between them
    stamps = dict(_Handler.times)
    # Measured at the server: the second page is asked for at least delay_s after the first. (The
    # crawl as a whole also starts its parser process, about a second on a busy machine.)
    assert 0.4 - 0.02 <= stamps["/"] - stamps["/a.html"] < 10.0  # the upper bound only catches a hang
    assert time.monotonic() - began < 20.0


def test_cancel_raises_cancelled(site):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        crawl([site + "/"], _options(), cancel=cancel)


def test_ssrf_guard_refuses_loopback_without_opt_in(site):
    _Handler.requests.clear()
    report = crawl([site + "/"], _options(private_allowlist=()))
    assert not report.documents and not report.fetched
    reason = _reason(report.skipped, site + "/")
    assert reason.startswith("blocked:") and "loopback" in reason
    assert report.hints[site + "/"] == ("PPLX_DEMO_ALLOW_PRIVATE", "--allow-private")
    assert _Handler.requests == []  # refused before any connection, robots.txt included
    opted_in = crawl([site + "/a.html"], _options(private_allowlist=(), allow_private=True, max_depth=0))
    assert [d.title for d in opted_in.documents] == ["Page A"]


def test_ssrf_guard_resolves_names(site):
    port = site.rsplit(":", 1)[1]
    report = crawl([f"http://localhost:{port}/"], _options(private_allowlist=()))
    assert report.skipped and "loopback" in report.skipped[0][1]


def test_start_urls_must_be_web_addresses():
    for bad in (["file:///etc/passwd"], ["ftp://example.com/"], ["not a url"], []):
        with pytest.raises(DemoError):
            crawl(bad, _options())


@pytest.mark.parametrize(
    "address, blocked",
    [
        ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.0.0.1", "private"),
        ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("169.254.169.254", "link-local"),
        ("100.64.0.1", "not globally routable"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"), ("198.18.0.1", "private"),
        ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fe80::1%1", "link-local"),
        ("fc00::1", "private"), ("fd12:3456::1", "private"), ("fec0::1", "site-local"), ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:10.1.2.3", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"), ("::127.0.0.1", "reserved"),
        ("2002:7f00:1::", "6to4 loopback"), ("2002:a00:1::", "6to4 private"), ("2001:db8::1", "private"),
        ("64:ff9b::7f00:1", "reserved"),
        ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.216.34", None), ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None), ("2002:808:808::1", None),
    ],
)
def test_address_classifier(address, blocked):
    problem = address_problem(address)
    if blocked is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(blocked)


def test_url_normalisation():
    assert normalise_url("HTTP://Example.COM:80/a/./b/../c?x=1#frag") == "http://example.com/a/c?x=1"
    assert normalise_url("https://example.com:443") == "https://example.com/"
    assert normalise_url("https://example.com:8443/dir/") == "https://example.com:8443/dir/"
    assert normalise_url("/x y", "http://h.test/a/") == "http://h.test/x%20y"
    assert normalise_url("%7Euser", "http://h.test/") == "http://h.test/~user"
    assert normalise_url("javascript:alert(1)", "http://h.test/") is None
    assert normalise_url("http://[::1]:8080/p") == "http://[::1]:8080/p"
    assert normalise_url("http://bücher.example/") == "http://xn--bcher-kva.example/"


def test_each_connection_resolves_once_and_dials_the_validated_ip(site, monkeypatch):
    """DNS rebinding cannot swap the address: the name is looked up once per connection and the
    socket is opened to the literal IP that passed the check."""
    import ipaddress
    import socket

    lookups: list[str] = []
    dialled: list[str] = []
    real_getaddrinfo, real_create_connection = socket.getaddrinfo, socket.create_connection

    def spy_getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def spy_create_connection(address, *args, **kwargs):
        dialled.append(address[0])
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", spy_create_connection)
    port = site.rsplit(":", 1)[1]
    report = crawl([f"http://localhost:{port}/a.html"],
                   _options(max_depth=0, private_allowlist=("127.0.0.0/8", "::1/128")))
    assert [d.title for d in report.documents] == ["Page A"]
    assert dialled and all(ipaddress.ip_address(h) for h in dialled)  # only literal IPs are dialled
    # At most one name lookup per connection (several dials when an address family refuses).
    assert 1 <= lookups.count("localhost") <= len(dialled)


class _ClosedSiteHandler(_Handler):
    """robots.txt answers 503: RFC 9309 says the whole site is off limits for now."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/robots.txt":
            self._send(503, {"Content-Type": "text/plain"}, b"busy")
        else:
            super().do_GET()


def test_robots_server_error_closes_the_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosedSiteHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.html"
        report = crawl([url], _options())
        assert not report.documents and "HTTP 503" in _reason(report.skipped, url)
    finally:
        server.shutdown()
        server.server_close()


def test_cancel_during_the_crawl(site):
    cancel = threading.Event()
    pages: list[int] = []

    def stop_after_first(done: int, total: int) -> None:
        pages.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        crawl([site + "/"], _options(concurrency=1), progress=stop_after_first, cancel=cancel)
    assert pages == [1]


def test_https_certificates_are_verified_through_the_guarded_connection(tmp_path):
    """The SSRF guard dials the validated IP itself; TLS must still verify the certificate (here: refuse
    a self-signed one) rather than silently trusting whatever answers."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate (Debian's openssl package)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/a.html"
        report = crawl([url], _options(max_depth=0, timeout_s=5))
        assert not report.documents and not report.fetched
        problems = " ".join(reason for _, reason in report.failed + report.skipped).lower()
        assert "certificate" in problems or "ssl" in problems, (report.failed, report.skipped)
    finally:
        server.shutdown()
        server.server_close()



# ---------------------------------------------------------------- hardening: link-local / metadata, robots, parsing


@pytest.fixture()
def dialled(monkeypatch) -> list[str]:
    """Every address a socket was opened to during the test."""
    seen: list[str] = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        seen.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data/", "link-local address"),
    ("http://169.254.170.2/v2/credentials", "link-local address"),
    ("http://[fe80::1]/", "link-local address"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "AWS metadata (IPv6) address"),
    ("http://100.100.100.200/latest/meta-data/", "Alibaba Cloud metadata address"),
    ("http://168.63.129.16/machine", "Azure host services (WireServer) address"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped link-local address"),
    ("http://[::169.254.169.254]/", "IPv4-compatible link-local address"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4 link-local address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 link-local address"),
])
def test_allow_private_never_opens_link_local_or_metadata_addresses(url, kind, dialled):
    report = crawl([url], _options(allow_private=True, private_allowlist=("0.0.0.0/0", "::/0"), max_depth=0))
    assert not report.documents and not report.fetched and not report.failed
    reason = _reason(report.skipped, normalise_url(url))
    assert reason.startswith("blocked:") and kind in reason and "PPLX_DEMO_ALLOW_LINK_LOCAL" in reason
    assert "--allow" not in reason  # front-end wording is the front ends' job
    assert report.hints == {normalise_url(url): ("PPLX_DEMO_ALLOW_LINK_LOCAL", None)}
    assert dialled == []  # refused before connecting (robots.txt included)


@pytest.mark.parametrize("path, target", [
    ("/to-private", "169.254.169.254"), ("/to-aws-v6", "fd00:ec2::254"), ("/to-alibaba", "100.100.100.200"),
    ("/to-mapped", "::ffff:169.254.169.254"),
])
def test_redirect_hops_to_link_local_are_refused_with_private_allowed(site, path, target, dialled):
    report = crawl([site + path], _options(allow_private=True, private_allowlist=(), same_host=False, max_depth=0))
    reason = _reason(report.skipped, site + path)
    assert reason.startswith("blocked:") and "PPLX_DEMO_ALLOW_LINK_LOCAL" in reason
    assert set(dialled) == {"127.0.0.1"}  # the start host only; the redirect target was never dialled


def test_address_policy_keeps_the_two_settings_separate():
    private_only = _AddressPolicy(allow_private=True, allow_link_local=False, allowlist=("0.0.0.0/0",))
    assert private_only.problem("10.0.0.1") is None and private_only.problem("127.0.0.1") is None
    assert private_only.problem("169.254.169.254") == ("link-local address", "PPLX_DEMO_ALLOW_LINK_LOCAL")
    link_local_only = _AddressPolicy(allow_private=False, allow_link_local=True)
    assert link_local_only.problem("169.254.169.254") is None and link_local_only.problem("fd00:ec2::254") is None
    assert link_local_only.problem("10.0.0.1") == ("private address", "PPLX_DEMO_ALLOW_PRIVATE")
    for public in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "10.0.0.1", "::1", "fd12::1", "2002:808:808::1"):
        assert link_local_problem(public) is None, public
    assert link_local_problem("fe80::1%eth0") == "link-local address"
    assert link_local_problem("64:ff9b:1:a9fe:a9:fe00::") == "NAT64 link-local address"  # RFC 6052 /48 layout
    assert link_local_problem("2001:0:4136:e378:8000:63bf:5601:5601") == "Teredo link-local address"  # ~169.254.170.254


def test_blocked_address_names_setting_and_flag_as_structure():
    with pytest.raises(BlockedAddress) as private:
        _GuardedBackend(_AddressPolicy(False, False)).connect_tcp("127.0.0.1", 9)
    assert (private.value.setting, private.value.cli_flag) == ("PPLX_DEMO_ALLOW_PRIVATE", "--allow-private")
    assert "loopback" in str(private.value) and "--allow-private" not in str(private.value)
    assert "allow_private" not in str(private.value)
    with pytest.raises(BlockedAddress) as link_local:
        _GuardedBackend(_AddressPolicy(True, False)).connect_tcp("169.254.169.254", 80)
    assert link_local.value.setting == "PPLX_DEMO_ALLOW_LINK_LOCAL" and "link-local" in str(link_local.value)


class _RobotsRulesHandler(_Handler):
    """A site whose robots.txt uses a wildcard rule and an end-anchored Allow (urllib got both wrong)."""

    robots_status = 200
    ROBOTS = b"User-agent: *\nDisallow: /*?s=\nDisallow: /private/\nAllow: /private/public$\n"
    LINKS = ("/search?s=cranes", "/docs/page.html?s=x", "/search?page=2", "/private/public",
             "/private/public/more", "/private/secret")

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests.append((self.path, self.headers.get("User-Agent", "")))
        if self.path == "/robots.txt":
            body = self.ROBOTS if self.robots_status == 200 else b"gone"
            self._send(self.robots_status, {"Content-Type": "text/plain"}, body)
        elif self.path == "/":
            self._send(200, {"Content-Type": "text/html"}, _page("Robots home", "Links to rule cases.", self.LINKS))
        else:
            self._send(200, {"Content-Type": "text/html"}, _page(f"Page {self.path}", f"Text of {self.path}."))


@pytest.mark.parametrize("robots_status", [200, 404])
def test_robots_wildcards_and_end_anchors(robots_status):
    handler = type("H", (_RobotsRulesHandler,), {"robots_status": robots_status, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        report = crawl([base + "/"], _options(max_depth=1))
        fetched = {u[len(base):] for u in report.fetched}
        requested = {p for p, _ in handler.requests}
        if robots_status == 404:  # RFC 9309: no robots.txt (4xx) means everything is allowed
            assert fetched == {"/", *_RobotsRulesHandler.LINKS}
            return
        assert fetched == {"/", "/search?page=2", "/private/public"}
        for path in ("/search?s=cranes", "/docs/page.html?s=x", "/private/public/more", "/private/secret"):
            assert _reason(report.skipped, base + path) == "disallowed by robots.txt"
            assert path not in requested
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_that_makes_the_parser_spin_fails_alone(site):
    """trafilatura needs minutes for 560 KB of small nested blocks; the page is stopped at the parse time
    limit in the parser process and the other page loads."""
    settings = replace(Settings(), parse_timeout_s=2.0)
    began = time.monotonic()
    report = crawl([site + "/spin.html", site + "/a.html"], _options(settings, max_depth=0, concurrency=2, max_page_bytes=1_000_000))
    assert [d.title for d in report.documents] == ["Page A"]
    assert _reason(report.failed, site + "/spin.html") == (
        "took too long to parse (over 2 s, setting PPLX_DEMO_PARSE_TIMEOUT_S)")
    assert time.monotonic() - began < 30


def test_crawled_text_is_cleaned_and_held_to_the_character_limit(site):
    report = crawl([site + "/control.txt"], _options(max_depth=0))
    assert [d.text for d in report.documents] == ["bell and escape text."]
    tight = replace(Settings(), max_chars_per_document=1000)
    report = crawl([site + "/big", site + "/notes.txt"], _options(tight, max_depth=0, max_page_bytes=1_000_000))
    assert "refused before parsing" in _reason(report.skipped, site + "/big")
    report = crawl([site + "/notes.txt"], _options(replace(Settings(), max_chars_per_document=10), max_depth=0))
    assert "the limit is 10 per document" in _reason(report.skipped, site + "/notes.txt")
