"""The command line end to end on a real DuckDB file: ingest, crawl, sample, corpora, embed, search."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pplx_demo import cli
from pplx_demo.config import ROOT


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture()
def db(tmp_path):
    return str(tmp_path / "studio.duckdb")


@pytest.fixture()
def files(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cranes.txt").write_text("Container cranes lift boxes off ships.\n\nThey run on rails along the quay.")
    (folder / "tides.md").write_text("# Tides\n\nHigh tide comes twice a day. Ships wait for it at the harbour mouth.")
    (folder / "bollards.csv").write_text("id,title,text\nb1,Bollards,Bollards hold the mooring lines of ships.\n")
    (folder / "junk.txt").write_bytes(b"\x00\x01\x02 binary junk")
    return folder


def test_help_lists_the_subcommands():
    result = subprocess.run([sys.executable, "-m", "pplx_demo", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    for command in ("ingest", "crawl", "sample", "corpora", "embed", "search"):
        assert command in result.stdout


def test_ingest_reports_rejections_and_refuses_a_duplicate_name(capsys, db, files):
    payload = run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "harbour")
    assert payload["corpus"] == "harbour" and payload["documents_added"] == 3
    assert payload["chunks_added"] == 3 and payload["chunking"]["model_key"] == "minilm-l6"
    assert [r["name"] for r in payload["rejected"]] == ["docs/junk.txt"]
    code, out, err = run(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "harbour")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "already exists" in err
    appended = run_json(capsys, "--db", db, "ingest", str(files / "tides.md"), "--corpus", "harbour", "--append")
    assert appended["corpus_documents"] == 4


def test_ingest_with_nothing_readable_fails_with_the_reason(capsys, db, files):
    code, _, err = run(capsys, "--db", db, "ingest", str(files / "junk.txt"), str(files / "missing.pdf"),
                       "--corpus", "x")
    assert code == 1 and "nothing to ingest" in err and "junk.txt" in err


def test_text_output_and_options_after_the_command(capsys, db, files):
    code, out, _ = run(capsys, "ingest", str(files / "cranes.txt"), "--corpus", "one", "--db", db,
                       "--chunk-tokens", "8", "--overlap-tokens", "2")
    assert code == 0
    assert "Corpus 'one'" in out and "8 tokens, overlap 2" in out
    code, out, _ = run(capsys, "--db", db, "corpora")
    assert code == 0 and "one" in out.splitlines()[2]


def test_sample_corpus_in_two_languages(capsys, db):
    payload = run_json(capsys, "--db", db, "sample", "--languages", "en,de", "--chunk-tokens", "512",
                       "--overlap-tokens", "0")
    assert payload["corpus"] == "XQuAD sample (CC BY-SA 4.0)" and payload["documents_added"] == 480
    listing = run_json(capsys, "--db", db, "corpora")
    [corpus] = listing["corpora"]
    assert corpus["languages"] == ["de", "en"] and corpus["source"] == "sample"


def test_embed_uses_the_cache_the_second_time(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "harbour")
    first = run_json(capsys, "--db", db, "embed", "--corpus", "harbour", "--model", "minilm-l6")
    assert first["chunks"] == 3 and first["embedded_now"] == 3 and first["dim"] == 384
    assert "not pplx-embed" in first["model"]
    second = run_json(capsys, "--db", db, "embed", "--corpus", "harbour")
    assert second["embedded_now"] == 0 and second["cached"] == 3


def test_search_side_by_side(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "harbour")
    payload = run_json(capsys, "--db", db, "search", "what holds the mooring lines?", "--corpus", "harbour",
                       "--precision", "float32,int8,binary", "--k", "2")
    labels = [c["label"] for c in payload["columns"]]
    assert labels[0] == "float32" and labels[1].startswith("int8") and labels[2] == "binary"
    for column in payload["columns"]:
        assert len(column["hits"]) == 2
    top = payload["columns"][0]["hits"][0]
    assert top["title"] == "Bollards" and top["baseline_rank"] == 1
    code, out, _ = run(capsys, "--db", db, "search", "tide", "--corpus", "harbour", "--k", "3", "--rescore", "4")
    assert code == 0 and "binary + rescore" in out and "overlap@3" in out


def test_search_errors_are_one_line(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "c")
    code, _, err = run(capsys, "--db", db, "search", "q", "--corpus", "c", "--precision", "float16")
    assert code == 1 and "float16" in err and err.count("\n") == 1
    code, _, err = run(capsys, "--db", db, "search", "q", "--corpus", "nope")
    assert code == 1 and "no shared corpus named 'nope'" in err
    code, out, err = run(capsys, "--db", db, "--json", "embed", "--corpus", "c", "--model", "no-such-model")
    assert code == 1 and json.loads(out)["type"] == "ModelUnavailable" and "no-such-model" in err


@pytest.fixture()
def local_site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text('<html><head><title>Port</title></head><body><p>Welcome to the port '
                                     'of examples.</p><a href="ships.html">Ships</a></body></html>')
    (root / "ships.html").write_text("<html><head><title>Ships</title></head><body><p>Ships dock at the "
                                     "quay and unload containers.</p></body></html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_crawl_needs_the_private_opt_in_for_a_local_site(capsys, db, local_site):
    code, _, err = run(capsys, "--db", db, "crawl", local_site, "--corpus", "port", "--max-pages", "5")
    assert code == 1 and "loopback" in err and "--allow-private" in err
    payload = run_json(capsys, "--db", db, "crawl", local_site, "--corpus", "port", "--max-pages", "5",
                       "--max-depth", "1", "--allow-private", "--delay", "0")
    assert payload["documents_added"] == 2 and len(payload["fetched"]) == 2


def test_commands_registry_is_the_extension_point(monkeypatch, capsys):
    def add_hello_parser(sub, common):
        p = sub.add_parser("hello", parents=[common], help="say hello")
        p.set_defaults(handler=lambda args, ctx: cli.Output({"hello": "world"}, ["hello world"]))

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_hello_parser])
    assert cli.main(["hello", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"hello": "world"}
