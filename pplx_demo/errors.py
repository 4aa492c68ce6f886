"""The one error type a user can cause: its message says what went wrong and what to do."""


class DemoError(Exception):
    """A problem the user can act on (bad file, bad URL, model not available, empty query...)."""


class ModelUnavailable(DemoError):
    """A model that cannot be loaded here; the message says why and how to enable it."""


class Cancelled(DemoError):
    """Work stopped on request; nothing half-done was kept."""
