"""Handlers return small view dataclasses; this turns them into Gradio's `{component: value}` outputs.

A view's field names are component names. `bind(fn, View, components)` gives the function Gradio
calls (same signature, so request / progress injection and the API's parameters are unchanged)
and the outputs list, both derived from the dataclass: nothing has to line up by position in
another file. Fields left at `UNCHANGED` are not sent, so the component keeps its value.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


def unchanged() -> Any:
    """Default for a view field: leave the component as it is."""
    return dataclasses.field(default=UNCHANGED)


def outputs_of(view: type, components: Mapping[str, Any]) -> list[Any]:
    """The components a view type can update, in its field order (what an API caller receives)."""
    return [components[f.name] for f in dataclasses.fields(view)]


def as_updates(result: Any, components: Mapping[str, Any]) -> dict[Any, Any]:
    """{component: value} for every field of a view instance that is not UNCHANGED."""
    return {components[f.name]: getattr(result, f.name) for f in dataclasses.fields(result)
            if getattr(result, f.name) is not UNCHANGED}


def bind(fn: Callable[..., Any], view: type, components: Mapping[str, Any]) -> tuple[Callable[..., Any], list[Any]]:
    """(function for Gradio, outputs) for a handler returning instances of `view`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> dict[Any, Any]:
        return as_updates(fn(*args, **kwargs), components)

    return wrapper, outputs_of(view, components)
