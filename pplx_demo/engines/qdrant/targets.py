"""Where a Qdrant index lives: `edge:PATH` (Qdrant Edge in this process) or an http(s) server URL.

qdrant-client's `:memory:` / `path=` local mode is refused: it is a pure-Python simulation that ignores
quantisation, not Qdrant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pplx_demo.errors import DemoError

EDGE_PREFIX = "edge:"
LOCAL_MODE_REASON = ("qdrant-client's local mode (':memory:' or path=) is a pure-Python simulation that ignores "
                     "quantisation; it is not Qdrant. Use 'edge:PATH' for the real Qdrant engine in-process, "
                     "or an http(s):// URL of a Qdrant server")


@dataclass(frozen=True)
class EdgeTarget:
    """A Qdrant Edge shard folder."""

    path: Path


@dataclass(frozen=True)
class ServerTarget:
    """A Qdrant server or cluster by URL (credentials never part of it)."""

    url: str

    @property
    def host(self) -> str:
        return url_host(self.url)


def check_server_url(url: str) -> str:
    """The URL of a Qdrant server, stripped; DemoError for local-mode values or anything not http(s)."""
    text = (url or "").strip() if isinstance(url, str) else ""
    if not text:
        raise DemoError("a Qdrant server URL is empty; give http(s)://HOST:6333 or edge:PATH")
    lowered = text.lower()
    if lowered == ":memory:" or lowered.startswith(("path=", "file:", "/", "./", "../", "~")) or \
            (os.sep in text and "://" not in text):
        raise DemoError(f"refused Qdrant target {_safe_url(text)!r}: {LOCAL_MODE_REASON}")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DemoError(f"refused Qdrant target {_safe_url(text)!r}: a server URL starts with http:// or https:// "
                        f"and names a host ({LOCAL_MODE_REASON})")
    if parts.username or parts.password:
        raise DemoError("put the Qdrant API key in QDRANT_API_KEY, not in the URL")
    return text


def url_host(url: str) -> str:
    """host[:port] of a URL (no scheme, path or credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _safe_url(text: str) -> str:
    """A user-given target for an error message, without any user:password part."""
    parts = urlsplit(text)
    if parts.password or parts.username:
        return f"{parts.scheme}://{url_host(text)}"
    return text[:200]


def parse_target(target: str) -> EdgeTarget | ServerTarget:
    """'edge:PATH' -> EdgeTarget; 'http(s)://...' -> ServerTarget; anything else is refused."""
    text = (target or "").strip() if isinstance(target, str) else ""
    if text.lower().startswith(EDGE_PREFIX):
        path = text[len(EDGE_PREFIX):].strip()
        if not path or path == ":memory:":
            raise DemoError("edge: needs a folder, e.g. edge:./data/qdrant/my-corpus")
        return EdgeTarget(Path(path).expanduser())
    return ServerTarget(check_server_url(text))
