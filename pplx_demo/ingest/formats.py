"""Uploads -> Documents: txt, md, html, pdf, docx, csv/tsv, json/jsonl and zip archives of these.

Nothing here raises on bad input: every file or archive entry that cannot be used becomes a
`Rejection` (which file, and why) in the `IngestReport`, and the good files are still loaded.
Limits come from `Settings` (file size, upload size, documents, characters per document, zip
entries, uncompressed zip size, compression ratio).

Archives follow the rules in `pplx_demo.ingest.archive` (unsafe names, symlinks, encryption,
bombs refused; nested archives refused, not opened). `.docx` files are zips too and pass the same
whole-archive checks before python-docx opens them.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
import logging
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.ingest.archive import (
    UnusableInput,
    check_archive,
    entry_problem,
    fmt_bytes,
    is_ignored_entry,
    read_entry,
    short_error,
    too_big,
)

SUPPORTED_SUFFIXES = (
    ".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx",
    ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".zip",
)  # fmt: skip

TEXT_FIELDS = ("text", "content", "contents", "body", "passage", "document", "paragraph", "context", "abstract")
TITLE_FIELDS = ("title", "name", "heading", "subject", "headline")
ID_FIELDS = ("_id", "id", "doc_id", "docid", "document_id", "pid", "uuid")

_MAX_LINE_REJECTIONS = 20  # per file: more bad rows/lines are summarised in one line


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
class _Budget:
    """Limits shared by every file of one load call."""

    settings: Settings
    documents_left: int
    upload_bytes_left: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "_Budget":
        return cls(settings, settings.max_documents, settings.max_upload_bytes)


def load_files(
    paths: Sequence[str | Path],
    settings: Settings | None = None,
    display_names: Sequence[str] | None = None,
) -> IngestReport:
    """Load every file (a folder is walked, sorted) of a supported format; reject the rest with a reason.

    `display_names` (same length as `paths`) replaces the file names shown in URIs and rejections,
    e.g. the original names of browser uploads that were saved under temporary paths.
    """
    settings = settings or Settings.from_env()
    budget = _Budget.from_settings(settings)
    report = IngestReport()
    for i, raw in enumerate(paths):
        path = Path(raw)
        name = display_names[i] if display_names is not None and i < len(display_names) else path.name
        for file_path, file_name in _expand(path, name, report):
            _load_path(file_path, file_name, budget, report)
    return report


def load_bytes(name: str, data: bytes, settings: Settings | None = None) -> IngestReport:
    """Load one file given as bytes; the format comes from the name's suffix."""
    settings = settings or Settings.from_env()
    budget = _Budget.from_settings(settings)
    report = IngestReport()
    if len(data) > settings.max_file_bytes:
        report.rejected.append(Rejection(name, too_big(len(data), settings.max_file_bytes, "MAX_FILE_BYTES")))
        return report
    budget.upload_bytes_left -= len(data)
    _load_data(name, data, budget, report, in_archive=False)
    return report


def _expand(path: Path, name: str, report: IngestReport) -> Iterable[tuple[Path, str]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        if not files:
            report.rejected.append(Rejection(name, "folder has no files"))
        for p in files:
            yield p, f"{name}/{p.relative_to(path).as_posix()}"
    elif path.is_file():
        yield path, name
    else:
        report.rejected.append(Rejection(name, "no such file"))


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _load_path(path: Path, name: str, budget: _Budget, report: IngestReport) -> None:
    settings = budget.settings
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.rejected.append(Rejection(name, f"cannot read the file ({exc.strerror or exc})"))
        return
    if size > settings.max_file_bytes:
        report.rejected.append(Rejection(name, too_big(size, settings.max_file_bytes, "MAX_FILE_BYTES")))
        return
    if size > budget.upload_bytes_left:
        report.rejected.append(
            Rejection(
                name,
                f"upload total would exceed {fmt_bytes(settings.max_upload_bytes)} "
                "(PPLX_DEMO_MAX_UPLOAD_BYTES); load it separately",
            )
        )
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.rejected.append(Rejection(name, f"cannot read the file ({exc.strerror or exc})"))
        return
    budget.upload_bytes_left -= len(data)
    _load_data(name, data, budget, report, in_archive=False)


def _load_data(name: str, data: bytes, budget: _Budget, report: IngestReport, in_archive: bool) -> None:
    """Parse one file's bytes into documents, appending documents or rejections to `report`."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "no extension"
        report.rejected.append(
            Rejection(name, f"unsupported format ({shown}); supported: {', '.join(SUPPORTED_SUFFIXES)}")
        )
        return
    if suffix == ".zip":
        if in_archive:
            report.rejected.append(Rejection(name, "archives inside archives are not opened; unpack it first"))
        else:
            _load_zip(name, data, budget, report)
        return
    if not data:
        report.rejected.append(Rejection(name, "empty file"))
        return
    parser = _PARSERS[suffix]
    local = IngestReport()
    try:
        docs = parser(name, data, budget.settings, local)
    except UnusableInput as exc:
        report.rejected.append(Rejection(name, str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - a parser bug on hostile bytes must not end the batch
        report.rejected.append(Rejection(name, f"could not be parsed ({type(exc).__name__}: {short_error(exc)})"))
        return
    report.rejected.extend(local.rejected)
    if not docs and not local.rejected:
        report.rejected.append(Rejection(name, "no text found"))
        return
    _accept(name, docs, budget, report)


def _accept(name: str, docs: list[Document], budget: _Budget, report: IngestReport) -> None:
    """Apply the per-document character limit and the document count limit."""
    limit = budget.settings.max_chars_per_document
    dropped_for_count = 0
    for doc in docs:
        if len(doc.text) > limit:
            report.rejected.append(
                Rejection(
                    doc.uri,
                    f"text is {len(doc.text):,} characters; the limit is {limit:,} per document "
                    "(PPLX_DEMO_MAX_CHARS_PER_DOCUMENT); split the file",
                )
            )
            continue
        if budget.documents_left <= 0:
            dropped_for_count += 1
            continue
        budget.documents_left -= 1
        doc.metadata.setdefault("source", name)
        report.documents.append(doc)
    if dropped_for_count:
        report.rejected.append(
            Rejection(
                name,
                f"document limit of {budget.settings.max_documents:,} reached "
                f"(PPLX_DEMO_MAX_DOCUMENTS); {dropped_for_count:,} more documents not loaded",
            )
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
    multibyte = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
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


def _parse_text(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    text, encoding = decode_text(data)
    text = _normalise_newlines(text)
    if not text.strip():
        raise UnusableInput("no text found (only whitespace)")
    title = _markdown_title(text) if name.lower().endswith((".md", ".markdown")) else None
    fmt = "markdown" if title is not None or name.lower().endswith((".md", ".markdown")) else "text"
    return [Document(uri=name, title=title or _stem(name), text=text, metadata={"format": fmt, "encoding": encoding})]


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text[:5000], flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def _parse_html(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    html, encoding = decode_text(data)
    text, title = html_to_text(html)
    if not text.strip():
        raise UnusableInput("no readable text in the page")
    return [Document(uri=name, title=title or _stem(name), text=text, metadata={"format": "html", "encoding": encoding})]


def html_to_text(html: str) -> tuple[str, str | None]:
    """(main text, title) of an HTML page: trafilatura's main content, else all visible text."""
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


def _parse_pdf(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    import pypdf  # noqa: PLC0415
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    if b"%PDF" not in data[:1024]:
        raise UnusableInput("not a PDF (no %PDF header); is the file extension right?")
    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnusableInput("the PDF is password-protected")
            pages = []
            for page in reader.pages:
                pages.append(_normalise_newlines(page.extract_text() or "").strip())
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
    return [
        Document(
            uri=name,
            title=title,
            text=text,
            metadata={"format": "pdf", "pages": len(pages), "page_spans": spans},
        )
    ]


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


def _parse_docx(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    import docx  # noqa: PLC0415

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnusableInput(f"not a readable .docx (corrupt or truncated: {short_error(exc)})")
    with archive:
        check_archive(archive, settings, label=".docx")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds on damaged files
        raise UnusableInput(f"not a readable .docx ({short_error(exc)})")
    blocks, title = [], None
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if title is None and style in ("Title", "Heading 1"):
            title = text
        blocks.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            line = " | ".join(dict.fromkeys(c for c in cells if c))  # merged cells repeat their text
            if line:
                blocks.append(line)
    text = "\n\n".join(blocks)
    if not text.strip():
        raise UnusableInput("no text found in the document")
    core_title = (document.core_properties.title or "").strip()
    return [Document(uri=name, title=core_title or title or _stem(name), text=text, metadata={"format": "docx"})]


def _find_field(keys: Iterable[str], wanted: Sequence[str]) -> str | None:
    """The key matching the first wanted field name (case-insensitive, spaces/dashes ignored)."""
    norm = {re.sub(r"[\s\-]+", "_", k.strip().lower()): k for k in keys if isinstance(k, str)}
    for w in wanted:
        if w in norm:
            return norm[w]
    return None


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


def _parse_table(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    text, _ = decode_text(data)
    delimiter = "\t" if name.lower().endswith(".tsv") else _sniff_delimiter(text)
    # The csv module refuses fields over 128 KiB by default; documents may be longer.
    csv.field_size_limit(max(csv.field_size_limit(), settings.max_chars_per_document + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
    docs, empty, bad = [], 0, 0
    row_no = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad += 1
            if bad <= _MAX_LINE_REJECTIONS:
                report.rejected.append(Rejection(f"{name} row {row_no + 1}", f"unreadable row ({exc})"))
            row_no += 1
            continue
        row_no += 1
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(header, row))
        doc = _record_document(name, record, row_no, "row", "csv" if delimiter != "\t" else "tsv", fields)
        if doc is None:
            empty += 1
        else:
            docs.append(doc)
    _summarise_extra(name, report, bad, "unreadable rows")
    if empty:
        report.rejected.append(Rejection(name, f"{_count(empty, 'row')} with an empty '{text_key}' column skipped"))
    return docs


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _parse_json(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    text, _ = decode_text(data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnusableInput(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    squad = _squad_paragraphs(value, name)
    if squad is not None:
        return squad
    records = _json_records(value)
    if records is None:
        raise UnusableInput(
            "no records found: expected a list of objects, an object with a list under "
            "'data'/'documents'/'corpus', an {id: {text}} mapping, or one object with a text field"
        )
    return _records_to_documents(name, records, "record", "json", report)


def _json_records(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if _find_field(value.keys(), TEXT_FIELDS):
            return [value]
        for key in ("data", "documents", "docs", "corpus", "records", "items", "rows"):
            found = _find_field(value.keys(), (key,))
            if found and isinstance(value[found], list):
                return value[found]
        if value and all(isinstance(v, dict) for v in value.values()):
            # BEIR corpus.json style: {doc_id: {"title": ..., "text": ...}}
            return [{"_id": k, **v} for k, v in value.items()]
    return None


def _squad_paragraphs(value: Any, name: str) -> list[Document] | None:
    """SQuAD / XQuAD layout: data[].title, data[].paragraphs[].context -> unique paragraphs."""
    if not (isinstance(value, dict) and isinstance(value.get("data"), list)):
        return None
    articles = value["data"]
    if not articles or not all(isinstance(a, dict) and isinstance(a.get("paragraphs"), list) for a in articles):
        return None
    docs, seen = [], set()
    for a_i, article in enumerate(articles):
        title = str(article.get("title") or f"{_stem(name)} article {a_i}")
        for p_i, para in enumerate(article["paragraphs"]):
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip() or context in seen:
                continue
            seen.add(context)
            docs.append(
                Document(
                    uri=f"{name}#{a_i}-{p_i}",
                    title=title,
                    text=context.strip(),
                    metadata={"format": "squad", "article": title, "paragraph": p_i},
                    external_id=f"{a_i}-{p_i}",
                )
            )
    return docs


def _records_to_documents(
    name: str, records: list[Any], where: str, fmt: str, report: IngestReport
) -> list[Document]:
    docs, missing, not_objects = [], 0, 0
    fields_cache: dict[tuple[str, ...], tuple[str | None, ...]] = {}
    for i, record in enumerate(records, start=1):
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict):
            not_objects += 1
            continue
        keys = tuple(record.keys())
        fields = fields_cache.get(keys)
        if fields is None:
            fields = (_find_field(keys, TEXT_FIELDS), _find_field(keys, TITLE_FIELDS), _find_field(keys, ID_FIELDS))
            fields_cache[keys] = fields
        doc = _record_document(name, record, i, where, fmt, fields)
        if doc is None:
            missing += 1
        else:
            docs.append(doc)
    if not_objects:
        report.rejected.append(Rejection(name, f"{_count(not_objects, where)} not an object, skipped"))
    if missing:
        report.rejected.append(
            Rejection(name, f"{_count(missing, where)} without a text field ({', '.join(TEXT_FIELDS[:4])}, ...) skipped")
        )
    return docs


def _parse_jsonl(name: str, data: bytes, settings: Settings, report: IngestReport) -> list[Document]:
    text, _ = decode_text(data)
    records, bad = [], 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            bad += 1
            if bad <= _MAX_LINE_REJECTIONS:
                report.rejected.append(Rejection(f"{name} line {line_no}", f"invalid JSON ({exc.msg})"))
    _summarise_extra(name, report, bad, "invalid JSON lines")
    if not records and bad:
        raise UnusableInput(f"no valid JSON lines ({bad:,} invalid)")
    return _records_to_documents(name, records, "line", "jsonl", report)


def _summarise_extra(name: str, report: IngestReport, bad: int, what: str) -> None:
    if bad > _MAX_LINE_REJECTIONS:
        report.rejected.append(Rejection(name, f"{bad - _MAX_LINE_REJECTIONS:,} more {what} skipped (first {_MAX_LINE_REJECTIONS} listed)"))


_PARSERS: dict[str, Callable[[str, bytes, Settings, IngestReport], list[Document]]] = {
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


def _load_zip(name: str, data: bytes, budget: _Budget, report: IngestReport) -> None:
    settings = budget.settings
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        report.rejected.append(Rejection(name, f"not a readable zip archive (truncated or corrupt: {short_error(exc)})"))
        return
    with archive:
        try:
            entries = check_archive(archive, settings, label="archive")
        except UnusableInput as exc:
            report.rejected.append(Rejection(name, str(exc)))
            return
        loaded_before = len(report.documents)
        for info in entries:
            entry_name = f"{name}:{info.filename}"
            if is_ignored_entry(info.filename):
                continue
            problem = entry_problem(info, settings)
            if problem:
                report.rejected.append(Rejection(entry_name, problem))
                continue
            try:
                content = read_entry(archive, info, min(settings.max_file_bytes, budget.upload_bytes_left))
            except UnusableInput as exc:
                report.rejected.append(Rejection(entry_name, str(exc)))
                continue
            budget.upload_bytes_left -= len(content)
            _load_data(entry_name, content, budget, report, in_archive=True)
        if len(report.documents) == loaded_before and not any(
            r.name.startswith(f"{name}:") for r in report.rejected
        ):
            report.rejected.append(Rejection(name, "the archive holds no files"))


# ---------------------------------------------------------------- helpers


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
