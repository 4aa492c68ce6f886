"""How tests load models: one ModelHub over the settings of the test process (the entry point here)."""

from __future__ import annotations

import functools

from pplx_demo.config import Settings
from pplx_demo.models import Availability, Encoder, ModelHub
from pplx_demo.models import availability as _availability
from pplx_demo.models import load_encoder as _load_encoder


@functools.cache
def hub() -> ModelHub:
    return ModelHub(Settings.from_env())


def get_encoder(model_key: str, variant: str | None = None, runtime: str = "torch") -> Encoder:
    """The cached encoder for (model, variant, runtime)."""
    return hub().get(model_key, variant, runtime)  # type: ignore[arg-type]


def load_encoder(key_or_path: str, variant: str | None = None, settings: Settings | None = None,
                 runtime: str = "torch") -> Encoder:
    """A freshly loaded encoder; settings from this test process' environment unless given."""
    return _load_encoder(key_or_path, variant, settings or Settings.from_env(), runtime)  # type: ignore[arg-type]


def availability(key: str, settings: Settings | None = None, *, check_hub: bool = True) -> Availability:
    return _availability(key, settings or Settings.from_env(), check_hub=check_hub)


def with_models(fn):
    """`fn` with this process' hub as its encoder loader (evaluation runs take the loader explicitly)."""
    return functools.partial(fn, encoder_loader=get_encoder)
