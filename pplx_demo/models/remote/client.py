"""The HTTP client both remote encoders share: JSON over httpx with timeouts, retries (exponential
backoff with jitter, at least Retry-After), request limits and batching, the API key kept in a
`_Secret` and redacted from every message, and errors a person can act on."""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import httpx

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable

log = logging.getLogger(__package__)  # one logger for the package, named as before the split

_BODY_SNIPPET = 300  # characters of a server's error text quoted in a message


class RemoteServiceError(DemoError):
    """A remote embedder failed (unreachable, overloaded, slow, or answered something unusable)."""


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


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
