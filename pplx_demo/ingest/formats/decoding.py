"""Bytes -> text for the text formats: BOM, UTF-8, charset detection; binary data refused. Also the
two small text helpers every parser shares (newline normalisation, a title from a file name)."""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import PurePosixPath

from pplx_demo.ingest.archive import UnusableInput


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


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _stem(name: str) -> str:
    return PurePosixPath(name.rsplit(":", 1)[-1]).stem or name
