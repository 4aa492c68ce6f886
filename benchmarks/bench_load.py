"""Concurrent searches against the studio's public `/search` API: p50 / p95 latency, throughput, errors.

Starts `python app.py` on a fresh temporary database (or uses a running studio given by `--url`),
waits until the shared sample is embedded (the `/status` endpoint), then runs `--clients` threads
that each send `--searches` searches one after the other over plain HTTP (Gradio's
`/gradio_api/call/search` route: one POST, then the server-sent result), each a different real
XQuAD question against the shared sample with the four default configurations.

    python benchmarks/bench_load.py                          # 20 clients x 20 searches, own server
    python benchmarks/bench_load.py --clients 5 --searches 4 # quick
    python benchmarks/bench_load.py --url http://127.0.0.1:7860/

The load generator runs on the same machine as the server (its threads mostly wait on sockets);
`uptime` at the start and the end is printed so a shared machine's load is on record with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pplx_demo.ingest.sample import STARTER_LANGUAGES, sample_queries  # noqa: E402

CONFIGS = ["float32", "int8", "binary", "binary + rescore"]


@dataclass
class LoadResult:
    """Latencies (seconds) of the searches that succeeded, the errors, and the wall time of the whole run."""

    clients: int
    searches: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    @property
    def throughput(self) -> float:
        return self.done / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict:
        return {"clients": self.clients, "searches_per_client": self.searches, "ok": self.done,
                "errors": len(self.errors), "p50_s": round(self.percentile(50), 4),
                "p95_s": round(self.percentile(95), 4), "mean_s": round(statistics.fmean(self.latencies), 4)
                if self.latencies else None, "throughput_per_s": round(self.throughput, 2),
                "wall_s": round(self.wall_s, 2), "first_errors": self.errors[:3]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(client: httpx.Client, base: str, api: str, data: list, timeout: float = 120.0,
         session_hash: str | None = None) -> list:
    """One call of a named endpoint through Gradio's REST route; the outputs, or RuntimeError with its message.

    `session_hash`: the client's Gradio session (as a browser tab or a `gradio_client.Client` keeps one);
    None starts a new session per call, which costs the server a copy of every component's config."""
    body: dict = {"data": data}
    if session_hash is not None:
        body["session_hash"] = session_hash
    r = client.post(f"{base}gradio_api/call/{api}", json=body, timeout=timeout)
    r.raise_for_status()
    event_id = r.json()["event_id"]
    event, payload = "", ""
    with client.stream("GET", f"{base}gradio_api/call/{api}/{event_id}", timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    if event != "complete":
        raise RuntimeError(f"{event or 'no result'}: {payload[:300]}")
    return json.loads(payload)


def wait_ready(base: str, timeout_s: float) -> float:
    """Seconds until the studio answers `/status` with state 'ready' (the sample embedded)."""
    start = time.monotonic()
    with httpx.Client() as client:
        while time.monotonic() - start < timeout_s:
            try:
                status = call(client, base, "status", [], timeout=10)[0]
                if status.get("state") == "ready":
                    return time.monotonic() - start
                if status.get("state") == "failed":
                    raise RuntimeError(f"the studio failed to prepare: {status.get('message')}")
            except (httpx.HTTPError, RuntimeError, KeyError, IndexError) as exc:
                if "failed to prepare" in str(exc):
                    raise
            time.sleep(0.5)
    raise TimeoutError(f"the studio was not ready within {timeout_s:.0f} s")


def sample_corpus_id(base: str) -> str:
    with httpx.Client() as client:
        corpora = call(client, base, "corpora", [""])[0]
    return str(next(c["corpus_id"] for c in corpora if c["shared"]))


def run_load(base: str, clients: int, searches: int, corpus: str, sessions: bool = True) -> LoadResult:
    """`clients` threads x `searches` searches each, all started together; latency per search.

    With `sessions` each client keeps one Gradio session for all its searches (a browser tab, a
    gradio_client.Client); without, every search opens a new one (bare HTTP calls with no session_hash)."""
    questions = [q for lang in STARTER_LANGUAGES for q in sample_queries(lang, 40)]
    result = LoadResult(clients, searches)
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client_loop(i: int) -> None:
        session = secrets.token_hex(8) if sessions else None
        with httpx.Client(limits=httpx.Limits(max_connections=2)) as client:
            barrier.wait()
            for j in range(searches):
                query = questions[(i * searches + j) % len(questions)]
                t0 = time.perf_counter()
                try:
                    call(client, base, "search", [corpus, query, "stand-in", "standard", CONFIGS, 10, 4, "full", "", "torch",
                         False], session_hash=session)
                except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    result.latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - start
    return result


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "uptime unavailable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running studio (default: start app.py on a temporary database)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--searches", type=int, default=20, help="searches per client")
    parser.add_argument("--warm", type=int, default=2, help="untimed searches first (per client)")
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--new-session-per-search", action="store_true",
                        help="send no session_hash: every search opens a new Gradio session (worst case)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    print(f"start: {uptime()}", flush=True)
    proc = None
    tmp = None
    base = args.url
    try:
        if base is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-load-")
            port = _free_port()
            env = {**os.environ, "PPLX_DEMO_DB": str(Path(tmp.name) / "studio.duckdb"),
                   "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
                   "PPLX_DEMO_LOG_LEVEL": "WARNING"}
            env.pop("GRADIO_SERVER_NAME", None)
            log = open(Path(tmp.name) / "app.log", "w")  # noqa: SIM115 - closed with the directory
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            base = f"http://127.0.0.1:{port}/"
        base = base if base.endswith("/") else base + "/"
        ready = wait_ready(base, args.ready_timeout)
        print(f"studio ready after {ready:.1f} s at {base}", flush=True)
        corpus = sample_corpus_id(base)
        if args.warm:
            run_load(base, args.clients, args.warm, corpus, not args.new_session_per_search)
        result = run_load(base, args.clients, args.searches, corpus, not args.new_session_per_search)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()
    print(f"end: {uptime()}")
    out = result.to_dict()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.clients} clients x {args.searches} searches: {out['ok']} ok, {out['errors']} errors; "
              f"p50 {out['p50_s'] * 1e3:.0f} ms, p95 {out['p95_s'] * 1e3:.0f} ms, "
              f"{out['throughput_per_s']:.1f} searches/s over {out['wall_s']:.1f} s")
        for e in out["first_errors"]:
            print("  error:", e)
    return 0 if not result.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
