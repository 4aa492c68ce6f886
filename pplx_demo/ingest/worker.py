"""Parsing in a worker process: a file or page that makes a parser spin cannot stall the app.

`ParseWorker.call(fn, *args)` runs a module-level function in a separate Python process and waits
for its result with a wall-clock limit; past it the worker is killed (SIGKILL) and the next call
starts a fresh one. The waiting thread blocks in `poll` without the GIL, so other requests go on.
`load_files_isolated` / `load_bytes_isolated` are `formats.load_files` / `load_bytes` run that
way, file by file in one worker per call; the crawler parses its pages the same way.

The worker is a fresh interpreter (`python -c ...`, exec'd by subprocess: the app process, which
holds torch and threads, is never forked). multiprocessing's spawn and forkserver contexts were
not used because they re-import the parent's `__main__` in the child: for `python app.py` that is
gradio and torch, seconds and hundreds of MB per worker. The pipe is a multiprocessing
`Connection` (socketpair) whose child end the worker inherits; Documents and Rejections travel
pickled. Start-up costs one interpreter plus the parser imports, done before the first file so
the time limit measures parsing only (about 1 s on a 2-core machine, ~85 MB resident, mostly
trafilatura and numpy). POSIX only (`pass_fds`).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import weakref
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Sequence

from pplx_demo.config import ROOT, Settings
from pplx_demo.errors import DemoError
from pplx_demo.ingest.formats import Budget, IngestReport, expand_paths, load_data_checked, load_path

_START_TIMEOUT_S = 60.0  # interpreter + parser imports on a busy machine
_POLL_SLICE_S = 0.1  # how often a waiting call checks its stop condition
_PRELOAD = ("pplx_demo.ingest.formats", "trafilatura", "pypdf", "docx", "charset_normalizer", "lxml.html")


class ParseTimeout(Exception):
    """The call ran past its time limit; the worker was killed."""


class WorkerDied(Exception):
    """The worker process ended during a call (killed for memory, crashed in a C extension...)."""


class ParseStopped(Exception):
    """The caller's stop condition became true during a call; the worker was killed."""


def timeout_reason(timeout_s: float) -> str:
    """The rejection reason for a file or page over the parse time limit."""
    return f"took too long to parse (over {timeout_s:g} s, setting PPLX_DEMO_PARSE_TIMEOUT_S)"


class ParseWorker:
    """One parser process, started on first use, replaced after a timeout or a crash; thread-safe
    (calls from several threads take turns). Use as a context manager or call `close()`."""

    def __init__(self, timeout_s: float, start_timeout_s: float = _START_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.starts = 0  # processes started so far (1 + one per kill)
        self.start_seconds = 0.0  # time spent starting them
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize | None = None
        self._background_start = False

    def __enter__(self) -> "ParseWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_in_background(self) -> None:
        """Start the process now on a thread (the first `call` waits for it): start-up overlaps other work.
        Does nothing when it is running or being started."""
        if self._background_start or (self._proc is not None and self._proc.poll() is None):
            return
        self._background_start = True

        def start() -> None:
            with self._lock:
                try:
                    self._ensure_started()
                except DemoError:
                    pass  # the first call tries again and reports it
                finally:
                    self._background_start = False

        threading.Thread(target=start, name="parse-worker-start", daemon=True).start()

    def call(self, fn: Callable[..., Any], *args: Any, stop: Callable[[], bool] | None = None) -> Any:
        """fn(*args) in the worker (fn module-level, arguments and result picklable).

        Raises ParseTimeout after `timeout_s`, ParseStopped when `stop()` turns true, WorkerDied when
        the process ends, and re-raises (as RuntimeError) an exception fn itself raised.
        """
        with self._lock:
            conn = self._ensure_started()
            conn.send((fn, args))
            deadline = time.monotonic() + self.timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise ParseTimeout(timeout_reason(self.timeout_s))
                if stop is not None and stop():
                    self._kill()
                    raise ParseStopped("stopped")
                try:
                    ready = conn.poll(min(left, _POLL_SLICE_S))
                    if ready:
                        status, payload = conn.recv()
                        break
                except (EOFError, OSError):
                    code = self._kill()
                    raise WorkerDied(_exit_description(code)) from None
        if status == "error":
            raise RuntimeError(payload)
        return payload

    def close(self) -> None:
        """Ask the worker to exit (killed if it does not within a second). While another thread is
        starting or using it, it is killed at once instead of waited for."""
        if not self._lock.acquire(timeout=0.05):
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()  # the thread holding the lock sees the pipe close and reaps it
            return
        try:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
            self._kill()
        finally:
            self._lock.release()

    # -- process management

    def _ensure_started(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._kill()
        began = time.monotonic()
        parent_conn, child_conn = Pipe(duplex=True)
        fd = child_conn.fileno()
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pplx_demo.ingest.worker import _serve; _serve({fd})"
        try:
            proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                    close_fds=True)
        except OSError as exc:
            parent_conn.close()
            child_conn.close()
            raise DemoError(f"the parser process could not start ({exc})") from None
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        self._finalizer = weakref.finalize(self, _reap, proc, parent_conn)
        if not parent_conn.poll(self.start_timeout_s):
            self._kill()
            raise DemoError(f"the parser process did not start within {self.start_timeout_s:g} s")
        try:
            parent_conn.recv()  # "ready": the parsers are imported
        except (EOFError, OSError):
            code_ = self._kill()
            raise DemoError(f"the parser process failed to start ({_exit_description(code_)})") from None
        self.starts += 1
        self.start_seconds += time.monotonic() - began
        return parent_conn

    def _kill(self) -> int | None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        return _reap(proc, conn)


def _reap(proc: subprocess.Popen[bytes] | None, conn: Connection | None) -> int | None:
    if conn is not None:
        conn.close()
    if proc is None:
        return None
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


def _exit_description(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code == -9:
        return "killed (out of memory?)"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _serve(fd: int) -> None:
    """The worker's main loop: import the parsers, say ready, then run calls until told to stop."""
    import importlib  # noqa: PLC0415

    conn = Connection(fd)
    for module in _PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # a missing optional parser fails its own files with a reason
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args = message
        try:
            result = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, the worker lives on
            result = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(result)


# ---------------------------------------------------------------- uploads


def _load_path_task(path: Path, name: str, budget: Budget) -> tuple[IngestReport, int, int]:
    report = IngestReport()
    load_path(path, name, budget, report)
    return report, budget.documents_left, budget.upload_bytes_left


def _load_bytes_task(name: str, data: bytes, budget: Budget) -> tuple[IngestReport, int, int]:
    report = IngestReport()
    load_data_checked(name, data, budget, report)
    return report, budget.documents_left, budget.upload_bytes_left


def _run_task(worker: ParseWorker, task: Callable[..., Any], name: str, size: int, budget: Budget,
              *args: Any) -> IngestReport:
    """One file through the worker; a timeout or a crash becomes that file's rejection."""
    try:
        report, budget.documents_left, budget.upload_bytes_left = worker.call(task, *args, budget)
        return report
    except (ParseTimeout, WorkerDied, RuntimeError) as exc:
        reason = str(exc) if isinstance(exc, ParseTimeout) else f"the parser process failed ({exc})"
        budget.upload_bytes_left -= size  # it was read; count it as the in-process loader would
        report = IngestReport()
        report.reject(name, reason)
        return report


def load_files_isolated(
    paths: Sequence[str | Path],
    settings: Settings,
    display_names: Sequence[str] | None = None,
) -> IngestReport:
    """`formats.load_files` with every file parsed in one worker process, each within
    `settings.parse_timeout_s` (a file over it is rejected; the worker is replaced)."""
    budget = Budget.from_settings(settings)
    report = IngestReport()
    with ParseWorker(settings.parse_timeout_s) as worker:
        for file_path, name in expand_paths(paths, display_names, report):
            try:
                size = file_path.stat().st_size
            except OSError:
                size = 0
            report.extend(_run_task(worker, _load_path_task, name, size, budget, file_path, name))
    return report


def load_bytes_isolated(name: str, data: bytes, settings: Settings, max_bytes: int | None = None) -> IngestReport:
    """`formats.load_bytes` in a worker process, within `settings.parse_timeout_s`."""
    budget = Budget.from_settings(settings, max_bytes)
    with ParseWorker(settings.parse_timeout_s) as worker:
        return _run_task(worker, _load_bytes_task, name, len(data), budget, name, data)
