"""pplx-embed through the Perplexity API: `PerplexityAPIEncoder` (/v1/embeddings for standard models,
/v1/contextualizedembeddings for contextual ones; int8 codes or exact sign bits) and `pplx_api_encoder`."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.models.registry import MODELS
from pplx_demo.models.remote.base import FloatView, Progress, RemoteEncoder, _pplx_spec
from pplx_demo.models.remote.client import (RemoteServiceError, RequestLimits, RetryPolicy, _Secret, _Transport, log,
                                            plan_batches)
from pplx_demo.models.remote.decoders import _API_HINT, _data, _indexed, _stack, decode_api_binary, decode_api_int8
from pplx_demo.quantize import pack_bits

ApiFormat = Literal["base64_int8", "base64_binary"]

DEFAULT_PPLX_API_URL = "https://api.perplexity.ai"
API_MIN_DIMENSIONS = 128


@dataclass
class _Piece:
    """One document as sent to the contextual endpoint: which chunks of which input document it carries."""

    doc: int
    chunks: list[int]  # indexes into the input document (non-empty chunks only)
    texts: list[str]
    tokens: int


class PerplexityAPIEncoder(RemoteEncoder):
    """pplx-embed through the Perplexity API: /v1/embeddings (standard), /v1/contextualizedembeddings (contextual)."""

    service = "Perplexity API"

    def __init__(self, *, model: str, api_key: str, base_url: str = DEFAULT_PPLX_API_URL,
                 dimensions: int | None = None, tokenizer: Any = None, max_inputs: int = 512,
                 max_chunks: int = 16_000, max_request_tokens: int = 120_000, max_input_tokens: int = 32_000,
                 max_request_chars: int = 2_000_000, timeout_s: float = 60.0, connect_timeout_s: float = 5.0,
                 retry: RetryPolicy = RetryPolicy(), float_view: FloatView = "codes/127",
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        spec = _pplx_spec(model)
        if spec is None:
            known = ", ".join(s.key for s in MODELS.values() if s.is_pplx)
            raise ModelUnavailable(f"{model!r} is not a Perplexity API embedding model: use one of {known}")
        if not api_key:
            raise ModelUnavailable("the Perplexity API needs a key: set PPLX_API_KEY "
                                   "(https://www.perplexity.ai/account/api/keys)")
        dim = spec.dim if not dimensions else int(dimensions)
        if not API_MIN_DIMENSIONS <= dim <= spec.dim:
            raise DemoError(f"{spec.key} accepts dimensions {API_MIN_DIMENSIONS}..{spec.dim} (Matryoshka), not "
                            f"{dimensions}; fix PPLX_DEMO_PPLX_API_DIMENSIONS")
        self.dimensions = dim
        self.api_model = spec.key
        self.base_url_is_default = base_url.strip().rstrip("/") == DEFAULT_PPLX_API_URL
        self.limits = RequestLimits(max_inputs=max(1, max_inputs), max_chars=max(1, max_request_chars),
                                    max_tokens=max(1, max_request_tokens), max_chunks=max(1, max_chunks))
        transport = _Transport(service="Perplexity API", base_url=base_url, timeout_s=timeout_s,
                               connect_timeout_s=connect_timeout_s, retry=retry, secret=_Secret(api_key),
                               timeout_hint="raise PPLX_DEMO_REMOTE_TIMEOUT_S or send fewer inputs per request "
                                            "(PPLX_DEMO_PPLX_API_MAX_INPUTS)", sleep=sleep, rng=rng)
        size = "" if dim == spec.dim else f", {dim} dims"
        super().__init__(spec=spec, model_key=f"pplx-api:{spec.key}",
                         name=f"{spec.display_name} via Perplexity API{size}",
                         dim=dim, max_tokens=max(1, max_input_tokens), transport=transport, tokenizer=tokenizer,
                         float_view=float_view)

    @property
    def cache_key(self) -> str:
        """pplx-api:<model>:<dims>[@<host> when not the public API][|view=...]."""
        key = f"pplx-api:{self.api_model}:{self.dimensions}"
        if not self.base_url_is_default:
            key += f"@{self._transport.host}"
        if self.float_view != "codes/127":
            key += f"|view={self.float_view}"
        return key

    def fidelity(self) -> dict[str, str]:
        out = super().fidelity()
        out["binary"] = ("exact via encode_binary / encode_documents_binary (the API's base64_binary: sign of the "
                         "float); derived from int8 codes otherwise, differing where |x| < ~0.004")
        return out

    # -- public -------------------------------------------------------------------------------------

    def encode_int8(self, texts: Sequence[str], progress: Progress | None = None,
                    stats: EncodeStats | None = None) -> np.ndarray:
        rows = self._texts(list(texts), "base64_int8", progress, stats)
        return _stack(rows, self.dim, np.int8)

    def encode_binary(self, texts: Sequence[str], progress: Progress | None = None,
                      stats: EncodeStats | None = None) -> np.ndarray:
        """(n, ceil(dim/8)) uint8: exact pplx sign bits (x >= 0), packed most significant bit first."""
        bits = _stack(self._texts(list(texts), "base64_binary", progress, stats), self.dim, bool)
        return pack_bits(bits, "big")

    def encode_documents_int8(self, docs: Sequence[Sequence[str]], progress: Progress | None = None,
                              stats: EncodeStats | None = None) -> list[np.ndarray]:
        if self.variant == "standard":
            return super().encode_documents_int8(docs, progress=progress, stats=stats)
        return [_stack(list(d), self.dim, np.int8)
                for d in self._documents([list(d) for d in docs], "base64_int8", progress, stats)]

    def encode_documents_binary(self, docs: Sequence[Sequence[str]], progress: Progress | None = None,
                                stats: EncodeStats | None = None) -> list[np.ndarray]:
        """One (n_chunks, ceil(dim/8)) uint8 array of exact packed bits (MSB first) per document."""
        docs = [list(d) for d in docs]
        if self.variant == "standard":
            flat = self.encode_binary([c for d in docs for c in d], progress=progress, stats=stats)
            out, start = [], 0
            for d in docs:
                out.append(flat[start:start + len(d)])
                start += len(d)
            return out
        return [pack_bits(_stack(list(d), self.dim, bool), "big")
                for d in self._documents(docs, "base64_binary", progress, stats)]

    # -- requests -----------------------------------------------------------------------------------

    def _empty_row(self, fmt: ApiFormat) -> np.ndarray:
        # The zero vector's codes are 0 and its pplx bits are all +1 (x >= 0), as for a local encoder.
        return np.ones(self.dim, bool) if fmt == "base64_binary" else np.zeros(self.dim, np.int8)

    def _payload(self, inputs: list, fmt: ApiFormat) -> dict:
        payload: dict[str, Any] = {"model": self.api_model, "input": inputs, "encoding_format": fmt}
        if self.dimensions != self.spec.dim:
            payload["dimensions"] = self.dimensions
        return payload

    def _decode(self, item: Any, fmt: ApiFormat) -> np.ndarray:
        if not isinstance(item, dict) or "embedding" not in item:
            raise RemoteServiceError("the Perplexity API answered an item without an 'embedding'" + _API_HINT)
        if fmt == "base64_binary":
            return decode_api_binary(item["embedding"], self.dim)
        return decode_api_int8(item["embedding"], self.dim)

    def _texts(self, texts: list[str], fmt: ApiFormat, progress: Progress | None,
               stats: EncodeStats | None) -> list[np.ndarray]:
        """One decoded row per text (standard endpoint; a contextual model sends one-chunk documents)."""
        if self.variant == "contextual":
            return [d[0] for d in self._documents([[t] for t in texts], fmt, progress, stats)]
        out = [self._empty_row(fmt) for _ in texts]
        keep = [i for i, t in enumerate(texts) if t.strip()]  # the API refuses empty strings
        sent, truncated = [], 0
        for i in keep:
            text, cut = self._cut(texts[i], self.max_tokens)
            sent.append(text)
            truncated += cut
        tokens = self.count_tokens(sent)
        done = 0
        for batch in plan_batches([(1, len(t), n) for t, n in zip(sent, tokens)], self.limits):
            body = self._transport.request("POST", "/v1/embeddings", self._payload([sent[j] for j in batch], fmt))
            rows = _indexed(_data(body), len(batch), "texts")
            for j, item in zip(batch, rows):
                out[keep[j]] = self._decode(item, fmt)
            done += len(batch)
            if progress is not None:
                progress(done, len(sent))
        self._record(stats, len(texts), truncated)
        return out

    def _pieces(self, docs: list[list[str]]) -> tuple[list[_Piece], int]:
        """Non-empty chunks grouped per document; documents over the per-document cap split into consecutive
        groups of whole chunks (context then does not cross a group boundary). Returns (pieces, truncated)."""
        pieces: list[_Piece] = []
        truncated = 0
        cap = self.max_tokens
        for d, chunks in enumerate(docs):
            idx = [c for c, text in enumerate(chunks) if text.strip()]
            texts = []
            for c in idx:
                text, cut = self._cut(chunks[c], cap)
                texts.append(text)
                truncated += cut
            counts = self.count_tokens(texts)
            cur = _Piece(d, [], [], 0)
            for c, text, n in zip(idx, texts, counts):
                if cur.chunks and cur.tokens + n > cap:
                    pieces.append(cur)
                    cur = _Piece(d, [], [], 0)
                cur.chunks.append(c)
                cur.texts.append(text)
                cur.tokens += n
            if cur.chunks:
                pieces.append(cur)
        split = len(pieces) - len({p.doc for p in pieces})
        if split:
            log.info("%s: %d document(s) over %d tokens sent in several parts (context does not cross parts)",
                     self.name, split, cap)
        return pieces, truncated

    def _documents(self, docs: list[list[str]], fmt: ApiFormat, progress: Progress | None,
                   stats: EncodeStats | None) -> list[list[np.ndarray]]:
        """Per document, one decoded row per chunk (contextual endpoint). Empty chunks are not sent."""
        out = [[self._empty_row(fmt) for _ in d] for d in docs]
        pieces, truncated = self._pieces(docs)
        total = sum(len(p.chunks) for p in pieces)
        sizes = [(len(p.chunks), sum(len(t) for t in p.texts), p.tokens) for p in pieces]
        done = 0
        for batch in plan_batches(sizes, self.limits):
            body = self._transport.request("POST", "/v1/contextualizedembeddings",
                                           self._payload([pieces[j].texts for j in batch], fmt))
            for j, doc in zip(batch, _indexed(_data(body), len(batch), "documents")):
                piece = pieces[j]
                if not isinstance(doc, dict):
                    raise RemoteServiceError("the Perplexity API answered a document that is not an object" + _API_HINT)
                rows = _indexed(doc.get("data"), len(piece.chunks), f"chunks of document {doc.get('index')}")
                for c, item in zip(piece.chunks, rows):
                    out[piece.doc][c] = self._decode(item, fmt)
                done += len(piece.chunks)
            if progress is not None:
                progress(done, total)
        self._record(stats, sum(len(d) for d in docs), truncated)
        return out


def pplx_api_encoder(settings: Settings, model: str, *, tokenizer: Any = None,
                     float_view: FloatView = "codes/127") -> PerplexityAPIEncoder:
    """A PerplexityAPIEncoder for `model` with the key, URL, dimensions and limits in `settings`."""
    return PerplexityAPIEncoder(model=model, api_key=settings.pplx_api_key, base_url=settings.pplx_api_base_url,
                                dimensions=settings.pplx_api_dimensions or None, tokenizer=tokenizer,
                                max_inputs=settings.pplx_api_max_inputs, max_chunks=settings.pplx_api_max_chunks,
                                max_request_tokens=settings.pplx_api_max_request_tokens,
                                max_input_tokens=settings.pplx_api_max_input_tokens,
                                max_request_chars=settings.pplx_api_max_request_chars,
                                timeout_s=settings.remote_timeout_s,
                                connect_timeout_s=settings.remote_connect_timeout_s,
                                retry=RetryPolicy.from_settings(settings), float_view=float_view)
