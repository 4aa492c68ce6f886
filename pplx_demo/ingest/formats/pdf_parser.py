"""PDF files -> one Document with page spans (`page_of` maps a character offset back to its page);
extraction stops at the page that crosses the character limit."""

from __future__ import annotations

import io
import logging
import warnings

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput, short_error
from pplx_demo.ingest.formats.decoding import _normalise_newlines, _stem
from pplx_demo.ingest.formats.report import _Sink, check_text_length


def _parse_pdf(name: str, data: bytes, sink: _Sink) -> None:
    import pypdf  # noqa: PLC0415
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    if b"%PDF" not in data[:1024]:
        raise UnusableInput("not a PDF (no %PDF header); is the file extension right?")
    limit = sink.settings.max_chars_per_document
    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnusableInput("the PDF is password-protected")
            pages, chars = [], 0
            n_pages = len(reader.pages)
            for page in reader.pages:
                pages.append(_normalise_newlines(page.extract_text() or "").strip())
                chars += len(pages[-1]) + 2
                # Stop at the page that crosses the limit: the rest would be extracted for nothing.
                check_text_length(chars - 2, limit, f"by page {len(pages)} of {n_pages}; extraction stopped")
            info_title = (reader.metadata.title if reader.metadata else None) or None
        except UnusableInput:
            raise
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
            raise UnusableInput(f"not a readable PDF (corrupt or truncated: {short_error(exc)})")
    # Page spans let a chunk be traced back to its page: [page number (1-based), start, end).
    parts, spans, pos = [], [], 0
    for number, page_text in enumerate(pages, start=1):
        if not page_text:
            continue
        if parts:
            pos += 2
        spans.append([number, pos, pos + len(page_text)])
        parts.append(page_text)
        pos += len(page_text)
    text = "\n\n".join(parts)
    if not text.strip():
        raise UnusableInput("no extractable text (a scanned PDF? OCR is not supported)")
    title = str(info_title).strip() if info_title and str(info_title).strip() else _stem(name)
    sink.add(Document(uri=name, title=title, text=text, metadata={"format": "pdf", "pages": len(pages), "page_spans": spans}))


class _quiet_pypdf:  # noqa: N801 - used as a context manager
    """pypdf logs and warns on every small defect it repairs; a rejection line says enough."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("pypdf")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        self._logger.setLevel(self._level)


def page_of(document: Document, char_offset: int) -> int | None:
    """1-based PDF page holding `char_offset` of the document text, or None when not a PDF."""
    for number, start, end in document.metadata.get("page_spans", []):
        if start <= char_offset < end + 2:
            return number
    return None
