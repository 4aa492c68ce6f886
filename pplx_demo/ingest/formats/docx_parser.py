"""Word .docx files -> one Document (paragraphs, then table rows): every zip part is checked and the
body XML size-bounded before python-docx opens the file."""

from __future__ import annotations

import io
import zipfile

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput, check_container, fmt_bytes, short_error
from pplx_demo.ingest.formats.decoding import _stem
from pplx_demo.ingest.formats.report import _Sink, check_text_length

# Bytes of XML allowed per allowed character of text before python-docx parses the body.
DOCX_XML_BYTES_PER_CHAR = 16


def _parse_docx(name: str, data: bytes, sink: _Sink) -> None:
    settings = sink.settings
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise UnusableInput(f"not a readable .docx (corrupt or truncated: {short_error(exc)})")
    with archive:
        # python-docx inflates every part itself: all of them pass the .zip per-entry checks first.
        entries = check_container(archive, settings, label=".docx")
        body = next((i for i in entries if i.filename == "word/document.xml"), None)
        xml_cap = DOCX_XML_BYTES_PER_CHAR * settings.max_chars_per_document
        if body is not None and body.file_size > xml_cap:
            raise UnusableInput(
                f".docx part word/document.xml is {fmt_bytes(body.file_size)}, refused before parsing: the limit "
                f"is {fmt_bytes(xml_cap)} ({DOCX_XML_BYTES_PER_CHAR} bytes of XML per allowed character; "
                f"PPLX_DEMO_MAX_CHARS_PER_DOCUMENT is {settings.max_chars_per_document:,})"
            )
    import docx  # noqa: PLC0415

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds on damaged files
        raise UnusableInput(f"not a readable .docx ({short_error(exc)})")
    blocks, title, chars = [], None, 0
    limit = settings.max_chars_per_document
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if title is None and style in ("Title", "Heading 1"):
            title = text
        blocks.append(text)
        chars += len(text) + 2
        check_text_length(chars - 2, limit, "reading stopped")
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            line = " | ".join(dict.fromkeys(c for c in cells if c))  # merged cells repeat their text
            if line:
                blocks.append(line)
                chars += len(line) + 2
                check_text_length(chars - 2, limit, "reading stopped")
    text = "\n\n".join(blocks)
    if not text.strip():
        raise UnusableInput("no text found in the document")
    core_title = (document.core_properties.title or "").strip()
    sink.add(Document(uri=name, title=core_title or title or _stem(name), text=text, metadata={"format": "docx"}))
