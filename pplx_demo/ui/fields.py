"""Input components whose refusals name the API parameter: `top_k="ten"` -> "top_k must be ... [parameter: top_k]".

Gradio checks a slider's range and a radio's choices before the studio's own code runs, and its own
messages name neither the parameter nor (for a value of the wrong type) what is wrong; without
`show_error` an API caller would only read that the app "has not enabled verbose error reporting".
These constructors make Gradio's own components and give each instance a `preprocess` that checks
first and refuses with a message an API caller can act on. (Instances, not subclasses: Gradio reads a
component's properties from its class and writes a .pyi stub beside any module defining one.)
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from pplx_demo.ui.errors import UserError

T = TypeVar("T")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _values(component: Any) -> list[Any]:
    return [value for _, value in getattr(component, "choices", None) or []]


def _refuse(param: str, why: str) -> UserError:
    return UserError(f"{param} {why} [parameter: {param}]")


def _checked(component: T, param: str, check: Callable[[Any, Any], Any]) -> T:
    """`component` whose preprocess first runs `check(component, payload)` (which may return a new payload)."""
    original = component.preprocess  # type: ignore[attr-defined]

    def preprocess(self: Any, payload: Any) -> Any:
        return original(check(self, payload))

    component.preprocess = types.MethodType(preprocess, component)  # type: ignore[attr-defined]
    component.param = param  # type: ignore[attr-defined]
    return component


def _number(param: str) -> Callable[[Any, Any], Any]:
    def check(c: Any, payload: Any) -> Any:
        low, high = c.minimum, c.maximum
        number = payload
        if isinstance(payload, bool) or not isinstance(payload, (int, float)):
            try:
                number = float(payload) if isinstance(payload, str) else None
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise _refuse(param, f"must be a number from {low:g} to {high:g} (got {_shown(payload)})")
        if not low <= number <= high:
            raise _refuse(param, f"must be from {low:g} to {high:g} (got {_shown(payload)})")
        return number
    return check


def _one_of(param: str) -> Callable[[Any, Any], Any]:
    def check(c: Any, payload: Any) -> Any:
        values = _values(c)
        if payload is not None and not getattr(c, "allow_custom_value", False) and payload not in values:
            raise _refuse(param, f"must be one of {', '.join(map(str, values))} (got {_shown(payload)})")
        return payload
    return check


def _some_of(param: str) -> Callable[[Any, Any], Any]:
    def check(c: Any, payload: Any) -> Any:
        values = _values(c)
        if payload is None:
            payload = []
        if isinstance(payload, (str, int, float)):
            payload = [payload]
        if not isinstance(payload, list):
            raise _refuse(param, f"must be a list of choices (got {_shown(payload)})")
        bad = [v for v in payload if v not in values]
        if bad:
            raise _refuse(param, f"has {_shown(bad[0])}, not one of: {', '.join(map(str, values))}")
        return payload
    return check


def slider(*args: Any, param: str, **kwargs: Any) -> gr.Slider:
    return _checked(gr.Slider(*args, **kwargs), param, _number(param))


def radio(*args: Any, param: str, **kwargs: Any) -> gr.Radio:
    return _checked(gr.Radio(*args, **kwargs), param, _one_of(param))


def checkbox_group(*args: Any, param: str, **kwargs: Any) -> gr.CheckboxGroup:
    return _checked(gr.CheckboxGroup(*args, **kwargs), param, _some_of(param))


def dropdown(*args: Any, param: str, **kwargs: Any) -> gr.Dropdown:
    return _checked(gr.Dropdown(*args, **kwargs), param, _one_of(param))
