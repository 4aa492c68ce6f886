"""Plain text and markdown files -> one Document each (markdown: the first '# Title' is the title)."""

from __future__ import annotations

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput
from pplx_demo.ingest.formats.decoding import _normalise_newlines, _stem, decode_text
from pplx_demo.ingest.formats.report import _Sink, check_text_length

_MARKDOWN_TITLE_CHARS = 5000  # the title is looked for at the top of a markdown file only


def _parse_text(name: str, data: bytes, sink: _Sink) -> None:
    text, encoding = decode_text(data)
    text = _normalise_newlines(text)
    check_text_length(len(text), sink.settings.max_chars_per_document)
    if not text.strip():
        raise UnusableInput("no text found (only whitespace)")
    markdown = name.lower().endswith((".md", ".markdown"))
    title = markdown_title(text) if markdown else None
    fmt = "markdown" if markdown else "text"
    sink.add(Document(uri=name, title=title or _stem(name), text=text, metadata={"format": fmt, "encoding": encoding}))


def markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading ("# Title", optional closing #s) in the top of a markdown text.

    Line by line with string methods: the old regex `^#\\s+(.+?)\\s*#*\\s*$` backtracked for minutes
    on "# a" + thousands of spaces + "x", holding the GIL.
    """
    for line in text[:_MARKDOWN_TITLE_CHARS].split("\n"):
        if not line.startswith("#") or len(line) < 2 or not line[1].isspace():
            continue
        title = line[1:].strip()
        closing = title.rstrip("#")
        if closing != title and (not closing or closing[-1].isspace()):  # "# Title ##": drop the closing run
            title = closing.rstrip()
        if title:
            return title
    return None
