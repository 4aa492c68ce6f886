"""`RemoteEncoder`: the Encoder contract over a service that returns pplx int8 codes (float views of
the codes, fidelity per precision, token counting and cutting); the TEI and API encoders subclass it."""

from __future__ import annotations

import threading
from typing import Any, Callable, Literal, Sequence

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.models.registry import MODELS, ModelSpec
from pplx_demo.models.remote.client import _Transport, log
from pplx_demo.models.remote.tokens import approx_token_count
from pplx_demo.quantize import int8_tanh, int8_tanh_dequantize

Progress = Callable[[int, int], None]
FloatView = Literal["codes/127", "atanh"]

OUTPUT_KIND = "int8_codes"
FLOAT_VIEW_LABELS: dict[str, str] = {
    "codes/127": "float view = int8 codes / 127",
    "atanh": "float view = atanh(int8 codes / 127), an estimate of the pooled float",
}
_INT8_SCHEME_OF_VIEW = {"codes/127": "codes", "atanh": "tanh"}


def _pplx_spec(name: str) -> ModelSpec | None:
    """The registry entry of a pplx-embed model named by key, hub id or a path ending in the model name."""
    key = name.strip().rstrip("/").lower()
    spec = MODELS.get(key) or MODELS.get(key.rsplit("/", 1)[-1])
    return spec if spec is not None and spec.is_pplx else None


class RemoteEncoder:
    """The `Encoder` contract over a service that returns pplx int8 codes (see the module docstring)."""

    output_kind = OUTPUT_KIND
    service = "remote"
    is_pplx = True
    layout = None  # no framing tokens known on the client: the whole window holds text
    fingerprint = ""

    def __init__(self, *, spec: ModelSpec, model_key: str, name: str, dim: int, max_tokens: int,
                 transport: _Transport, tokenizer: Any = None, float_view: FloatView = "codes/127") -> None:
        if float_view not in FLOAT_VIEW_LABELS:
            raise DemoError(f"unknown float view {float_view!r}: use one of {', '.join(FLOAT_VIEW_LABELS)}")
        self.spec = spec
        self.model_key = model_key
        self.name = name
        self.variant = spec.variant
        self.dim = int(dim)
        self.max_tokens = int(max_tokens)
        self.tokenizer = tokenizer
        self.float_view: FloatView = float_view
        self.float_view_label = FLOAT_VIEW_LABELS[float_view]
        self.int8_scheme = _INT8_SCHEME_OF_VIEW[float_view]
        self.last_truncated = 0
        self._transport = transport
        self._tok_lock = threading.Lock()  # fast tokenizers are not safe to call from several threads at once

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model_key={self.model_key!r}, url={self._transport.display_url!r}, "
                f"dim={self.dim}, {self.float_view_label!r})")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the numbers mean ------------------------------------------------------------------

    @property
    def cache_key(self) -> str:
        raise NotImplementedError

    def fidelity(self) -> dict[str, str]:
        """Per precision: exact, derived (how), or not available, for vectors from this service."""
        return {
            "int8": "exact: the service's own codes round(tanh(x) * 127)",
            "binary": ("derived from the int8 codes: sign of the code (code 0 -> +1); pplx binary is the sign of "
                       "the float and differs on dimensions with |x| < ~0.004"),
            "float32": (f"not available: the service returns no floats; vectors are the {self.float_view_label}, "
                        "not the pooled float x"),
        }

    def view_from_codes(self, codes: np.ndarray) -> np.ndarray:
        """The float view of int8 codes (what `encode` returns)."""
        codes = np.asarray(codes, dtype=np.int8)
        if self.float_view == "atanh":
            return int8_tanh_dequantize(codes).reshape(codes.shape)
        return (codes.astype(np.float32) / np.float32(127.0)).astype(np.float32)

    def codes_from_view(self, view: np.ndarray) -> np.ndarray:
        """The exact int8 codes behind a float view (e.g. vectors read back from the embedding cache)."""
        view = np.asarray(view, dtype=np.float32)
        if self.float_view == "atanh":
            return int8_tanh(view).reshape(view.shape)
        return np.clip(np.rint(view * np.float32(127.0)), -128, 127).astype(np.int8)

    # -- tokens -----------------------------------------------------------------------------------

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text: exact with a tokenizer, else `approx_token_count` (special tokens not counted)."""
        texts = list(texts)
        if not texts:
            return []
        if self.tokenizer is None:
            return [approx_token_count(t) for t in texts]
        with self._tok_lock:
            enc = self.tokenizer(texts, add_special_tokens=False, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _cut(self, text: str, cap: int) -> tuple[str, bool]:
        """`text` cut to at most `cap` tokens (estimated without a tokenizer), and whether it was cut."""
        if self.tokenizer is None:
            raw = text.encode("utf-8")
            if -(-len(raw) // 3) <= cap:
                return text, False
            return raw[:3 * cap].decode("utf-8", errors="ignore"), True
        with self._tok_lock:
            enc = self.tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= cap:
            return text, False
        return text[:offsets[cap - 1][1]], True

    # -- the Encoder contract -------------------------------------------------------------------

    def encode(self, texts: Sequence[str], progress: Progress | None = None,
               stats: EncodeStats | None = None) -> np.ndarray:
        """(n, dim) float32: the float view of the service's int8 codes (`float_view_label`)."""
        return self.view_from_codes(self.encode_int8(texts, progress=progress, stats=stats))

    def encode_documents(self, docs: Sequence[Sequence[str]], progress: Progress | None = None,
                         stats: EncodeStats | None = None) -> list[np.ndarray]:
        """One (n_chunks, dim) float view per document (chunks embedded alone unless the model is contextual)."""
        return [self.view_from_codes(c) for c in self.encode_documents_int8(docs, progress=progress, stats=stats)]

    def encode_int8(self, texts: Sequence[str], progress: Progress | None = None,
                    stats: EncodeStats | None = None) -> np.ndarray:
        """(n, dim) int8: the service's exact codes. Empty or blank texts get code 0 everywhere."""
        raise NotImplementedError

    def encode_documents_int8(self, docs: Sequence[Sequence[str]], progress: Progress | None = None,
                              stats: EncodeStats | None = None) -> list[np.ndarray]:
        """One (n_chunks, dim) int8 array per document, exactly one row per chunk."""
        docs = [list(d) for d in docs]
        flat = self.encode_int8([c for d in docs for c in d], progress=progress, stats=stats)
        out, start = [], 0
        for d in docs:
            out.append(flat[start:start + len(d)])
            start += len(d)
        return out

    def _record(self, stats: EncodeStats | None, inputs: int, truncated: int) -> None:
        self.last_truncated = truncated
        if stats is not None:
            stats.inputs += inputs
            stats.truncated += truncated
        if truncated:
            log.info("%s: %d of %d inputs cut to %d tokens", self.name, truncated, inputs, self.max_tokens)
