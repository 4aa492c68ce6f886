"""Corpus export: Parquet files read back equal the store; the same corpus upserted into Qdrant Edge is searchable."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from pplx_demo.embedding import embed_corpus
from pplx_demo.documents import Chunk, Document  # noqa: E402
from pplx_demo.errors import DemoError  # noqa: E402
from pplx_demo.export import export_corpus, export_to_qdrant  # noqa: E402
from pplx_demo.index import IndexConfig  # noqa: E402
from pplx_demo.quantize import calibrate_int8, int8_calibrated, int8_tanh  # noqa: E402
from pplx_demo.store import Store  # noqa: E402

FACTS = [
    ("Paris", "Paris is the capital and largest city of France, on the Seine.",
     "Its museums include the Louvre, home of the Mona Lisa."),
    ("Nile", "The Nile is a major river flowing north through Egypt.", "It empties into the Mediterranean Sea."),
    ("Coffee", "Coffee is brewed from roasted coffee beans.", "The beans are the seeds of Coffea plants."),
    ("Penguins", "Penguins are flightless seabirds.", "They live almost only in the Southern Hemisphere."),
    ("Chess", "Chess is a board game for two players.", "It is played on a checkered board of 64 squares."),
]


def corpus():
    docs, chunks = [], []
    for i, (title, *parts) in enumerate(FACTS):
        text = " ".join(parts)
        meta = {"lang": "en", "source": "facts", "rank": i}
        docs.append(Document(uri=f"https://example.org/{title.lower()}", title=title, text=text, metadata=meta,
                             external_id=None if i == 0 else f"fact-{i}"))
        cks, pos = [], 0
        for j, p in enumerate(parts):
            cks.append(Chunk(order=j, text=p, char_start=pos, char_end=pos + len(p), token_count=len(p.split())))
            pos += len(p) + 1
        chunks.append(cks)
    return docs, chunks


@pytest.fixture
def store_corpus(tmp_path):
    store = Store(tmp_path / "studio.duckdb")
    cid = store.add_corpus("facts", *corpus())
    yield store, cid
    store.close()


def test_export_reads_back_equal_to_the_store(store_corpus, minilm, tmp_path):
    store, cid = store_corpus
    calls = []
    result = export_corpus(store, cid, minilm, tmp_path / "out", progress=lambda d, t: calls.append((d, t)))
    table, matrix = store.chunk_table(cid), embed_corpus(store, cid, minilm)
    n, dim = matrix.vectors.shape
    assert (result.n_chunks, result.n_documents, result.dim) == (n, len(FACTS), 384) and calls[-1] == (n, n)
    assert result.embedded_now == n  # the export embedded the corpus (nothing was cached yet)

    chunks = pq.read_table(result.files["chunks"]).to_pydict()
    assert chunks["chunk_id"] == table.chunk_ids.tolist() and chunks["text"] == table.texts
    assert chunks["document_id"] == table.document_ids.tolist() and chunks["order"] == table.orders.tolist()
    assert chunks["char_start"] == table.char_starts.tolist() and chunks["char_end"] == table.char_ends.tolist()
    assert chunks["token_count"] == table.token_counts.tolist()

    docs = pq.read_table(result.files["documents"]).to_pydict()
    assert docs["title"] == [t for t, *_ in FACTS] and docs["uri"][0] == "https://example.org/paris"
    assert docs["external_id"] == [None] + [f"fact-{i}" for i in range(1, len(FACTS))]
    assert docs["lang"] == ["en"] * len(FACTS)
    assert json.loads(docs["metadata"][2]) == {"lang": "en", "source": "facts", "rank": 2}

    vectors = pq.read_table(result.files["vectors"])
    assert vectors.schema.field("float32").type == pa.list_(pa.float32(), dim)
    assert vectors.schema.field("int8").type == pa.list_(pa.int8(), dim)
    assert vectors.schema.field("binary").type == pa.binary((dim + 7) // 8)
    assert vectors.column("chunk_id").to_pylist() == matrix.chunk_ids.tolist()
    floats = np.stack(vectors.column("float32").to_numpy(zero_copy_only=False))
    assert floats.dtype == np.float32 and floats.tobytes() == matrix.vectors.tobytes()  # bit-exact
    codes = np.stack(vectors.column("int8").to_numpy(zero_copy_only=False))
    cal = calibrate_int8(matrix.vectors)  # the stand-in's native scheme
    np.testing.assert_array_equal(codes, int8_calibrated(matrix.vectors, cal))
    bits = np.frombuffer(b"".join(vectors.column("binary").to_pylist()), np.uint8).reshape(n, -1)
    np.testing.assert_array_equal(bits, np.packbits(matrix.vectors >= 0, axis=1))

    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["model_key"] == "minilm-l6" and "not pplx-embed" in meta["model_display_name"]
    assert (meta["variant"], meta["dim"], meta["int8_scheme"]) == ("standard", 384, "calibrated")
    assert meta["binary_bit_order"].startswith("MSB-first")
    np.testing.assert_array_equal(np.float32(meta["int8_calibration_low"]), cal.low)
    np.testing.assert_array_equal(np.float32(meta["int8_calibration_high"]), cal.high)
    kv = pq.read_table(result.files["metadata_parquet"]).to_pydict()
    assert {k: json.loads(v) for k, v in zip(kv["key"], kv["value"])} == meta
    assert json.loads(vectors.schema.metadata[b"pplx_demo"]) == meta


def test_export_files_read_as_they_are_in_pandas_and_duckdb(store_corpus, minilm, tmp_path):
    import duckdb
    import pandas as pd

    store, cid = store_corpus
    out = export_corpus(store, cid, minilm, tmp_path / "out").out_dir
    frame = pd.read_parquet(out / "vectors.parquet")
    assert len(frame) == 2 * len(FACTS) and len(frame["float32"][0]) == 384
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT d.title, c."order", len(v.float32), octet_length(v.binary)
        FROM '{out}/chunks.parquet' c JOIN '{out}/documents.parquet' d ON d.id = c.document_id
        JOIN '{out}/vectors.parquet' v USING (chunk_id) ORDER BY c.chunk_id LIMIT 2""").fetchall()
    con.close()
    assert rows == [("Paris", 0, 384, 48), ("Paris", 1, 384, 48)]


def test_export_tanh_codes_from_an_embedding_matrix(store_corpus, minilm, tmp_path):
    store, cid = store_corpus
    matrix = embed_corpus(store, cid, minilm)
    result = export_corpus(store, cid, matrix, tmp_path / "out", int8_scheme="tanh")
    assert result.model.int8_scheme == "tanh" and result.embedded_now == 0
    codes = np.stack(pq.read_table(result.files["vectors"]).column("int8").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(codes, int8_tanh(matrix.vectors))
    assert "int8_calibration_low" not in result.metadata


def test_export_refuses_a_folder_that_holds_other_files(store_corpus, minilm, tmp_path):
    store, cid = store_corpus
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.docx").write_bytes(b"x")
    with pytest.raises(DemoError, match="other files"):
        export_corpus(store, cid, minilm, tmp_path / "busy")
    export_corpus(store, cid, minilm, tmp_path / "out")
    with pytest.raises(DemoError, match="allow overwriting"):
        export_corpus(store, cid, minilm, tmp_path / "out")
    assert export_corpus(store, cid, minilm, tmp_path / "out", overwrite=True).n_chunks == 2 * len(FACTS)


def test_export_to_qdrant_edge_then_search_returns_chunk_payloads(store_corpus, minilm, tmp_path):
    qdrant_edge = pytest.importorskip("qdrant_edge")
    store, cid = store_corpus
    path = tmp_path / "edge-shard"
    calls = []
    result = export_to_qdrant(store, cid, minilm, f"edge:{path}", batch=3, progress=lambda d, t: calls.append(d))
    n = 2 * len(FACTS)
    assert (result.n_points, result.vector_names, calls) == (n, ["full"], [3, 6, 9, 10])
    assert result.engine.startswith("Qdrant Edge") and result.config_label == "binary + rescore x4"

    shard = qdrant_edge.EdgeShard.load(str(path))  # a plain Qdrant Edge shard, opened without our code
    try:
        assert shard.count(qdrant_edge.CountRequest()) == n
        query = minilm.encode(["Which city is the capital of France?"])[0]
        hits = shard.query(qdrant_edge.QueryRequest(
            limit=3, query=qdrant_edge.Query.Nearest(query.tolist(), using="full"), with_payload=True,
            params=qdrant_edge.SearchParams(quantization=qdrant_edge.QuantizationSearchParams(
                rescore=True, oversampling=4.0))))
    finally:
        shard.close()
    top = hits[0].payload
    table = store.chunk_table(cid)
    assert top["title"] == "Paris" and top["text"] == FACTS[0][1]
    assert hits[0].id == top["chunk_id"] == int(table.chunk_ids[0])
    assert top["uri"] == "https://example.org/paris" and top["order"] == 0 and top["external_id"] is None
    assert set(top) == {"chunk_id", "document_id", "order", "text", "title", "uri", "external_id", "char_start",
                        "char_end", "token_count"}

    # exporting again updates the same shard in place (same ids, no duplicates)
    export_to_qdrant(store, cid, minilm, f"edge:{path}", config=IndexConfig("binary", "rescore"))
    shard = qdrant_edge.EdgeShard.load(str(path))
    assert shard.count(qdrant_edge.CountRequest()) == n
    shard.close()


def test_export_to_qdrant_refuses_local_mode(store_corpus, minilm):
    store, cid = store_corpus
    with pytest.raises(DemoError, match="simulation"):
        export_to_qdrant(store, cid, minilm, ":memory:")
