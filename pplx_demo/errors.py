"""The one error type a user can cause: its message says what went wrong and what to do."""

from __future__ import annotations


class DemoError(Exception):
    """A problem the user can act on (bad file, bad URL, model not available, empty query...).

    The message is front-end neutral; `setting` (the PPLX_DEMO_* variable) and `cli_flag` (the
    command-line option) name what changes the outcome, so each front end words the hint itself.
    """

    def __init__(self, message: str = "", *, setting: str | None = None, cli_flag: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.cli_flag = cli_flag


class ModelUnavailable(DemoError):
    """A model that cannot be loaded here; the message says why and how to enable it."""


class Cancelled(DemoError):
    """Work stopped on request; nothing half-done was kept."""
