"""Who owns a private corpus: session keys, the owner ids stored with corpora, and idle expiry.

A session key is an unguessable random string held by the caller: the browser keeps it in local
storage; an API caller gets one back from `ingest`/`crawl` and passes it again. The store only
ever sees `owner_id(key)`, a hash, so a leaked database does not hand out keys. Callers that
bring no key get one per Gradio session (a gradio_client `Client` keeps its session).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from pplx_demo.errors import DemoError

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")
MAX_ANONYMOUS_SESSIONS = 10_000


class ExpiringStore(Protocol):
    def expire_private_corpora(self, idle_s: float) -> Any: ...


def new_session_key() -> str:
    """A fresh random session key (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def owner_id(session_key: str) -> str:
    """The opaque owner id stored with a private corpus for this session key."""
    if not isinstance(session_key, str) or not _KEY_RE.match(session_key):
        raise DemoError("The session key is malformed: pass back the session_key returned by ingest/crawl, "
                        "or leave it empty to start a new private session.")
    return "s-" + hashlib.sha256(session_key.encode("ascii")).hexdigest()[:32]


class Sessions:
    """Resolves each call to (session_key, owner) and sweeps idle private corpora out of the store."""

    def __init__(self, store: ExpiringStore, idle_s: float, sweep_every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.idle_s = float(idle_s)
        self.sweep_every_s = float(sweep_every_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._by_session: OrderedDict[str, str] = OrderedDict()  # gradio session hash -> key
        self._last_sweep: float | None = None

    def resolve(self, session_key: str | None, session_hash: str | None) -> tuple[str, str]:
        """(key, owner) for a call: the caller's key if given, else this Gradio session's own key."""
        key = (session_key or "").strip()
        if not key:
            key = self._key_for_session(session_hash)
        return key, owner_id(key)

    def _key_for_session(self, session_hash: str | None) -> str:
        if not session_hash:
            return new_session_key()  # no session at all (direct call): a one-off private space
        with self._lock:
            key = self._by_session.get(session_hash)
            if key is None:
                key = new_session_key()
                self._by_session[session_hash] = key
                while len(self._by_session) > MAX_ANONYMOUS_SESSIONS:
                    self._by_session.popitem(last=False)
            else:
                self._by_session.move_to_end(session_hash)
            return key

    def sweep(self, force: bool = False) -> Any:
        """Delete private corpora idle for longer than `idle_s` (at most once per `sweep_every_s`)."""
        now = self._clock()
        with self._lock:
            if not force and self._last_sweep is not None and now - self._last_sweep < self.sweep_every_s:
                return None
            self._last_sweep = now
        return self.store.expire_private_corpora(self.idle_s)
