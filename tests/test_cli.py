"""The command line end to end on a real DuckDB file: ingest, crawl, sample, corpora, embed, search."""

from __future__ import annotations

import functools
import json
import re
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
    for command in ("ingest", "crawl", "sample", "corpora", "delete", "embed", "search"):
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


def test_sample_is_the_apps_starter_and_full_is_another_corpus(capsys, db):
    from pplx_demo.models.registry import default_chunking
    from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME, starter_documents

    payload = run_json(capsys, "--db", db, "sample")
    starter = starter_documents()
    assert payload["corpus"] == SAMPLE_CORPUS_NAME and payload["documents_added"] == len(starter)
    assert payload["languages"] == ["de", "en", "es"]
    tokens, overlap = default_chunking("minilm-l6", "standard")  # what the studio chunks the sample with
    assert (payload["chunking"]["chunk_tokens"], payload["chunking"]["overlap_tokens"]) == (tokens, overlap)
    again = run_json(capsys, "--db", db, "sample")
    assert again["already_present"] and again["documents_added"] == 0 and again["corpus_id"] == payload["corpus_id"]
    # The shared sample takes nothing but the starter: no appending, no other chunking or languages.
    for extra in (["--append"], ["--chunk-tokens", "100"], ["--languages", "de"]):
        code, _, err = run(capsys, "--db", db, "sample", *extra)
        assert code == 1 and ("--full" in err or "--corpus" in err), err
    code, _, err = run(capsys, "--db", db, "ingest", __file__, "--corpus", SAMPLE_CORPUS_NAME, "--append")
    assert code == 1 and "starter sample" in err
    full = run_json(capsys, "--db", db, "sample", "--full", "--languages", "en,de", "--chunk-tokens", "200",
                    "--overlap-tokens", "0")
    assert full["corpus"] == "XQuAD full en,de (CC BY-SA 4.0)" and full["documents_added"] == 480
    listing = run_json(capsys, "--db", db, "corpora")
    assert [(c["name"], c["documents"]) for c in listing["corpora"]] == [
        (SAMPLE_CORPUS_NAME, len(starter)), ("XQuAD full en,de (CC BY-SA 4.0)", 480)]
    assert listing["corpora"][1]["languages"] == ["de", "en"] and listing["corpora"][1]["source"] == "sample"


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
    assert labels == ["float32", "int8 calibrated", "binary"]  # the canonical names, as everywhere
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


# ---------------------------------------------------------------- chunking that fits the model


def test_chunks_longer_than_the_model_reads_are_refused_before_anything_is_stored(capsys, db, files):
    code, out, err = run(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "longc",
                         "--chunk-tokens", "5000")
    assert code == 1 and out == ""
    assert "5000" in err and "256" in err and "at most 254 tokens" in err  # MiniLM: 256 minus [CLS]/[SEP]
    assert run_json(capsys, "--db", db, "corpora")["corpora"] == []


def test_embedding_that_cuts_chunks_prints_a_warning(capsys, db):
    from pplx_demo.documents import Chunk, Document
    from pplx_demo.store import Store

    long_text = " ".join(f"word{i}" for i in range(600))  # chunked for a long-context model, say
    with Store(db) as store:
        store.add_corpus("long", [Document(uri="mem://long", title="Long", text=long_text)],
                         [[Chunk(0, long_text, 0, len(long_text), 1200)]],
                         chunking={"model_key": "pplx-embed-v1-0.6b", "chunk_tokens": 2048, "overlap_tokens": 0})
    payload = run_json(capsys, "--db", db, "embed", "--corpus", "long")
    assert payload["truncated_now"] == 1
    [warning] = payload["warnings"]
    assert "1 of 1 chunks" in warning and "--chunk-tokens 254" in warning
    code, out, _ = run(capsys, "--db", db, "search", "word7", "--corpus", "long", "--k", "1")
    assert code == 0 and "WARNING" not in out  # the vectors were cached: nothing cut this time
    run(capsys, "--db", db, "delete", "--corpus", "long")
    with Store(db) as store:
        store.add_corpus("long", [Document(uri="mem://long", title="Long", text=long_text)],
                         [[Chunk(0, long_text, 0, len(long_text), 1200)]])
    code, out, _ = run(capsys, "--db", db, "search", "word7", "--corpus", "long", "--k", "1")
    assert code == 0 and out.splitlines()[-1].startswith("WARNING: 1 of 1 chunks embedded now were longer")


def test_an_omitted_overlap_follows_the_chunk_size_and_says_so(capsys, db, files):
    payload = run_json(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "small",
                       "--chunk-tokens", "16")
    assert payload["chunking"]["chunk_tokens"] == 16 and payload["chunking"]["overlap_tokens"] == 4
    assert any("Overlap set to 4 tokens" in note for note in payload["notes"])
    code, out, _ = run(capsys, "--db", db, "ingest", str(files / "tides.md"), "--corpus", "small2",
                       "--chunk-tokens", "16")
    assert code == 0 and "overlap 4" in out and "Overlap set to 4 tokens" in out
    code, _, err = run(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "bad",
                       "--chunk-tokens", "8", "--overlap-tokens", "8")
    assert code == 1 and "between 0 and 7" in err


# ---------------------------------------------------------------- names, --append and delete


def test_a_taken_name_is_refused_before_the_crawl_with_an_actionable_hint(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "harbour")
    # Nothing listens on port 9: the name check must answer before any fetch is tried.
    code, _, err = run(capsys, "--db", db, "crawl", "http://127.0.0.1:9/", "--corpus", "harbour", "--allow-private")
    assert code == 1 and "already exists" in err and "--append" in err
    assert "python -m pplx_demo delete --corpus harbour" in err
    # ...and before parsing: an unreadable file gives the name error, not "nothing to ingest".
    code, _, err = run(capsys, "--db", db, "ingest", str(files / "junk.txt"), "--corpus", "harbour")
    assert code == 1 and "already exists" in err
    deleted = run_json(capsys, "--db", db, "delete", "--corpus", "harbour")
    assert deleted["deleted"] and deleted["documents"] == 1
    assert run_json(capsys, "--db", db, "corpora")["corpora"] == []
    assert run_json(capsys, "--db", db, "ingest", str(files / "tides.md"), "--corpus", "harbour")["corpus_documents"] == 1
    code, _, err = run(capsys, "--db", db, "delete", "--corpus", "nope")
    assert code == 1 and "no shared corpus named 'nope'" in err


def test_append_keeps_the_corpus_chunking(capsys, db, files):
    first = run_json(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "c",
                     "--chunk-tokens", "64", "--overlap-tokens", "8")
    code, _, err = run(capsys, "--db", db, "ingest", str(files / "tides.md"), "--corpus", "c", "--append",
                       "--chunk-tokens", "32")
    assert code == 1 and "64-token chunks with overlap 8" in err and "mix" in err
    assert run_json(capsys, "--db", db, "corpora")["corpora"][0]["documents"] == 1  # nothing added
    appended = run_json(capsys, "--db", db, "ingest", str(files / "tides.md"), "--corpus", "c", "--append")
    assert appended["chunking"] == first["chunking"] and appended["corpus_documents"] == 2


def test_contextual_search_on_overlapping_chunks_notes_it(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "o", "--chunk-tokens", "16",
             "--overlap-tokens", "4")
    payload = run_json(capsys, "--db", db, "search", "mooring lines", "--corpus", "o", "--variant", "contextual",
                       "--k", "1", "--precision", "float32")
    assert payload["variant"] == "contextual"
    assert any("non-overlapping" in note for note in payload["notes"])
    standard = run_json(capsys, "--db", db, "search", "mooring lines", "--corpus", "o", "--k", "1",
                        "--precision", "float32")
    assert "notes" not in standard


# ---------------------------------------------------------------- the database file


def test_read_only_commands_never_create_a_database(capsys, tmp_path):
    missing = tmp_path / "nonexistent" / "dir" / "x.duckdb"
    for argv in (["corpora"], ["search", "q", "--corpus", "c"], ["embed", "--corpus", "c"],
                 ["delete", "--corpus", "c"]):
        code, _, err = run(capsys, "--db", str(missing), *argv)
        assert code == 1 and f"no database at {missing} (ingest something first" in err
    assert not (tmp_path / "nonexistent").exists()


def test_a_database_held_by_another_process_gets_a_clear_error(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files / "cranes.txt"), "--corpus", "c")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', "
                               "flush=True); time.sleep(60)", db], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, _, err = run(capsys, "--db", db, "corpora")
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and f"in use by process {holder.pid}" in err
    assert "stop the studio" in err and "(--db)" in err


# ---------------------------------------------------------------- search options


def test_search_precisions_match_eval_and_sizes_are_checked(capsys, db, files):
    run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "harbour")
    payload = run_json(capsys, "--db", db, "search", "mooring", "--corpus", "harbour", "--k", "2",
                       "--precision", "binary,binary+rescore,binary+asymmetric", "--dim", "256")
    assert [(c["precision"], c["mode"], c["dim"]) for c in payload["columns"]] == [
        ("binary", "plain", 256), ("binary", "rescore", 256), ("binary", "asymmetric", 256)]
    for bad in ("999", "4"):
        code, _, err = run(capsys, "--db", db, "search", "q", "--corpus", "harbour", "--dim", bad)
        assert code == 1 and f"size {bad} " in err and "(--dim)" in err
        assert "384, 256, 128" in err and "from 8 to 384" in err
    code, out, _ = run(capsys, "--db", db, "search", "q", "--corpus", "harbour", "--precision", "float32",
                       "--k", "1")
    assert re.search(r"^float32 \(numpy exact\): .* 1\.5 KiB/vector", out, re.M)  # 384 float32 values, through human_bytes


def test_a_bad_number_says_what_is_wrong_in_plain_words(capsys, db):
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--db", db, "search", "q", "--corpus", "c", "--k", "abc"])
    err = capsys.readouterr().err
    assert excinfo.value.code == 2
    assert "argument --k: expected a whole number, got 'abc'" in err and "_positive_int" not in err


# ---------------------------------------------------------------- listing


def test_cli_corpora_record_languages_and_hide_eval_corpora(capsys, db, files):
    from pplx_demo.documents import Chunk, Document
    from pplx_demo.evaluate.runner import EVAL_PREFIX
    from pplx_demo.store import Store

    (files / "kraene.txt").write_text("Die Kräne heben die Container von den Schiffen und fahren auf Schienen "
                                      "entlang des Kais.")
    payload = run_json(capsys, "--db", db, "ingest", str(files), "--corpus", "harbour")
    assert payload["languages"] == ["de", "en"]
    with Store(db) as store:  # hidden by its recorded source, whatever its name
        store.add_corpus(EVAL_PREFIX + "xquad-en", [Document(uri="mem://e", title="E", text="eval text")],
                         [[Chunk(0, "eval text", 0, 9, 2)]], source="evaluation")
    listing = run_json(capsys, "--db", db, "corpora")
    assert [c["name"] for c in listing["corpora"]] == ["harbour"] and listing["hidden_eval_corpora"] == 1
    assert listing["corpora"][0]["languages"] == ["de", "en"]
    code, out, _ = run(capsys, "--db", db, "corpora")
    assert "xquad-en" not in out and "1 evaluation corpora hidden (--all shows them)" in out
    every = run_json(capsys, "--db", db, "corpora", "--all")
    assert [c["name"] for c in every["corpora"]] == ["harbour", EVAL_PREFIX + "xquad-en"]
