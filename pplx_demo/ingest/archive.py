"""Zip archives read defensively: entry count, declared and actual sizes, compression ratio, and
entry names are checked before anything is unpacked.

Decisions: entries with absolute paths, `..` parts, drive letters, symlinks or encryption are
refused; archives nested in archives are not opened (the caller refuses them) so a nested bomb
cannot slip past the size accounting; `__MACOSX/`, `._*`, `.DS_Store` and `Thumbs.db` entries are
ignored. An entry is read block by block and refused as soon as it outgrows its declared size
or the caller's byte budget. Nothing is ever written to disk.

Formats that are zips inside (.docx) get the same checks through `check_container`: there the
format's own reader inflates the parts, so every entry is checked from the central directory
before the reader sees the file, and one bad part refuses the file. (zipfile never inflates an
entry past the size its central directory declares, so checking declared sizes bounds memory.)
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import PurePosixPath

from pplx_demo.config import Settings

_RATIO_MIN_BYTES = 256 * 1024  # small entries may compress very well legitimately (blank text)
_READ_BLOCK = 1024 * 1024


class UnusableInput(Exception):
    """A file, entry or archive that cannot be used; the message is the reason, for a person."""


def check_archive(archive: zipfile.ZipFile, settings: Settings, label: str) -> list[zipfile.ZipInfo]:
    """Whole-archive limits from the central directory: entry count and declared total size.

    The compression ratio is checked per entry, so one bomb entry does not sink its good neighbours.
    """
    entries = [i for i in archive.infolist() if not i.is_dir()]
    if len(entries) > settings.max_zip_entries:
        raise UnusableInput(
            f"{label} has {len(entries):,} entries; the limit is {settings.max_zip_entries:,} (PPLX_DEMO_MAX_ZIP_ENTRIES)"
        )
    declared = sum(i.file_size for i in entries)
    if declared > settings.max_zip_uncompressed_bytes:
        raise UnusableInput(
            f"{label} would unpack to {fmt_bytes(declared)}; the limit is "
            f"{fmt_bytes(settings.max_zip_uncompressed_bytes)} (PPLX_DEMO_MAX_ZIP_UNCOMPRESSED_BYTES; zip bomb?)"
        )
    return entries


def check_container(archive: zipfile.ZipFile, settings: Settings, label: str) -> list[zipfile.ZipInfo]:
    """Every check a `.zip` upload gets, for a format that is a zip inside (.docx): the whole-archive
    limits, then each entry's name, type, declared size and compression ratio. Raises UnusableInput
    naming the first bad part; nothing is inflated."""
    entries = check_archive(archive, settings, label)
    for info in entries:
        problem = entry_problem(info, settings)
        if problem:
            raise UnusableInput(f"{label} part {info.filename}: {problem}")
    return entries


def is_ignored_entry(filename: str) -> bool:
    """Operating-system litter (macOS resource forks, Finder/Explorer caches), skipped silently."""
    parts = PurePosixPath(filename.replace("\\", "/")).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1] in (".DS_Store", "Thumbs.db") or parts[-1].startswith("._"))


def entry_problem(info: zipfile.ZipInfo, settings: Settings) -> str | None:
    """Why this archive entry may not be read, or None."""
    raw = info.filename
    normalised = raw.replace("\\", "/")
    parts = normalised.split("/")
    if "\x00" in raw or normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised) or ".." in parts:
        return "unsafe path in the archive (absolute or with '..'); entry refused"
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "symbolic link in the archive; entry refused"
    if info.flag_bits & 0x1:
        return "encrypted entry; password-protected archives are not supported"
    if info.file_size > settings.max_file_bytes:
        return too_big(info.file_size, settings.max_file_bytes, "MAX_FILE_BYTES")
    if info.file_size >= _RATIO_MIN_BYTES and info.file_size > settings.max_zip_ratio * max(1, info.compress_size):
        return (
            f"compression ratio {info.file_size / max(1, info.compress_size):,.0f}:1 exceeds "
            f"{settings.max_zip_ratio:g}:1 (PPLX_DEMO_MAX_ZIP_RATIO; zip bomb?)"
        )
    return None


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read an entry block by block, stopping as soon as it grows past its declared size or `limit`."""
    cap = min(info.file_size, limit)
    if info.file_size > limit:
        raise UnusableInput(f"entry of {fmt_bytes(info.file_size)} exceeds the upload budget left ({fmt_bytes(limit)})")
    out = bytearray()
    try:
        with archive.open(info) as handle:
            while True:
                block = handle.read(_READ_BLOCK)
                if not block:
                    break
                out += block
                if len(out) > cap:
                    raise UnusableInput("entry is larger than its header declares (zip bomb?); entry refused")
    except UnusableInput:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise UnusableInput(f"cannot be unpacked (corrupt or truncated: {short_error(exc)})")
    except Exception as exc:  # noqa: BLE001 - zlib.error and friends from hostile streams
        raise UnusableInput(f"cannot be unpacked ({type(exc).__name__}: {short_error(exc)})")
    return bytes(out)


def too_big(size: int, limit: int, setting: str) -> str:
    """The reason line for a file over a size limit, naming the setting that raises it."""
    return f"file is {fmt_bytes(size)}; the limit is {fmt_bytes(limit)} (PPLX_DEMO_{setting})"


def fmt_bytes(n: int) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 20.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short_error(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception message, cut to `limit` characters."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message if len(message) <= limit else message[: limit - 1] + "…"
