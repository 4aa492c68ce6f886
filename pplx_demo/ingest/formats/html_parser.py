"""HTML pages -> one Document each: size-checked first, then trafilatura's main text (visible text as
the fallback). The crawler uses `check_html_size` and `html_to_text` too."""

from __future__ import annotations

import re

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput, fmt_bytes
from pplx_demo.ingest.formats.decoding import _normalise_newlines, _stem, decode_text
from pplx_demo.ingest.formats.report import _Sink

# Bytes of input allowed per allowed character of text before the expensive parse is even tried.
HTML_BYTES_PER_CHAR = 8


def check_html_size(n_bytes: int, max_chars: int) -> None:
    """UnusableInput for HTML too big to be worth parsing: over `HTML_BYTES_PER_CHAR` bytes per
    allowed character (cheap, before trafilatura's seconds and hundreds of MB)."""
    cap = HTML_BYTES_PER_CHAR * max_chars
    if n_bytes > cap:
        raise UnusableInput(
            f"HTML of {fmt_bytes(n_bytes)} is refused before parsing: the limit is {fmt_bytes(cap)} "
            f"({HTML_BYTES_PER_CHAR} bytes per allowed character; PPLX_DEMO_MAX_CHARS_PER_DOCUMENT is "
            f"{max_chars:,}); split the page"
        )


def _parse_html(name: str, data: bytes, sink: _Sink) -> None:
    check_html_size(len(data), sink.settings.max_chars_per_document)
    html, encoding = decode_text(data)
    text, title = html_to_text(html)
    if not text.strip():
        raise UnusableInput("no readable text in the page")
    sink.add(Document(uri=name, title=title or _stem(name), text=text, metadata={"format": "html", "encoding": encoding}))


def html_to_text(html: str) -> tuple[str, str | None]:
    """(main text, title) of an HTML page: trafilatura's main content, else all visible text.

    Callers bound the input first (`check_html_size`): trafilatura takes seconds per MB.
    """
    import trafilatura  # noqa: PLC0415 - slow import, only for HTML

    text, title = "", None
    try:
        result = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=True)
    except Exception:  # noqa: BLE001 - trafilatura on hostile markup: fall back to plain visible text
        result = None
    if result is not None:
        text = (getattr(result, "text", None) or "").strip()
        title = getattr(result, "title", None)
    page_title, visible = _visible_text(html)
    title = page_title or title
    if not text:
        text = visible
    # trafilatura puts one block per line; blank lines let the chunker see them as paragraphs.
    text = re.sub(r"\n+", "\n\n", _normalise_newlines(text)).strip()
    return text, (title.strip() if title else None)


def _visible_text(html: str) -> tuple[str | None, str]:
    try:
        import lxml.html  # noqa: PLC0415

        root = lxml.html.fromstring(html)
    except Exception:  # noqa: BLE001
        return None, ""
    title_el = root.find(".//title")
    title = title_el.text_content().strip() if title_el is not None and title_el.text_content() else None
    for bad in root.xpath("//script|//style|//noscript|//template|//head"):
        bad.drop_tree()
    lines = [line.strip() for line in root.text_content().splitlines()]
    return title or None, "\n".join(line for line in lines if line)
