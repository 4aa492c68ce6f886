"""Contract tests for the remote embedders (pplx_demo/models/remote/).

They run real HTTP servers on 127.0.0.1 (tests/remote_servers.py) that implement the DOCUMENTED
request/response shapes of Text Embeddings Inference and the Perplexity API, computing answers from a
known float matrix. They are not the real services: they prove that the clients speak those shapes,
decode exactly, batch within the limits, retry what is worth retrying and fail with clear messages.
"""

from __future__ import annotations

import base64
import logging
import random
import time
import traceback

import numpy as np
import pytest

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import EncodeStats
from pplx_demo.models.remote import (PerplexityAPIEncoder, RemoteServiceError, RequestLimits, RetryPolicy,
                                     TEIEncoder, approx_token_count, decode_api_binary, decode_api_int8,
                                     parse_retry_after, plan_batches, pplx_api_encoder, tei_encoder)
from pplx_demo.quantize import binary_bits, int8_tanh
from remote_servers import (SMALL_DIMS, LoopbackServer, Reply, api_app, codes_of, contextual_float, reference_float,
                            tei_app)

KEY = "pplx-TEST-secret-0123456789abcdef"
FAST = RetryPolicy(retries=2, backoff_s=0.01, max_wait_s=5.0)
TEXTS = ["what is late chunking?", "", "Binary codes keep one bit per dimension.", "ünïcödé 文本 ✓"]


def _tei(server: LoopbackServer, **kw) -> TEIEncoder:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout_s", 5.0)
    return TEIEncoder(server.url, model=kw.pop("model", "perplexity-ai/pplx-embed-v1-0.6b"), **kw)


def _api(server: LoopbackServer, model: str = "pplx-embed-v1-0.6b", **kw) -> PerplexityAPIEncoder:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout_s", 5.0)
    return PerplexityAPIEncoder(model=model, api_key=kw.pop("api_key", KEY), base_url=server.url, **kw)


def _expected_codes(texts: list[str], dim: int) -> np.ndarray:
    return np.stack([codes_of(reference_float(t, dim)) if t.strip() else np.zeros(dim, np.int8) for t in texts])


# -- TEI ----------------------------------------------------------------------------------------------

def test_contract_tei_vectors_decode_to_exactly_the_servers_codes():
    with LoopbackServer(tei_app()) as server, _tei(server) as enc:
        codes = enc.encode_int8(TEXTS)
        view = enc.encode(TEXTS)
        docs = enc.encode_documents([TEXTS[:2], TEXTS[2:]])
    expected = _expected_codes(TEXTS, 1024)
    assert codes.dtype == np.int8 and np.array_equal(codes, expected)
    assert view.dtype == np.float32 and np.array_equal(view, expected.astype(np.float32) / 127)
    assert np.array_equal(np.concatenate(docs), view)
    assert enc.output_kind == "int8_codes" and enc.float_view_label == "float view = int8 codes / 127"
    assert enc.dim == 1024 and enc.variant == "standard" and enc.is_pplx and enc.max_tokens == 512
    assert np.array_equal(enc.codes_from_view(view), expected)
    assert [s.method + " " + s.path for s in server.seen].count("GET /info") == 1  # read once
    for post in server.posts("/embed"):
        assert post.body["normalize"] is False and post.body["truncate"] is True
        assert "" not in post.body["inputs"]  # blank texts are not sent: they get the zero vector


def test_contract_tei_batches_split_at_the_servers_and_our_limits():
    with LoopbackServer(tei_app(max_client_batch_size=4)) as server, _tei(server, max_inputs=10) as enc:
        texts = [f"text number {i}" for i in range(10)]
        seen_progress: list[tuple[int, int]] = []
        codes = enc.encode_int8(texts, progress=lambda d, t: seen_progress.append((d, t)))
        assert [len(p.body["inputs"]) for p in server.posts("/embed")] == [4, 4, 2]  # server's max batch wins
        assert seen_progress == [(4, 10), (8, 10), (10, 10)]
        assert np.array_equal(codes, _expected_codes(texts, 1024))
    with LoopbackServer(tei_app()) as server, _tei(server, max_request_chars=30) as enc:
        enc.encode_int8(["a" * 20, "b" * 20, "c" * 5, "d" * 40])
        assert [[len(t) for t in p.body["inputs"]] for p in server.posts("/embed")] == [[20], [20, 5], [40]]


@pytest.mark.parametrize("info, words", [
    ({"model_id": "BAAI/bge-small-en-v1.5"}, ["serves 'BAAI/bge-small-en-v1.5'", "--model-id"]),
    ({"model_id": "perplexity-ai/pplx-embed-v1-4b"}, ["serves 'perplexity-ai/pplx-embed-v1-4b'"]),
    ({"pooling": "cls"}, ["pools with 'cls'", "mean pooling"]),
    ({"version": "1.8.0"}, ["1.8.0", "1.9.2"]),
])
def test_contract_tei_refuses_a_server_that_is_not_the_model_asked_for(info, words):
    with LoopbackServer(tei_app(**info)) as server:
        with pytest.raises(ModelUnavailable) as err:
            _tei(server)
    for w in words:
        assert w in str(err.value)


def test_contract_tei_accepts_a_local_path_model_id_and_refuses_context_models():
    with LoopbackServer(tei_app(model_id="/data/pplx-embed-v1-0.6b")) as server, _tei(server) as enc:
        assert enc.cache_key == f"tei:perplexity-ai/pplx-embed-v1-0.6b@{server.url[7:]}|float32"
    with pytest.raises(ModelUnavailable, match="cannot serve pplx-embed-context-v1-0.6b"):
        TEIEncoder("http://127.0.0.1:9", model="pplx-embed-context-v1-0.6b")


def test_contract_tei_values_that_are_not_codes_are_refused():
    with LoopbackServer(tei_app()) as server, _tei(server) as enc:
        good = enc.encode_int8(["x"])
        server.faults.append(Reply(200, (good.astype(np.float32) / np.linalg.norm(good)).tolist()))
        with pytest.raises(RemoteServiceError, match="not int8 codes"):
            enc.encode_int8(["x"])
        server.faults.append(Reply(200, [[1.0] * 1023]))
        with pytest.raises(RemoteServiceError, match="1x1023, expected 1x1024"):
            enc.encode_int8(["x"])
        server.faults.append(Reply(200, b"<html>gateway</html>"))
        with pytest.raises(RemoteServiceError, match="not JSON"):
            enc.encode_int8(["x"])


def test_contract_tei_429_then_success_honours_retry_after():
    with LoopbackServer(tei_app()) as server, _tei(server) as enc:
        server.faults.append(Reply(429, {"error": "model is overloaded", "error_type": "Overloaded"},
                                   headers={"Retry-After": "1"}))
        t0 = time.monotonic()
        codes = enc.encode_int8(["retry me"])
        elapsed = time.monotonic() - t0
    assert np.array_equal(codes, _expected_codes(["retry me"], 1024))
    assert len(server.posts("/embed")) == 2
    assert elapsed >= 1.0  # waited what the server asked, not the 0.01 s backoff


def test_contract_tei_repeated_500_fails_with_a_clear_error_after_the_retries(caplog):
    with LoopbackServer(tei_app()) as server, _tei(server) as enc:
        for _ in range(3):
            server.faults.append(Reply(500, {"error": "CUDA error", "error_type": "Backend"}))
        with caplog.at_level(logging.WARNING), pytest.raises(RemoteServiceError) as err:
            enc.encode_int8(["x"])
    assert len(server.posts("/embed")) == 3  # first attempt + 2 retries
    msg = str(err.value)
    assert "after 3 attempts" in msg and "HTTP 500: CUDA error" in msg and "is up" in msg
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


def test_contract_tei_dropped_connections_are_retried():
    with LoopbackServer(tei_app()) as server, _tei(server) as enc:
        server.faults.append(Reply(drop=True))
        assert np.array_equal(enc.encode_int8(["x"]), _expected_codes(["x"], 1024))
    assert len(server.posts("/embed")) == 2


def test_contract_tei_unreachable_server_fails_after_retries():
    with LoopbackServer(tei_app()) as server:
        url = server.url  # the port is closed once the server stops
    t0 = time.monotonic()
    with pytest.raises(RemoteServiceError, match="cannot reach") as err:
        TEIEncoder(url, model="pplx-embed-v1-0.6b", retry=FAST, timeout_s=2.0)
    assert "after 3 attempts" in str(err.value) and time.monotonic() - t0 < 5


def test_contract_tei_slow_answer_past_the_timeout_is_a_clear_error():
    with LoopbackServer(tei_app()) as server, _tei(server, timeout_s=0.3) as enc:
        server.faults.append(Reply(delay_s=1.5))
        with pytest.raises(RemoteServiceError) as err:
            enc.encode_int8(["slow"])
    assert "did not answer POST /embed within 0.3 s" in str(err.value)
    assert "PPLX_DEMO_REMOTE_TIMEOUT_S" in str(err.value)
    assert len(server.posts("/embed")) == 1  # a slow server is not hammered again


def test_contract_tei_behind_auth_needs_the_token():
    with LoopbackServer(tei_app(token="tei-token")) as server:
        with pytest.raises(ModelUnavailable, match="HTTP 401.*PPLX_DEMO_TEI_API_KEY"):
            _tei(server)
        with _tei(server, api_key="tei-token") as enc:
            assert enc.encode_int8(["x"]).shape == (1, 1024)


def test_contract_tei_oversized_batch_is_a_clear_413():
    with LoopbackServer(tei_app(max_client_batch_size=2)) as server, _tei(server) as enc:
        enc.limits = RequestLimits(max_inputs=5, max_chars=10_000)  # pretend we ignored the server's maximum
        with pytest.raises(RemoteServiceError, match="HTTP 413: batch size 3 > maximum allowed batch size 2"):
            enc.encode_int8(["a", "b", "c"])


# -- Perplexity API -----------------------------------------------------------------------------------

def test_contract_api_standard_int8_and_exact_binary():
    with LoopbackServer(api_app(key=KEY)) as server, _api(server) as enc:
        codes = enc.encode_int8(TEXTS)
        packed = enc.encode_binary(TEXTS)
        view = enc.encode(TEXTS)
    floats = np.stack([reference_float(t, 1024) if t.strip() else np.zeros(1024, np.float32) for t in TEXTS])
    assert np.array_equal(codes, _expected_codes(TEXTS, 1024))
    assert np.array_equal(view, codes.astype(np.float32) / 127)
    # base64_binary (LSB first) decodes to the sign of the FLOAT, repacked MSB first like np.packbits
    assert packed.shape == (len(TEXTS), 128) and np.array_equal(packed, np.packbits(floats >= 0, axis=1))
    # binary derived from the int8 codes differs exactly where the code is 0 and the float is negative
    derived = np.packbits(binary_bits(view), axis=1)
    diff = np.unpackbits(derived ^ packed, axis=1).astype(bool)
    assert np.array_equal(diff, (codes == 0) & (floats < 0))
    assert {SMALL_DIMS[0], SMALL_DIMS[2]} <= set(np.flatnonzero(diff[0])) and not diff[0, SMALL_DIMS[1]]
    for post in server.posts("/v1/embeddings"):
        assert post.headers["Authorization"] == f"Bearer {KEY}" and "dimensions" not in post.body
        assert post.body["model"] == "pplx-embed-v1-0.6b" and "" not in post.body["input"]
    assert [p.body["encoding_format"] for p in server.posts("/v1/embeddings")] == \
        ["base64_int8", "base64_binary", "base64_int8"]


def test_contract_api_matryoshka_dimensions():
    with LoopbackServer(api_app(key=KEY)) as server, _api(server, "pplx-embed-v1-4b", dimensions=256) as enc:
        codes = enc.encode_int8(["short"])
        assert enc.dim == 256 and enc.cache_key == f"pplx-api:pplx-embed-v1-4b:256@{server.url[7:]}"
    assert server.posts("/v1/embeddings")[0].body["dimensions"] == 256
    assert np.array_equal(codes[0], codes_of(reference_float("short", 2560))[:256])
    with pytest.raises(DemoError, match="128..1024"):
        PerplexityAPIEncoder(model="pplx-embed-v1-0.6b", api_key=KEY, dimensions=2048)


def test_contract_api_contextual_documents_one_vector_per_chunk():
    docs = [["Alpha chunk.", "", "Gamma refers to alpha."], ["Solo."], ["", "  "]]
    with LoopbackServer(api_app(key=KEY)) as server, _api(server, "pplx-embed-context-v1-0.6b") as enc:
        out = enc.encode_documents_int8(docs)
        bits = enc.encode_documents_binary(docs)
        query = enc.encode_int8(["a query"])
        stats = EncodeStats()
        views = enc.encode_documents(docs, stats=stats)
    sent = server.posts("/v1/contextualizedembeddings")
    assert sent[0].body["input"] == [["Alpha chunk.", "Gamma refers to alpha."], ["Solo."]]  # empties not sent
    kept = ["Alpha chunk.", "Gamma refers to alpha."]
    assert np.array_equal(out[0][0], codes_of(contextual_float(kept, 0, 1024)))
    assert np.array_equal(out[0][2], codes_of(contextual_float(kept, 1, 1024)))
    assert not out[0][1].any() and not out[2].any() and [len(d) for d in out] == [3, 1, 2]
    assert np.array_equal(bits[1][0], np.packbits(contextual_float(["Solo."], 0, 1024) >= 0))
    assert np.array_equal(query[0], codes_of(contextual_float(["a query"], 0, 1024)))  # a one-chunk document
    assert stats.inputs == 6 and [len(v) for v in views] == [3, 1, 2]


def test_contract_api_batches_split_at_inputs_chars_and_tokens():
    texts = [f"text {i} " + "x" * 30 for i in range(7)]  # 38 chars, ~13 estimated tokens each
    with LoopbackServer(api_app(key=KEY)) as server:
        with _api(server, max_inputs=3) as enc:
            assert np.array_equal(enc.encode_int8(texts), _expected_codes(texts, 1024))
        with _api(server, max_request_tokens=30) as enc:
            enc.encode_int8(texts)
        with _api(server, max_request_chars=80) as enc:
            enc.encode_int8(texts)
        sizes = [len(p.body["input"]) for p in server.posts("/v1/embeddings")]
    assert sizes == [3, 3, 1] + [2, 2, 2, 1] + [2, 2, 2, 1]
    docs = [[f"doc {d} chunk {c}" for c in range(3)] for d in range(5)]
    with LoopbackServer(api_app(key=KEY)) as server:
        with _api(server, "pplx-embed-context-v1-0.6b", max_inputs=2) as enc:
            first = enc.encode_documents_int8(docs)
        with _api(server, "pplx-embed-context-v1-0.6b", max_chunks=7) as enc:
            second = enc.encode_documents_int8(docs)
        shapes = [[len(d) for d in p.body["input"]] for p in server.posts("/v1/contextualizedembeddings")]
    assert shapes == [[3, 3], [3, 3], [3]] + [[3, 3], [3, 3], [3]]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_contract_api_long_document_is_sent_in_parts_and_long_chunks_are_cut():
    chunks = ["a" * 30, "b" * 30, "c" * 30, "d" * 90]  # 10, 10, 10, 30 estimated tokens
    with LoopbackServer(api_app(key=KEY)) as server, \
            _api(server, "pplx-embed-context-v1-0.6b", max_input_tokens=20) as enc:
        stats = EncodeStats()
        out = enc.encode_documents_int8([chunks], stats=stats)
    assert server.posts("/v1/contextualizedembeddings")[0].body["input"] == \
        [["a" * 30, "b" * 30], ["c" * 30], ["d" * 60]]
    assert stats.truncated == 1 and enc.last_truncated == 1 and len(out[0]) == 4
    assert np.array_equal(out[0][2], codes_of(contextual_float(["c" * 30], 0, 1024)))


def test_contract_api_429_and_503_then_success():
    with LoopbackServer(api_app(key=KEY)) as server, _api(server) as enc:
        server.faults.extend([Reply(429, {"error": {"message": "rate limited"}}, headers={"Retry-After": "0"}),
                              Reply(503, {"error": {"message": "unavailable"}})])
        assert np.array_equal(enc.encode_int8(["x"]), _expected_codes(["x"], 1024))
    assert len(server.posts("/v1/embeddings")) == 3


def test_contract_api_retry_after_longer_than_we_wait_fails_at_once():
    with LoopbackServer(api_app(key=KEY)) as server, _api(server) as enc:
        server.faults.append(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "3600"}))
        with pytest.raises(RemoteServiceError, match="asks to wait 3600 s"):
            enc.encode_int8(["x"])
    assert len(server.posts("/v1/embeddings")) == 1


def test_contract_api_bad_key_is_401_with_what_to_do():
    with LoopbackServer(api_app(key=KEY)) as server, _api(server, api_key="pplx-wrong-key-999") as enc:
        with pytest.raises(ModelUnavailable) as err:
            enc.encode_int8(["x"])
    assert "refused the API key (HTTP 401" in str(err.value) and "PPLX_API_KEY" in str(err.value)
    assert "pplx-wrong-key-999" not in str(err.value)  # the server echoed it; we do not
    assert len(server.posts("/v1/embeddings")) == 1  # a bad key is not retried


def test_contract_api_model_the_service_does_not_offer_is_422_and_a_wrong_path_is_404():
    with LoopbackServer(api_app(key=KEY, models={"pplx-embed-v1-0.6b": 1024})) as server:
        with _api(server, "pplx-embed-v1-4b") as enc, pytest.raises(RemoteServiceError) as err:
            enc.encode_int8(["x"])
        assert "HTTP 422: body.model: Input should be 'pplx-embed-v1-0.6b'" in str(err.value)
        with PerplexityAPIEncoder(model="pplx-embed-v1-0.6b", api_key=KEY, base_url=server.url + "/v2",
                                  retry=FAST) as enc, pytest.raises(ModelUnavailable, match="404 Not Found"):
            enc.encode_int8(["x"])
    with pytest.raises(ModelUnavailable, match="not a Perplexity API embedding model"):
        PerplexityAPIEncoder(model="text-embedding-3-small", api_key=KEY)
    with pytest.raises(ModelUnavailable, match="needs a key: set PPLX_API_KEY"):
        PerplexityAPIEncoder(model="pplx-embed-v1-0.6b", api_key="")


GOOD = {"object": "embedding", "index": 0}
B64_1024 = codes_of(reference_float("x", 1024)).tobytes()


@pytest.mark.parametrize("body, words", [
    (b"not json at all", "not JSON"),
    ({"object": "list"}, "without a 'data' list"),
    ({"data": []}, "answered 0 embeddings for 1 texts"),
    ({"data": [{**GOOD, "embedding": "AAAA"}]}, "int8 embedding of 3 values, expected 1024"),
    ({"data": [{**GOOD, "embedding": "!!not*base64!!"}]}, "not valid base64"),
    ({"data": [{**GOOD, "embedding": [0.1, 0.2]}]}, "a list where a base64_int8 string belongs"),
    ({"data": [{"object": "embedding", "embedding": "AAAA"}]}, "without usable 'index'"),
    ({"data": [{**GOOD, "index": 1, "embedding": "AAAA"}]}, "indexes [1]"),
    ({"data": [{"index": 0}]}, "without an 'embedding'"),
])
def test_contract_api_malformed_answers_are_clear_errors(body, words):
    with LoopbackServer(api_app(key=KEY)) as server, _api(server) as enc:
        server.faults.append(Reply(200, body))
        with pytest.raises(RemoteServiceError) as err:
            enc.encode_int8(["x"])
    assert words in str(err.value)
    assert "then try again" in str(err.value) or "really Perplexity API" in str(err.value)  # what to do
    assert len(server.posts("/v1/embeddings")) == 1  # a damaged answer is not retried


def test_contract_api_binary_bit_order_lsb_first_decodes_to_msb_first_packbits():
    rng = np.random.default_rng(7)
    bits = rng.random((3, 256)) < 0.5
    for row in bits:
        api = base64.b64encode(np.packbits(row, bitorder="little").tobytes()).decode()
        decoded = decode_api_binary(api, 256)
        assert np.array_equal(decoded, row)
        assert np.array_equal(np.packbits(decoded), np.packbits(row))  # MSB first, the studio's ubinary
        wrong = np.unpackbits(np.packbits(row, bitorder="little"))  # read as MSB first: bits reversed per byte
        assert not np.array_equal(wrong.astype(bool), row)
        assert np.array_equal(wrong.reshape(-1, 8)[:, ::-1].ravel().astype(bool), row)
    one = np.zeros(8, bool)
    one[0] = True  # dimension 0 set: byte 0x01 LSB-first, 0x80 MSB-first
    assert np.packbits(one, bitorder="little")[0] == 0x01 and np.packbits(one)[0] == 0x80
    with pytest.raises(RemoteServiceError, match="33 bytes, expected 32"):
        decode_api_binary(base64.b64encode(bytes(33)).decode(), 256)
    assert np.array_equal(decode_api_int8(base64.b64encode(B64_1024).decode(), 1024),
                          codes_of(reference_float("x", 1024)))


# -- secrets ------------------------------------------------------------------------------------------

def test_api_key_never_appears_in_errors_logs_or_reprs(caplog, monkeypatch):
    monkeypatch.setenv("PPLX_API_KEY", KEY)
    monkeypatch.setenv("PPLX_DEMO_TEI_API_KEY", KEY)
    settings = Settings.from_env()
    assert settings.pplx_api_key == KEY and settings.tei_api_key == KEY
    assert KEY not in repr(settings) and KEY not in str(settings)
    failures: list[BaseException] = []
    with caplog.at_level(logging.DEBUG), LoopbackServer(api_app(key=KEY)) as server:
        with _api(server, timeout_s=0.3) as enc:
            assert KEY not in repr(enc) and KEY not in str(vars(enc)) and KEY not in enc.cache_key
            enc.encode_int8(["fine"])
            server.faults.extend([Reply(503, {"error": {"message": f"upstream saw Bearer {KEY}"}}),
                                  Reply(delay_s=1.0)])
            for body in ({"error": {"message": f"bad request with {KEY}"}}, f"raw {KEY}".encode()):
                server.faults.append(Reply(400 if isinstance(body, dict) else 200, body))
            for _ in range(3):
                try:
                    enc.encode_int8(["x"])
                except DemoError as exc:
                    failures.append(exc)
        with _api(server, api_key=KEY + "-wrong") as bad:
            try:
                bad.encode_int8(["x"])
            except DemoError as exc:
                failures.append(exc)
    assert len(failures) == 4
    for exc in failures:
        assert KEY not in "".join(traceback.format_exception(exc))
    assert caplog.records and all(KEY not in r.getMessage() and KEY not in str(r.args) for r in caplog.records)
    # the key went only into the Authorization header
    for seen in server.seen:
        assert KEY not in seen.path and KEY.encode() not in seen.raw


def test_key_is_never_sent_over_plain_http_to_another_host():
    with pytest.raises(ModelUnavailable, match="over plain HTTP"):
        PerplexityAPIEncoder(model="pplx-embed-v1-0.6b", api_key=KEY, base_url="http://api.example.com")
    with pytest.raises(ModelUnavailable, match="not an http"):
        TEIEncoder("ftp://127.0.0.1", model="pplx-embed-v1-0.6b")


# -- settings, tokens, views, pure helpers ---------------------------------------------------------------

def test_settings_for_remote_embedders(monkeypatch):
    d = Settings()
    assert (d.tei_url, d.pplx_api_base_url, d.pplx_api_max_inputs, d.pplx_api_max_request_tokens) == \
        ("", "https://api.perplexity.ai", 512, 120_000)
    with pytest.raises(ModelUnavailable, match="PPLX_DEMO_TEI_URL"):
        tei_encoder(d)
    with pytest.raises(ModelUnavailable, match="PPLX_API_KEY"):
        pplx_api_encoder(d, "pplx-embed-v1-0.6b")
    for name, value in {"PPLX_DEMO_PPLX_API_DIMENSIONS": "512", "PPLX_DEMO_REMOTE_RETRIES": "1",
                        "PPLX_DEMO_REMOTE_TIMEOUT_S": "2.5", "PPLX_DEMO_TEI_TRUNCATE": "0",
                        "PPLX_API_KEY": KEY, "PPLX_DEMO_PPLX_API_URL": "http://127.0.0.1:1"}.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.pplx_api_dimensions, s.remote_retries, s.remote_timeout_s, s.tei_truncate) == (512, 1, 2.5, False)
    with pplx_api_encoder(s, "pplx-embed-v1-4b") as enc:
        assert enc.dim == 512 and enc.model_key == "pplx-api:pplx-embed-v1-4b"
        assert enc.cache_key == "pplx-api:pplx-embed-v1-4b:512@127.0.0.1:1"


def test_atanh_view_requantises_to_the_same_codes_and_the_plain_view_does_not():
    codes = np.arange(-127, 128, dtype=np.int8)[None, :]
    with LoopbackServer(api_app(key=KEY)) as server:
        with _api(server, float_view="atanh") as atanh, _api(server) as plain:
            assert atanh.int8_scheme == "tanh" and plain.int8_scheme == "codes"
            assert np.array_equal(int8_tanh(atanh.view_from_codes(codes)), codes)
            assert np.array_equal(plain.codes_from_view(plain.view_from_codes(codes)), codes)
            # the pitfall: re-quantising the codes/127 view with tanh gives other codes (127 -> 97)
            assert int8_tanh(plain.view_from_codes(codes))[0, -1] == 97
            assert atanh.cache_key.endswith("|view=atanh") and atanh.cache_key != plain.cache_key
            assert np.array_equal(atanh.codes_from_view(atanh.encode(["q"])), plain.encode_int8(["q"]))
            assert set(plain.fidelity()) == {"int8", "binary", "float32"}
            assert "not available" in plain.fidelity()["float32"] and "exact" in plain.fidelity()["binary"]


def test_real_qwen_tokenizer_counts_and_cuts_at_the_token_cap(qwen_tokenizer_json):
    from pplx_demo.models.remote import qwen_tokenizer

    tok = qwen_tokenizer(qwen_tokenizer_json)
    with LoopbackServer(api_app(key=KEY)) as server, _api(server, tokenizer=tok, max_input_tokens=5) as enc:
        assert enc.count_tokens(["Hello world", ""]) == [2, 0]
        stats = EncodeStats()
        enc.encode_int8(["Hello world", "one two three four five six seven"], stats=stats)
    assert server.posts("/v1/embeddings")[0].body["input"] == ["Hello world", "one two three four five"]
    assert stats.truncated == 1 and stats.inputs == 2


def test_pure_helpers():
    assert approx_token_count("abcdef") == 2 and approx_token_count("文") == 1 and approx_token_count("") == 0
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    policy = RetryPolicy(retries=5, backoff_s=1.0, max_wait_s=8.0)
    rng = random.Random(0)
    waits = [policy.wait_s(r, None, rng) for r in range(5)]
    assert all(0.5 * min(8, 2 ** r) <= w <= min(8, 2 ** r) for r, w in enumerate(waits))
    assert policy.wait_s(0, 3.0, rng) == 3.0
    limits = RequestLimits(max_inputs=2, max_chars=100, max_tokens=10, max_chunks=3)
    assert plan_batches([(1, 10, 4), (1, 10, 4), (1, 10, 4)], limits) == [[0, 1], [2]]
    assert plan_batches([(1, 10, 8), (1, 10, 8)], limits) == [[0], [1]]
    assert plan_batches([(2, 10, 1), (2, 10, 1)], limits) == [[0], [1]]
    assert plan_batches([(1, 500, 1), (1, 1, 1)], limits) == [[0], [1]]  # an oversized item goes alone
    assert plan_batches([], limits) == []


# -- wired in: a model key, the store's cache and an index over the service's exact int8 codes ----------

def test_contract_tei_through_the_model_hub_indexes_the_services_exact_codes(tmp_path):
    import dataclasses

    from pplx_demo.documents import Chunk, Document
    from pplx_demo.embedding import embed_corpus
    from pplx_demo.index import IndexConfig, QuantizedIndex
    from pplx_demo.models import ModelHub
    from pplx_demo.store import Store

    texts = [t for t in TEXTS if t.strip()] + ["a third chunk about tides", "bees make honey in hives"]
    with LoopbackServer(tei_app()) as server:
        settings = dataclasses.replace(Settings(), tei_url=server.url, tokenizer_dir=tmp_path / "tok",
                                       remote_retries=1, remote_backoff_s=0.01)
        enc = ModelHub(settings).get("tei:")
        assert enc.int8_scheme == "codes" and "tei:" in enc.cache_key  # never mixed with local vectors
        with Store(tmp_path / "s.duckdb") as store:
            docs = [Document(f"u{i}", f"t{i}", t) for i, t in enumerate(texts)]
            cid = store.add_corpus("remote", docs, [[Chunk(0, t, 0, len(t), 3)] for t in texts])
            matrix = embed_corpus(store, cid, enc)
    expected = _expected_codes(texts, 1024)
    index = QuantizedIndex.build(matrix.vectors, IndexConfig("int8", int8_scheme="codes"))
    assert np.array_equal(index._codes, expected)  # the index holds exactly the codes the service sent
    query = expected[2].astype(np.float32) / 127
    hits = index.search(query[None, :], 3)
    cosine = (expected.astype(np.float32) @ expected[2].astype(np.float32)) / (
        np.linalg.norm(expected.astype(np.float32), axis=1) * np.linalg.norm(expected[2].astype(np.float32)))
    assert hits.ids[0, 0] == 2 and hits.scores[0, 0] == pytest.approx(cosine[2], abs=1e-5)
