"""Store: a real DuckDB file per test; embeddings from the real offline stand-in (all-MiniLM-L6-v2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pplx_demo.embedding import embed_corpus
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.store import SCHEMA_VERSION, Store, content_hash

ROOT = Path(__file__).resolve().parent.parent


def make_docs(n: int, prefix: str = "doc", lang: str | None = "en", chunks_per_doc: int = 2):
    docs, chunks = [], []
    for i in range(n):
        parts = [f"{prefix} {i} part {j}: " + ("alpha beta gamma " * (1 + j)) for j in range(chunks_per_doc)]
        text = "\n".join(parts)
        meta = {"lang": lang} if lang else {}
        docs.append(Document(uri=f"file://{prefix}/{i}.txt", title=f"{prefix.title()} {i}", text=text,
                             metadata=meta, external_id=f"{prefix}-{i}"))
        cks, pos = [], 0
        for j, p in enumerate(parts):
            cks.append(Chunk(order=j, text=p, char_start=pos, char_end=pos + len(p), token_count=len(p.split())))
            pos += len(p) + 1
        chunks.append(cks)
    return docs, chunks


def table_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("corpora", "documents", "chunks", "embeddings")}
    finally:
        con.close()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "studio.duckdb")
    yield s
    s.close()


def test_add_corpus_records_documents_chunks_and_sizes(store):
    docs, chunks = make_docs(3)
    docs[1].metadata["lang"] = "de"
    cid = store.add_corpus("Notes", docs, chunks, chunking={"max_tokens": 128}, source="upload")
    info = store.get_corpus(cid)
    assert (info.name, info.owner, info.source) == ("Notes", None, "upload")
    assert (info.n_documents, info.n_chunks) == (3, 6)
    assert info.n_tokens == sum(c.token_count for cs in chunks for c in cs)
    assert info.languages == ["de", "en"]
    assert info.chunking == {"max_tokens": 128}
    assert info.created <= info.last_used <= time.time()

    table = store.chunk_table(cid)
    assert len(table) == 6
    assert table.texts == [c.text for cs in chunks for c in cs]  # document order, then chunk order
    assert table.titles[:2] == ["Doc 0", "Doc 0"] and table.uris[2] == "file://doc/1.txt"
    assert table.orders.tolist() == [0, 1] * 3
    assert table.external_ids[4] == "doc-2"
    assert table.token_counts.tolist() == [c.token_count for cs in chunks for c in cs]

    wanted = [int(table.chunk_ids[3]), int(table.chunk_ids[0])]
    records = store.fetch_chunks(wanted)
    assert [r.chunk_id for r in records] == wanted  # in the order asked for
    assert records[0].text == chunks[1][1].text and records[0].title == "Doc 1" and records[0].order == 1
    assert (records[0].char_start, records[0].char_end) == (chunks[1][1].char_start, chunks[1][1].char_end)
    assert records[1].document_id == int(table.document_ids[0])


def test_add_documents_appends_in_order_and_bumps_revision(store):
    docs, chunks = make_docs(2)
    cid = store.add_corpus("c", docs, chunks)
    more_docs, more_chunks = make_docs(2, prefix="more")
    assert store.add_documents(cid, more_docs, more_chunks) == 2
    info = store.get_corpus(cid)
    assert info.n_documents == 4 and info.revision == 1
    assert store.chunk_table(cid).texts[-1] == more_chunks[1][1].text
    with pytest.raises(DemoError, match="does not exist"):
        store.add_documents(9999, more_docs, more_chunks)


def test_a_cached_corpus_row_follows_every_write(store):
    docs, chunks = make_docs(2)
    cid = store.add_corpus("c", docs, chunks, owner="alice")
    first = store.get_corpus(cid)
    assert store.get_corpus(cid) == first  # the cached row reads the same
    more_docs, more_chunks = make_docs(1, prefix="more")
    store.add_documents(cid, more_docs, more_chunks)
    grown = store.get_corpus(cid)
    assert (grown.revision, grown.n_documents, grown.n_chunks) == (1, 3, 6)
    time.sleep(0.01)
    store.touch_corpus(cid)  # a touch kept in memory still shows
    assert store.get_corpus(cid).last_used > grown.last_used
    store.delete_corpus(cid)
    with pytest.raises(DemoError, match="does not exist"):
        store.get_corpus(cid)


def test_visibility_of_shared_and_private_corpora(store):
    docs, chunks = make_docs(1)
    shared = store.add_corpus("sample", docs, chunks, source="sample")
    mine = store.add_corpus("mine", docs, chunks, owner="alice")
    theirs = store.add_corpus("mine", docs, chunks, owner="bob")  # same name, other owner: allowed
    assert [c.id for c in store.list_corpora("alice")] == [shared, mine]
    assert [c.id for c in store.list_corpora("bob")] == [shared, theirs]
    assert [c.id for c in store.list_corpora(None)] == [shared]
    assert store.find_corpus("mine", "alice").id == mine
    assert store.find_corpus("mine", None) is None
    assert store.find_corpus("sample", None).id == shared
    assert store.check_access(mine, "alice").id == mine
    with pytest.raises(DemoError):
        store.check_access(mine, "bob")
    with pytest.raises(DemoError, match="already exists"):
        store.add_corpus("mine", docs, chunks, owner="alice")


def test_delete_and_expiry(store):
    docs, chunks = make_docs(2)
    shared = store.add_corpus("shared", docs, chunks)
    old = store.add_corpus("old", docs, chunks, owner="alice")
    fresh = store.add_corpus("fresh", docs, chunks, owner="bob")
    assert store.expire_private_corpora(3600) == []
    time.sleep(0.05)
    store.touch_corpus(fresh)
    assert store.expire_private_corpora(0.03) == [old]
    assert {c.id for c in store.list_corpora("alice")} == {shared}
    store.delete_corpus(fresh)
    store.delete_corpus(fresh)  # deleting twice is harmless
    with pytest.raises(DemoError, match="does not exist"):
        store.get_corpus(fresh)
    assert store.get_corpus(shared).n_chunks == 4  # shared corpora never expire


def test_touch_updates_last_use_and_survives_reopen(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        cid = store.add_corpus("c", *make_docs(1), owner="o")
        created = store.get_corpus(cid).last_used
        for _ in range(3):  # later touches within TOUCH_WRITE_S stay in memory until a write or close
            time.sleep(0.01)
            store.touch_corpus(cid)
        touched = store.get_corpus(cid).last_used
        assert touched > created
    with Store(path) as store:
        assert store.get_corpus(cid).last_used == pytest.approx(touched)


def test_bad_input_is_a_demo_error_and_stores_nothing(store):
    docs, chunks = make_docs(2)
    with pytest.raises(DemoError, match="chunk lists"):
        store.add_corpus("x", docs, chunks[:1])
    with pytest.raises(DemoError, match="name"):
        store.add_corpus("  ", docs, chunks)
    assert store.list_corpora(None) == []


def test_failure_mid_ingest_rolls_back_the_whole_corpus(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        keep = store.add_corpus("keep", *make_docs(3))
        docs, chunks = make_docs(1200)  # three insert batches
        docs[1100].metadata["bad"] = {1, 2}  # not JSON: fails in the third batch, after two were written
        with pytest.raises(DemoError, match="doc/1100"):
            store.add_corpus("big", docs, chunks)
        assert [c.name for c in store.list_corpora(None)] == ["keep"]

        more, more_chunks = make_docs(700, prefix="more")
        more_chunks[650][0] = "not a chunk"  # type: ignore[call-overload]
        with pytest.raises(DemoError, match="not a Chunk"):
            store.add_documents(keep, more, more_chunks)
        info = store.get_corpus(keep)
        assert (info.n_documents, info.revision) == (3, 0)
    assert table_counts(path) == {"corpora": 1, "documents": 3, "chunks": 6, "embeddings": 0}


def test_persistence_and_migrations_across_reopen(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        cid = store.add_corpus("c", *make_docs(4), owner="o")
    with Store(path) as store:  # reopening migrates nothing and loses nothing
        assert store.schema_version() == SCHEMA_VERSION
        info = store.get_corpus(cid)
        assert (info.name, info.owner, info.n_documents) == ("c", "o", 4)
        assert store.file_size() >= path.stat().st_size > 0
        second = store.add_corpus("d", *make_docs(1))
        assert second > cid
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, 0)", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(DemoError, match="newer"):
        Store(path)


def test_embeddings_are_cached_by_content(store, minilm):
    docs, chunks = make_docs(5)
    cid = store.add_corpus("a", docs, chunks)
    calls = []
    first = embed_corpus(store, cid, minilm, progress=lambda d, t: calls.append((d, t)))
    assert first.embedded_now == 10 and first.vectors.shape == (10, minilm.dim)
    assert first.vectors.dtype == np.float32
    assert calls[-1] == (10, 10)
    np.testing.assert_array_equal(first.chunk_ids, store.chunk_table(cid).chunk_ids)
    direct = minilm.encode(store.chunk_table(cid).texts)
    np.testing.assert_allclose(first.vectors, direct, atol=1e-5)

    again = embed_corpus(store, cid, minilm)
    assert again.embedded_now == 0
    np.testing.assert_array_equal(again.vectors, first.vectors)

    # Re-ingesting the same text under another name embeds nothing new.
    other = store.add_corpus("a copy", *make_docs(5))
    assert embed_corpus(store, other, minilm).embedded_now == 0
    # New text embeds only what is new.
    store.add_documents(other, *make_docs(1, prefix="fresh"))
    assert embed_corpus(store, other, minilm).embedded_now == 2


def test_contextual_vectors_are_keyed_by_their_document(store, minilm, minilm_contextual):
    shared = "the same sentence appears in both documents"
    docs = [Document("a", "A", "x"), Document("b", "B", "y")]
    chunks = [[Chunk(0, "first document opening about rivers", 0, 10, 5), Chunk(1, shared, 11, 20, 7)],
              [Chunk(0, "second document opening about mountains", 0, 10, 5), Chunk(1, shared, 11, 20, 7)]]
    cid = store.add_corpus("ctx", docs, chunks)
    ctx = embed_corpus(store, cid, minilm_contextual)
    assert ctx.embedded_now == 4
    assert not np.allclose(ctx.vectors[1], ctx.vectors[3])  # same text, different context
    std = embed_corpus(store, cid, minilm)
    assert std.embedded_now == 3  # standard: the shared text is embedded once
    np.testing.assert_array_equal(std.vectors[1], std.vectors[3])
    assert embed_corpus(store, cid, minilm_contextual).embedded_now == 0


class FailingEncoder:
    """The real stand-in, except that encode() raises after `ok_calls` calls (an injected failure)."""

    def __init__(self, encoder, ok_calls: int) -> None:
        self._encoder, self.ok_calls, self.calls = encoder, ok_calls, 0

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode(self, texts, progress=None, stats=None):
        self.calls += 1
        if self.calls > self.ok_calls:
            raise RuntimeError("encoder crashed")
        return self._encoder.encode(texts, progress=progress, stats=stats)


def test_failed_or_cancelled_embedding_stores_nothing(tmp_path, minilm):
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        cid = store.add_corpus("c", *make_docs(80))  # 160 chunks: three encode calls
        with pytest.raises(RuntimeError, match="crashed"):
            embed_corpus(store, cid, FailingEncoder(minilm, ok_calls=2))
        assert table_counts_live(store) == 0

        cancel = threading.Event()
        with pytest.raises(Cancelled):
            embed_corpus(store, cid, minilm, progress=lambda done, total: cancel.set(), cancel=cancel)
        assert table_counts_live(store) == 0
        assert embed_corpus(store, cid, minilm).embedded_now == 160


def table_counts_live(store: Store) -> int:
    return store._all("SELECT count(*) FROM embeddings")[0][0]


CHILD = textwrap.dedent("""
    import sys
    from pplx_demo.store import Store
    sys.path.insert(0, {tests!r})
    from test_store import make_docs
    store = Store({path!r})
    store.add_corpus("before", *make_docs(10))
    docs, chunks = make_docs(60000, prefix="big")
    print("writing", flush=True)
    store.add_corpus("big", docs, chunks)
    print("committed", flush=True)
""")


def test_database_survives_a_process_killed_mid_write(tmp_path):
    path = tmp_path / "s.duckdb"
    code = CHILD.format(path=str(path), tests=str(ROOT / "tests"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "writing"
        time.sleep(0.5)  # well inside the 60,000-document transaction (~3 s here)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    rest = child.stdout.read()
    assert "committed" not in rest, "the write finished before the kill: make the corpus bigger"
    with Store(path) as store:
        names = [c.name for c in store.list_corpora(None)]
        assert names == ["before"]
        assert store.get_corpus(store.find_corpus("before").id).n_chunks == 20
        store.add_corpus("after", *make_docs(2))  # writable again
    assert table_counts(path)["documents"] == 12


def test_reads_proceed_while_a_writer_holds_a_transaction(store):
    cid = store.add_corpus("base", *make_docs(20))
    errors, reads = [], []
    done = threading.Event()

    def writer():
        try:
            for i in range(3):
                store.add_corpus(f"bulk {i}", *make_docs(3000, prefix=f"bulk{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader():
        try:
            while not done.is_set():
                assert len(store.chunk_table(cid)) == 40
                assert store.fetch_chunks([int(store.chunk_table(cid).chunk_ids[0])])[0].title == "Doc 0"
                store.touch_corpus(cid)
                reads.append(1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(reads) > 2
    assert [c.n_documents for c in store.list_corpora(None)] == [20, 3000, 3000, 3000]


def test_truncated_chunks_are_counted_for_the_caller(tmp_path, minilm):
    long_text = "lighthouse " * 400  # ~400 tokens, the stand-in reads 256
    docs = [Document(uri="a.txt", title="a", text=long_text), Document(uri="b.txt", title="b", text="short text")]
    chunks = [[Chunk(0, long_text, 0, len(long_text), 400)], [Chunk(0, "short text", 0, 10, 2)]]
    with Store(tmp_path / "t.duckdb") as store:
        cid = store.add_corpus("t", docs, chunks)
        first = embed_corpus(store, cid, minilm)
        assert (first.embedded_now, first.truncated_now) == (2, 1)
        assert embed_corpus(store, cid, minilm).truncated_now == 0  # a cache hit embeds (and cuts) nothing


# ---------------------------------------------------------------------------------------------
# persistence only: the store lists what is missing, stores vectors and reads them back


def test_the_store_never_imports_a_model():
    import ast
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parent.parent.joinpath("pplx_demo", "store").glob("*.py"))
    assert len(files) > 1  # the package's modules, each checked
    for path in files:
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
            {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and (m.startswith("pplx_demo.models") or m in ("torch", "transformers")) for m in imported), path


def test_missing_put_and_read_back_vectors(store):
    docs, chunks = make_docs(3)
    cid = store.add_corpus("plain", docs, chunks)
    missing = store.missing_embeddings(cid, "key", "standard", 4)
    texts = [t for _, t in missing.texts]
    assert len(texts) == 6 and missing.n_inputs == 6 and missing.snapshot.n_chunks == 6
    with pytest.raises(DemoError, match="without a vector"):
        store.embedding_matrix(cid, "key", "standard", 4)
    rows = [(h, "", np.full(4, i, np.float32)) for i, (h, _) in enumerate(missing.texts)]
    with pytest.raises(DemoError, match="NaN"):
        store.put_embeddings("key", "standard", 4, rows[:1] + [(rows[1][0], "", np.full(4, np.nan, np.float32))])
    with pytest.raises(DemoError, match="shape"):
        store.put_embeddings("key", "standard", 4, [(rows[0][0], "", np.zeros(3, np.float32))])
    assert store.missing_embeddings(cid, "key", "standard", 4).n_inputs == 6  # nothing was stored
    assert store.put_embeddings("key", "standard", 4, rows) == 6
    assert not store.missing_embeddings(cid, "key", "standard", 4)
    matrix = store.embedding_matrix(cid, "key", "standard", 4)
    by_hash = {h: v for h, _, v in rows}
    table = store.chunk_table(cid)
    np.testing.assert_array_equal(matrix.vectors, np.stack([by_hash[content_hash(t)] for t in table.texts]))
    assert matrix.cache_key == "key" and matrix.embedded_now == 0
    # another cache key (model, runtime, dtype) never sees these vectors
    assert store.missing_embeddings(cid, "other key", "standard", 4).n_inputs == 6


def test_contextual_missing_lists_whole_documents(store):
    docs, chunks = make_docs(2)
    cid = store.add_corpus("ctx", docs, chunks)
    missing = store.missing_embeddings(cid, "key", "contextual", 4)
    assert [len(d) for d in missing.documents] == [2, 2] and not missing.texts
    first = missing.documents[0]
    store.put_embeddings("key", "contextual", 4, [(h, c, np.ones(4, np.float32)) for h, c, _ in first[:1]])
    again = store.missing_embeddings(cid, "key", "contextual", 4)
    assert len(again.documents) == 2  # a document with one missing chunk is embedded whole


def test_evaluation_corpora_are_found_by_their_source(store):
    docs, chunks = make_docs(1)
    store.add_corpus("[eval] looks like eval but is an upload", docs, chunks)
    store.add_corpus("dataset", *make_docs(1, prefix="e"), source="evaluation")
    assert [c.name for c in store.list_corpora(None)] == ["[eval] looks like eval but is an upload"]
    assert [c.name for c in store.list_corpora(None, sources=("evaluation",))] == ["dataset"]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_database_file_is_one_clear_error_and_left_alone(tmp_path, damage):
    path = tmp_path / "damaged.duckdb"
    with Store(path) as store:
        store.add_corpus("c", *make_docs(2))
    data = path.read_bytes()
    broken = data[: len(data) // 3] if damage == "truncate" else b"not a database " * 200
    path.write_bytes(broken)
    with pytest.raises(DemoError) as err:
        Store(path)
    message = str(err.value)
    assert "\n" not in message and "damaged" in message and "Nothing was changed" in message
    assert err.value.setting == "PPLX_DEMO_DB" and err.value.cli_flag == "--db"
    assert path.read_bytes() == broken  # nothing overwritten
