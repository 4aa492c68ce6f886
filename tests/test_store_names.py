"""Corpus names: a private corpus cannot pass for a shared one."""

from __future__ import annotations

import pytest

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.store import Store


def _one_doc(text: str = "Cranes lift boxes.") -> tuple[list[Document], list[list[Chunk]]]:
    return [Document(uri="mem://a", title="A", text=text)], [[Chunk(0, text, 0, len(text), 4)]]


def test_a_private_corpus_cannot_take_a_shared_corpus_name(tmp_path):
    with Store(tmp_path / "names.duckdb") as store:
        shared_id = store.add_corpus("XQuAD sample (CC BY-SA 4.0)", *_one_doc(), owner=None, source="sample")
        for name in ("XQuAD sample (CC BY-SA 4.0)", "  xquad SAMPLE (cc by-sa 4.0) "):
            with pytest.raises(DemoError, match="shared corpus") as excinfo:
                store.add_corpus(name, *_one_doc(), owner="session-1")
            assert "XQuAD sample (CC BY-SA 4.0)" in str(excinfo.value)
        # Nothing half-written: the session still sees only the shared corpus.
        assert [c.id for c in store.list_corpora("session-1")] == [shared_id]
        # Other names stay free, and two owners may both use one private name.
        first = store.add_corpus("my notes", *_one_doc(), owner="session-1")
        second = store.add_corpus("my notes", *_one_doc(), owner="session-2")
        assert first != second
        assert [c.name for c in store.list_corpora("session-2")] == ["XQuAD sample (CC BY-SA 4.0)", "my notes"]
