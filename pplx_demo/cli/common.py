"""What every command shares: the run's `Context`, its `Output`, argument types, tables, safe printing."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError

DEFAULT_MODEL = "minilm-l6"
Progress = Callable[[int, int], None]


@dataclass
class Output:
    """What a command produced: a JSON-able payload and the lines a person reads."""

    payload: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing; payload["notes"] in --json
    warnings: list[str] = field(default_factory=list)  # something went worse than asked; payload["warnings"]


@dataclass
class Context:
    """Settings and lazily opened resources shared by one CLI run."""

    settings: Settings
    db_path: Path
    json: bool = False
    show_progress: bool = True
    _store: Any = None
    _models: Any = None

    @property
    def store(self) -> Any:
        """The store at db_path, created if missing (commands that write)."""
        if self._store is None:
            from pplx_demo.store import Store  # noqa: PLC0415 - DuckDB only when a command needs it

            self._store = Store(self.db_path)
        return self._store

    def existing_store(self) -> Any:
        """The store at db_path; DemoError instead of creating a file (or folders) that is not there."""
        if self._store is None and not self.db_path.is_file():
            raise DemoError(f"no database at {self.db_path} (ingest something first, or pass another database)",
                            cli_flag="--db")
        return self.store

    def encoder(self, model_key: str, variant: str | None = None, runtime: str = "torch") -> Any:
        """The encoder for a model key (or folder), variant and runtime, loaded once per run."""
        if self._models is None:
            from pplx_demo.models import ModelHub  # noqa: PLC0415 - torch loads only when a command needs it

            self._models = ModelHub(self.settings)
        return self._models.get(model_key, variant, runtime)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @contextmanager
    def progress(self, description: str, unit: str = "it") -> Iterator[Progress | None]:
        """A (done, total) callback drawing a tqdm bar on stderr, or None when bars are off."""
        if not self.show_progress:
            yield None
            return
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(desc=terminal_safe(description), unit=unit, file=sys.stderr, disable=None, leave=False,
                   dynamic_ncols=True)

        def update(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh()

        try:
            yield update
        finally:
            bar.close()


# ---------------------------------------------------------------- errors and printing


def error_line(exc: DemoError) -> str:
    """The one line a DemoError prints as: its message, then the option that changes it."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if exc.cli_flag:
        message += f" ({exc.cli_flag})"
    elif exc.setting:
        message += f" (setting {exc.setting})"
    return terminal_safe(message)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, keep_newlines: bool = False) -> str:
    """`text` with control and bidirectional-formatting characters shown as escapes (\\x1b, \\u202e).

    File names and document text come from users: printed raw, an ESC sequence or a newline in
    them could forge output lines, recolour the terminal or reorder what a reader sees.
    """
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in "\u200d\u200c":
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def json_text(payload: dict[str, Any]) -> str:
    """One JSON line: valid JSON with C1 controls and bidirectional overrides escaped as \\u codes too."""
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d"
                   else ch for ch in text)


def print_output(output: Output, as_json: bool) -> None:
    if as_json:
        payload = dict(output.payload)
        if output.notes:
            payload["notes"] = output.notes
        if output.warnings:
            payload["warnings"] = output.warnings
        print(json_text(payload))
        return
    for line in [*output.lines, *output.notes, *(f"WARNING: {w}" for w in output.warnings)]:
        print(terminal_safe(line))


# ---------------------------------------------------------------- argument types


def whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None


def positive_int(value: str) -> int:
    number = whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return number


def non_negative_int(value: str) -> int:
    number = whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return number


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def quote(text: str) -> str:
    """`text` as one shell word (for commands suggested in messages)."""
    import shlex  # noqa: PLC0415

    return shlex.quote(text)


# ---------------------------------------------------------------- tables


def format_table(headers: list[str], rows: list[list[str]], width: int | None = None,
                 keep: Sequence[int] = ()) -> list[str]:
    """A plain-text table fitted to the terminal: the widest columns not in `keep` are cut with an ellipsis."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    gaps = 2 * (len(headers) - 1)
    cuttable = [i for i in range(len(widths)) if i not in keep]
    while cuttable and sum(widths) + gaps > width and max(widths[i] for i in cuttable) > 8:
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1

    def cell(text: str, w: int) -> str:
        text = " ".join(text.split())
        return text.ljust(w) if len(text) <= w else text[: w - 1] + "…"

    lines = ["  ".join(cell(h, w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return lines


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters (whitespace collapsed, cut at a word with an ellipsis)."""
    return textwrap.shorten(" ".join(text.split()), width=max(width, 10), placeholder="…")
