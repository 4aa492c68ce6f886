"""Input components whose refusals name the API parameter: `top_k="ten"` -> "top_k: ... [parameter: top_k]".

Gradio checks a slider's range and a radio's choices before the studio's own code runs, and its own
messages name neither the parameter nor (for a value of the wrong type) what is wrong; without
`show_error` an API caller would only read that the app "has not enabled verbose error reporting".
These subclasses render exactly like Gradio's own (`is_template`) and turn any refusal in `preprocess`
into an error an API caller can act on.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from pplx_demo.ui.errors import UserError


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choice_values(component: Any) -> list[Any]:
    return [value for _, value in getattr(component, "choices", None) or []]


class _Named:
    """Mixin (after the Gradio class, whose name the front end renders): `param` names the API parameter."""

    is_template = True  # rendered by the front end as the Gradio component it extends
    param: str = ""

    def _refuse(self, why: str) -> UserError:
        return UserError(f"{self.param} {why} [parameter: {self.param}]")


# No __init__ of their own: Gradio reads a component's properties from its class' __init__ signature, so
# these keep Gradio's; `named(...)` sets the parameter name after construction.


class Slider(gr.Slider, _Named):
    def preprocess(self, payload: Any) -> Any:
        low, high = self.minimum, self.maximum
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
            number = None
            if isinstance(payload, str):
                try:
                    number = float(payload)
                except ValueError:
                    number = None
            if number is None or not math.isfinite(number):
                raise self._refuse(f"must be a number from {low:g} to {high:g} (got {_shown(payload)})")
            payload = number
        if not low <= payload <= high:
            raise self._refuse(f"must be from {low:g} to {high:g} (got {_shown(payload)})")
        return super().preprocess(payload)


class Radio(gr.Radio, _Named):
    def preprocess(self, payload: Any) -> Any:
        values = _choice_values(self)
        if payload is not None and payload not in values:
            raise self._refuse(f"must be one of {', '.join(map(str, values))} (got {_shown(payload)})")
        return super().preprocess(payload)


class CheckboxGroup(gr.CheckboxGroup, _Named):
    def preprocess(self, payload: Any) -> Any:
        values = _choice_values(self)
        if payload is None:
            payload = []
        if isinstance(payload, (str, int, float)):
            payload = [payload]
        if not isinstance(payload, list):
            raise self._refuse(f"must be a list of choices (got {_shown(payload)})")
        bad = [v for v in payload if v not in values]
        if bad:
            raise self._refuse(f"has {_shown(bad[0])}, not one of: {', '.join(map(str, values))}")
        return super().preprocess(payload)


class Dropdown(gr.Dropdown, _Named):
    def preprocess(self, payload: Any) -> Any:
        values = _choice_values(self)
        if payload is not None and not self.allow_custom_value and not self.multiselect and payload not in values:
            raise self._refuse(f"must be one of {', '.join(map(str, values))} (got {_shown(payload)})")
        return super().preprocess(payload)


def named(component: Any, param: str) -> Any:
    """`component` (one of the classes above) with the API parameter name its refusals use."""
    component.param = param
    return component


def slider(*args: Any, param: str, **kwargs: Any) -> Slider:
    return named(Slider(*args, **kwargs), param)


def radio(*args: Any, param: str, **kwargs: Any) -> Radio:
    return named(Radio(*args, **kwargs), param)


def checkbox_group(*args: Any, param: str, **kwargs: Any) -> CheckboxGroup:
    return named(CheckboxGroup(*args, **kwargs), param)


def dropdown(*args: Any, param: str, **kwargs: Any) -> Dropdown:
    return named(Dropdown(*args, **kwargs), param)
