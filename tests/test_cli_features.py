"""The command line's newer rooms end to end on a real DuckDB file and the real stand-in: hybrid and explained
search, both engines side by side, eval with intervals / hybrid / sweep, scale, export (Parquet and Qdrant Edge)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from test_eval_runner import DOCS, QUERIES, QRELS  # noqa: F401  (the tiny BEIR set)
from test_eval_runner import beir_dir  # noqa: F401  (fixture)

from pplx_demo import cli

pytestmark = pytest.mark.model


def run_json(capsys, *argv: str) -> dict:
    code = cli.main(["--no-progress", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def run_text(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def harbour(tmp_path, capsys):
    db = str(tmp_path / "s.duckdb")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cranes.txt").write_text("Container cranes lift boxes off ships. They run on rails along the quay.")
    (folder / "tides.md").write_text("# Tides\n\nHigh tide comes twice a day. Ships wait for it at the harbour "
                                     "mouth. The moon pulls the sea.")
    (folder / "bollards.csv").write_text("id,title,text\nb1,Bollards,Bollards hold the mooring lines of ships.\n")
    run_json(capsys, "--db", db, "ingest", str(folder), "--corpus", "harbour")
    return db


def test_search_hybrid_explained_on_both_engines(capsys, harbour):
    pytest.importorskip("qdrant_edge")
    payload = run_json(capsys, "--db", harbour, "search", "what holds the mooring lines?", "--corpus", "harbour",
                       "--precision", "float32", "--hybrid", "--explain", "--engine", "numpy,qdrant", "--k", "2")
    columns = [(c["configuration"], c["engine"].split(" ")[0]) for c in payload["columns"]]
    assert columns == [("float32", "numpy"), ("float32", "Qdrant"), ("hybrid: BM25 + float32 (RRF k=60)", "numpy"),
                       ("hybrid: BM25 + float32 (RRF k=60)", "Qdrant")]
    hybrid = payload["columns"][2]["hits"][0]
    assert hybrid["title"] == "Bollards" and "moor" in hybrid["matched_terms"]  # the BM25 stem of "mooring"
    assert hybrid["dense_rank"] == 1 and hybrid["bm25_rank"] == 1
    why = payload["columns"][0]["hits"][0]["why"]
    assert why["best_sentence"]["text"] == "Bollards hold the mooring lines of ships."
    assert payload["explain_ms"] > 0
    code, out, _ = run_text(capsys, "--db", harbour, "search", "tides", "--corpus", "harbour", "--explain",
                            "--precision", "float32", "--k", "1")
    assert code == 0 and "why it matched" in out and "»" in out


def test_eval_prints_intervals_hybrid_rows_and_a_sweep(capsys, tmp_path, beir_dir):  # noqa: F811
    db = str(tmp_path / "e.duckdb")
    code, out, _ = run_text(capsys, "--db", db, "eval", "--beir", str(beir_dir), "--precisions", "float32,binary",
                            "--hybrid")
    assert code == 0 and "[95% CI]" in out and "paired bootstrap over the 8 queries" in out
    assert "hybrid: BM25 + binary (RRF k=60)" in out
    row = next(line for line in out.splitlines() if line.startswith("binary "))
    assert "% [" in row  # e.g. "97.5% [90.1, 100.0]"
    sweep = run_json(capsys, "--db", db, "eval", "--beir", str(beir_dir), "--sweep", "--no-bm25")["sweeps"][0]
    configs = [p["configuration"] for p in sweep["points"]]
    for mult in (1, 2, 4, 8, 16):
        assert any(c.startswith(f"binary + rescore x{mult}") for c in configs)
    assert sweep["frontier"] and sweep["points"][0]["intervals"]
    assert sweep["recommended"] is None or sweep["recommended"]["configuration"] in configs


def test_scale_times_every_configuration_and_prices_it(capsys, harbour, tmp_path):
    payload = run_json(capsys, "--db", harbour, "scale", "--corpus", "harbour", "--sizes", "2000,4000",
                       "--repeats", "1", "--workdir", str(tmp_path / "scale"))
    assert {p["n_vectors"] for p in payload["points"]} == {2000, 4000}
    assert {p["config"] for p in payload["points"]} >= {"float32", "binary", "binary + rescore x4 (int8 calibrated)"}
    assert all(p["p50_ms"] > 0 for p in payload["points"]) and "synthetic" in payload["note"]
    assert {c["n_vectors"] for c in payload["costs"]} == {2000, 4000}
    assert not any((tmp_path / "scale").iterdir())  # the throwaway index is gone
    code, _, err = run_text(capsys, "--db", harbour, "scale", "--corpus", "harbour", "--sizes", "lots")
    assert code == 1 and "--sizes" in err


def test_export_parquet_and_qdrant_edge(capsys, harbour, tmp_path):
    out = run_json(capsys, "--db", harbour, "export", "--corpus", "harbour", "--to", str(tmp_path / "x"))
    assert out["chunks"] == 3 and out["dim"] == 384
    vectors = pq.read_table(out["files"]["vectors"])
    assert vectors.num_rows == 3
    pytest.importorskip("qdrant_edge")
    q = run_json(capsys, "--db", harbour, "export", "--corpus", "harbour", "--qdrant", f"edge:{tmp_path / 'shard'}")
    assert q["points"] == 3 and q["engine"].startswith("Qdrant Edge")
    code, _, err = run_text(capsys, "--db", harbour, "export", "--corpus", "harbour", "--qdrant", ":memory:")
    assert code == 1 and "simulation" in err


@pytest.mark.slow
def test_embed_on_a_local_ray_cluster_fills_the_same_cache(capsys, harbour):
    pytest.importorskip("ray")
    out = run_json(capsys, "--db", harbour, "embed", "--corpus", "harbour", "--engine", "ray", "--actors", "1")
    assert out["engine"] == "ray" and out["embedded_now"] == 3
    again = run_json(capsys, "--db", harbour, "embed", "--corpus", "harbour")  # the single-process path: all cached
    assert again["embedded_now"] == 0 and again["cached"] == 3
