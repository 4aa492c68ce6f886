"""Uploads -> Documents: txt, md, html, pdf, docx, csv/tsv, json/jsonl and zip archives of these.

Nothing here raises on bad input: every file, archive entry or record that cannot be used becomes
a `Rejection` (which item, and why, in one line) in the `IngestReport`, and the rest still loads;
an unexpected exception while parsing one file or one record rejects that item only.
Limits come from `Settings` (file size, upload size, documents, characters per document, zip
entries, uncompressed zip size, compression ratio) and are applied before the work they bound:

- a file over the byte budget is not read; once `max_documents` documents are loaded, later
  files are refused unread;
- HTML over `HTML_BYTES_PER_CHAR` bytes per allowed character (`max_chars_per_document`) is
  refused before trafilatura parses it (markup is rarely 8x the text of a page; 16 MB with the
  default 2,000,000 characters); a .docx whose `word/document.xml` declares more than
  `DOCX_XML_BYTES_PER_CHAR` bytes per allowed character likewise; PDF text extraction stops at
  the page that crosses the character limit;
- JSON arrays (top level, under a 'data' / 'documents' / ... key, SQuAD articles, `{id: {...}}`
  corpora), JSONL and CSV/TSV are read one record at a time (`pplx_demo.ingest.jsonstream`, the
  csv reader row by row); a record over the character limit is refused as it is read, and reading
  stops at the document limit (the rejection says where).

Every Document passes through `pplx_demo.ingest.text.clean_document` exactly once, on its way
into the report (no lone surrogates, NULs or other control characters reach the tokenizers).

Archives follow the rules in `pplx_demo.ingest.archive` (unsafe names, symlinks, encryption,
bombs refused; nested archives refused, not opened). `.docx` files are zips too: every part gets
the per-entry checks of a `.zip` upload (`check_container`) before python-docx opens the file.

`load_files` parses in the calling process; `pplx_demo.ingest.worker.load_files_isolated` runs the
same code in a worker process with a wall-clock limit per file.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Sequence

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.ingest.archive import (
    UnusableInput,
    check_archive,
    check_container,
    entry_problem,
    fmt_bytes,
    is_ignored_entry,
    read_entry,
    short_error,
    too_big,
)
from pplx_demo.ingest.jsonstream import JsonCursor
from pplx_demo.ingest.text import clean_document, clean_text

SUPPORTED_SUFFIXES = (
    ".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx",
    ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".zip",
)  # fmt: skip

TEXT_FIELDS = ("text", "content", "contents", "body", "passage", "document", "paragraph", "context", "abstract")
TITLE_FIELDS = ("title", "name", "heading", "subject", "headline")
ID_FIELDS = ("_id", "id", "doc_id", "docid", "document_id", "pid", "uuid")
LIST_FIELDS = ("data", "documents", "docs", "corpus", "records", "items", "rows")  # JSON wrappers of a record list

# Bytes of input allowed per allowed character of text before the expensive parse is even tried.
HTML_BYTES_PER_CHAR = 8
DOCX_XML_BYTES_PER_CHAR = 16

_MAX_LINE_REJECTIONS = 20  # per file: more bad rows/lines are summarised in one line
_MARKDOWN_TITLE_CHARS = 5000  # the title is looked for at the top of a markdown file only


@dataclass
class Rejection:
    """A file, archive entry or record that was not loaded, and why (one line a person can act on)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass
class IngestReport:
    """Documents loaded plus one `Rejection` per file / entry / record that was refused."""

    documents: list[Document] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """Distinct source names of the loaded documents, in load order."""
        return list(dict.fromkeys(d.metadata.get("source", d.uri) for d in self.documents))

    def extend(self, other: "IngestReport") -> None:
        self.documents.extend(other.documents)
        self.rejected.extend(other.rejected)

    def reject(self, name: str, reason: str) -> None:
        """Add a rejection; its name and reason are cleaned like document text (names come from uploads)."""
        self.rejected.append(Rejection(clean_text(name), clean_text(reason)))

    def summary_lines(self) -> list[str]:
        """Human summary: one line of totals, then one line per rejection."""
        n_sources = len(self.sources)
        head = (
            f"Loaded {len(self.documents)} document{'s' if len(self.documents) != 1 else ''} "
            f"from {n_sources} source{'s' if n_sources != 1 else ''}; "
            f"{len(self.rejected)} rejected."
        )
        return [head] + [f"Rejected {r.name}: {r.reason}" for r in self.rejected]


@dataclass
class Budget:
    """Limits shared by every file of one load call (a worker process gets and returns one)."""

    settings: Settings
    documents_left: int
    upload_bytes_left: int
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, max_file_bytes: int | None = None) -> "Budget":
        file_limit = settings.max_file_bytes if max_file_bytes is None else max_file_bytes
        return cls(settings, settings.max_documents, settings.max_upload_bytes, file_limit)


def load_files(
    paths: Sequence[str | Path],
    settings: Settings,
    display_names: Sequence[str] | None = None,
) -> IngestReport:
    """Load every file (a folder is walked, sorted) of a supported format; reject the rest with a reason.

    `display_names` (same length as `paths`) replaces the file names shown in URIs and rejections,
    e.g. the original names of browser uploads that were saved under temporary paths.
    """
    budget = Budget.from_settings(settings)
    report = IngestReport()
    for file_path, file_name in expand_paths(paths, display_names, report):
        load_path(file_path, file_name, budget, report)
    return report


def load_bytes(name: str, data: bytes, settings: Settings, max_bytes: int | None = None) -> IngestReport:
    """Load one file given as bytes; the format comes from the name's suffix.

    `max_bytes` is the byte budget for this file (default: `settings.max_file_bytes`), e.g. the
    crawler's page limit.
    """
    budget = Budget.from_settings(settings, max_bytes)
    report = IngestReport()
    load_data_checked(name, data, budget, report)
    return report


def load_data_checked(name: str, data: bytes, budget: Budget, report: IngestReport) -> None:
    """`load_bytes` against a shared budget: the size checks, then the parse."""
    if len(data) > budget.max_file_bytes:
        report.reject(name, _too_big_for(len(data), budget))
        return
    budget.upload_bytes_left -= len(data)
    _load_data(name, data, budget, report, in_archive=False)


def expand_paths(
    paths: Sequence[str | Path], display_names: Sequence[str] | None, report: IngestReport
) -> Iterator[tuple[Path, str]]:
    """(file, display name) for every path, folders walked (sorted, hidden files skipped);
    missing or unreadable paths become rejections."""
    for i, raw in enumerate(paths):
        path = Path(raw)
        name = display_names[i] if display_names is not None and i < len(display_names) else path.name
        try:
            yield from _expand(path, name, report)
        except OSError as exc:
            report.reject(name, f"cannot read the folder ({exc.strerror or exc})")


def _expand(path: Path, name: str, report: IngestReport) -> Iterable[tuple[Path, str]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        if not files:
            report.reject(name, "folder has no files")
        for p in files:
            yield p, f"{name}/{p.relative_to(path).as_posix()}"
    elif path.is_file():
        yield path, name
    else:
        report.reject(name, "no such file")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def load_path(path: Path, name: str, budget: Budget, report: IngestReport) -> None:
    """Load one file from disk against the shared budget; never raises."""
    try:
        _load_path(path, name, budget, report)
    except Exception as exc:  # noqa: BLE001 - one file's surprise must not end the batch
        report.reject(name, f"could not be loaded ({type(exc).__name__}: {short_error(exc)})")


def _load_path(path: Path, name: str, budget: Budget, report: IngestReport) -> None:
    settings = budget.settings
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.reject(name, f"cannot read the file ({exc.strerror or exc})")
        return
    if size > budget.max_file_bytes:
        report.reject(name, _too_big_for(size, budget))
        return
    if size > budget.upload_bytes_left:
        report.reject(
            name,
            f"upload total would exceed {fmt_bytes(settings.max_upload_bytes)} "
            "(PPLX_DEMO_MAX_UPLOAD_BYTES); load it separately",
        )
        return
    if budget.documents_left <= 0:
        report.reject(name, _document_limit(settings, "file not read"))
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.reject(name, f"cannot read the file ({exc.strerror or exc})")
        return
    budget.upload_bytes_left -= len(data)
    _load_data(name, data, budget, report, in_archive=False)


def _too_big_for(size: int, budget: Budget) -> str:
    if budget.max_file_bytes == budget.settings.max_file_bytes:
        return too_big(size, budget.max_file_bytes, "MAX_FILE_BYTES")
    return f"file is {fmt_bytes(size)}; the limit here is {fmt_bytes(budget.max_file_bytes)}"


def _document_limit(settings: Settings, rest: str) -> str:
    return f"document limit of {settings.max_documents:,} reached (PPLX_DEMO_MAX_DOCUMENTS); {rest}"


def _too_long(chars: int, limit: int, partial: str | None = None) -> str:
    amount = f"{chars:,} characters" if partial is None else f"over {limit:,} characters ({partial})"
    return f"text is {amount}; the limit is {limit:,} per document (PPLX_DEMO_MAX_CHARS_PER_DOCUMENT); split the file"


def _load_data(name: str, data: bytes, budget: Budget, report: IngestReport, in_archive: bool) -> None:
    """Parse one file's bytes into documents, appending documents or rejections to `report`."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "no extension"
        report.reject(name, f"unsupported format ({shown}); supported: {', '.join(SUPPORTED_SUFFIXES)}")
        return
    if budget.documents_left <= 0:
        report.reject(name, _document_limit(budget.settings, "file not read"))
        return
    if suffix == ".zip":
        if in_archive:
            report.reject(name, "archives inside archives are not opened; unpack it first")
        else:
            _load_zip(name, data, budget, report)
        return
    if not data:
        report.reject(name, "empty file")
        return
    sink = _Sink(name, budget)
    try:
        _PARSERS[suffix](name, data, sink)
    except UnusableInput as exc:
        sink.fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug on hostile bytes must not end the batch
        sink.fail(f"could not be parsed ({type(exc).__name__}: {short_error(exc)})")
    sink.close(report)


class _Sink:
    """Where a parser puts the documents of one file: each is cleaned, checked against the
    character limit and counted against the document limit as it arrives."""

    def __init__(self, name: str, budget: Budget) -> None:
        self.name = name
        self.budget = budget
        self.settings = budget.settings
        self.report = IngestReport()
        self.dropped = 0  # documents given past the document limit (parsers that cannot stop early)

    @property
    def room(self) -> bool:
        """False once the document limit is reached: a parser stops reading then."""
        return self.budget.documents_left > 0

    def add(self, doc: Document) -> None:
        """Accept `doc` (cleaned) unless its text is over the character limit or blank."""
        if self.budget.documents_left <= 0:
            self.dropped += 1
            return
        limit = self.settings.max_chars_per_document
        if len(doc.text) > 2 * limit:  # hopeless: refused before cleaning would copy it
            self.report.reject(doc.uri, _too_long(len(doc.text), limit))
            return
        doc = clean_document(doc)
        if len(doc.text) > limit:
            self.report.reject(doc.uri, _too_long(len(doc.text), limit))
            return
        if not doc.text.strip():
            self.report.reject(doc.uri, "no text (only control characters or whitespace)")
            return
        self.budget.documents_left -= 1
        doc.metadata.setdefault("source", self.name)
        self.report.documents.append(doc)

    def reject(self, name: str, reason: str) -> None:
        self.report.reject(name, reason)

    def stop(self, where: str) -> None:
        """Reading stopped at the document limit; `where` says what was left unread."""
        self.report.reject(self.name, _document_limit(self.settings, where))

    def fail(self, reason: str) -> None:
        """The file as a whole failed; documents it already gave stay (their records were fine)."""
        if self.report.documents:
            reason += f"; the {len(self.report.documents):,} documents read before it were kept"
        self.report.reject(self.name, reason)

    def close(self, report: IngestReport) -> None:
        if self.dropped:
            self.stop(f"{_count(self.dropped, 'more document')} not loaded")
        if not self.report.documents and not self.report.rejected:
            self.report.reject(self.name, "no text found")
        report.extend(self.report)


def check_text_length(chars: int, limit: int, partial: str | None = None) -> None:
    """UnusableInput when `chars` is over the per-document character limit (`partial`: where reading stopped)."""
    if chars > limit:
        raise UnusableInput(_too_long(chars, limit, partial))


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


# ---------------------------------------------------------------- text decoding


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) for text bytes: BOM, then UTF-8, then charset detection; UnusableInput if binary."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnusableInput(f"starts with a {encoding} byte-order mark but is not valid {encoding} ({exc.reason})")
            return _check_textual(text), encoding
    try:
        return _check_textual(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    text = _mostly_utf8(data)
    if text is not None:
        return _check_textual(text), "utf-8 (invalid bytes replaced)"
    return _detect(data)


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few stray bytes (a damaged file) decodes with replacements, not as mojibake."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    multibyte = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")  # C speed, not a loop
    if multibyte > 0 and bad <= max(4, len(text) // 100) and multibyte >= 2 * bad:
        return text
    return None


def _detect(data: bytes) -> tuple[str, str]:
    import charset_normalizer  # noqa: PLC0415 - only needed for non-UTF-8 files

    if b"\x00" in data[:4096] and data.count(b"\x00") > len(data) // 4 and not _looks_utf16(data):
        raise UnusableInput("looks like binary data, not text (NUL bytes); is the file extension right?")
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise UnusableInput("looks like binary data, not text (no text encoding fits); is the file extension right?")
    # Short Western texts tie across several code pages; the common Windows one is the likely truth.
    ties = [m for m in matches if m.chaos == best.chaos and m.coherence == best.coherence]
    chosen = next((m for m in ties if m.encoding == "cp1252"), best)
    return _check_textual(str(chosen)), chosen.encoding


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a BOM: NULs on every other byte of mostly-ASCII text."""
    head = data[:4096]
    even, odd = head[0::2], head[1::2]
    return (even.count(0) > 0.4 * len(even)) != (odd.count(0) > 0.4 * len(odd))


def _check_textual(text: str) -> str:
    """Refuse decoded 'text' that is mostly control characters (binary that happened to decode)."""
    sample = text[:200_000]
    if not sample:
        return text
    if "\x00" in sample:  # decoded text never holds NUL; binary files nearly always do
        raise UnusableInput("looks like binary data, not text (NUL bytes); is the file extension right?")
    controls = sum(
        1 for ch in sample if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")
    )
    if controls > max(8, len(sample) // 100):
        raise UnusableInput(
            f"looks like binary data, not text ({controls / len(sample):.0%} control characters); "
            "is the file extension right?"
        )
    return text


# ---------------------------------------------------------------- parsers


def _stem(name: str) -> str:
    return PurePosixPath(name.rsplit(":", 1)[-1]).stem or name


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


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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


# ---------------------------------------------------------------- records: JSON, JSONL, CSV / TSV


class _Records:
    """Turns the records of one file into documents as they are read, one at a time.

    Strings count as {"text": ...}; a record without a text field, or that is not an object, is
    counted and summarised; one that raises is rejected by itself. `room` goes False at the
    document limit and the reader stops.
    """

    def __init__(self, name: str, where: str, fmt: str, sink: _Sink) -> None:
        self.name, self.where, self.fmt, self.sink = name, where, fmt, sink
        self.fields_cache: dict[tuple[str, ...], tuple[str | None, ...]] = {}
        self.missing = self.not_objects = self.broken = 0

    @property
    def room(self) -> bool:
        return self.sink.room

    def add(self, record: Any, index: int, ref: str | None = None) -> None:
        try:
            if isinstance(record, str):
                record = {"text": record}
            if not isinstance(record, dict):
                self.not_objects += 1
                return
            keys = tuple(record.keys())
            fields = self.fields_cache.get(keys)
            if fields is None:
                fields = (_find_field(keys, TEXT_FIELDS), _find_field(keys, TITLE_FIELDS), _find_field(keys, ID_FIELDS))
                if len(self.fields_cache) < 1000:  # hostile files give every record its own keys
                    self.fields_cache[keys] = fields
            doc = _record_document(self.name, record, index, self.where, self.fmt, fields)
        except Exception as exc:  # noqa: BLE001 - one odd record must not lose its neighbours
            self.broken_record(index, f"could not be read ({type(exc).__name__}: {short_error(exc)})", ref)
            return
        if doc is None:
            self.missing += 1
        else:
            self.sink.add(doc)

    def broken_record(self, index: int, reason: str, ref: str | None = None) -> None:
        self.broken += 1
        if self.broken <= _MAX_LINE_REJECTIONS:
            self.sink.reject(f"{self.name} {ref or f'{self.where} {index}'}", reason)

    def finish(self) -> None:
        if self.not_objects:
            self.sink.reject(self.name, f"{_count(self.not_objects, self.where)} not an object, skipped")
        if self.missing:
            self.sink.reject(
                self.name,
                f"{_count(self.missing, self.where)} without a text field ({', '.join(TEXT_FIELDS[:4])}, ...) skipped",
            )
        _summarise_extra(self.name, self.sink, self.broken, f"unreadable {self.where}s")


def _find_field(keys: Iterable[str], wanted: Sequence[str]) -> str | None:
    """The key matching the first wanted field name (case-insensitive, spaces/dashes ignored)."""
    norm = {_field_name(k): k for k in keys if isinstance(k, str)}
    for w in wanted:
        if w in norm:
            return norm[w]
    return None


def _field_name(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", key.strip().lower())  # one character class: linear


def _record_document(
    name: str, record: dict[str, Any], index: int, where: str, fmt: str, fields: tuple[str | None, ...]
) -> Document | None:
    text_key, title_key, id_key = fields
    text = record.get(text_key) if text_key else None
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False) if isinstance(text, (list, dict)) else str(text)
    title = record.get(title_key) if title_key else None
    ext_id = record.get(id_key) if id_key else None
    ext_id = None if ext_id is None or ext_id == "" else str(ext_id)
    ref = ext_id if ext_id is not None else f"{where}={index}"
    return Document(
        uri=f"{name}#{ref}",
        title=str(title).strip() if title not in (None, "") else f"{_stem(name)} {where} {index}",
        text=_normalise_newlines(text).strip(),
        metadata={"format": fmt, where: index},
        external_id=ext_id,
    )


def _lines(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(end offset, line with its "\\n") of `text` from `start`, without a list of all lines."""
    pos, n = start, len(text)
    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end + 1
        yield end, text[pos:end]
        pos = end


def _lines_left(text: str, pos: int) -> int:
    """Non-empty-ended line count of text[pos:] (cheap: one count, no split)."""
    tail_end = len(text.rstrip())
    return 0 if pos >= tail_end else text.count("\n", pos, tail_end) + 1


def _parse_table(name: str, data: bytes, sink: _Sink) -> None:
    settings = sink.settings
    text, _ = decode_text(data)
    tsv = name.lower().endswith(".tsv")
    delimiter = "\t" if tsv else sniff_delimiter(text)
    # The csv module refuses fields over 128 KiB by default; documents may be longer (up to the limit).
    csv.field_size_limit(max(csv.field_size_limit(), settings.max_chars_per_document + 1))
    lines = _lines(text)
    position = [0]  # end offset of the last line handed to the csv reader

    def feed() -> Iterator[str]:
        for end, line in lines:
            position[0] = end
            yield line

    reader = csv.reader(feed(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise UnusableInput("no rows")
    except csv.Error as exc:
        raise UnusableInput(f"not a readable table ({exc})")
    header = [h.strip().lstrip("\ufeff") for h in header]
    if not any(header):
        raise UnusableInput("no header row: the first line must name the columns (e.g. id,title,text)")
    text_key = _find_field(header, TEXT_FIELDS)
    if text_key is None:
        raise UnusableInput(
            f"no text column: the header is {header[:10]}; name the text column one of "
            f"{', '.join(TEXT_FIELDS)} (title and id columns are optional)"
        )
    fields = (text_key, _find_field(header, TITLE_FIELDS), _find_field(header, ID_FIELDS))
    records = _Records(name, "row", "tsv" if tsv else "csv", sink)
    records.fields_cache[tuple(header)] = fields
    empty, row_no = 0, 1
    while True:
        if not sink.room:
            left = _lines_left(text, position[0])
            if left:
                sink.stop(f"stopped after row {row_no}; {_count(left, 'more line')} not read")
            break
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row_no += 1
            records.broken_record(row_no, f"unreadable row ({exc})")
            continue
        row_no += 1
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(header, row))
        if not (record.get(text_key) or "").strip():
            empty += 1
            continue
        records.add(record, row_no)
    records.finish()
    if empty:
        sink.reject(name, f"{_count(empty, 'row')} with an empty '{text_key}' column skipped")


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text: whichever of , ; tab | occurs most in the header line outside
    double quotes (comma on a tie or when none does). Linear: csv.Sniffer's regexes are quadratic
    on hostile input (seconds for 8 KB of quotes, holding the GIL)."""
    end = text.find("\n")
    header = text[: end if end >= 0 else len(text)][:65536]
    unquoted = "".join(header.split('"')[::2])
    counts = {d: unquoted.count(d) for d in ",;\t|"}
    best = max(counts, key=lambda d: counts[d])  # first of the order on a tie
    return best if counts[best] else ","


def _parse_json(name: str, data: bytes, sink: _Sink) -> None:
    text, _ = decode_text(data)
    cursor = JsonCursor(text)
    try:
        first = cursor.peek()
        if first == "[":
            records = _Records(name, "record", "json", sink)
            _stream_array(cursor, records, squad=False)
            records.finish()
        elif first == "{":
            _stream_object(name, cursor, sink)
        else:
            cursor.value()
            raise UnusableInput(_NO_RECORDS)
        if sink.room and not cursor.at_end():
            raise cursor.error("Extra data")
    except json.JSONDecodeError as exc:
        raise UnusableInput(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except RecursionError:
        raise UnusableInput("JSON nested too deeply to read")


_NO_RECORDS = (
    "no records found: expected a list of objects, an object with a list under "
    "'data'/'documents'/'corpus', an {id: {text}} mapping, or one object with a text field"
)


def _stream_array(cursor: JsonCursor, records: _Records, squad: bool) -> bool:
    """Read the array at the cursor element by element into `records` (SQuAD articles, when
    `squad`, become one document per paragraph). True when it stopped at the document limit
    (the cursor is then at the end of the text: the rest is not read)."""
    sink = records.sink
    for i in cursor.array():
        index = i + 1
        if not sink.room:
            sink.stop(f"stopped before {records.where} {index} (character {cursor.pos:,} of {len(cursor.text):,}); "
                      "the rest of the file was not read")
            cursor.pos = len(cursor.text)
            return True
        value = _value_or_skip(cursor, records, index)
        if squad and isinstance(value, dict) and isinstance(value.get("paragraphs"), list):
            _squad_article(value, i, records)
        elif value is not _BROKEN:
            records.add(value, index)
    return False


def _squad_article(article: dict[str, Any], a_i: int, records: _Records) -> None:
    """SQuAD / XQuAD layout: one document per paragraph context (repeated contexts once)."""
    sink, name = records.sink, records.name
    title = str(article.get("title") or f"{_stem(name)} article {a_i}")
    seen: set[str] = set()
    for p_i, para in enumerate(article["paragraphs"]):
        context = para.get("context") if isinstance(para, dict) else None
        if not isinstance(context, str) or not context.strip() or context in seen:
            continue
        seen.add(context)
        sink.add(
            Document(
                uri=f"{name}#{a_i}-{p_i}",
                title=title,
                text=context.strip(),
                metadata={"format": "squad", "article": title, "paragraph": p_i},
                external_id=f"{a_i}-{p_i}",
            )
        )


def _stream_object(name: str, cursor: JsonCursor, sink: _Sink) -> None:
    """A top-level object, member by member. A record list under a wrapper key (LIST_FIELDS; SQuAD
    'data' articles too) is streamed into the sink; an object whose members are all objects is a
    {id: {...}} corpus (BEIR corpus.json), staged one value at a time until the last member proves
    the layout; otherwise an object with a text field is one record. Values nothing needs are skipped."""
    record: dict[str, Any] = {}  # the members a one-record object needs (text / title / id fields)
    staged = _Staging(sink.budget.documents_left)
    mapping = _Records(name, "record", "json", staged)
    all_objects, index = True, 0
    streamed = False
    for key in cursor.members():
        index += 1
        if streamed:
            continue  # the record list is read; what follows it is skipped
        kind = cursor.peek()
        if kind == "[" and _field_name(key) in LIST_FIELDS:
            records = _Records(name, "record", "json", sink)
            stopped = _stream_array(cursor, records, squad=True)
            records.finish()
            if stopped:
                return
            streamed = True
            continue
        wanted = _find_field((key,), TEXT_FIELDS + TITLE_FIELDS + ID_FIELDS) is not None
        if kind == "{" and all_objects and not mapping.room and staged.docs:
            # A corpus mapping at the document limit: stop reading (the rest cannot be loaded anyway).
            mapping.finish()
            staged.commit(sink)
            sink.stop(f"stopped before record {index} (character {cursor.pos:,} of {len(cursor.text):,}); "
                      "the rest of the file was not read")
            cursor.pos = len(cursor.text)
            return
        if kind == "{" and all_objects and mapping.room:
            value = _value_or_skip(cursor, mapping, index)
            if isinstance(value, dict):
                mapping.add({"_id": key, **value}, index)
                if wanted:
                    record[key] = value
            continue
        if kind == "{":
            staged.dropped += all_objects
        else:
            all_objects = False
        if wanted:
            value = _value_or_skip(cursor, mapping, index)
            if value is not _BROKEN:
                record[key] = value
        else:
            cursor.skip()
    if streamed:
        return
    if _find_field(record.keys(), TEXT_FIELDS) is not None and not (all_objects and staged.docs):
        one = _Records(name, "record", "json", sink)
        one.add(record, 1)
        one.finish()
    elif index and all_objects:
        mapping.finish()
        staged.commit(sink)
    else:
        raise UnusableInput(_NO_RECORDS)


_BROKEN = object()  # what _value_or_skip returns for a value it skipped


def _value_or_skip(cursor: JsonCursor, records: _Records, index: int) -> Any:
    """The value at the cursor, or _BROKEN (skipped, rejected as a broken record) when it cannot be
    decoded by itself but its brackets balance (JSONDecodeError when they do not)."""
    start = cursor.pos
    try:
        return cursor.value()
    except (json.JSONDecodeError, RecursionError) as exc:
        cursor.pos = start
        cursor.skip()
        records.broken_record(index, "nested too deeply" if isinstance(exc, RecursionError) else f"invalid JSON ({exc.msg})")
        return _BROKEN


class _Staging:
    """Stands in for the sink while a JSON object's layout is unknown: holds the documents (up to
    the room left) and rejections, then hands them over with `commit`."""

    def __init__(self, room_for: int) -> None:
        self.limit = room_for
        self.docs: list[Document] = []
        self.rejected: list[tuple[str, str]] = []
        self.dropped = 0

    @property
    def room(self) -> bool:
        return len(self.docs) < self.limit

    def add(self, doc: Document) -> None:
        if self.room:
            self.docs.append(doc)
        else:
            self.dropped += 1

    def reject(self, name: str, reason: str) -> None:
        self.rejected.append((name, reason))

    def commit(self, sink: _Sink) -> None:
        for doc in self.docs:
            sink.add(doc)
        for name, reason in self.rejected:
            sink.reject(name, reason)
        if self.dropped:
            sink.stop(f"{_count(self.dropped, 'more record')} not loaded")


def _parse_jsonl(name: str, data: bytes, sink: _Sink) -> None:
    text, _ = decode_text(data)
    records = _Records(name, "line", "jsonl", sink)
    bad = good = 0
    for line_no, (end, line) in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        if not sink.room:
            left = _lines_left(text, end - len(line))
            sink.stop(f"stopped before line {line_no}; {_count(left, 'more line')} not read")
            break
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad += 1
            if bad <= _MAX_LINE_REJECTIONS:
                sink.reject(f"{name} line {line_no}", f"invalid JSON ({exc.msg})")
            continue
        except RecursionError:
            records.broken_record(line_no, "JSON nested too deeply", f"line {line_no}")
            continue
        good += 1
        records.add(record, line_no, f"line {line_no}")
    _summarise_extra(name, sink, bad, "invalid JSON lines")
    if not good and bad:
        raise UnusableInput(f"no valid JSON lines ({bad:,} invalid)")
    records.finish()


def _summarise_extra(name: str, sink: _Sink, bad: int, what: str) -> None:
    if bad > _MAX_LINE_REJECTIONS:
        sink.reject(name, f"{bad - _MAX_LINE_REJECTIONS:,} more {what} skipped (first {_MAX_LINE_REJECTIONS} listed)")


_PARSERS: dict[str, Callable[[str, bytes, _Sink], None]] = {
    ".txt": _parse_text,
    ".text": _parse_text,
    ".md": _parse_text,
    ".markdown": _parse_text,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".csv": _parse_table,
    ".tsv": _parse_table,
    ".json": _parse_json,
    ".jsonl": _parse_jsonl,
    ".ndjson": _parse_jsonl,
}


# ---------------------------------------------------------------- archives


def _load_zip(name: str, data: bytes, budget: Budget, report: IngestReport) -> None:
    settings = budget.settings
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        report.reject(name, f"not a readable zip archive (truncated or corrupt: {short_error(exc)})")
        return
    with archive:
        try:
            entries = check_archive(archive, settings, label="archive")
        except UnusableInput as exc:
            report.reject(name, str(exc))
            return
        loaded_before = len(report.documents)
        for n_done, info in enumerate(entries):
            entry_name = f"{name}:{info.filename}"
            if is_ignored_entry(info.filename):
                continue
            if budget.documents_left <= 0:
                report.reject(name, _document_limit(settings, f"{_count(len(entries) - n_done, 'more entry')} not read"))
                break
            problem = entry_problem(info, settings)
            if problem:
                report.reject(entry_name, problem)
                continue
            try:
                content = read_entry(archive, info, min(budget.max_file_bytes, budget.upload_bytes_left))
            except UnusableInput as exc:
                report.reject(entry_name, str(exc))
                continue
            budget.upload_bytes_left -= len(content)
            _load_data(entry_name, content, budget, report, in_archive=True)
        if len(report.documents) == loaded_before and not any(
            r.name.startswith(f"{name}:") for r in report.rejected
        ):
            report.reject(name, "the archive holds no files")


# ---------------------------------------------------------------- helpers


def _count(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n:,} {word if n == 1 else plural}"
