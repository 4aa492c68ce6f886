"""Real HTTP servers on 127.0.0.1 that speak the DOCUMENTED request/response shapes of TEI and the
Perplexity API (see pplx_demo/models/remote/), computing their answers from a known float matrix.

They are contract stand-ins, not the real services: what they prove is that the clients speak the
documented shapes and handle the documented failures. Faults (status codes, slow answers, dropped
connections, damaged bodies) are queued per server and consumed one per request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import numpy as np

from pplx_demo.quantize import int8_tanh

SMALL_DIMS = (3, 5, 7)  # dimensions set to |x| < 0.004: code 0, and the float's sign decides pplx binary


def reference_float(text: str, dim: int) -> np.ndarray:
    """The pooled float vector the fake model 'computes' for `text` (deterministic per text)."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    x = (np.random.default_rng(seed).standard_normal(dim) * 0.6).astype(np.float32)
    x[0] = 4.0  # saturates to code 127
    x[1] = -4.0
    x[SMALL_DIMS[0]] = -0.001  # code 0, pplx bit 0 (negative float)
    x[SMALL_DIMS[1]] = 0.001  # code 0, pplx bit 1
    x[SMALL_DIMS[2]] = -0.003
    return x


def contextual_float(doc: list[str], chunk: int, dim: int) -> np.ndarray:
    """A chunk's vector depends on its whole document (late chunking)."""
    x = reference_float(doc[chunk], dim) + 0.5 * reference_float("\x1f".join(doc), dim)
    x[SMALL_DIMS[0]], x[SMALL_DIMS[1]], x[SMALL_DIMS[2]] = -0.001, 0.001, -0.003
    return x


def codes_of(x: np.ndarray) -> np.ndarray:
    return int8_tanh(x)[0]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without an answer


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1:<free port> answering with `app(seen) -> Reply`."""

    def __init__(self, app: Callable[[Seen], Reply]) -> None:
        self.app = app
        self.seen: list[Seen] = []
        self.faults: deque[Reply] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body, raw)
                with server._lock:
                    server.seen.append(seen)
                    fault = server.faults.popleft() if server.faults else None
                reply = fault if fault is not None else server.app(seen)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    return
                if fault is not None and reply.body is None and reply.status == 200:
                    reply = server.app(seen)  # a pure delay: answer normally afterwards
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- TEI --------------------------------------------------------------------------------------------

def tei_app(*, model_id: str = "perplexity-ai/pplx-embed-v1-0.6b", dim: int = 1024, max_client_batch_size: int = 32,
            max_input_length: int = 512, version: str = "1.9.2", pooling: str = "mean",
            token: str | None = None) -> Callable[[Seen], Reply]:
    """TEI's /info and /embed for a pplx-embed model: /embed answers round(tanh(x) * 127) as JSON floats."""

    def app(seen: Seen) -> Reply:
        if token is not None and seen.headers.get("Authorization") != f"Bearer {token}":
            return Reply(401, {"error": "Unauthorized", "error_type": "Unauthorized"})
        if seen.method == "GET" and seen.path == "/info":
            return Reply(200, {"model_id": model_id, "model_sha": None, "model_dtype": "float32",
                               "model_type": {"embedding": {"pooling": pooling}}, "max_concurrent_requests": 512,
                               "max_input_length": max_input_length, "max_batch_tokens": 16384,
                               "max_batch_requests": None, "max_client_batch_size": max_client_batch_size,
                               "auto_truncate": False, "tokenization_workers": 2, "version": version, "sha": None,
                               "docker_label": None})
        if seen.method == "POST" and seen.path == "/embed":
            body = seen.body
            if not isinstance(body, dict) or "inputs" not in body:
                return Reply(422, {"error": "Failed to deserialize the JSON body", "error_type": "Validation"})
            inputs = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
            if len(inputs) > max_client_batch_size:
                return Reply(413, {"error": f"batch size {len(inputs)} > maximum allowed batch size "
                                            f"{max_client_batch_size}", "error_type": "Validation"})
            if any(not t for t in inputs):
                return Reply(400, {"error": "`inputs` cannot be empty", "error_type": "Empty"})
            rows = np.stack([codes_of(reference_float(t, dim)) for t in inputs]).astype(np.float32)
            if body.get("normalize", True):  # TEI's default: L2-normalised, which destroys the codes
                rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
            return Reply(200, rows.tolist())
        return Reply(404, {"error": "Not Found"})

    return app


# -- Perplexity API ---------------------------------------------------------------------------------

API_MODELS = {"pplx-embed-v1-0.6b": 1024, "pplx-embed-v1-4b": 2560,
              "pplx-embed-context-v1-0.6b": 1024, "pplx-embed-context-v1-4b": 2560}


def _encode_row(x: np.ndarray, fmt: str) -> str:
    if fmt == "base64_binary":
        return base64.b64encode(np.packbits(x >= 0, bitorder="little").tobytes()).decode()
    return base64.b64encode(codes_of(x).tobytes()).decode()


def api_app(*, key: str, models: dict[str, int] | None = None) -> Callable[[Seen], Reply]:
    """/v1/embeddings and /v1/contextualizedembeddings as documented (validation errors as 422 'detail')."""
    offered = dict(API_MODELS if models is None else models)

    def invalid(loc: list, msg: str) -> Reply:
        return Reply(422, {"detail": [{"loc": ["body", *loc], "msg": msg, "type": "value_error"}]})

    def common(body: Any) -> tuple[Reply | None, int, str]:
        if not isinstance(body, dict):
            return invalid([], "Input should be a valid dictionary"), 0, ""
        model = body.get("model")
        if model not in offered:
            return invalid(["model"], "Input should be " + " or ".join(repr(m) for m in offered)), 0, ""
        full = offered[model]
        dim = body.get("dimensions", full)
        if not isinstance(dim, int) or not 128 <= dim <= full:
            return invalid(["dimensions"], f"dimensions must be between 128 and {full}"), 0, ""
        fmt = body.get("encoding_format", "base64_int8")
        if fmt not in ("base64_int8", "base64_binary"):
            return invalid(["encoding_format"], "Input should be 'base64_int8' or 'base64_binary'"), 0, ""
        return None, dim, fmt

    def usage(n_tokens: int) -> dict:
        return {"prompt_tokens": n_tokens, "total_tokens": n_tokens,
                "cost": {"input_cost": 0.0, "total_cost": 0.0, "currency": "USD"}}

    def app(seen: Seen) -> Reply:
        auth = seen.headers.get("Authorization", "")
        if auth != f"Bearer {key}":
            # A careless server that echoes what it was sent: the client must still never show the key.
            return Reply(401, {"error": {"message": f"Invalid API key provided: {auth}", "type": "invalid_api_key",
                                         "code": 401}})
        body = seen.body
        if seen.method == "POST" and seen.path == "/v1/embeddings":
            error, dim, fmt = common(body)
            if error:
                return error
            if body["model"].startswith("pplx-embed-context"):
                return invalid(["model"], "contextual models are served by /v1/contextualizedembeddings")
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts
            if not isinstance(texts, list) or not 1 <= len(texts) <= 512:
                return invalid(["input"], "List should have at least 1 item and at most 512 items")
            if any(not isinstance(t, str) or not t for t in texts):
                return invalid(["input"], "String should have at least 1 character")
            data = [{"object": "embedding", "index": i,
                     "embedding": _encode_row(reference_float(t, offered[body["model"]])[:dim], fmt)}
                    for i, t in enumerate(texts)]
            return Reply(200, {"object": "list", "data": data, "model": body["model"],
                               "usage": usage(sum(len(t) for t in texts) // 4)})
        if seen.method == "POST" and seen.path == "/v1/contextualizedembeddings":
            error, dim, fmt = common(body)
            if error:
                return error
            if not body["model"].startswith("pplx-embed-context"):
                return invalid(["model"], "Input should be 'pplx-embed-context-v1-0.6b' or 'pplx-embed-context-v1-4b'")
            docs = body.get("input")
            if not isinstance(docs, list) or not 1 <= len(docs) <= 512 or \
                    any(not isinstance(d, list) or not d for d in docs):
                return invalid(["input"], "List should have at least 1 item and at most 512 items")
            if sum(len(d) for d in docs) > 16_000:
                return invalid(["input"], "Total chunks across all documents must not exceed 16,000")
            if any(not isinstance(c, str) or not c for d in docs for c in d):
                return invalid(["input"], "String should have at least 1 character")
            full = offered[body["model"]]
            data = [{"object": "list", "index": i,
                     "data": [{"object": "embedding", "index": j,
                               "embedding": _encode_row(contextual_float(d, j, full)[:dim], fmt)}
                              for j in range(len(d))]}
                    for i, d in enumerate(docs)]
            return Reply(200, {"object": "list", "data": data, "model": body["model"], "usage": usage(0)})
        return Reply(404, {"detail": "Not Found"})

    return app
