"""pplx-embed-v1 (standard) on a Text Embeddings Inference server: `TEIEncoder` (its `/info` checked
once, on creation) and `tei_encoder(settings)`."""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Sequence

import numpy as np

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.models.registry import MODELS, ModelSpec
from pplx_demo.models.remote.base import FloatView, Progress, RemoteEncoder, _pplx_spec
from pplx_demo.models.remote.client import RequestLimits, RetryPolicy, _Secret, _Transport, plan_batches
from pplx_demo.models.remote.decoders import decode_tei_codes

TEI_MIN_VERSION = (1, 9, 2)  # first TEI release with native pplx-embed support


def _version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in str(text).split("-")[0].split(".")[:3])
    except ValueError:
        return None


class TEIEncoder(RemoteEncoder):
    """pplx-embed-v1 (standard) on a Text Embeddings Inference server; `GET /info` is checked once, on creation.

    TEI cuts inputs over its `max_input_length` itself (`truncate`); the count added to `EncodeStats.truncated`
    is exact with a tokenizer and an estimate (`approx_token_count`) without one.
    """

    service = "TEI"

    def __init__(self, base_url: str, *, model: str, tokenizer: Any = None, api_key: str = "",
                 truncate: bool = True, max_inputs: int = 32, max_request_chars: int = 500_000,
                 timeout_s: float = 60.0, connect_timeout_s: float = 5.0, retry: RetryPolicy = RetryPolicy(),
                 float_view: FloatView = "codes/127", sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        spec = _pplx_spec(model)
        if spec is None:
            known = ", ".join(s.hub_id for s in MODELS.values() if s.is_pplx and s.variant == "standard")
            raise ModelUnavailable(f"{model!r} is not a pplx-embed model this studio knows; TEI serves one of {known}")
        if spec.variant != "standard":
            raise ModelUnavailable(f"TEI embeds each input on its own, so it cannot serve {spec.key} (late chunking "
                                   "needs the whole document in one pass); use the Perplexity API or a local encoder")
        transport = _Transport(service="TEI", base_url=base_url, timeout_s=timeout_s,
                               connect_timeout_s=connect_timeout_s, retry=retry, secret=_Secret(api_key),
                               timeout_hint="raise PPLX_DEMO_REMOTE_TIMEOUT_S or lower PPLX_DEMO_TEI_MAX_INPUTS",
                               sleep=sleep, rng=rng)
        try:
            info = transport.request("GET", "/info")
            self.info = self._check_info(info, model, spec, transport.display_url)
        except BaseException:
            transport.close()
            raise
        self.truncate = bool(truncate)
        server_batch = int(self.info.get("max_client_batch_size") or max_inputs)
        self.limits = RequestLimits(max_inputs=max(1, min(max_inputs, server_batch)),
                                    max_chars=max(1, max_request_chars))
        max_len = int(self.info.get("max_input_length") or spec.max_context)
        super().__init__(spec=spec, model_key=f"tei:{spec.key}", name=f"{spec.display_name} via TEI ({transport.host})",
                         dim=spec.dim, max_tokens=max_len, transport=transport, tokenizer=tokenizer,
                         float_view=float_view)

    @staticmethod
    def _check_info(info: Any, asked: str, spec: ModelSpec, url: str) -> dict:
        """Refuse a TEI that serves another model, pools otherwise, or predates pplx support (with the reason)."""
        if not isinstance(info, dict) or not isinstance(info.get("model_id"), str):
            raise ModelUnavailable(f"{url}/info did not describe a model (no model_id): is this a TEI server?")
        served = info["model_id"]
        base = served.strip().rstrip("/").rsplit("/", 1)[-1].lower()
        if served.strip().lower() != asked.strip().lower() and base != spec.key:
            raise ModelUnavailable(f"TEI at {url} serves {served!r}, not {spec.hub_id}: its vectors would not be "
                                   f"{spec.display_name}'s. Start TEI with --model-id {spec.hub_id}, or set "
                                   "PPLX_DEMO_TEI_MODEL to the model it serves")
        kind = info.get("model_type")
        if isinstance(kind, dict):
            if "embedding" not in kind:
                raise ModelUnavailable(f"TEI at {url} runs {served!r} as a {next(iter(kind), '?')}, not an embedding "
                                       "model")
            pooling = (kind.get("embedding") or {}).get("pooling")
            if pooling not in (None, "mean"):
                raise ModelUnavailable(f"TEI at {url} pools with {pooling!r}; pplx-embed needs mean pooling "
                                       "(start TEI without --pooling, or with --pooling mean)")
        version = _version(info.get("version"))
        if version is not None and version < TEI_MIN_VERSION:
            raise ModelUnavailable(f"TEI at {url} is version {info.get('version')}; pplx-embed needs TEI "
                                   f">= {'.'.join(map(str, TEI_MIN_VERSION))} (native int8 codes)")
        return info

    @property
    def cache_key(self) -> str:
        """tei:<hub id>@<host>[|<dtype>][|view=...]: codes depend on the server's dtype, never mix with local ones."""
        parts = [f"tei:{self.spec.hub_id}@{self._transport.host}"]
        dtype = self.info.get("model_dtype")
        if isinstance(dtype, str) and dtype:
            parts.append(dtype)
        if self.float_view != "codes/127":
            parts.append(f"view={self.float_view}")
        return "|".join(parts)

    def encode_int8(self, texts: Sequence[str], progress: Progress | None = None,
                    stats: EncodeStats | None = None) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.int8)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        sent = [texts[i] for i in keep]
        # Without a tokenizer the count is the estimate (`approx_token_count`): TEI itself then decides.
        truncated = sum(t > self.max_tokens for t in self.count_tokens(sent))
        if truncated and not self.truncate and self.tokenizer is not None:
            raise DemoError(f"{truncated} input(s) are longer than the {self.max_tokens} tokens TEI reads and "
                            "truncation is off (PPLX_DEMO_TEI_TRUNCATE=0): shorten them or turn truncation on")
        batches = plan_batches([(1, len(t), 0) for t in sent], self.limits)
        done = 0
        for batch in batches:
            payload = {"inputs": [sent[j] for j in batch], "normalize": False, "truncate": self.truncate}
            codes = decode_tei_codes(self._transport.request("POST", "/embed", payload), len(batch), self.dim)
            for row, j in enumerate(batch):
                out[keep[j]] = codes[row]
            done += len(batch)
            if progress is not None:
                progress(done, len(sent))
        self._record(stats, len(texts), truncated)
        return out


def tei_encoder(settings: Settings, *, model: str | None = None, tokenizer: Any = None,
                float_view: FloatView = "codes/127") -> TEIEncoder:
    """A TEIEncoder for `settings.tei_url` serving `model` (default `settings.tei_model`)."""
    if not settings.tei_url:
        raise ModelUnavailable("no TEI server configured: set PPLX_DEMO_TEI_URL (e.g. http://127.0.0.1:8080) to a "
                               "Text Embeddings Inference >= 1.9.2 serving perplexity-ai/pplx-embed-v1-0.6b or -4b")
    return TEIEncoder(settings.tei_url, model=model or settings.tei_model, tokenizer=tokenizer,
                      api_key=settings.tei_api_key, truncate=settings.tei_truncate,
                      max_inputs=settings.tei_max_inputs, max_request_chars=settings.tei_max_request_chars,
                      timeout_s=settings.remote_timeout_s, connect_timeout_s=settings.remote_connect_timeout_s,
                      retry=RetryPolicy.from_settings(settings), float_view=float_view)
