"""Text encoders: pooled float embeddings, standard or contextual (late chunking), with no remote code.

pplx-embed checkpoints are stock Qwen3 blocks run bidirectionally: we build `transformers.Qwen3Model`
from the fields of config.json, load the safetensors, and pass an explicit 4-D padding-only mask so
no causal triangle is ever applied. The offline stand-in (all-MiniLM-L6-v2) is a BERT model with
mean pooling. Both share one batching / pooling / late-chunking path.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from pplx_demo.errors import DemoError, ModelUnavailable

Variant = Literal["standard", "contextual"]
Progress = Callable[[int, int], None]

log = logging.getLogger(__name__)

PPLX_MODEL_TYPES = ("bidirectional_pplx_qwen3", "qwen3")
BERT_MODEL_TYPES = ("bert",)


@dataclass
class EncodeStats:
    """Filled in by one encode call (pass your own: the encoder is shared between threads)."""

    inputs: int = 0
    truncated: int = 0  # inputs (texts or chunks) cut at the encoder's token cap


@dataclass(frozen=True)
class TokenLayout:
    """How a tokenizer frames one sequence: ids before, ids after, and the id joining chunks."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    separator: int
    separator_text: str
    pad: int


@dataclass(frozen=True)
class _Window:
    """One forward sequence of a document: its ids and, per owned chunk, the token span to pool."""

    doc: int
    ids: list[int]
    spans: list[tuple[int, int, int]]  # (chunk index, start, end) — end exclusive; start == end: empty chunk


class Encoder:
    """Pooled (masked-mean) embeddings from a transformer; not normalised, not quantised."""

    def __init__(self, *, name: str, model_key: str, model: torch.nn.Module, tokenizer, layout: TokenLayout,
                 variant: Variant, max_tokens: int, is_pplx: bool, int8_scheme: str, device: torch.device,
                 explicit_mask: bool, batch_size: int = 32, max_batch_tokens: int = 16384,
                 fingerprint: str = "") -> None:
        if variant not in ("standard", "contextual"):
            raise DemoError(f"unknown variant {variant!r}: use 'standard' or 'contextual'")
        self.name = name
        self.model_key = model_key
        self.model = model
        self.tokenizer = tokenizer
        self.layout = layout
        self.variant: Variant = variant
        self.max_tokens = int(max_tokens)
        self.is_pplx = is_pplx
        self.int8_scheme = int8_scheme
        self.device = device
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.last_truncated = 0  # of the latest call in any thread; prefer passing an EncodeStats
        self.fingerprint = fingerprint
        self._explicit_mask = explicit_mask
        self._lock = threading.Lock()
        self.dim = int(self._hidden_size())

    # -- public API -----------------------------------------------------------------------------

    @property
    def cache_key(self) -> str:
        """What vectors depend on besides the text: model, weights fingerprint, dtype, and the window cap
        for contextual encoding (a chunk's context depends on it). Used to key the embedding cache."""
        dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        parts = [self.model_key]
        if self.fingerprint:
            parts.append(self.fingerprint)
        if dtype != "float32":
            parts.append(dtype)
        if self.variant == "contextual":
            parts.append(f"w{self.max_tokens}")
        return "|".join(parts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens per text (the tokenizer's own special tokens not counted)."""
        return [len(ids) for ids in self._tokenize(texts)]

    def encode(self, texts: Sequence[str], progress: Progress | None = None,
               stats: EncodeStats | None = None) -> np.ndarray:
        """(n, dim) float32 pooled vectors. Empty or blank texts get the zero vector.

        On a contextual encoder each text is a one-chunk document (how queries are embedded).
        Inputs over `max_tokens` are cut; how many is added to `stats` (and logged).
        """
        texts = list(texts)
        if self.variant == "contextual":
            return _stack(self.encode_documents([[t] for t in texts], progress=progress, stats=stats), self.dim)
        ids = self._tokenize(texts)
        budget = self.max_tokens - len(self.layout.prefix) - len(self.layout.suffix)
        self.last_truncated = sum(len(x) > budget for x in ids)
        if stats is not None:
            stats.inputs += len(texts)
            stats.truncated += self.last_truncated
        seqs = [list(self.layout.prefix) + x[:budget] + list(self.layout.suffix) for x in ids]
        spans = [[(0, 0, len(s))] for s in seqs]  # the whole sequence, special tokens included
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        pooled = self._run([seqs[i] for i in keep], [spans[i] for i in keep], progress)
        for j, i in enumerate(keep):
            out[i] = pooled[j][0]
        if self.last_truncated:
            log.info("%d of %d texts truncated to %d tokens", self.last_truncated, len(texts), self.max_tokens)
        return out

    def encode_documents(self, docs: Sequence[Sequence[str]], progress: Progress | None = None,
                         stats: EncodeStats | None = None) -> list[np.ndarray]:
        """One (n_chunks, dim) array per document, exactly one row per input chunk.

        Standard: each chunk embedded alone. Contextual: late chunking — chunks joined by the separator
        token, one bidirectional pass, each chunk = mean of its own tokens (separators excluded);
        documents over the cap use overlapping windows. Empty chunks get the zero vector.
        """
        docs = [list(d) for d in docs]
        if self.variant == "standard":
            flat = self.encode([c for d in docs for c in d], progress=progress, stats=stats)
            out, start = [], 0
            for d in docs:
                out.append(flat[start:start + len(d)])
                start += len(d)
            return out
        windows, truncated = self._late_chunk_windows(docs)
        self.last_truncated = truncated
        if stats is not None:
            stats.inputs += sum(len(d) for d in docs)
            stats.truncated += truncated
        if truncated:
            log.info("%d chunks truncated to the %d-token window", truncated, self.max_tokens)
        pooled = self._run([w.ids for w in windows], [w.spans for w in windows], progress)
        out = [np.zeros((len(d), self.dim), dtype=np.float32) for d in docs]
        for w, vecs in zip(windows, pooled):
            for (chunk, start, end), v in zip(w.spans, vecs):
                if end > start:
                    out[w.doc][chunk] = v
        return out

    # -- tokenisation and windows ---------------------------------------------------------------

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [list(x) for x in enc["input_ids"]]

    def _late_chunk_windows(self, docs: list[list[str]]) -> tuple[list[_Window], int]:
        """Split each document into windows of at most max_tokens, each owning whole chunks.

        A window starts with up to a quarter of its budget of the tokens just before its first chunk
        (left context, pooled in an earlier window), then owns whole chunks while they fit. A single
        chunk longer than the budget is truncated (counted).
        """
        lay = self.layout
        budget = self.max_tokens - len(lay.prefix) - len(lay.suffix)
        context_budget = budget // 4
        windows: list[_Window] = []
        truncated = 0
        for d, chunks in enumerate(docs):
            clean = [c.replace(lay.separator_text, " ") for c in chunks]
            toks = self._tokenize(clean)
            for i, t in enumerate(toks):
                if len(t) > budget:
                    toks[i] = t[:budget]
                    truncated += 1
            i = 0
            while i < len(toks):
                context: list[int] = []
                c = i - 1
                while c >= 0 and len(context) < context_budget:
                    piece = toks[c] + [lay.separator]
                    context = piece[max(0, len(piece) - (context_budget - len(context))):] + context
                    c -= 1
                e, total = i, len(context)
                while e < len(toks) and total + len(toks[e]) + (1 if e > i else 0) <= budget:
                    total += len(toks[e]) + (1 if e > i else 0)
                    e += 1
                if e == i:  # the chunk barely fits: keep only the context that still fits
                    keep = budget - len(toks[i])
                    context, e = (context[len(context) - keep:] if keep > 0 else []), i + 1
                ids = list(lay.prefix) + context
                spans: list[tuple[int, int, int]] = []
                for c in range(i, e):
                    if c > i:
                        ids.append(lay.separator)
                    start = len(ids)
                    ids.extend(toks[c])
                    spans.append((c, start, len(ids)))
                ids.extend(lay.suffix)
                windows.append(_Window(d, ids, spans))
                i = e
        return windows, truncated

    # -- forward --------------------------------------------------------------------------------

    def _hidden_size(self) -> int:
        cfg = self.model.config
        return cfg.hidden_size

    def _run(self, seqs: list[list[int]], spans: list[list[tuple[int, int, int]]],
             progress: Progress | None) -> list[np.ndarray]:
        """Forward `seqs` in length-sorted batches; pool each (chunk, start, end) span (fp32 mean)."""
        results: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = len(seqs[cur[0]]) if cur else len(seqs[i])  # longest first: the first sets the width
            if cur and (len(cur) >= self.batch_size or width * (len(cur) + 1) > self.max_batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        done = 0
        with self._lock, torch.inference_mode():
            for batch in batches:
                hidden, _ = self._forward([seqs[i] for i in batch])
                for row, i in enumerate(batch):
                    vecs = np.zeros((len(spans[i]), self.dim), dtype=np.float32)
                    for k, (_, start, end) in enumerate(spans[i]):
                        if end > start:
                            vecs[k] = hidden[row, start:end].float().mean(dim=0).cpu().numpy()
                    results[i] = vecs
                done += len(batch)
                if progress is not None:
                    progress(done, len(seqs))
        return results

    def _forward(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded batch -> (last hidden states, attention mask)."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.layout.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, :len(s)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self._explicit_mask:
            # Every query position may attend to every real key: padding-only, bidirectional.
            dtype = next(self.model.parameters()).dtype
            additive = torch.zeros((len(seqs), 1, width, width), dtype=dtype, device=self.device)
            additive.masked_fill_(mask[:, None, None, :] == 0, torch.finfo(dtype).min)
            out = self.model(input_ids=ids, attention_mask=additive)
        else:
            out = self.model(input_ids=ids, attention_mask=mask)
        return out.last_hidden_state, mask


def _stack(arrays: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(arrays, axis=0) if arrays else np.zeros((0, dim), dtype=np.float32)


# -- loading ------------------------------------------------------------------------------------

def _quiet_transformers() -> None:
    """Loading reports and progress bars are noise in a server log and a CLI."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def pick_device(preference: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when present (or asked for); fp32 on CPU (bf16 is slow on CPUs without bf16 units)."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("PPLX_DEMO_DEVICE=cuda but no CUDA device is visible to torch")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def weights_fingerprint(folder: Path) -> str:
    """Short hash of the weight files' names, sizes and modification times (cheap; no reading)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


def token_layout(tok, separator_text: str) -> TokenLayout:
    """The special tokens the tokenizer itself puts around one sequence, read off the tokenizer."""
    probe = "x"
    bare = tok(probe, add_special_tokens=False)["input_ids"]
    framed = tok(probe, add_special_tokens=True)["input_ids"]
    start = next((i for i in range(len(framed) - len(bare) + 1) if framed[i:i + len(bare)] == bare), 0)
    sep = tok.convert_tokens_to_ids(separator_text)
    pad = tok.pad_token_id if tok.pad_token_id is not None else sep
    return TokenLayout(prefix=tuple(framed[:start]), suffix=tuple(framed[start + len(bare):]), separator=sep,
                       separator_text=separator_text, pad=pad)


def read_config(folder: Path) -> dict:
    """config.json as a dict, read directly (AutoConfig would prompt about the repo's auto_map)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelUnavailable(f"{folder} has no config.json: not a model folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelUnavailable(f"{path} is not valid JSON ({exc})") from exc


def _fast_tokenizer(folder: Path, pad_token: str):
    from transformers import PreTrainedTokenizerFast

    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ModelUnavailable(f"{folder} has no tokenizer.json")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(file))
    tok.pad_token = pad_token
    return tok


def qwen3_config_from(raw: dict):
    """A stock Qwen3Config from the fields of a pplx-embed (or Qwen3) config.json."""
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


def load_qwen_folder(folder: Path, *, name: str, model_key: str, variant: Variant, max_tokens: int,
                     is_pplx: bool, batch_size: int = 32, device: str = "auto",
                     fingerprint: str = "") -> Encoder:
    """Load a pplx-embed / Qwen3 folder into stock transformers modules, no remote code."""
    from transformers import Qwen3Model

    _quiet_transformers()
    raw = read_config(folder)
    if raw.get("model_type") not in PPLX_MODEL_TYPES:
        raise ModelUnavailable(f"{folder}: model_type {raw.get('model_type')!r} is not a pplx-embed/Qwen3 model")
    torch_device, dtype = pick_device(device)
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
    model.eval().to(torch_device)
    tok = _fast_tokenizer(folder, "<|endoftext|>")
    # Pool over what the tokenizer itself produces (special tokens it adds included), as the model card says.
    layout = token_layout(tok, "<|endoftext|>")
    cap = min(max_tokens, int(raw.get("max_position_embeddings", max_tokens)))
    return Encoder(name=name, model_key=model_key, model=model, tokenizer=tok, layout=layout, variant=variant,
                   max_tokens=cap, is_pplx=is_pplx, int8_scheme="tanh", device=torch_device, explicit_mask=True,
                   batch_size=batch_size, fingerprint=fingerprint)


def load_bert_folder(folder: Path, *, name: str, model_key: str, variant: Variant, max_tokens: int,
                     batch_size: int = 32, device: str = "auto", fingerprint: str = "") -> Encoder:
    """Load a BERT-style sentence embedding folder (the stand-in) with mean pooling."""
    from transformers import BertModel

    _quiet_transformers()
    raw = read_config(folder)
    if raw.get("model_type") not in BERT_MODEL_TYPES:
        raise ModelUnavailable(f"{folder}: model_type {raw.get('model_type')!r} is not supported")
    torch_device, _ = pick_device(device)
    try:
        model = BertModel.from_pretrained(str(folder), dtype=torch.float32, add_pooling_layer=False,
                                          attn_implementation="sdpa").eval().to(torch_device)
    except Exception as exc:  # unreadable or mismatched weights
        raise ModelUnavailable(f"cannot read the weights in {folder}: {type(exc).__name__}: {exc}") from exc
    tok = _fast_tokenizer(folder, "[PAD]")
    layout = token_layout(tok, "[SEP]")  # [CLS] ... [SEP]; chunks joined by [SEP] when late chunking
    st_cfg = folder / "sentence_bert_config.json"
    if st_cfg.is_file():
        max_tokens = min(max_tokens, int(json.loads(st_cfg.read_text()).get("max_seq_length", max_tokens)))
    return Encoder(name=name, model_key=model_key, model=model, tokenizer=tok, layout=layout, variant=variant,
                   max_tokens=max_tokens, is_pplx=False, int8_scheme="calibrated", device=torch_device,
                   explicit_mask=False, batch_size=batch_size, fingerprint=fingerprint)
