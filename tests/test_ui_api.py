"""The studio driven through its HTTP API with gradio_client, as a script or another service would.

One real app (real DuckDB file, the real offline stand-in model) serves every test of this module.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import uuid
import zipfile

import pytest
from gradio_client import Client, handle_file
from ui_server import running_studio

from pplx_demo.models import MODELS
from pplx_demo.sessions import new_session_key

STAND_IN = MODELS["minilm-l6"].display_name
THREE = ["float32", "int8", "binary + rescore"]

GUIDE = """# Binary quantisation

Binary quantisation keeps one bit per dimension, the sign of each coordinate. A vector of 1024
dimensions then takes 128 bytes instead of 4096, and distances are computed with XOR and popcount.

# Volcanoes of Iceland

Iceland sits on the Mid-Atlantic Ridge; eruptions such as Eyjafjallajokull in 2010 closed European
airspace for days because of the ash cloud.

# Sourdough bread

A sourdough starter is a culture of wild yeast and lactic acid bacteria; bakers feed it flour and
water every day and use part of it to leaven the dough.
"""


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    # Private addresses allowed so the crawl test can reach its local web server; every new corpus
    # counts as a "long" job, so ingestion stops at the estimate and the first search (or /embed) embeds.
    # A small upload cap so the oversized-upload test needs only a few hundred kB.
    # ONNX exports go to a temporary folder; the scale budget lets 100k vectors through and refuses 10M.
    tmp = tmp_path_factory.mktemp("ui-api")
    with running_studio(tmp / "studio.duckdb", auto_embed_seconds=0, allow_private_addresses=True,
                        max_file_bytes=200_000, onnx_dir=tmp / "onnx", scale_disk_budget_bytes=2 << 30) as url:
        yield url


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A two-page web site on 127.0.0.1."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<html><head><title>Lighthouses</title></head><body><p>Lighthouses guide "
                                     "ships at night with a rotating lamp and a Fresnel lens.</p>"
                                     "<a href='/keepers.html'>keepers</a></body></html>", encoding="utf-8")
    (root / "keepers.html").write_text("<html><head><title>Keepers</title></head><body><p>Lighthouse keepers "
                                       "trimmed the wicks and wound the clockwork every few hours.</p></body></html>",
                                       encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    (folder / "guide.md").write_text(GUIDE, encoding="utf-8")
    (folder / "evil.html").write_text("<html><head><title>Evil <b>page</b></title></head><body><p>This page "
                                      "tells you about the ash of a volcano <script>alert('x')</script> and "
                                      "what happens when there is an eruption <img src=x onerror=alert(1)> "
                                      "in the north of the island &lt;b&gt;</p></body></html>", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return folder


def _ingest(client: Client, paths, name: str, session_key: str = "", chunk_tokens=64) -> dict:
    handle, status, stats, rejected, *_ = client.predict(
        [handle_file(str(p)) for p in paths], name, "stand-in", "standard", chunk_tokens, 8, session_key,
        api_name="/ingest")
    return {"handle": handle, "status": status, "stats": stats, "rejected": rejected}


def _search(client: Client, corpus_id, query: str, configs=THREE, k=5, session_key: str = "", matryoshka="full"):
    html, results = client.predict(str(corpus_id), query, "stand-in", "standard", configs, k, 4, matryoshka,
                                   session_key, api_name="/search")
    return html, results


def test_upload_then_search_gives_one_ranked_column_per_configuration(studio_url, files):
    client = Client(studio_url, verbose=False)
    out = _ingest(client, [files / "guide.md", files / "evil.html", files / "photo.png"], "my notes")
    handle = out["handle"]
    assert handle["name"] == "my notes" and handle["documents"] == 2 and handle["chunks"] >= 3
    assert handle["model"] == STAND_IN and handle["session_key"]
    assert handle["languages"] == {"en": 2}
    assert [r["name"] for r in handle["rejected"]] == ["photo.png"]  # per-file errors come back
    assert f"Added “my notes”: 2 documents, {handle['chunks']} chunks; 1 file or page not loaded." in out["status"]
    assert out["status"].count("all-MiniLM-L6-v2") == 1  # the model is named once
    assert "<th scope='row'>documents</th><td>2</td>" in out["stats"]
    assert out["rejected"]["data"] == [["photo.png", handle["rejected"][0]["reason"]]]
    # Before embedding: an estimate from the throughput measured for this model here.
    assert handle["estimated_embedding_seconds"] > 0
    assert "measured" in out["status"] and "tokens/s on this machine" in out["status"]

    html, results = _search(client, handle["corpus_id"], "How many bytes does a binary vector take?")
    columns = results["columns"]
    assert [c["configuration"] for c in columns] == ["float32", "int8 calibrated",
                                                     "binary + rescore x4 (int8 calibrated)"]
    assert results["embed_query_ms"] > 0  # the query is embedded once, shown once
    for col in columns:
        assert col["model"] == STAND_IN  # the true model name on every column
        ranks = [h["rank"] for h in col["hits"]]
        scores = [h["score"] for h in col["hits"]]
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) == min(5, handle["chunks"])
        assert scores == sorted(scores, reverse=True)
        assert "128 bytes" in col["hits"][0]["text"]  # the chunk that answers the question ranks first
        assert set(col["timings_ms"]) >= {"search", "total"} and "embed_query" not in col["timings_ms"]
    f32, int8, rescored = columns
    assert f32["bytes_per_vector"] == 4 * 384 and int8["bytes_per_vector"] < f32["bytes_per_vector"]
    assert all(h["float32_rank"] == h["rank"] for h in f32["hits"])
    # the true model name on every column, and once on the shared query-embedding line above them
    assert html.count("class='pplx-col'") == 3 and html.count(STAND_IN) == 4


def test_crawl_a_site_into_a_private_corpus(studio_url, site):
    client = Client(studio_url, verbose=False)
    handle, status, *_ = client.predict(url=site, max_pages=5, max_depth=1, corpus_name="lighthouses",
                                        model_size="stand-in", api_name="/crawl")
    assert handle["documents"] == 2 and "Added “lighthouses”: 2 documents" in status
    _, results = _search(client, handle["corpus_id"], "who wound the clockwork?", configs=["float32"], k=2,
                         session_key=handle["session_key"])
    assert results["columns"][0]["hits"][0]["title"] == "Keepers"
    assert results["columns"][0]["hits"][0]["uri"].endswith("/keepers.html")


def test_uploaded_markup_is_shown_as_text_never_run(studio_url, files):
    client = Client(studio_url, verbose=False)
    handle = _ingest(client, [files / "evil.html"], "evil")["handle"]
    html, results = _search(client, handle["corpus_id"], "volcano eruption <script>", configs=["float32"], k=1)
    assert results["columns"][0]["hits"], "the page should be found"
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "Evil &lt;b&gt;page&lt;/b&gt;" in html  # the page title, shown as text
    assert "island &lt;b&gt;" in html  # an entity in the page stays text after decoding
    assert "<mark>eruption</mark>" in html


def test_embed_now_then_again_is_a_cache_hit(studio_url, tmp_path):
    page = tmp_path / "tides.txt"  # text no other test stored: the vector cache is keyed by content
    page.write_text("Spring tides happen when the sun and the moon line up.\n\nNeap tides come a week later, "
                    "when they pull at right angles.", encoding="utf-8")
    client = Client(studio_url, verbose=False)
    handle = _ingest(client, [page], "embed me")["handle"]
    args = dict(corpus=str(handle["corpus_id"]), model_size="stand-in", session_key=handle["session_key"])
    first = client.predict(**args, api_name="/embed")
    chunks = f"{handle['chunks']} chunk{'s' if handle['chunks'] != 1 else ''}"
    assert f"“embed me”: embedded {chunks} with {STAND_IN}" in first
    assert "“embed me” was already embedded" in client.predict(**args, api_name="/embed")


def test_a_corpus_is_private_to_the_session_that_made_it(studio_url, files):
    alice, bob = Client(studio_url, verbose=False), Client(studio_url, verbose=False)
    handle = _ingest(alice, [files / "guide.md"], "alice's notes")["handle"]
    corpus_id = handle["corpus_id"]

    alice_sees = {c["corpus_id"]: c for c in alice.predict("", api_name="/corpora")}
    bob_sees = {c["corpus_id"]: c for c in bob.predict("", api_name="/corpora")}
    assert corpus_id in alice_sees and not alice_sees[corpus_id]["shared"]
    assert corpus_id not in bob_sees
    assert any(c["shared"] for c in bob_sees.values())  # the sample corpus is visible to everyone
    with pytest.raises(Exception, match="no corpus"):
        _search(bob, corpus_id, "sourdough")
    with pytest.raises(Exception, match="no corpus"):
        bob.predict(dataset="corpus", corpus=str(corpus_id), configurations=["float32"], api_name="/evaluate")
    # The session key returned by ingest is the capability: whoever holds it may use the corpus.
    _, results = _search(bob, corpus_id, "sourdough starter", configs=["float32"], session_key=handle["session_key"])
    assert "yeast" in results["columns"][0]["hits"][0]["text"]


def test_a_malformed_session_key_is_refused_with_a_reason(studio_url):
    client = Client(studio_url, verbose=False)
    with pytest.raises(Exception, match="session key is malformed"):
        client.predict("x y", api_name="/corpora")


def test_unavailable_models_say_why_and_how_to_enable_them(studio_url):
    client = Client(studio_url, verbose=False)
    sample = next(c for c in client.predict("", api_name="/corpora") if c["shared"])
    with pytest.raises(Exception, match="not available here.*To enable it"):
        client.predict(str(sample["corpus_id"]), "oxygen", "0.6B", "standard", ["float32"], 3, 4, "full", "",
                       api_name="/search")


def test_evaluate_an_uploaded_beir_folder(studio_url, tmp_path):
    docs = {"d1": "Binary codes keep the sign of every coordinate.", "d2": "Sourdough needs a starter of wild yeast.",
            "d3": "Eyjafjallajokull erupted in Iceland in 2010."}
    queries = {"q1": "sign bits of a vector", "q2": "bread leavened with wild yeast", "q3": "Icelandic volcano"}
    qrels = {"q1": "d1", "q2": "d2", "q3": "d3"}
    archive = tmp_path / "tiny-beir.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tiny/corpus.jsonl", "\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()))
        z.writestr("tiny/queries.jsonl", "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()))
        z.writestr("tiny/qrels/test.tsv", "query-id\tcorpus-id\tscore\n" +
                   "\n".join(f"{q}\t{d}\t1" for q, d in qrels.items()))
    client = Client(studio_url, verbose=False)
    status, tables, table, *_ = client.predict(dataset="beir", beir_zip=handle_file(str(archive)),
                                               configurations=["float32", "binary"], late_chunking_pair=True,
                                               pair_chunk_tokens=32, api_name="/evaluate")
    assert "3 queries over 3 documents" in status and STAND_IN in status
    assert "only 3 queries" in status and "at least 100" in status  # too few to trust: said so
    headers, rows = table["headers"], table["data"]
    by_config = {(row[headers.index("configuration")], row[headers.index("variant")]): row for row in rows}
    # The variant pair: the same chunks embedded alone and with late chunking (a column, not a name), BM25 once.
    assert set(by_config) == {("float32", "standard"), ("binary", "standard"), ("float32", "contextual"),
                              ("binary", "contextual"), ("BM25", "")}
    assert {by_config[(c, "standard")][headers.index("model")] for c in ("float32", "binary")} == {STAND_IN}
    assert by_config[("float32", "standard")][headers.index("ndcg@10")] == 100.0  # each query finds its document
    size = headers.index("bytes_per_vector")
    assert by_config[("binary", "standard")][size] < by_config[("float32", "standard")][size]
    assert tables.count("<caption>") == 1 and "late chunking" in tables


def test_evaluate_xquad_needs_no_files_and_samples_its_queries(studio_url):
    client = Client(studio_url, verbose=False)
    status, tables, table, *_ = client.predict(max_queries=20, configurations=["float32", "int8"],
                                               api_name="/evaluate")
    assert "XQuAD en: 20 queries of 1,185 (random sample, seed 0)" in status
    assert "only 20 queries" in status and "5.0 points" in status  # one query moves nDCG@10 by up to 100/20
    assert "XQuAD en · 20 queries of 1,185" in tables and tables.count("XQuAD en") == 1
    headers = table["headers"]
    assert {"model", "variant", "configuration", "ndcg@10"} <= set(headers)
    assert {row[headers.index("model")] for row in table["data"] if row[headers.index("configuration")] != "BM25"} \
        == {STAND_IN}


def test_late_chunking_panel_ranks_the_article_both_ways(studio_url):
    client = Client(studio_url, verbose=False)
    html = client.predict("Berlin population", "stand-in", api_name="/late_chunking")
    assert html.count("class='pplx-col'") == 2
    assert "Independent chunks" in html and "Late chunking" in html
    assert "late chunking moved" in html and "not trained for late chunking" in html
    assert "all-MiniLM-L6-v2 with late chunking" in html


def test_api_outputs_have_meaningful_names_and_the_documented_endpoints(studio_url):
    info = Client(studio_url, verbose=False).view_api(print_info=False, return_format="dict")
    endpoints = info["named_endpoints"]
    assert {"/ingest", "/crawl", "/embed", "/search", "/evaluate", "/corpora"} <= set(endpoints)
    for name in ("/ingest", "/crawl", "/embed", "/search", "/evaluate"):
        labels = [r["label"] for r in endpoints[name]["returns"]]
        assert not [x for x in labels if x is None or x.startswith("value_")], (name, labels)
    required = {p["parameter_name"] for p in endpoints["/evaluate"]["parameters"] if not p["parameter_has_default"]}
    assert required == set()  # XQuAD needs no upload, no corpus


def test_bad_arguments_get_clear_messages(studio_url, files):
    client = Client(studio_url, verbose=False)
    with pytest.raises(Exception, match="unknown corpus 'api notes'"):
        _search(client, "api notes", "lighthouses")
    sample = next(c for c in client.predict("", api_name="/corpora") if c["shared"])
    with pytest.raises(Exception, match="top_k must be a whole number from 1 to 50"):
        _search(client, sample["corpus_id"], "oxygen", configs=["float32"], k=2.5)
    # Every refusal names the parameter, whatever the value's type (not Gradio's "verbose error reporting").
    for k, why in ((0, r"top_k must be from 1 to 50 \(got 0\)"), (51, r"top_k must be from 1 to 50 \(got 51\)"),
                   ("ten", r"top_k must be a number from 1 to 50 \(got 'ten'\)")):
        with pytest.raises(Exception, match=why + r" \[parameter: top_k\]"):
            _search(client, sample["corpus_id"], "oxygen", configs=["float32"], k=k)
    with pytest.raises(Exception, match=r"configurations has 'float64'.*\[parameter: configurations\]"):
        _search(client, sample["corpus_id"], "oxygen", configs=["float64"])
    with pytest.raises(Exception, match=r"runtime must be one of torch, onnx, onnx-int8 \(got 'tpu'\)"):
        client.predict(str(sample["corpus_id"]), "oxygen", runtime="tpu", api_name="/search")
    with pytest.raises(Exception, match="Type a query first"):
        _search(client, sample["corpus_id"], "  ")
    # The chunk slider's range is the model's context (the page is laid out before any model loads); a
    # chunk over what the model reads after its special tokens is refused by the studio, saying why.
    with pytest.raises(Exception, match=r"chunk_tokens must be from 16 to 256 \(got 300\)"):
        _ingest(client, [files / "guide.md"], "too long", chunk_tokens=300)
    with pytest.raises(Exception, match=r"longer than .*all-MiniLM-L6-v2.* reads.*at most 254 tokens"):
        _ingest(client, [files / "guide.md"], "too long", chunk_tokens=256)
    with pytest.raises(Exception, match="chunk size must be a whole number"):
        _ingest(client, [files / "guide.md"], "fractional", chunk_tokens=64.5)


def test_stand_in_matryoshka_columns_carry_a_caveat(studio_url):
    client = Client(studio_url, verbose=False)
    sample = next(c for c in client.predict("", api_name="/corpora") if c["shared"])
    html, results = _search(client, sample["corpus_id"], "When did Carl Wilhelm Scheele discover oxygen?",
                            configs=["float32", "binary"], matryoshka="128")
    assert [c["configuration"] for c in results["columns"]] == ["float32 @128d", "binary @128d"]
    assert "was not trained for Matryoshka truncation" in html
    _, full = _search(client, sample["corpus_id"], "oxygen", configs=["float32"])
    assert full["columns"][0]["hits"][0]["title"] == "Oxygen"


def test_an_oversized_upload_is_refused_and_nothing_stored_changes(studio_url, files, tmp_path):
    client = Client(studio_url, verbose=False)
    before = client.predict("", api_name="/corpora")
    huge = tmp_path / "huge.txt"
    huge.write_text("lighthouse " * 30_000, encoding="utf-8")  # 330 kB > the 200 kB cap
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        _ingest(client, [huge], "too big")
    assert client.predict("", api_name="/corpora") == before


# ----------------------------------------------------------------------------- new in the studio


def _sample_id(client: Client) -> str:
    return str(next(c["corpus_id"] for c in client.predict("", api_name="/corpora") if c["shared"]))


def test_status_says_the_sample_is_ready(studio_url):
    status = Client(studio_url, verbose=False).predict(api_name="/status")
    assert status["state"] == "ready" and "233 chunks embedded" in status["message"]


def test_an_explained_search_with_a_hybrid_column_and_its_summary(studio_url):
    client = Client(studio_url, verbose=False)
    query = "When did Carl Wilhelm Scheele discover oxygen?"
    html, results = client.predict(_sample_id(client), query, configurations=["float32", "binary + rescore",
                                                                              "hybrid: BM25 + binary + rescore"],
                                   top_k=5, explain=True, api_name="/search")
    f32, rescore, hybrid = results["columns"]
    assert hybrid["configuration"] == "hybrid: BM25 + binary + rescore x4 (int8 calibrated) (RRF k=60)"
    assert hybrid["family"] == "hybrid" and {"bm25", "fuse"} <= set(hybrid["timings_ms"])
    top = hybrid["hits"][0]
    assert top["title"] == "Oxygen" and top["bm25_rank"] is not None and "scheel" in top["matched_terms"]
    why = f32["hits"][0]["why"]
    best = why["best_sentence"]
    assert best["text"] == f32["hits"][0]["text"][best["char_start"]:best["char_end"]] and "Scheele" in best["text"]
    assert results["explain_ms"] is not None and "why it matched" in html and "class='pplx-best'" in html
    # the one-line answer is the response's own numbers
    assert results["summary"].startswith(rescore["configuration"] + ": ")
    found = round(rescore["overlap_at_k"] * 5)
    assert f"{found}/5 of float32's top-5" in results["summary"] and "32x less RAM per vector" in results["summary"]
    assert "class='pplx-summary'" in html and "class='pplx-rank-table'" in html
    # over the API explanations are off unless asked for
    _, plain = client.predict(_sample_id(client), query, api_name="/search")
    assert plain["explain_ms"] is None and "why" not in plain["columns"][0]["hits"][0]


def test_the_onnx_int8_runtime_is_named_in_every_column(studio_url):
    client = Client(studio_url, verbose=False)
    html, results = client.predict(_sample_id(client), "Who discovered oxygen?", configurations=["float32", "int8"],
                                   runtime="onnx-int8", api_name="/search")
    assert results["model"].endswith("· ONNX int8") and results["runtime"] == "onnx-int8"
    assert all(c["model"] == results["model"] for c in results["columns"])
    assert html.count("ONNX int8") >= 3  # each column and the shared query line
    assert results["embedded_now"] > 0  # its vectors are its own (cached apart from torch's)
    assert results["columns"][0]["hits"][0]["title"] == "Oxygen"


def test_evaluation_tables_carry_paired_bootstrap_intervals(studio_url):
    client = Client(studio_url, verbose=False)
    status, tables, table, *_ = client.predict(max_queries=40, configurations=["float32", "binary"],
                                               api_name="/evaluate")
    assert "nDCG@10 % of float32 [95% interval]" in tables and "2,000 resamples, seed 0" in tables
    rows = {r[table["headers"].index("configuration")]: r for r in table["data"]}
    ci = rows["binary"][table["headers"].index("ndcg@10 % of float32 [95% interval]")]
    assert re.fullmatch(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]\*?", ci), ci
    assert rows["float32"][table["headers"].index("ndcg@10 % of float32 [95% interval]")].startswith("100.0% [100.0")


def test_the_sweep_recommends_the_cheapest_configuration_over_a_floor(studio_url):
    client = Client(studio_url, verbose=False)
    status, table, *_ = client.predict(max_queries=40, quality_floor=95, api_name="/sweep")
    assert "Recommended for a floor of 95% of float32" in status or "No configuration keeps 95%" in status
    assert "resamples" in status and "binary + rescore x16" in table and "[95% interval]" in table
    with pytest.raises(Exception, match=r"quality_floor must be from 90 to 100"):
        client.predict(quality_floor=80, api_name="/sweep")


def test_the_scale_panel_runs_and_refuses_over_budget(studio_url):
    client = Client(studio_url, verbose=False)
    status, table, *_ = client.predict(_sample_id(client), [100_000], api_name="/scale")
    assert "synthetic vectors: speed and memory only, not quality" in status and "100,000" in table
    assert table.count("<tr") >= 1 + 6 and "$" in table
    with pytest.raises(Exception, match="largest size that fits is"):
        client.predict(_sample_id(client), [10_000_000], api_name="/scale")


def _big_notes(path, paragraphs: int = 400) -> None:
    salt = uuid.uuid4().hex[:8]  # new text: the vector cache is keyed by content
    words = ["harbour", "lantern", "tide", "keeper", "storm", "reef", "signal", "fog", "beacon", "rock"]
    path.write_text("\n\n".join(f"Note {i} {salt}: " + " ".join(words[(i * j) % 10] for j in range(40))
                                for i in range(paragraphs)), encoding="utf-8")


def test_stop_cancels_a_first_search_embedding_and_keeps_nothing(studio_url, tmp_path):
    studio = studio_url.studio
    key = new_session_key()
    notes = tmp_path / "notes.txt"
    _big_notes(notes)
    added = studio.ingest([str(notes)], "big", "stand-in", "standard", 32, 0, key, "torch", None, None)
    cid = added.corpus_info["corpus_id"]
    encoder = studio.encoder("minilm-l6", "standard")
    before = studio.store.missing_embeddings(cid, str(encoder.cache_key), "standard", encoder.dim).n_inputs
    assert before > 300
    threading.Timer(1.5, studio.stop, args=(key, None)).start()
    with pytest.raises(Exception, match="(?i)cancel|stopped"):
        studio.search(str(cid), "harbour lantern", "stand-in", "standard", ["float32"], 5, 4, "full", key, "torch",
                      False, None, None)
    missing = studio.store.missing_embeddings(cid, str(encoder.cache_key), "standard", encoder.dim)
    assert missing.n_inputs == before  # nothing half-done was kept


def test_stop_cancels_an_evaluation(studio_url):
    studio = studio_url.studio
    key = new_session_key()
    threading.Timer(2.0, studio.stop, args=(key, None)).start()
    with pytest.raises(Exception, match="(?i)cancel|stopped"):
        studio.evaluate("xquad", ["vi"], None, None, None, None, 20, "stand-in", "standard", ["float32"], [], False,
                        64, None, key, "torch", None, None)
