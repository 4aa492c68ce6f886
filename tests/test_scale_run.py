"""scale_run: a stored corpus embedded, grown with synthetic vectors, timed on real questions and priced."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import pplx_demo.scale as scale
from pplx_demo.config import Settings
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.scale import SYNTHETIC_NOTE
from pplx_demo.scale_run import price_note, scale_configs, scale_corpus, scale_plan, scale_questions
from pplx_demo.store import Store


@pytest.fixture()
def corpus(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    texts = [f"Paragraph {i} about lighthouses, tides and the keepers who wound the clockwork." for i in range(30)]
    docs = [Document(f"u{i}", f"T{i}", t, metadata={"lang": "en"}) for i, t in enumerate(texts)]
    cid = store.add_corpus("c", docs, [[Chunk(0, t, 0, len(t), 12)] for t in texts])
    return store, cid


def test_a_corpus_is_embedded_grown_timed_and_priced(corpus, minilm, tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "_BLOCK_BYTES", 4 * 384 * 400)
    store, cid = corpus
    settings = dataclasses.replace(Settings(), db_path=tmp_path / "s.duckdb")
    run = scale_corpus(store, cid, minilm, [1000, 500], settings=settings, workdir=tmp_path, repeats=1)
    assert run.sizes == [500, 1000] and run.report.note == SYNTHETIC_NOTE
    assert run.report.sizes[0].n_real == 30 and run.n_questions == 20
    labels = {str(c) for c in run.configs}
    assert {p.config_label for p in run.report.points} == labels and len(run.report.points) == 2 * len(labels)
    assert {(str(c.config), c.n_vectors) for c in run.costs} == {(lbl, n) for lbl in labels for n in (500, 1000)}
    rescore = next(c for c in run.costs if c.config.mode == "rescore" and c.config.dim is None and c.n_vectors == 1000)
    assert rescore.ram_bytes == 48 * 1000 and rescore.disk_bytes == 388 * 1000
    assert run.to_dict()["corpus"] == "c" and list(tmp_path.glob("scale-*")) == []  # files removed


def test_over_budget_is_refused_before_embedding(corpus, minilm, tmp_path):
    store, cid = corpus
    tiny = dataclasses.replace(Settings(), scale_ram_budget_bytes=1 << 20, scale_disk_budget_bytes=1 << 20)
    plan = scale_plan(minilm, [10_000_000])
    assert plan.disk_bytes > 1 << 30
    with pytest.raises(DemoError, match="largest size that fits"):
        scale_corpus(store, cid, minilm, [10_000_000], settings=tiny, workdir=tmp_path)


def test_a_stop_cancels_the_run(corpus, minilm, tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "_BLOCK_BYTES", 4 * 384 * 200)
    store, cid = corpus
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        scale_corpus(store, cid, minilm, [5000], settings=Settings(), workdir=tmp_path, cancel=cancel)
    assert list(tmp_path.glob("scale-*")) == []


def test_questions_configs_and_prices():
    assert len(scale_questions(["de", "xx"])) == 20 and scale_questions([]) == scale_questions(["en"])
    assert "PPLX_DEMO_RAM_USD_PER_GB_MONTH" in price_note(Settings()) and "aws.amazon.com" in price_note(Settings())

    class Enc:
        dim, int8_scheme = 1024, "tanh"

    configs = scale_configs(Enc())
    assert any(c.dim == 512 for c in configs) and all(c.int8_scheme in (None, "tanh") for c in configs)
    with pytest.raises(DemoError, match="at least one corpus size"):
        scale_plan(Enc(), [])
