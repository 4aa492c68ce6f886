"""Text encoders: pooled float embeddings, standard or contextual (late chunking), with no remote code.

`Encoder` owns everything that does not depend on how the network runs: tokenisation, framing, length-sorted
batching, late-chunking windows, span pooling, truncation / window counts. A runtime subclass supplies one
method, `_token_states_pooled`: a right-padded batch in, one pooled vector per requested span out.
Runtimes: "torch" (`torch_runtime.TorchEncoder`), "onnx" / "onnx-int8" / "onnx-q4" (`onnx_runtime.OnnxEncoder`).

pplx-embed checkpoints are stock Qwen3 blocks run bidirectionally; folders whose config does not say so (plain
`qwen3`, Qwen3-Embedding: causal, last-token pooled) are refused rather than silently run bidirectionally.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from pplx_demo.errors import DemoError, ModelUnavailable

Variant = Literal["standard", "contextual"]
Runtime = Literal["torch", "onnx", "onnx-int8", "onnx-q4"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "onnx-int8", "onnx-q4")
RUNTIME_LABELS: dict[str, str] = {"torch": "", "onnx": "ONNX", "onnx-int8": "ONNX int8", "onnx-q4": "ONNX q4"}
Progress = Callable[[int, int], None]
Spans = list[tuple[int, int]]  # (start, end) token spans of one sequence, end exclusive

log = logging.getLogger(__name__)

PPLX_MODEL_TYPE = "bidirectional_pplx_qwen3"
PPLX_MODEL_TYPES = (PPLX_MODEL_TYPE, "qwen3")  # "qwen3" only with use_bidirectional_attention: true
BERT_MODEL_TYPES = ("bert",)


@dataclass
class EncodeStats:
    """Filled in by one encode call (pass your own: the encoder is shared between threads)."""

    inputs: int = 0
    truncated: int = 0  # inputs (texts or chunks) cut at the encoder's token cap
    windowed: int = 0  # documents longer than one window, encoded as several overlapping windows (contextual)

    def add(self, other: "EncodeStats") -> None:
        """Add another call's counts (e.g. stats that came back from a worker process)."""
        self.inputs += other.inputs
        self.truncated += other.truncated
        self.windowed += other.windowed


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
    """Pooled (masked-mean) embeddings from a transformer; not normalised, not quantised.

    Subclasses implement `_token_states_pooled` (the forward pass) and `token_states`; nothing else differs
    between runtimes.
    """

    def __init__(self, *, name: str, model_key: str, tokenizer, layout: TokenLayout, variant: Variant,
                 max_tokens: int, is_pplx: bool, int8_scheme: str, dim: int, runtime: Runtime = "torch",
                 dtype: str = "float32", batch_size: int = 32, max_batch_tokens: int = 16384,
                 fingerprint: str = "") -> None:
        if variant not in ("standard", "contextual"):
            raise DemoError(f"unknown variant {variant!r}: use 'standard' or 'contextual'")
        if runtime not in RUNTIMES:
            raise DemoError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
        self.name = name
        self.model_key = model_key
        self.tokenizer = tokenizer
        self.layout = layout
        self.variant: Variant = variant
        self.max_tokens = int(max_tokens)
        self.is_pplx = is_pplx
        self.int8_scheme = int8_scheme
        self.dim = int(dim)
        self.runtime: Runtime = runtime
        self.dtype = dtype  # of the forward pass ("float32", "bfloat16"; ONNX int8 graphs compute in float32)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.last_truncated = 0  # of the latest call in any thread; prefer passing an EncodeStats
        self.last_windowed = 0
        self.fingerprint = fingerprint
        self._lock = threading.Lock()

    # -- public API -----------------------------------------------------------------------------

    @property
    def cache_key(self) -> str:
        """What vectors depend on besides the text: model, weights fingerprint, dtype, runtime, and the window
        cap for contextual encoding (a chunk's context depends on it). Keys the embedding cache, so vectors from
        different runtimes never mix; torch float32 (the reference) keeps the bare key."""
        parts = [self.model_key]
        if self.fingerprint:
            parts.append(self.fingerprint)
        if self.dtype != "float32":
            parts.append(self.dtype)
        if self.runtime != "torch":
            parts.append(self.runtime)
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
        self.last_windowed = 0
        if stats is not None:
            stats.inputs += len(texts)
            stats.truncated += self.last_truncated
        seqs = [list(self.layout.prefix) + x[:budget] + list(self.layout.suffix) for x in ids]
        spans = [[(0, len(s))] for s in seqs]  # the whole sequence, special tokens included
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
        documents over the cap use overlapping windows (counted in `stats.windowed`, like truncation).
        Empty chunks get the zero vector.
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
        per_doc = np.bincount([w.doc for w in windows], minlength=len(docs))
        windowed = int((per_doc > 1).sum())
        self.last_truncated, self.last_windowed = truncated, windowed
        if stats is not None:
            stats.inputs += sum(len(d) for d in docs)
            stats.truncated += truncated
            stats.windowed += windowed
        if truncated:
            log.info("%d chunks truncated to the %d-token window", truncated, self.max_tokens)
        if windowed:
            log.info("%d of %d documents longer than the %d-token window were encoded as several windows",
                     windowed, len(docs), self.max_tokens)
        pooled = self._run([w.ids for w in windows], [[(s, e) for _, s, e in w.spans] for w in windows], progress)
        out = [np.zeros((len(d), self.dim), dtype=np.float32) for d in docs]
        for w, vecs in zip(windows, pooled):
            for (chunk, start, end), v in zip(w.spans, vecs):
                if end > start:
                    out[w.doc][chunk] = v
        return out

    def token_states(self, seqs: list[list[int]]) -> np.ndarray:
        """(batch, width, dim) float32 final hidden states of right-padded `seqs` (rows past a sequence: padding)."""
        raise NotImplementedError

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

    # -- batching and the forward pass ----------------------------------------------------------

    def _batches(self, seqs: list[list[int]]) -> list[list[int]]:
        """Indices of `seqs` in length-sorted batches within batch_size and max_batch_tokens."""
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
        return batches

    def _pad(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded (ids, attention mask), both int64 (batch, width). Right padding keeps RoPE positions."""
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.layout.pad, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = s
            mask[r, :len(s)] = 1
        return ids, mask

    def _run(self, seqs: list[list[int]], spans: list[Spans], progress: Progress | None) -> list[np.ndarray]:
        """Forward `seqs` in length-sorted batches; pool each (start, end) span (fp32 mean)."""
        results: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(seqs)
        done = 0
        with self._lock:
            for batch in self._batches(seqs):
                ids, mask = self._pad([seqs[i] for i in batch])
                pooled = self._token_states_pooled(ids, mask, [spans[i] for i in batch])
                for row, i in enumerate(batch):
                    results[i] = pooled[row]
                done += len(batch)
                if progress is not None:
                    progress(done, len(seqs))
        return results

    def _token_states_pooled(self, ids: np.ndarray, mask: np.ndarray, spans: list[Spans]) -> list[np.ndarray]:
        """The runtime-specific part: one (len(spans[row]), dim) float32 array of span means per row."""
        raise NotImplementedError


def pool_spans(hidden: np.ndarray, spans: list[Spans], dim: int) -> list[np.ndarray]:
    """Mean of `hidden[row, start:end]` per span, float32; an empty span gives the zero vector."""
    out = []
    for row, row_spans in enumerate(spans):
        vecs = np.zeros((len(row_spans), dim), dtype=np.float32)
        for k, (start, end) in enumerate(row_spans):
            if end > start:
                vecs[k] = hidden[row, start:end].astype(np.float32).mean(axis=0)
        out.append(vecs)
    return out


def _stack(arrays: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(arrays, axis=0) if arrays else np.zeros((0, dim), dtype=np.float32)


# -- reading a model folder ---------------------------------------------------------------------

def read_config(folder: Path) -> dict:
    """config.json as a dict, read directly (AutoConfig would prompt about the repo's auto_map)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelUnavailable(f"{folder} has no config.json: not a model folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelUnavailable(f"{path} is not valid JSON ({exc})") from exc


ModelKind = Literal["pplx", "bert"]


def model_kind(raw: dict, folder: Path) -> ModelKind:
    """"pplx" for a bidirectional pplx-embed config, "bert" for a BERT folder; anything else is refused.

    A plain `qwen3` config (Qwen3 base, Qwen3-Embedding) describes a CAUSAL model pooled on its last token: running
    it bidirectionally with mean pooling would give vectors that look fine and mean nothing, so it is refused.
    """
    model_type = raw.get("model_type")
    bidirectional = raw.get("use_bidirectional_attention")
    if model_type in BERT_MODEL_TYPES:
        return "bert"
    if model_type in PPLX_MODEL_TYPES:
        if bidirectional is False:
            raise ModelUnavailable(f"{folder}: config.json says use_bidirectional_attention: false; pplx-embed "
                                   "models attend bidirectionally, so this is not a pplx-embed checkpoint")
        if model_type == PPLX_MODEL_TYPE or bidirectional is True:
            return "pplx"
        raise ModelUnavailable(
            f"{folder}: model_type 'qwen3' without use_bidirectional_attention: true is a causal Qwen3 model "
            "(e.g. Qwen3 or Qwen3-Embedding, which pools the last token of a causal pass); running it "
            "bidirectionally with mean pooling would give meaningless vectors. Only pplx-embed checkpoints "
            f"(model_type {PPLX_MODEL_TYPE!r} or use_bidirectional_attention: true) and BERT models are supported")
    raise ModelUnavailable(f"{folder}: model_type {model_type!r} is not supported (expected {PPLX_MODEL_TYPE!r} "
                           f"or {', '.join(BERT_MODEL_TYPES)})")


def fast_tokenizer(folder: Path, pad_token: str):
    """The folder's tokenizer.json as a fast tokenizer (never AutoTokenizer: the repos' auto_map would prompt)."""
    from transformers import PreTrainedTokenizerFast

    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ModelUnavailable(f"{folder} has no tokenizer.json")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(file))
    tok.pad_token = pad_token
    return tok


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


@dataclass(frozen=True)
class FolderText:
    """What every runtime reads from a model folder besides the weights: tokenizer, framing, window cap."""

    kind: ModelKind
    tokenizer: object
    layout: TokenLayout
    max_tokens: int
    hidden_size: int


def folder_text(folder: Path, raw: dict, kind: ModelKind, max_tokens: int) -> FolderText:
    """Tokenizer and framing for a pplx (separator <|endoftext|>) or BERT ([SEP]) folder; the window cap."""
    if kind == "pplx":
        tok = fast_tokenizer(folder, "<|endoftext|>")
        # Pool over what the tokenizer itself produces (special tokens it adds included), as the model card says.
        layout = token_layout(tok, "<|endoftext|>")
        cap = min(max_tokens, int(raw.get("max_position_embeddings", max_tokens)))
    else:
        tok = fast_tokenizer(folder, "[PAD]")
        layout = token_layout(tok, "[SEP]")  # [CLS] ... [SEP]; chunks joined by [SEP] when late chunking
        cap = min(max_tokens, 512)
        st_cfg = folder / "sentence_bert_config.json"
        if st_cfg.is_file():
            cap = min(cap, int(json.loads(st_cfg.read_text()).get("max_seq_length", cap)))
    return FolderText(kind=kind, tokenizer=tok, layout=layout, max_tokens=cap, hidden_size=int(raw["hidden_size"]))


def weights_fingerprint(folder: Path) -> str:
    """Short hash of the weight files' names, sizes and modification times (cheap; no reading).

    Covers safetensors and the ONNX graphs (onnx/*.onnx and their external data)."""
    import hashlib

    h = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) + sorted((folder / "onnx").glob("*.onnx*"))
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]
