"""Start the real studio in this process on a free local port, with its own DuckDB file."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pplx_demo.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_studio(db_path: Path, **overrides) -> Iterator[str]:
    """Build and launch the studio (sample corpus embedded on first start); yields its URL."""
    from pplx_demo.ui import build_app, launch_options

    settings = dataclasses.replace(Settings.from_env(), db_path=db_path, **overrides)
    demo = build_app(settings)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_options())
    try:
        yield url
    finally:
        demo.close()
