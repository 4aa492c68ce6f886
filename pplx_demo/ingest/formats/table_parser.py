"""CSV / TSV tables -> one Document per row, read row by row (the header names the text, title and id
columns); the delimiter is sniffed in linear time."""

from __future__ import annotations

import csv
from typing import Iterator

from pplx_demo.ingest.archive import UnusableInput
from pplx_demo.ingest.formats.decoding import decode_text
from pplx_demo.ingest.formats.records import (ID_FIELDS, TEXT_FIELDS, TITLE_FIELDS, _find_field, _lines, _lines_left,
                                              _Records)
from pplx_demo.ingest.formats.report import _count, _Sink


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
