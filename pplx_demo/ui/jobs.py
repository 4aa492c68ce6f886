"""Long jobs and per-session memory of the studio: heavy-work slots with Stop, start-up readiness, history.

- `Jobs`: heavy work (embedding, evaluation, sweeps, scale runs) shares `heavy_concurrency` slots;
  each session has one cancel event that its Stop button sets (a job checks it between steps).
- `Readiness`: what the background start-up (kernels, stand-in, the shared sample) has done so far,
  shown in the page and the log, and answered by the `/status` endpoint.
- `SessionHistory`: the last searches (without hit texts) and the last evaluation of each session,
  kept on the server by session owner, so the Compare tab survives reloads of the page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)

MAX_SESSIONS = 2000  # sessions whose history is kept (least recently used dropped)


class Jobs:
    """Heavy-work slots and one cancel event per session key."""

    def __init__(self, slots: int) -> None:
        self._heavy = threading.BoundedSemaphore(max(1, int(slots)))
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @contextmanager
    def heavy(self) -> Iterator[None]:
        with self._heavy:
            yield

    def cancel_event(self, key: str) -> threading.Event:
        """This session's cancel event (a fresh one once the last was used)."""
        with self._lock:
            ev = self._cancel.get(key)
            if ev is None or ev.is_set():
                ev = self._cancel[key] = threading.Event()
                while len(self._cancel) > MAX_SESSIONS:
                    self._cancel.pop(next(iter(self._cancel)))
            return ev

    def stop(self, key: str) -> bool:
        """Ask this session's running jobs to stop; True when there was an event to set."""
        with self._lock:
            ev = self._cancel.get(key)
        if ev is None:
            return False
        ev.set()
        return True


@dataclass
class ReadinessView:
    state: str  # "preparing" | "ready" | "failed"
    stage: str
    done: int
    total: int
    message: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "stage": self.stage, "done": self.done, "total": self.total,
                "message": self.message, "seconds": round(self.seconds, 1)}


class Readiness:
    """Progress of the background start-up; thread-safe; logs each stage and every 10% of a stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state, self._stage, self._message = "preparing", "starting", ""
        self._done, self._total = 0, 0
        self._logged = -1
        self._start = time.monotonic()
        self._ended: float | None = None
        self._ready = threading.Event()

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._done, self._total, self._logged = name, 0, 0, -1
        log.info("start-up: %s", name)

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = int(done), int(total)
            tenth = int(10 * done / total) if total else 0
            report = tenth > self._logged
            if report:
                self._logged = tenth
            stage = self._stage
        if report:
            log.info("start-up: %s %d/%d", stage, done, total)

    def finish(self, message: str = "") -> None:
        with self._lock:
            self._state, self._message, self._ended = "ready", message, time.monotonic()
        self._ready.set()
        log.info("start-up: ready (%s)", message)

    def fail(self, message: str) -> None:
        with self._lock:
            self._state, self._message, self._ended = "failed", message, time.monotonic()
        self._ready.set()
        log.error("start-up failed: %s", message)

    @property
    def ready(self) -> bool:
        return self.view().state == "ready"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until start-up has ended (ready or failed); True when it has."""
        return self._ready.wait(timeout)

    def view(self) -> ReadinessView:
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return ReadinessView(self._state, self._stage, self._done, self._total, self._message,
                                 end - self._start)


def slim(response: Any) -> Any:
    """A search response without hit texts and explanations: what the Compare charts need."""
    return replace(response, columns=[replace(c, hits=[replace(h, text="", explanation=None) for h in c.hits])
                                      for c in response.columns])


class SessionHistory:
    """Per session owner: the last `runs` searches (slimmed) and the last evaluation."""

    def __init__(self, runs: int, max_sessions: int = MAX_SESSIONS) -> None:
        self.runs = int(runs)
        self.max_sessions = int(max_sessions)
        self._lock = threading.Lock()
        self._by_owner: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _entry(self, owner: str) -> dict[str, Any]:
        entry = self._by_owner.get(owner)
        if entry is None:
            entry = self._by_owner[owner] = {"runs": deque(maxlen=self.runs), "eval": None}
            while len(self._by_owner) > self.max_sessions:
                self._by_owner.popitem(last=False)
        else:
            self._by_owner.move_to_end(owner)
        return entry

    def add_search(self, owner: str, response: Any) -> None:
        with self._lock:
            entry = self._entry(owner)
            entry["runs"].append(slim(response))

    def set_eval(self, owner: str, view: Any) -> None:
        with self._lock:
            self._entry(owner)["eval"] = view

    def searches(self, owner: str) -> list[Any]:
        with self._lock:
            entry = self._by_owner.get(owner)
            return list(entry["runs"]) if entry else []

    def last_eval(self, owner: str) -> Any:
        with self._lock:
            entry = self._by_owner.get(owner)
            return entry["eval"] if entry else None

    def forget(self, predicate: Callable[[Any], bool]) -> None:
        """Drop stored searches whose response matches (e.g. of a corpus that expired)."""
        with self._lock:
            for entry in self._by_owner.values():
                kept = [r for r in entry["runs"] if not predicate(r)]
                entry["runs"].clear()
                entry["runs"].extend(kept)
