"""Runtimes: ONNX Runtime (our export and a graph in the official layout) equals torch; the ModelHub caches."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from pplx_demo.config import Settings
from pplx_demo.errors import ModelUnavailable
from model_loading import load_encoder
from pplx_demo.models import ModelHub, export_onnx
from pplx_demo.quantize import binary_signs, int8_tanh

TEXTS = [
    "Hello world",
    "Berlin is the capital and largest city of Germany, by both area and population.",
    "Short one.",
    "A considerably longer text, with punctuation; numbers like 3,850,809 and Ünïcödé characters — to pad.",
    "",
]
DOC = ["Berlin is the capital of Germany.", "It has about 3.8 million inhabitants.",
       "The city is known for its museums."]
LONG_DOC = [f"Sentence number {i} talks about topic {i % 3}." for i in range(12)]
FP32_COSINE = 0.99999  # ONNX float32 vs torch float32: the same graph, only kernel rounding differs
FP32_ABS = 1e-4
INT8_COSINE = 0.98  # dynamic int8 (per channel, 7-bit weights) vs torch float32; measured 0.984-0.999 here


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    keep = (np.abs(a).sum(1) > 0) | (np.abs(b).sum(1) > 0)
    a, b = a[keep], b[keep]
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def assert_same(onnx_vecs: np.ndarray, torch_vecs: np.ndarray) -> None:
    assert onnx_vecs.shape == torch_vecs.shape and onnx_vecs.dtype == np.float32
    assert cosines(onnx_vecs, torch_vecs).min() >= FP32_COSINE
    np.testing.assert_allclose(onnx_vecs, torch_vecs, atol=FP32_ABS, rtol=0)


@pytest.fixture(scope="session")
def onnx_settings(tmp_path_factory) -> Settings:
    """Exports go to a per-session folder; loading never exports by itself (auto export off)."""
    return dataclasses.replace(Settings(), device="cpu", hf_offline=True, onnx_auto_export=False,
                               onnx_dir=tmp_path_factory.mktemp("onnx-exports"))


@pytest.fixture(scope="session")
def exports(onnx_settings, tiny_pplx_dir, tiny_pplx_context_dir):
    """One float32 + int8 export per model for the whole session (the stand-in by its registry key)."""
    return {name: export_onnx(src, None, quantize="int8", settings=onnx_settings)
            for name, src in (("standard", str(tiny_pplx_dir)), ("contextual", str(tiny_pplx_context_dir)),
                              ("stand-in", "minilm-l6"))}


@pytest.fixture(scope="session")
def hub(onnx_settings, exports) -> ModelHub:
    return ModelHub(onnx_settings)


# -- our export -------------------------------------------------------------------------------------------

def test_export_writes_the_official_layout_and_checks_itself(exports, tiny_pplx_dir):
    r = exports["standard"]
    assert r.fp32_file == r.out_dir / "onnx" / "model.onnx" and (r.out_dir / "onnx" / "model.onnx_data").is_file()
    assert r.int8_file == r.out_dir / "onnx" / "model_int8.onnx" and r.int8_file.is_file()
    assert (r.out_dir / "config.json").is_file() and (r.out_dir / "tokenizer.json").is_file()
    assert r.outputs == ("last_hidden_state", "sentence_embedding")
    assert r.fp32_min_cosine >= FP32_COSINE and r.int8_min_cosine is not None and r.int8_min_cosine >= INT8_COSINE
    manifest = json.loads((r.out_dir / "export.json").read_text())
    assert manifest["source_fingerprint"] == r.source_fingerprint and manifest["opset"] == 18
    fp32_bytes = r.fp32_file.stat().st_size + (r.out_dir / "onnx" / "model.onnx_data").stat().st_size
    assert r.int8_file.stat().st_size < 0.35 * fp32_bytes  # int8 weights: about a quarter of float32


def test_a_second_export_of_the_same_weights_reuses_the_float_graph(exports, onnx_settings, tiny_pplx_dir):
    before = exports["standard"].fp32_file.stat().st_mtime_ns
    again = export_onnx(str(tiny_pplx_dir), None, settings=onnx_settings)
    assert again.reused_fp32 and again.fp32_file.stat().st_mtime_ns == before
    assert again.int8_file == exports["standard"].int8_file  # the earlier int8 graph stays listed


def test_onnx_float32_equals_torch_on_the_standard_model(hub, tiny_pplx):
    enc = hub.get(str(tiny_pplx.model_key), None, "onnx")
    assert (enc.runtime, enc.dim, enc.variant, enc.is_pplx, enc.int8_scheme) == ("onnx", 64, "standard", True, "tanh")
    assert_same(enc.encode(TEXTS), tiny_pplx.encode(TEXTS))
    assert not enc.encode(TEXTS)[-1].any()  # an empty text is the zero vector in every runtime
    seqs = [enc.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS[:3]]
    np.testing.assert_allclose(enc.token_states(seqs), tiny_pplx.token_states(seqs), atol=FP32_ABS)
    assert enc.count_tokens(TEXTS) == tiny_pplx.count_tokens(TEXTS) and enc.layout == tiny_pplx.layout


def test_onnx_late_chunking_through_token_states_equals_torch(hub, tiny_pplx_context, monkeypatch):
    enc = hub.get(str(tiny_pplx_context.model_key), None, "onnx")
    assert enc.variant == "contextual" and enc.roles.token_states == "last_hidden_state"
    for a, b in zip(enc.encode_documents([DOC, ["A second document."]]),
                    tiny_pplx_context.encode_documents([DOC, ["A second document."]])):
        assert_same(a, b)
    assert_same(enc.encode(["what is the capital of Germany?"]), tiny_pplx_context.encode(["what is the capital of "
                                                                                          "Germany?"]))
    # documents over the window: the same windows, the same vectors, the same counts
    for e in (enc, tiny_pplx_context):
        monkeypatch.setattr(e, "max_tokens", 40)
    from pplx_demo.models import EncodeStats

    s_onnx, s_torch = EncodeStats(), EncodeStats()
    assert_same(enc.encode_documents([LONG_DOC], stats=s_onnx)[0],
                tiny_pplx_context.encode_documents([LONG_DOC], stats=s_torch)[0])
    assert s_onnx == s_torch and s_onnx.windowed == 1


def test_onnx_stand_in_equals_torch_standard_and_late_chunking(hub, minilm, minilm_contextual):
    std = hub.get("minilm-l6", "standard", "onnx")
    ctx = hub.get("minilm-l6", "contextual", "onnx")
    assert std.name == "all-MiniLM-L6-v2 (offline stand-in, not pplx-embed) · ONNX"
    assert not std.is_pplx and std.int8_scheme == "calibrated"
    texts = TEXTS + ["word " * 400]  # truncated at 256 tokens in both runtimes
    assert_same(std.encode(texts), minilm.encode(texts))
    assert std.last_truncated == minilm.last_truncated == 1
    for a, b in zip(ctx.encode_documents([DOC]), minilm_contextual.encode_documents([DOC])):
        assert_same(a, b)


@pytest.mark.parametrize("which", ["standard", "contextual", "stand-in"])
def test_int8_graph_stays_close_to_torch(hub, which, tiny_pplx, tiny_pplx_context, minilm):
    ref = {"standard": tiny_pplx, "contextual": tiny_pplx_context, "stand-in": minilm}[which]
    enc = hub.get(ref.model_key, None, "onnx-int8")
    assert enc.runtime == "onnx-int8" and enc.name.endswith("· ONNX int8")
    assert cosines(enc.encode(TEXTS), ref.encode(TEXTS)).min() >= INT8_COSINE


def test_runtime_is_part_of_the_cache_key_and_the_name(hub, tiny_pplx, minilm, minilm_contextual):
    keys = {rt: hub.get("minilm-l6", "standard", rt).cache_key for rt in ("torch", "onnx", "onnx-int8")}
    assert keys == {"torch": "minilm-l6", "onnx": "minilm-l6|onnx", "onnx-int8": "minilm-l6|onnx-int8"}
    assert hub.get("minilm-l6", "contextual", "onnx-int8").cache_key == "minilm-l6|onnx-int8|w256"
    assert hub.get("minilm-l6", "standard", "onnx-int8").name == \
        "all-MiniLM-L6-v2 (offline stand-in, not pplx-embed) · ONNX int8"
    onnx_tiny = hub.get(tiny_pplx.model_key, None, "onnx")
    assert onnx_tiny.cache_key == tiny_pplx.cache_key + "|onnx"


def test_loading_without_an_export_says_how_to_export(tmp_path, tiny_pplx_dir):
    settings = dataclasses.replace(Settings(), device="cpu", onnx_auto_export=False, onnx_dir=tmp_path / "none")
    with pytest.raises(ModelUnavailable, match=r"python -m pplx_demo export-onnx --model .* --quantize int8"):
        load_encoder(str(tiny_pplx_dir), settings=settings, runtime="onnx-int8")
    with pytest.raises(ModelUnavailable, match="4-bit graphs come only from the official"):
        load_encoder(str(tiny_pplx_dir), settings=settings, runtime="onnx-q4")
    with pytest.raises(ModelUnavailable, match="run on the CPU"):
        load_encoder(str(tiny_pplx_dir), settings=dataclasses.replace(settings, device="cuda"), runtime="onnx")


def test_first_use_exports_when_allowed(tmp_path, tiny_pplx_dir, tiny_pplx, caplog):
    settings = dataclasses.replace(Settings(), device="cpu", onnx_auto_export=True, onnx_dir=tmp_path / "auto")
    with caplog.at_level("WARNING", logger="pplx_demo.models.export"):
        enc = load_encoder(str(tiny_pplx_dir), settings=settings, runtime="onnx")
    assert "exporting" in caplog.text and str(tmp_path / "auto") in str(enc.graph_file)
    assert_same(enc.encode(TEXTS), tiny_pplx.encode(TEXTS))


# -- a graph in the official repository layout, exported by someone else -----------------------------------

@pytest.fixture(scope="session")
def repo_layout_dir(tmp_path_factory, tiny_pplx_dir) -> Path:
    from pplx_demo.models.synthetic import write_onnx_repo_layout

    return write_onnx_repo_layout(tiny_pplx_dir, tmp_path_factory.mktemp("repo-layout") / "pplx-embed-v1-tiny")


def test_official_layout_graph_with_a_pooled_output(repo_layout_dir, onnx_settings, tiny_pplx):
    enc = load_encoder(str(repo_layout_dir), settings=onnx_settings, runtime="onnx")
    assert enc.graph_file == repo_layout_dir / "onnx" / "model.onnx"  # the folder's own graph, not an export
    assert (enc.roles.token_states, enc.roles.pooled, enc.roles.int8, enc.roles.binary) == \
        (None, "pooled_output", "int8_embeddings", "binary_embeddings")
    assert set(enc.roles.inputs) == {"input_ids", "attention_mask", "position_ids"}
    assert_same(enc.encode(TEXTS), tiny_pplx.encode(TEXTS))
    native = enc.graph_outputs(TEXTS[:4])  # the graph's own quantisers agree with ours
    np.testing.assert_array_equal(native["int8"], int8_tanh(native["pooled"]))
    np.testing.assert_array_equal(native["binary"], binary_signs(native["pooled"]))
    with pytest.raises(ModelUnavailable, match="only a pooled vector, not the token states"):
        load_encoder(str(repo_layout_dir), "contextual", settings=onnx_settings, runtime="onnx")


def test_a_graph_with_only_int8_outputs_is_refused(tmp_path, tiny_pplx_dir, onnx_settings):
    import shutil

    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "int8-only"
    (folder / "onnx").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(tiny_pplx_dir / name, folder / name)
    table = helper.make_tensor("table", TensorProto.INT8, [151936, 64], np.zeros(151936 * 64, np.int8).tobytes(),
                               raw=True)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["g"]),
         helper.make_node("ReduceMax", ["g"], ["int8_embeddings"], axes=[1], keepdims=0)],
        "int8-only", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("int8_embeddings", TensorProto.INT8, ["b", 64])], [table])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                    str(folder / "onnx" / "model.onnx"))
    with pytest.raises(ModelUnavailable, match="no float output.*only int8"):
        load_encoder(str(folder), settings=onnx_settings, runtime="onnx")


# -- the ModelHub ------------------------------------------------------------------------------------------

def test_hub_loads_each_encoder_once_even_under_concurrency(onnx_settings, tiny_pplx_dir):
    hub = ModelHub(onnx_settings)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(hub.get(str(tiny_pplx_dir)))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(e is got[0] for e in got)
    assert hub.get(str(tiny_pplx_dir), None, "onnx") is not got[0]  # another runtime: another encoder


def test_hub_keeps_the_three_most_recent(onnx_settings, tiny_pplx_dir, tiny_pplx_context_dir):
    hub = ModelHub(onnx_settings)
    first = hub.get(str(tiny_pplx_dir))
    assert hub.get("minilm-l6", None) is hub.get("minilm-l6", "standard")  # (key, None) is the model's own variant
    hub.get("minilm-l6", "contextual")
    assert hub.get(str(tiny_pplx_dir)) is first  # used again: now the most recent
    hub.get(str(tiny_pplx_context_dir))  # a fourth: the least recently used (minilm standard) goes
    assert [k[:2] for k in hub._cache] == [("minilm-l6", "contextual"), (str(tiny_pplx_dir), None),
                                           (str(tiny_pplx_context_dir), None)]
    hub.forget(str(tiny_pplx_dir))
    assert hub.get(str(tiny_pplx_dir)) is not first


def test_hub_spec_and_availability(onnx_settings, tmp_path):
    hub = ModelHub(dataclasses.replace(onnx_settings, hf_cache_dir=tmp_path / "empty-cache"))
    assert hub.spec("minilm-l6").dim == 384
    with pytest.raises(ModelUnavailable, match="not a known model key"):
        hub.spec("gpt-5")
    assert hub.availability("minilm-l6").available
    four_b = hub.availability("pplx-embed-v1-4b")
    assert not four_b.available and "hf download perplexity-ai/pplx-embed-v1-4b" in four_b.how_to_enable
