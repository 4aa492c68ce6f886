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

Modules: `options` (CrawlOptions, CrawlReport), `guard` (the SSRF guard: address policy, guarded
httpx transport), `links` (canonical URLs, the crawl scope, links and meta robots of a page),
`robots` (one origin's robots.txt rules), `pages` (a fetched body -> Document and links, run in the
parser process) and `loop` (the crawl: workers, politeness clock, redirects, limits).
"""

from pplx_demo.ingest.crawler.guard import BlockedAddress, address_problem, link_local_problem
from pplx_demo.ingest.crawler.links import normalise_url
from pplx_demo.ingest.crawler.loop import crawl
from pplx_demo.ingest.crawler.options import USER_AGENT, CrawlOptions, CrawlReport
from pplx_demo.ingest.crawler.pages import parse_page

__all__ = ["USER_AGENT", "BlockedAddress", "CrawlOptions", "CrawlReport", "address_problem", "crawl",
           "link_local_problem", "normalise_url", "parse_page"]
