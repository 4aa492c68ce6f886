"""One configuration vocabulary: `IndexConfig`, its canonical text and the one parser for it.

Every front end, report and chart names a search configuration the same way. `str(config)` is
the canonical text and `IndexConfig.parse(str(config)) == config` for every config:

    float32 | int8 | int8 tanh | int8 calibrated | binary
    binary + rescore x4 | binary + rescore x4 (float32) | binary + rescore x4 (int8 calibrated)
    binary + asymmetric
    ... each optionally followed by " @256d" (a Matryoshka size)

`parse` also takes the spellings people type or that older versions wrote: "binary+rescore",
"binary + rescore", "binary + rescore(int8) x4", "binary asymmetric", "binary+asym",
"binary + asymmetric (float query)", "int8 (calibrated)", "fp32", "@512", case and spaces free.
Charts and tables key on the fields (`family`, `precision`, `mode`, `dim`, ...), never on text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from pplx_demo.errors import DemoError
from pplx_demo.quantize import PRECISIONS, Int8Scheme, Precision

Mode = Literal["plain", "rescore", "asymmetric"]
MODES: tuple[Mode, ...] = ("plain", "rescore", "asymmetric")
RescoreWith = Literal["int8", "float32"]
FloatForm = Literal["raw", "tanh"]
FLOAT_FORMS: tuple[FloatForm, ...] = ("raw", "tanh")
INT8_SCHEMES: tuple[Int8Scheme, ...] = ("tanh", "calibrated", "codes")
Family = Literal["float32", "int8", "binary", "binary + rescore", "binary + asymmetric", "hybrid"]
# In display order; the first is the reference every other configuration is compared with.
FAMILIES: tuple[Family, ...] = ("float32", "int8", "binary", "binary + rescore", "binary + asymmetric", "hybrid")
DENSE_FAMILIES: tuple[Family, ...] = FAMILIES[:-1]  # each a configuration by itself ("hybrid" needs a dense one)
DEFAULT_RESCORE_MULTIPLIER = 4
DEFAULT_RRF_K = 60  # reciprocal rank fusion's k (Cormack et al. 2009)

_PRECISION_WORDS = {"float32": "float32", "fp32": "float32", "f32": "float32", "float": "float32",
                    "int8": "int8", "i8": "int8", "binary": "binary", "bin": "binary", "ubinary": "binary"}
_MODE_WORDS = {"rescore": "rescore", "rescored": "rescore", "rerank": "rescore",
               "asymmetric": "asymmetric", "asym": "asymmetric"}
_TOKEN = re.compile(r"[a-z0-9]+|[+()@]")  # words, numbers and single symbols: linear, no backtracking
SPELLINGS = ("float32", "int8", "int8 calibrated", "binary", "binary + rescore x4", "binary + rescore x4 (float32)",
             "binary + asymmetric", "<any of these> @256d", "hybrid: BM25 + <any of these> (RRF k=60)")


@dataclass(frozen=True)
class IndexConfig:
    """One search configuration: precision, mode, Matryoshka size and rescoring options.

    `int8_scheme=None` means "the model's native scheme" (tanh for pplx-embed, calibrated for the
    stand-in); `resolved()` fixes it per encoder. "rescore" and "asymmetric" apply to binary codes.
    """

    precision: Precision = "float32"
    mode: Mode = "plain"
    dim: int | None = None  # Matryoshka size; None = the model's full size
    rescore_multiplier: int = DEFAULT_RESCORE_MULTIPLIER
    rescore_with: RescoreWith = "int8"
    int8_scheme: Int8Scheme | None = None
    hybrid: bool = False  # fuse this dense configuration with BM25 by reciprocal rank fusion
    rrf_k: int = DEFAULT_RRF_K
    # The float vectors float32 search (or rescoring) compares: "tanh" = tanh(pooled), the float form of what
    # pplx-embed was trained to emit (its int8 is round(tanh(x) * 127)); "raw" = the pooled vector itself;
    # None = the model's native form (tanh for pplx-embed, raw otherwise), fixed by `resolved`.
    float_form: FloatForm | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise DemoError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.mode not in MODES:
            raise DemoError(f"unknown search mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.mode != "plain" and self.precision != "binary":
            raise DemoError(f"mode {self.mode!r} needs binary codes (it re-scores or reads sign vectors); "
                            f"use precision 'binary' or mode 'plain'")
        if self.dim is not None and (not isinstance(self.dim, (int, np.integer)) or self.dim < 1):
            raise DemoError(f"Matryoshka size must be a positive integer, got {self.dim!r}")
        if self.rescore_with not in ("int8", "float32"):
            raise DemoError(f"rescore_with must be 'int8' or 'float32', got {self.rescore_with!r}")
        if not isinstance(self.rescore_multiplier, (int, np.integer)) or not 1 <= self.rescore_multiplier <= 1000:
            raise DemoError(f"rescore multiplier must be an integer in 1..1000, got {self.rescore_multiplier!r}")
        if self.int8_scheme not in (None, *INT8_SCHEMES):
            raise DemoError(f"unknown int8 scheme {self.int8_scheme!r}: use 'tanh', 'calibrated' or 'codes'")
        if self.float_form not in (None, *FLOAT_FORMS):
            raise DemoError(f"unknown float form {self.float_form!r}: use 'raw' or 'tanh'")
        if self.float_form is not None and not self.needs_float:
            raise DemoError("a float form (raw / tanh) applies to float32 search or float32 rescoring only")
        if not isinstance(self.rrf_k, (int, np.integer)) or not 1 <= self.rrf_k <= 10_000:
            raise DemoError(f"RRF k must be a whole number in 1..10000, got {self.rrf_k!r}")

    # -- derived facts --------------------------------------------------------------------------

    @property
    def family(self) -> Family:
        """The configuration family: the colour key in every chart and column."""
        if self.hybrid:
            return "hybrid"
        if self.mode == "rescore":
            return "binary + rescore"
        if self.mode == "asymmetric":
            return "binary + asymmetric"
        return self.precision

    @property
    def uses_int8(self) -> bool:
        """True when int8 codes are searched or used for rescoring."""
        return self.precision == "int8" or (self.mode == "rescore" and self.rescore_with == "int8")

    @property
    def needs_float(self) -> bool:
        """True when float32 vectors are searched or used for rescoring."""
        return self.precision == "float32" or (self.mode == "rescore" and self.rescore_with == "float32")

    @property
    def dense(self) -> "IndexConfig":
        """The dense index this configuration searches (itself, or a hybrid's dense leg)."""
        return replace(self, hybrid=False, rrf_k=DEFAULT_RRF_K) if self.hybrid else self

    def resolved(self, default_int8_scheme: Int8Scheme) -> "IndexConfig":
        """This config with `int8_scheme` fixed (to the default when unset; None if it has no int8) and, for
        float32 search or rescoring, the float form: a model with tanh int8 (pplx-embed) compares tanh(x)."""
        form = self.float_form
        if self.needs_float and form is None and default_int8_scheme == "tanh":
            form = "tanh"
        if not self.uses_int8:
            return replace(self, int8_scheme=None, float_form=form if self.needs_float else None)
        return replace(self, int8_scheme=self.int8_scheme or default_int8_scheme,
                       float_form=form if self.needs_float else None)

    def for_model(self, full_dim: int, default_int8_scheme: Int8Scheme) -> "IndexConfig":
        """Resolved for a model: a Matryoshka size at or above its size is the full size (one index)."""
        config = replace(self, dim=None) if self.dim is not None and self.dim >= full_dim else self
        return config.resolved(default_int8_scheme)

    # -- text -----------------------------------------------------------------------------------

    def __str__(self) -> str:
        if self.hybrid:
            return f"hybrid: BM25 + {self.dense} (RRF k={self.rrf_k})"
        text = self.precision
        if self.precision == "int8" and self.int8_scheme is not None:
            text += f" {self.int8_scheme}"
        if self.precision == "float32" and self.float_form is not None:
            text += f" {self.float_form}"
        if self.mode == "rescore":
            text += f" + rescore x{self.rescore_multiplier}"
            if self.rescore_with == "float32":
                text += f" (float32{' ' + self.float_form if self.float_form else ''})"
            elif self.int8_scheme is not None:
                text += f" (int8 {self.int8_scheme})"
        elif self.mode == "asymmetric":
            text += " + asymmetric"
        if self.dim is not None:
            text += f" @{self.dim}d"
        return text

    @property
    def label(self) -> str:
        """The canonical text (`str(config)`), what every column, table and chart shows."""
        return str(self)

    @classmethod
    def parse(cls, text: str, *, dim: int | None = None,
              rescore_multiplier: int = DEFAULT_RESCORE_MULTIPLIER) -> "IndexConfig":
        """The configuration a text names (any spelling above); `dim` / `rescore_multiplier` apply when
        the text does not say them. DemoError (field "configuration") for anything else."""
        if not isinstance(text, str) or not text.strip():
            raise _bad(text, "it is empty")
        if len(text) > 200:
            raise _bad(text[:40] + "…", "it is too long")
        tokens = _TOKEN.findall(text.lower())
        if not tokens:
            raise _bad(text, "no configuration word found")
        hybrid, rrf_k = False, DEFAULT_RRF_K
        if tokens[0] == "hybrid":  # "hybrid: BM25 + <dense> (RRF k=60)"; ":" and "=" are not tokens
            if tokens[1:3] != ["bm25", "+"]:
                raise _bad(text, "a hybrid is written 'hybrid: BM25 + <configuration>'")
            hybrid, tokens = True, tokens[3:]
            if tokens and tokens[-1] == ")" and "(" in tokens:
                start = len(tokens) - 1 - tokens[::-1].index("(")
                group = tokens[start + 1:-1]
                if group[:1] == ["rrf"]:  # "(RRF k=60)" -> rrf, k, 60 ("k60" and "60" too)
                    digits = "".join(group[1:]).removeprefix("k")
                    rrf_k = int(digits) if digits.isdigit() else -1
                    tokens = tokens[:start]
            if rrf_k < 1:
                raise _bad(text, "RRF k must be a whole number, e.g. '(RRF k=60)'")
            if not tokens:
                raise _bad(text, "a hybrid needs a dense configuration after 'BM25 +'")
        parser = _Parser(text, tokens)
        precision = parser.precision()
        scheme = parser.scheme() if precision == "int8" else None
        form = parser.float_form() if precision == "float32" else None
        mode, rescore_with, multiplier = "plain", "int8", None
        while not parser.done():
            token = parser.peek()
            if token == "@":
                parser.take()
                dim = parser.number("a Matryoshka size after '@'")
                parser.optional_word({"d", "dim", "dims"})
            elif token == "+" or token in _MODE_WORDS:
                if token == "+":
                    parser.take()
                word = parser.take()
                if word not in _MODE_WORDS or mode != "plain":
                    raise _bad(text, f"{word!r} is not a search mode here (use 'rescore' or 'asymmetric')")
                mode = _MODE_WORDS[word]
            elif token == "(":
                target = parser.parenthesised()
                if mode == "rescore" and target:
                    if target[:1] in (["float32"], ["fp32"], ["float"]) and len(target) == 2 and target[1] in FLOAT_FORMS:
                        target, form = target[:1], target[1]
                    rescore_with, target_scheme = _rescore_target(text, target)
                    scheme = target_scheme or scheme
                elif mode == "asymmetric" and target in (["float", "query"], ["float32", "query"], []):
                    pass
                elif precision == "int8" and mode == "plain" and len(target) == 1 and target[0] in INT8_SCHEMES:
                    scheme = target[0]
                else:
                    raise _bad(text, f"'({' '.join(target)})' does not apply here")
            elif mode == "rescore" and _multiplier(token) is not None:
                multiplier = _multiplier(parser.take())
                if multiplier == 0:  # "x" then a number
                    multiplier = parser.number("a rescore multiplier after 'x'")
            else:
                raise _bad(text, f"{token!r} is not understood")
        if mode != "plain" and precision != "binary":
            raise _bad(text, f"'{mode}' applies to binary codes only")
        if mode == "rescore" and rescore_with == "float32" and scheme is not None:
            raise _bad(text, "rescoring with float32 has no int8 scheme")
        return cls(precision=precision, mode=mode, dim=dim,  # type: ignore[arg-type]
                   rescore_multiplier=rescore_multiplier if multiplier is None else multiplier,
                   rescore_with=rescore_with, int8_scheme=scheme, hybrid=hybrid, rrf_k=rrf_k,  # type: ignore[arg-type]
                   float_form=form)  # type: ignore[arg-type]

    @classmethod
    def parse_list(cls, text: str, *, dim: int | None = None,
                   rescore_multiplier: int = DEFAULT_RESCORE_MULTIPLIER) -> list["IndexConfig"]:
        """Comma-separated configurations, each parsed, duplicates dropped (first kept)."""
        parts = [p for p in (text or "").split(",") if p.strip()]
        if not parts:
            raise _bad(text or "", "no configuration given")
        configs = [cls.parse(p, dim=dim, rescore_multiplier=rescore_multiplier) for p in parts]
        return list(dict.fromkeys(configs))


def matryoshka_sizes(full_dim: int) -> list[int]:
    """Sizes worth offering for a model: its full size, then 1024/512/256/128 where smaller."""
    return [full_dim] + [d for d in (1024, 512, 256, 128) if d < full_dim]


MIN_DIM = 8  # below this a Matryoshka prefix ranks little better than chance


def validate_dim(dim: int | None, full_dim: int, offered: tuple[int, ...] | list[int] | None = None) -> None:
    """DemoError (field "dim") unless `dim` is None, one of the offered sizes, or within MIN_DIM..full_dim."""
    sizes = list(offered) if offered else matryoshka_sizes(full_dim)
    if dim is None or dim in sizes or MIN_DIM <= dim <= full_dim:
        return
    raise DemoError(f"Matryoshka size {dim} does not fit a {full_dim}-dimension model: use one of its sizes "
                    f"{', '.join(map(str, sizes))}, or any size from {MIN_DIM} to {full_dim}", field="dim",
                    cli_flag="--dim")


def _bad(text: object, why: str) -> DemoError:
    return DemoError(f"{text!r} is not a search configuration ({why}); write one of: {', '.join(SPELLINGS)}",
                     field="configuration")


def _multiplier(token: str) -> int | None:
    """4 for "x4"; 0 for a bare "x" (a number follows); None when the token is no multiplier."""
    if token == "x":
        return 0
    if token.startswith("x") and token[1:].isdigit():
        return int(token[1:])
    return None


def _rescore_target(text: str, words: list[str]) -> tuple[RescoreWith, Int8Scheme | None]:
    if words in (["float32"], ["fp32"], ["float"]):
        return "float32", None
    if words[:1] == ["int8"] and len(words) <= 2:
        scheme = words[1] if len(words) == 2 else None
        if scheme is None or scheme in INT8_SCHEMES:
            return "int8", scheme  # type: ignore[return-value]
    raise _bad(text, f"rescore target '({' '.join(words)})' must be int8, int8 tanh, int8 calibrated or float32")


class _Parser:
    """A cursor over the tokens of one configuration text."""

    def __init__(self, text: str, tokens: list[str]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def peek(self) -> str:
        return self.tokens[self.i]

    def take(self) -> str:
        if self.done():
            raise _bad(self.text, "it ends too early")
        self.i += 1
        return self.tokens[self.i - 1]

    def precision(self) -> Precision:
        word = self.take()
        if word not in _PRECISION_WORDS:
            raise _bad(self.text, f"it must start with a precision (float32, int8 or binary), not {word!r}")
        return _PRECISION_WORDS[word]  # type: ignore[return-value]

    def float_form(self) -> FloatForm | None:
        if not self.done() and self.peek() in FLOAT_FORMS:
            return self.take()  # type: ignore[return-value]
        return None

    def scheme(self) -> Int8Scheme | None:
        if not self.done() and self.peek() in INT8_SCHEMES:
            return self.take()  # type: ignore[return-value]
        return None

    def number(self, what: str) -> int:
        word = self.take()
        digits = word[:-1] if word.endswith("d") else word  # "512d" is one token
        if not digits.isdigit():
            raise _bad(self.text, f"expected {what}, got {word!r}")
        return int(digits)

    def optional_word(self, words: set[str]) -> None:
        if not self.done() and self.peek() in words:
            self.i += 1

    def parenthesised(self) -> list[str]:
        self.take()  # "("
        words = []
        while not self.done() and self.peek() != ")":
            words.append(self.take())
        self.take()
        return words
