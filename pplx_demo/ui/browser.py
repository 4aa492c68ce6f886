"""What the studio keeps in the browser, and the key that encrypts it.

The browser keeps one thing: the session key that owns its private corpora (`gr.BrowserState`,
encrypted in local storage). Gradio encrypts it with a secret; a secret made fresh at every start
would make every browser forget its key (and so its corpora) when the server restarts. The secret
is `Settings.browser_state_secret` when set; otherwise it is generated once and kept beside the
database as `<db>.secret` (mode 0600), so it lives exactly as long as the corpora it protects.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError

STORAGE_KEY = "pplx-studio-session"


def secret_path(db_path: Path) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".secret")


def browser_secret(settings: Settings) -> str:
    """The browser-state secret: the setting, else `<db>.secret` (created with a random value on first use)."""
    if settings.browser_state_secret:
        return settings.browser_state_secret
    path = secret_path(settings.db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise DemoError(f"cannot create {path} for the browser-state secret ({exc.strerror or exc}); set "
                            "PPLX_DEMO_BROWSER_STATE_SECRET instead", setting="PPLX_DEMO_BROWSER_STATE_SECRET") from None
    else:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(32))
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"cannot read the browser-state secret {path} ({exc}); delete it (browsers then forget "
                        "their sessions) or set PPLX_DEMO_BROWSER_STATE_SECRET",
                        setting="PPLX_DEMO_BROWSER_STATE_SECRET") from None
    if len(value) < 16:  # a half-written file from a crash: start over
        path.unlink(missing_ok=True)
        return browser_secret(settings)
    return value
