"""Start the real studio in this process on a free local port, with its own DuckDB file."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pplx_demo.config import Settings


class Served(str):
    """The studio's URL, carrying the `Studio` behind it (tests that drive handlers or Stop directly)."""

    studio: object


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_studio(db_path: Path, auto_embed_seconds: float | None = None, *, port: int | None = None,
                   wait_ready: bool = True, **overrides) -> Iterator[Served]:
    """Build and launch the studio, start its background start-up and (by default) wait until the shared
    sample is embedded; yields its URL.

    `overrides` replace Settings fields; `auto_embed_seconds` is the studio's "embed right away if
    the estimate is below" threshold; `port` a fixed port (a restart on the same origin keeps the
    browser's local storage).
    """
    from pplx_demo.ui import build_app, launch_options
    from pplx_demo.ui.studio import Studio

    settings = dataclasses.replace(Settings.from_env(), db_path=db_path, **overrides)
    studio = Studio(settings) if auto_embed_seconds is None else Studio(settings, auto_embed_seconds)
    demo = build_app(settings, studio=studio)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=port or free_port(), prevent_thread_lock=True,
                            quiet=True, **launch_options(settings))
    studio.start_background()
    try:
        if wait_ready:
            assert studio.wait_ready(600), "the studio's start-up did not finish in 10 minutes"
            assert studio.readiness.ready, studio.status()
        served = Served(url)
        served.studio = studio
        yield served
    finally:
        demo.close()
        studio.store.close()
