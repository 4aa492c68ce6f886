"""The torch runtime: stock transformers modules loaded from safetensors, no remote code.

`TokenStatesModule` is THE forward pass: (input_ids, attention_mask) -> (token states, masked-mean pooled). The
torch encoder runs it, and the ONNX export traces the very same module, so both runtimes compute one graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pplx_demo.errors import DemoError, ModelUnavailable
from pplx_demo.models.encoder import Encoder, FolderText, Spans

DTYPES = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[torch.device, torch.dtype]:
    """(device, dtype) for the settings: float32 unless bf16 is asked for on CUDA; fp16 refused.

    "auto" is float32 everywhere, GPU included, as the model card and TEI run pplx-embed. bf16 is an opt-in on CUDA
    (cosine >= 0.9995 to float32 measured by ports); fp16 gave NaNs in a port, so it is refused; on CPU bf16 is
    refused too (without bf16 units it is several times slower here, and it is not what anyone publishes).
    """
    if dtype not in DTYPES:
        raise DemoError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if dtype == "fp16":
        raise ModelUnavailable("dtype fp16 is refused: independent ports of pplx-embed reported NaN embeddings in "
                               "fp16 (activations overflow its range); use auto (float32) or bf16 on a CUDA GPU")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("PPLX_DEMO_DEVICE=cuda but no CUDA device is visible to torch")
    on_cuda = device != "cpu" and torch.cuda.is_available()
    if dtype == "bf16" and not on_cuda:
        raise ModelUnavailable("dtype bf16 is a CUDA opt-in: this process runs on the CPU (no CUDA device, or "
                               "PPLX_DEMO_DEVICE=cpu), where float32 is the faithful and the faster choice; "
                               "unset PPLX_DEMO_DTYPE")
    return (torch.device("cuda") if on_cuda else torch.device("cpu")), (torch.bfloat16 if dtype == "bf16"
                                                                         else torch.float32)


class TokenStatesModule(torch.nn.Module):
    """(input_ids, attention_mask) -> (final token states, masked mean over real tokens in float32).

    Qwen3 gets an explicit 4-D additive padding-only mask (every query sees every real key; no causal triangle
    whatever the mask utilities decide); BERT gets its 2-D mask (it is bidirectional by construction).
    """

    def __init__(self, model: torch.nn.Module, explicit_mask: bool) -> None:
        super().__init__()
        self.model = model
        self.explicit_mask = explicit_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.explicit_mask:
            dtype = next(self.model.parameters()).dtype
            pad = (1 - attention_mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min
            additive = pad.expand(-1, 1, input_ids.shape[1], -1)
            hidden = self.model(input_ids=input_ids, attention_mask=additive).last_hidden_state
        else:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        m = attention_mask.to(torch.float32)[..., None]
        pooled = (hidden.float() * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        return hidden, pooled


class TorchEncoder(Encoder):
    """An `Encoder` whose forward pass is a transformers module on CPU or CUDA."""

    def __init__(self, *, model: torch.nn.Module, device: torch.device, explicit_mask: bool, **kwargs) -> None:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        super().__init__(dtype=dtype, runtime="torch", **kwargs)
        self.model = model
        self.device = device
        self.module = TokenStatesModule(model, explicit_mask).eval()

    def _hidden(self, ids: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            hidden, _ = self.module(torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device))
        return hidden

    def _token_states_pooled(self, ids: np.ndarray, mask: np.ndarray, spans: list[Spans]) -> list[np.ndarray]:
        hidden = self._hidden(ids, mask)
        out = []
        with torch.inference_mode():
            for row, row_spans in enumerate(spans):
                vecs = np.zeros((len(row_spans), self.dim), dtype=np.float32)
                for k, (start, end) in enumerate(row_spans):
                    if end > start:  # pooled on the device in float32, only the vectors come back
                        vecs[k] = hidden[row, start:end].float().mean(dim=0).cpu().numpy()
                out.append(vecs)
        return out

    def token_states(self, seqs: list[list[int]]) -> np.ndarray:
        ids, mask = self._pad(seqs)
        with self._lock:
            return self._hidden(ids, mask).float().cpu().numpy()


def _quiet_transformers() -> None:
    """Loading reports and progress bars are noise in a server log and a CLI."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def qwen3_config_from(raw: dict):
    """A stock Qwen3Config from the fields of a pplx-embed config.json."""
    from transformers import Qwen3Config

    rope = raw.get("rope_parameters") or {}
    theta = float(rope.get("rope_theta", raw.get("rope_theta", 1_000_000.0)))
    hidden = int(raw["hidden_size"])
    heads = int(raw["num_attention_heads"])
    cfg = Qwen3Config(
        vocab_size=int(raw["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(raw["intermediate_size"]),
        num_hidden_layers=int(raw["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=int(raw.get("num_key_value_heads", heads)),
        head_dim=int(raw.get("head_dim", hidden // heads)),
        hidden_act=raw.get("hidden_act", "silu"),
        max_position_embeddings=int(raw.get("max_position_embeddings", 32768)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        attention_bias=bool(raw.get("attention_bias", False)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
        use_sliding_window=False,
        use_cache=False,
        pad_token_id=raw.get("pad_token_id"),
    )
    cfg.is_causal = False  # bidirectional: no causal triangle anywhere
    return cfg


def _has_safetensors(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()


def load_torch_model(folder: Path, raw: dict, kind: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The folder's weights in a stock transformers module (Qwen3Model bidirectional, or BertModel), in eval mode."""
    _quiet_transformers()
    if not _has_safetensors(folder):
        hint = " (it holds only an ONNX graph: use runtime onnx)" if (folder / "onnx").is_dir() else ""
        raise ModelUnavailable(f"{folder} has no safetensors weights{hint}")
    if kind == "bert":
        from transformers import BertModel

        try:
            return BertModel.from_pretrained(str(folder), dtype=torch.float32, add_pooling_layer=False,
                                             attn_implementation="sdpa").eval().to(device)
        except Exception as exc:  # unreadable or mismatched weights
            raise ModelUnavailable(f"cannot read the weights in {folder}: {type(exc).__name__}: {exc}") from exc
    from transformers import Qwen3Model

    try:
        cfg = qwen3_config_from(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelUnavailable(f"{folder}/config.json lacks or garbles a field the model needs ({exc})") from exc
    try:
        model, info = Qwen3Model.from_pretrained(str(folder), config=cfg, dtype=dtype, attn_implementation="sdpa",
                                                 output_loading_info=True, trust_remote_code=False)
    except Exception as exc:  # OSError, SafetensorError, shape mismatches: all mean "these weights are unusable"
        raise ModelUnavailable(f"cannot read the weights in {folder}: {type(exc).__name__}: {exc}") from exc
    missing = [k for k in info.get("missing_keys", []) if "rotary" not in k]
    if missing:
        raise ModelUnavailable(f"{folder}: weights missing for {len(missing)} tensors (e.g. {missing[0]}); "
                               "the folder does not hold a complete pplx-embed checkpoint")
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
    return model.eval().to(device)


def load_torch_encoder(folder: Path, raw: dict, text: FolderText, *, device: str = "auto", dtype: str = "auto",
                       **encoder_kwargs) -> TorchEncoder:
    """A TorchEncoder for a pplx or BERT folder; `encoder_kwargs` are the shared Encoder fields."""
    torch_device, torch_dtype = resolve_device(device, dtype)
    if text.kind == "bert":
        torch_dtype = torch.float32
    model = load_torch_model(folder, raw, text.kind, torch_device, torch_dtype)
    return TorchEncoder(model=model, device=torch_device, explicit_mask=text.kind == "pplx",
                        tokenizer=text.tokenizer, layout=text.layout, dim=text.hidden_size, **encoder_kwargs)
