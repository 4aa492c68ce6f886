"""The ONNX Runtime runtime: a graph in the official repository layout (onnx/model.onnx + external data,
onnx/model_q4.onnx) or our own export (onnx/model.onnx, onnx/model_int8.onnx), run on the CPU.

The graph's outputs are read by role, whatever they are called: token states (batch, seq, dim) float, a pooled
float vector (batch, dim), int8 codes, binary codes. Token states are preferred (late chunking pools spans of
them, exactly as the torch runtime does); a graph with only a pooled float output serves the standard variant;
a graph with only int8 / binary outputs is refused (the studio needs the float vectors it quantises itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pplx_demo.errors import ModelUnavailable
from pplx_demo.models.encoder import Encoder, FolderText, Runtime, Spans, pool_spans

ONNX_FILES: dict[str, str] = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "onnx-q4": "model_q4.onnx"}
_NUMPY_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


@dataclass(frozen=True)
class GraphRoles:
    """Which graph output plays which role (None: the graph does not expose it), and the inputs it takes."""

    token_states: str | None = None
    pooled: str | None = None
    int8: str | None = None
    binary: str | None = None
    inputs: dict[str, type] = field(default_factory=dict)  # input name -> numpy integer type


def graph_roles(session) -> GraphRoles:
    """Classify a session's outputs by name, then by rank and element type; check its inputs are ones we feed."""
    roles: dict[str, str | None] = {"token_states": None, "pooled": None, "int8": None, "binary": None}
    for out in session.get_outputs():
        name, rank, etype = out.name.lower(), len(out.shape or ()), out.type
        if "bin" in name:
            role = "binary"
        elif "int8" in name or etype in ("tensor(int8)",):
            role = "int8"
        elif etype == "tensor(uint8)":
            role = "binary"  # packed bits
        elif etype in ("tensor(float)", "tensor(float16)", "tensor(bfloat16)") and rank == 3:
            role = "token_states"
        elif etype in ("tensor(float)", "tensor(float16)", "tensor(bfloat16)") and rank == 2:
            role = "pooled"
        else:
            continue
        if roles[role] is None:
            roles[role] = out.name
    inputs: dict[str, type] = {}
    for inp in session.get_inputs():
        if inp.name not in ("input_ids", "attention_mask", "position_ids", "token_type_ids"):
            raise ModelUnavailable(f"the ONNX graph takes an input {inp.name!r} this studio does not know how to "
                                   "fill (it feeds input_ids, attention_mask, position_ids, token_type_ids)")
        inputs[inp.name] = _NUMPY_TYPES.get(inp.type, np.int64)
    if "input_ids" not in inputs:
        raise ModelUnavailable("the ONNX graph has no input_ids input")
    return GraphRoles(inputs=inputs, **roles)


def open_session(path: Path, threads: int = 0):
    """An ONNX Runtime CPU session for `path` (external data is read from beside it)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a pinned runtime dependency
        raise ModelUnavailable("the ONNX runtime needs the onnxruntime package (pip install -r requirements.txt)"
                               ) from exc
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initializers etc. are noise here
    if threads > 0:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidGraph, missing external data, truncated file: all "unusable"
        raise ModelUnavailable(f"cannot open the ONNX graph {path}: {type(exc).__name__}: {exc}") from exc


class OnnxEncoder(Encoder):
    """An `Encoder` whose forward pass is an ONNX Runtime session on the CPU."""

    def __init__(self, *, session, roles: GraphRoles, graph_file: Path, **kwargs) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.session = session
        self.roles = roles
        self.graph_file = graph_file
        if roles.token_states is None and roles.pooled is None:
            have = ", ".join(r for r in ("int8", "binary") if getattr(roles, r)) or "none we recognise"
            raise ModelUnavailable(f"{graph_file}: the graph exposes no float output (only {have}); the studio needs "
                                   "the float vectors (it derives int8 and binary itself and compares them to "
                                   "float32). Use a graph with token states or a pooled float output")
        if self.variant == "contextual" and roles.token_states is None:
            raise ModelUnavailable(f"{graph_file}: late chunking pools each chunk's own tokens, and this graph exposes "
                                   "only a pooled vector, not the token states; export one with "
                                   "`python -m pplx_demo export-onnx` (it exposes token states) or use runtime torch")

    def _feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        for name, dtype in self.roles.inputs.items():
            if name == "input_ids":
                value = ids
            elif name == "attention_mask":
                value = mask
            elif name == "position_ids":  # right padding: positions 0..n-1 on every row
                value = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
            else:
                value = np.zeros_like(ids)
            feeds[name] = np.ascontiguousarray(value, dtype=dtype)
        return feeds

    def _token_states_pooled(self, ids: np.ndarray, mask: np.ndarray, spans: list[Spans]) -> list[np.ndarray]:
        if self.roles.token_states is not None:
            (hidden,) = self.session.run([self.roles.token_states], self._feeds(ids, mask))
            return pool_spans(hidden, spans, self.dim)
        # A pooled-only graph: each span must be the whole sequence (standard variant; checked at load).
        lengths = mask.sum(axis=1)
        if any(row != [(0, int(n))] for row, n in zip(spans, lengths)):
            raise ModelUnavailable(f"{self.graph_file}: this graph gives one pooled vector per sequence, not token "
                                   "states, so it cannot pool parts of a sequence")
        (pooled,) = self.session.run([self.roles.pooled], self._feeds(ids, mask))
        return [np.asarray(p, dtype=np.float32)[None, :] for p in pooled]

    def token_states(self, seqs: list[list[int]]) -> np.ndarray:
        if self.roles.token_states is None:
            raise ModelUnavailable(f"{self.graph_file} does not expose token states")
        ids, mask = self._pad(seqs)
        with self._lock:
            (hidden,) = self.session.run([self.roles.token_states], self._feeds(ids, mask))
        return np.asarray(hidden, dtype=np.float32)

    def graph_outputs(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Every non-token output the graph computes for standard one-text inputs, by role ("pooled", "int8",
        "binary"): lets a test or a user check the graph's own quantisation against the studio's."""
        ids = self._tokenize(texts)
        budget = self.max_tokens - len(self.layout.prefix) - len(self.layout.suffix)
        seqs = [list(self.layout.prefix) + x[:budget] + list(self.layout.suffix) for x in ids]
        names = {r: getattr(self.roles, r) for r in ("pooled", "int8", "binary") if getattr(self.roles, r)}
        padded_ids, mask = self._pad(seqs)
        with self._lock:
            values = self.session.run(list(names.values()), self._feeds(padded_ids, mask))
        return dict(zip(names, values))


def load_onnx_encoder(graph_file: Path, text: FolderText, *, runtime: Runtime, threads: int = 0,
                      **encoder_kwargs) -> OnnxEncoder:
    """An OnnxEncoder for `graph_file` with the folder's tokenizer; `encoder_kwargs` are the shared Encoder fields."""
    session = open_session(graph_file, threads)
    roles = graph_roles(session)
    dim = text.hidden_size
    for name in (roles.token_states, roles.pooled):
        if name is not None:
            shape = next(o.shape for o in session.get_outputs() if o.name == name)
            if isinstance(shape[-1], int) and shape[-1] != dim:
                raise ModelUnavailable(f"{graph_file}: output {name!r} has {shape[-1]} dimensions but config.json "
                                       f"says hidden_size {dim}: the graph and the folder do not belong together")
    return OnnxEncoder(session=session, roles=roles, graph_file=graph_file, runtime=runtime, tokenizer=text.tokenizer,
                       layout=text.layout, dim=dim, **encoder_kwargs)
