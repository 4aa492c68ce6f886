"""One record (a JSON object, a JSONL line, a table row) -> one Document: the field names looked for,
`_Records` (counts and summarises what it skips) and the line helpers the streaming readers share."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Iterator, Sequence

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import short_error
from pplx_demo.ingest.formats.decoding import _normalise_newlines, _stem
from pplx_demo.ingest.formats.report import _count, _Sink

TEXT_FIELDS = ("text", "content", "contents", "body", "passage", "document", "paragraph", "context", "abstract")
TITLE_FIELDS = ("title", "name", "heading", "subject", "headline")
ID_FIELDS = ("_id", "id", "doc_id", "docid", "document_id", "pid", "uuid")
LIST_FIELDS = ("data", "documents", "docs", "corpus", "records", "items", "rows")  # JSON wrappers of a record list

_MAX_LINE_REJECTIONS = 20  # per file: more bad rows/lines are summarised in one line


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


def _summarise_extra(name: str, sink: _Sink, bad: int, what: str) -> None:
    if bad > _MAX_LINE_REJECTIONS:
        sink.reject(name, f"{bad - _MAX_LINE_REJECTIONS:,} more {what} skipped (first {_MAX_LINE_REJECTIONS} listed)")
