"""`python app.py` — the README's first command — starts the studio and serves the page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_python_app_py_starts_and_serves(tmp_path):
    port = _free_port()
    env = {**os.environ, "PPLX_DEMO_DB": str(tmp_path / "studio.duckdb"), "GRADIO_SERVER_PORT": str(port)}
    env.pop("GRADIO_SERVER_NAME", None)
    env.pop("SPACE_ID", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 240, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    page = resp.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert "pplx-embed search studio" in page
        assert (tmp_path / "studio.duckdb").is_file()  # the sample corpus was stored on first start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
