"""The one error type a user can cause: its message says what went wrong and what to do.

Messages are front-end neutral. Where the fix is a setting or an option, the error names it as
structure (`setting`, `cli_flag`, `field`) and each front end writes its own sentence around it
(`python -m pplx_demo`: "... (--allow-private)"; the studio: "... with the server setting
PPLX_DEMO_ALLOW_PRIVATE=1"), so no front end rewrites another's wording.
"""

from __future__ import annotations


class DemoError(Exception):
    """A problem the user can act on (bad file, bad URL, model not available, empty query...).

    `setting`: the server setting (environment variable) that changes the outcome; `cli_flag`: the
    command-line option that does; `field`: the input (API parameter / form field) that was wrong.
    """

    def __init__(self, message: str = "", *, setting: str | None = None, cli_flag: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting
        self.cli_flag = cli_flag
        self.field = field


class ModelUnavailable(DemoError):
    """A model that cannot be loaded here; the message says why and how to enable it."""


class Cancelled(DemoError):
    """Work stopped on request; nothing half-done was kept."""
