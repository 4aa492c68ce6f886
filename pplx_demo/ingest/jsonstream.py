"""Reading a big JSON document one value at a time, so a loader can stop at its limits.

`json.loads` builds the whole tree first (a 51 MB array of small records is ~2.4 GB of Python
objects). A `JsonCursor` walks the text instead: `array()` and `members()` step through a
container and the caller decodes (`value()`, with `json.JSONDecoder.raw_decode`) or skips (`skip()`,
which builds nothing) each element in turn, so only one element exists at a time. A broken element
(invalid, or nested too deeply for the decoder) can be skipped when its brackets balance, and the
walk continues with the next one. Every scan is linear in the text (no backtracking regexes).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*+")
_STRUCTURE = re.compile(r'["\[\]{}]')  # what can change the nesting while skipping
_STRING_TAIL = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)  # after an opening quote
_CLOSERS = {"[": "]", "{": "}"}


class JsonCursor:
    """A position in a JSON text; raises `json.JSONDecodeError` where the structure is broken."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def peek(self) -> str:
        """The next significant character ("" at the end); whitespace before it is consumed."""
        self.pos = _WHITESPACE.match(self.text, self.pos).end()
        return self.text[self.pos : self.pos + 1]

    def error(self, message: str, pos: int | None = None) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, self.pos if pos is None else pos)

    def value(self) -> Any:
        """Decode the value at the cursor and move past it (the decoder's own errors propagate;
        RecursionError for values nested too deeply)."""
        self.peek()
        value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        return value

    def skip(self) -> None:
        """Move past the value at the cursor without building it."""
        text = self.text
        char = self.peek()
        if char == '"':
            self._skip_string()
            return
        if char not in _CLOSERS:
            try:  # a number or a literal: short, and the decoder knows its grammar
                _, self.pos = _DECODER.raw_decode(text, self.pos)
            except json.JSONDecodeError:
                raise self.error("Expecting value") from None
            return
        expected = [_CLOSERS[char]]
        self.pos += 1
        while expected:
            found = _STRUCTURE.search(text, self.pos)
            if found is None:
                raise self.error(f"Unterminated value: expecting {expected[-1]!r}", len(text))
            char, self.pos = found.group(), found.start()
            if char == '"':
                self._skip_string()
            elif char in _CLOSERS:
                expected.append(_CLOSERS[char])
                self.pos += 1
            elif char == expected[-1]:
                expected.pop()
                self.pos += 1
            else:
                raise self.error(f"Expecting {expected[-1]!r}, found {char!r}")

    def _skip_string(self) -> None:
        end = _STRING_TAIL.match(self.text, self.pos + 1)
        if end is None:
            raise self.error("Unterminated string starting at", self.pos)
        self.pos = end.end()

    def array(self) -> Iterator[int]:
        """For the array at the cursor, yield 0, 1, 2 ... with the cursor on each element in turn.

        The caller consumes the element (`value()` or `skip()`); one it leaves is skipped.
        """
        if self.peek() != "[":
            raise self.error("Expecting '['")
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
            return
        index = 0
        while True:
            start = self.pos = _WHITESPACE.match(self.text, self.pos).end()
            yield index
            if self.pos == start:
                self.skip()
            char = self.peek()
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                raise self.error("Expecting ',' delimiter", self.pos - 1)
            index += 1

    def members(self) -> Iterator[str]:
        """For the object at the cursor, yield each key with the cursor on its value (consume it as
        in `array`)."""
        if self.peek() != "{":
            raise self.error("Expecting '{'")
        self.pos += 1
        if self.peek() == "}":
            self.pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.error("Expecting property name enclosed in double quotes")
            key = self.value()
            if self.peek() != ":":
                raise self.error("Expecting ':' delimiter")
            self.pos += 1
            start = self.pos = _WHITESPACE.match(self.text, self.pos).end()
            yield key
            if self.pos == start:
                self.skip()
            char = self.peek()
            self.pos += 1
            if char == "}":
                return
            if char != ",":
                raise self.error("Expecting ',' delimiter", self.pos - 1)

    def at_end(self) -> bool:
        """True when only whitespace is left."""
        return self.peek() == ""
