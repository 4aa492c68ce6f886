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

from pplx_demo.ui.errors import shown_message
from pplx_demo.ui.views import notice_html


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


def bind(fn: Callable[..., Any], view: type, components: Mapping[str, Any], *,
         status: str | None = None, only: tuple[str, ...] | None = None) -> tuple[Callable[..., Any], list[Any]]:
    """(function for Gradio, outputs) for a handler returning instances of `view`.

    With `status` (a component name), an error does not reach Gradio (a toast that fades, red "Error"
    badges): it becomes a persistent message in that component and the other outputs keep their values.
    The page's own buttons use this; API endpoints bind without it, so callers still get an error.
    `only` limits the outputs to these fields (an API endpoint that returns less than the page shows).
    """
    names = {f.name for f in dataclasses.fields(view)}
    if only is not None:
        comps = {name: components[name] for name in only}

        @functools.wraps(fn)
        def subset(*args: Any, **kwargs: Any) -> dict[Any, Any]:
            result = fn(*args, **kwargs)
            return {comps[f]: getattr(result, f) for f in only if getattr(result, f) is not UNCHANGED}

        return subset, [comps[f] for f in only]
    if status is not None and status not in names:
        raise ValueError(f"{view.__name__} has no field {status!r} to show errors in")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> dict[Any, Any]:
        if status is None:
            return as_updates(fn(*args, **kwargs), components)
        try:
            return as_updates(fn(*args, **kwargs), components)
        except Exception as exc:  # noqa: BLE001 - every failure is shown where the user looks
            text, kind = shown_message(exc)
            return {components[status]: notice_html(text, kind)}

    return wrapper, outputs_of(view, components)
