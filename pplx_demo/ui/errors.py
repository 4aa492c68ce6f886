"""How the studio shows errors: a DemoError in the studio's own words, anything else logged and summarised."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from pplx_demo.errors import Cancelled, DemoError

log = logging.getLogger(__name__)


class UserError(gr.Error):
    """A DemoError shown to the user as it is (no stack trace in the log)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_exception=False)


def app_message(exc: DemoError) -> str:
    """The studio's sentence for a DemoError: its message, plus the server setting that changes it.

    A command-line option means nothing here, so `cli_flag` is never shown; an API caller is told
    which parameter was wrong by `field`.
    """
    message = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    if exc.setting:
        message += f" (a server operator can change this with the setting {exc.setting}=1)" \
            if exc.setting.startswith("PPLX_DEMO_ALLOW") else f" (server setting {exc.setting})"
    if exc.field and exc.field not in message:
        message += f" [parameter: {exc.field}]"
    return message + "."


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show DemoError messages in the UI / API; log anything else with its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DemoError as exc:
            raise UserError(app_message(exc)) from None
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(exc).__name__}); the details are in the server log.") \
                from exc

    return wrapper


STOPPED = "Stopped. Nothing half-done was kept."


def shown_message(exc: BaseException) -> tuple[str, str]:
    """(text, kind) for an error shown in a tab's status area: a stop is a warning, the rest errors."""
    if isinstance(exc, Cancelled) or "cancelled" in str(getattr(exc, "message", "")).lower():
        return STOPPED, "warn"
    if isinstance(exc, gr.Error):
        return str(exc.message), "error"
    if isinstance(exc, DemoError):
        return app_message(exc), "error"
    log.exception("unexpected error in a studio handler", exc_info=exc)
    return f"Something went wrong ({type(exc).__name__}); the details are in the server log.", "error"
