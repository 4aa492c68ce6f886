"""JSON and JSONL -> one Document per record, streamed value by value (`JsonCursor`): record lists,
wrapper keys, SQuAD articles, {id: {...}} corpora and one-record objects."""

from __future__ import annotations

import json
from typing import Any

from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput
from pplx_demo.ingest.formats.decoding import _stem, decode_text
from pplx_demo.ingest.formats.records import (ID_FIELDS, LIST_FIELDS, TEXT_FIELDS, TITLE_FIELDS, _MAX_LINE_REJECTIONS,
                                              _field_name, _find_field, _lines, _lines_left, _Records,
                                              _summarise_extra)
from pplx_demo.ingest.formats.report import _count, _Sink
from pplx_demo.ingest.jsonstream import JsonCursor


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
