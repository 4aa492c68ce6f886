"""Ray Data embedding: a real local Ray cluster (2 CPUs), real DuckDB stores, the real stand-in encoder.

Vectors must equal the single-process path's, runs must resume after a cancel or a killed driver, and
Parquet output must read back as the store's vectors.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pplx_demo.distributed import (EncoderIdentity, import_parquet, parquet_files, parquet_keys,
                                   read_parquet_vectors)
from pplx_demo import distributed
from pplx_demo.config import Settings
from pplx_demo.embedding import embed_corpus
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.ingest.sample import starter_documents
from pplx_demo.store import Store, content_hash
from pplx_demo.workflows import build_corpus, plan_chunking

SETTINGS = Settings.from_env()  # the test process is the entry point; the workers get these settings


def embed_corpus_ray(*args, **kwargs):
    return distributed.embed_corpus_ray(*args, settings=SETTINGS, **kwargs)

REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def ray_cluster():
    """One local 2-CPU cluster for the module; embed_corpus_ray reuses it (address None, Ray initialised)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory, minilm) -> tuple[Path, int]:
    """The 48 English starter paragraphs in 48-token chunks (several per document), stored once and copied."""
    path = tmp_path_factory.mktemp("ray-corpus") / "corpus.duckdb"
    with Store(path) as store:
        plan = plan_chunking(minilm, 48, 8)
        built = build_corpus(store, "xquad-en", starter_documents(["en"]), minilm, plan, owner=None, source="sample")
    return path, built.corpus_id


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus_db, minilm, minilm_contextual) -> dict[str, np.ndarray]:
    """The single-process path's matrix per variant, on its own copy of the corpus."""
    path = tmp_path_factory.mktemp("ray-ref") / "ref.duckdb"
    shutil.copy(corpus_db[0], path)
    with Store(path) as store:
        return {enc.variant: embed_corpus(store, corpus_db[1], enc).vectors for enc in (minilm, minilm_contextual)}


def _copy(corpus_db: tuple[Path, int], tmp_path: Path) -> Path:
    path = tmp_path / "ray.duckdb"
    shutil.copy(corpus_db[0], path)
    return path


def _matrix(store: Store, corpus_id: int, encoder) -> np.ndarray:
    return store.embedding_matrix(corpus_id, encoder.cache_key, encoder.variant, encoder.dim).vectors


def _cancel_after_first_batch():
    """(cancel event, progress calls, progress callback that sets the event after the first written batch)."""
    cancel, calls = threading.Event(), []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        cancel.set()

    return cancel, calls, progress


@pytest.mark.parametrize("variant", ["standard", "contextual"])
def test_ray_vectors_equal_the_single_process_path(ray_cluster, corpus_db, reference, tmp_path, variant, minilm,
                                                   minilm_contextual):
    encoder = minilm if variant == "standard" else minilm_contextual
    corpus_id = corpus_db[1]
    with Store(_copy(corpus_db, tmp_path)) as store:
        missing = store.missing_embeddings(corpus_id, encoder.cache_key, variant, encoder.dim)
        outcome = embed_corpus_ray(store, corpus_id, "minilm-l6", variant, write_rows=64)
        got = _matrix(store, corpus_id, encoder)
    assert outcome.cache_key == encoder.cache_key and outcome.variant == variant
    assert outcome.embedded_now == missing.n_inputs > 100
    assert outcome.batches >= 2 and outcome.actors == 2 and outcome.actor_resources == {"CPU": 1.0}
    assert not outcome.started_cluster and outcome.address == ray_cluster
    if variant == "contextual":  # whole documents went to the actors: every chunk has its context
        assert len(missing.documents) == 48 and outcome.written == outcome.embedded_now
    assert got.shape == reference[variant].shape
    assert np.abs(got - reference[variant]).max() <= TOLERANCE


def test_a_cancelled_run_keeps_its_batches_and_a_rerun_embeds_only_the_rest(ray_cluster, corpus_db, reference,
                                                                             tmp_path, minilm):
    corpus_id, identity = corpus_db[1], EncoderIdentity.of(minilm)  # given: no probe task
    cancel, calls, progress = _cancel_after_first_batch()
    with Store(_copy(corpus_db, tmp_path)) as store:
        total = len(store.missing_embeddings(corpus_id, minilm.cache_key, "standard", minilm.dim).texts)
        with pytest.raises(Cancelled, match="16 vectors written so far are kept"):
            embed_corpus_ray(store, corpus_id, "minilm-l6", "standard", write_rows=16, progress=progress,
                             cancel=cancel, identity=identity, num_actors=1)
        assert calls == [16]
        left = store.missing_embeddings(corpus_id, minilm.cache_key, "standard", minilm.dim)
        assert len(left.texts) == total - 16
        outcome = embed_corpus_ray(store, corpus_id, "minilm-l6", "standard", write_rows=64, identity=identity,
                                   num_actors=1)
        assert outcome.missing == outcome.embedded_now == total - 16
        assert np.abs(_matrix(store, corpus_id, minilm) - reference["standard"]).max() <= TOLERANCE
        again = embed_corpus_ray(store, corpus_id, "minilm-l6", "standard", identity=identity)
    assert again.embedded_now == 0 and again.batches == 0 and again.address == ""  # nothing to do: no cluster


def test_a_killed_driver_loses_only_the_unwritten_part(ray_cluster, corpus_db, reference, tmp_path,
                                                      minilm_contextual):
    """A separate driver process connects to the cluster, writes one batch and dies (os._exit, no cleanup)."""
    corpus_id, path = corpus_db[1], _copy(corpus_db, tmp_path)
    child = textwrap.dedent(f"""
        import os
        from pplx_demo.config import Settings
        from pplx_demo.distributed import embed_corpus_ray
        from pplx_demo.store import Store, content_hash
        store = Store({str(path)!r})
        def die(done, total):
            os._exit(7)
        embed_corpus_ray(store, {corpus_id}, "minilm-l6", "contextual", address={ray_cluster!r}, write_rows=16,
                         progress=die, settings=Settings.from_env())
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 7, proc.stderr[-2000:]
    enc = minilm_contextual
    with Store(path) as store:
        before = store.missing_embeddings(corpus_id, enc.cache_key, "contextual", enc.dim)
        assert 0 < len(before.documents) < 48  # the first batch (16 vectors, whole documents among them) survived
        outcome = embed_corpus_ray(store, corpus_id, "minilm-l6", "contextual", write_rows=64,
                                   identity=EncoderIdentity.of(enc), num_actors=1)
        assert outcome.embedded_now == before.n_inputs < len(reference["contextual"])
        assert np.abs(_matrix(store, corpus_id, enc) - reference["contextual"]).max() <= TOLERANCE


def test_parquet_output_resumes_reads_back_and_imports(ray_cluster, corpus_db, reference, tmp_path, minilm):
    corpus_id, out = corpus_db[1], tmp_path / "vectors"
    identity = EncoderIdentity.of(minilm)
    cancel, calls, progress = _cancel_after_first_batch()
    with Store(_copy(corpus_db, tmp_path)) as store:
        total = len(store.missing_embeddings(corpus_id, minilm.cache_key, "standard", minilm.dim).texts)
        with pytest.raises(Cancelled):
            embed_corpus_ray(store, corpus_id, "minilm-l6", "standard", parquet_dir=out, write_rows=32,
                             progress=progress, cancel=cancel, identity=identity, num_actors=1)
        assert len(parquet_files(out)) == 1 and len(parquet_keys(out, identity)) == 32
        assert store.missing_embeddings(corpus_id, minilm.cache_key, "standard", minilm.dim).texts  # store untouched

        outcome = embed_corpus_ray(store, corpus_id, "minilm-l6", "standard", parquet_dir=out, write_rows=32,
                                   import_into_store=True, identity=identity, num_actors=1)
        assert outcome.skipped == 32 and outcome.embedded_now == total - 32 and outcome.imported == total
        assert len(outcome.parquet_files) == len(parquet_files(out)) - 1

        table = pq.read_table(parquet_files(out)[0])
        assert table.column_names == ["chunk_hash", "context_key", "vector"]
        vector_type = table.schema.field("vector").type
        assert pa.types.is_fixed_size_list(vector_type) and vector_type.list_size == 384
        assert vector_type.value_type == pa.float32()
        assert table.schema.metadata[b"pplx_demo.cache_key"] == minilm.cache_key.encode()

        keys, vectors = read_parquet_vectors(out, identity)
        assert len(set(keys)) == len(keys) == total
        by_hash = {content_hash(t): v for t, v in zip(store.chunk_table(corpus_id).texts, reference["standard"])}
        expected = np.stack([by_hash[h] for h, _ in keys])
        assert np.abs(vectors - expected).max() <= TOLERANCE
        assert np.abs(_matrix(store, corpus_id, minilm) - reference["standard"]).max() <= TOLERANCE
        assert import_parquet(store, out, identity) == total  # idempotent: cached rows are kept

        other = EncoderIdentity("another-model", "standard", 384)
        with pytest.raises(DemoError, match="another Parquet directory"):
            parquet_keys(out, other)


def test_a_model_that_cannot_load_is_a_demo_error(ray_cluster, corpus_db, tmp_path):
    with Store(_copy(corpus_db, tmp_path)) as store:
        with pytest.raises(DemoError) as info:
            embed_corpus_ray(store, corpus_db[1], "no-such-model", "standard")
    assert "no-such-model" in str(info.value)


def test_workers_refuse_another_cache_key(ray_cluster, corpus_db, tmp_path, minilm):
    wrong = EncoderIdentity(minilm.cache_key + "|elsewhere", "standard", minilm.dim)
    with Store(_copy(corpus_db, tmp_path)) as store:
        with pytest.raises(DemoError, match="same model files and settings"):
            embed_corpus_ray(store, corpus_db[1], "minilm-l6", "standard", identity=wrong, num_actors=1)
        assert store.missing_embeddings(corpus_db[1], wrong.cache_key, "standard", wrong.dim).texts
