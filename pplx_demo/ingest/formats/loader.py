"""The entry points: files, folders or bytes -> the parser for each suffix, against one shared budget;
zip archives are opened here (entry by entry, per `pplx_demo.ingest.archive`)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Sequence

from pplx_demo.config import Settings
from pplx_demo.ingest.archive import (UnusableInput, check_archive, entry_problem, fmt_bytes, is_ignored_entry, read_entry,
                                      short_error)
from pplx_demo.ingest.formats.docx_parser import _parse_docx
from pplx_demo.ingest.formats.html_parser import _parse_html
from pplx_demo.ingest.formats.json_parser import _parse_json, _parse_jsonl
from pplx_demo.ingest.formats.pdf_parser import _parse_pdf
from pplx_demo.ingest.formats.report import Budget, IngestReport, _count, _document_limit, _Sink, _too_big_for
from pplx_demo.ingest.formats.table_parser import _parse_table
from pplx_demo.ingest.formats.text_parser import _parse_text

SUPPORTED_SUFFIXES = (
    ".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx",
    ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".zip",
)  # fmt: skip


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
