"""A fetched body -> one Document and its links (`parse_page`, run in the parser process): the content
kind from the Content-Type, text decoding, meta robots, the upload limits applied to page text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput
from pplx_demo.ingest.crawler.links import _extract_links, _host, _meta_robots
from pplx_demo.ingest.text import clean_document

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown")
_PDF_TYPES = ("application/pdf", "application/x-pdf")


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
