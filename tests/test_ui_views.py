"""The studio's new pure parts: snippets centred on the best sentence, markdown blanked, the rank table,
the one-line summary, parameter-naming inputs, the browser-state secret, start-up readiness, per-session
history, the About tab's citations, the hybrid choice, PDF page numbers from the store."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import threading
from pathlib import Path

import gradio as gr
import pytest

from pplx_demo.config import Settings
from pplx_demo.documents import Chunk, Document
from pplx_demo.explain import HitExplanation, SentenceScore, TermSpan
from pplx_demo.index import IndexConfig
from pplx_demo.search import ColumnResult, Hit, SearchResponse
from pplx_demo.storage import StorageReport
from pplx_demo.store import Store
from pplx_demo.ui import fields, result_views
from pplx_demo.ui.browser import browser_secret, secret_path
from pplx_demo.ui.errors import UserError
from pplx_demo.ui.jobs import Jobs, Readiness, SessionHistory
from pplx_demo.ui.summary import summary_line

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- snippets


def test_markdown_syntax_is_blanked_without_moving_offsets():
    text = "# Binary **codes**\n\n> see [the guide](https://x.org/g) and `xor`\n| a | b |\n|---|---|"
    clean = result_views.clean_markdown(text)
    assert len(clean) == len(text)
    for gone in ("#", "**", "[", "](", "`", "|", "---", ">"):
        assert gone not in clean, gone
    assert "Binary" in clean and "codes" in clean and "the guide" in clean and "xor" in clean
    assert clean.index("codes") == text.index("codes")


def test_the_snippet_is_centred_on_the_best_sentence_and_marks_it():
    filler = "Lorem ipsum dolor sit amet. " * 30
    best = "The lighthouse keeper wound the clockwork every night."
    text = filler + best + " " + filler
    start = text.index(best)
    html = result_views.snippet_html(text, (start, start + len(best)), [(start + 4, start + 14)], width=200)
    assert html.startswith("… ") and html.endswith(" …")
    assert "<span class='pplx-best'" in html and "<mark>lighthouse</mark>" in html
    inner = re.search(r"<span class='pplx-best'[^>]*>(.*?)</span>", html).group(1)
    assert re.sub("<[^>]+>", "", inner) == best  # the whole sentence, marks nested inside
    assert html.index("pplx-best") < html.index("<mark>") < html.index("</mark>") < html.index("</span>")


def test_snippets_escape_text_and_drop_heading_marks():
    text = "# Evil <script>alert(1)</script> heading\n\nBody text & more"
    html = result_views.snippet_html(text, None, [(text.index("Body"), text.index("Body") + 4)])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html
    assert "#" not in html and "<mark>Body</mark>" in html


def _hit(rank, chunk, base, title="T", text="some text", **kw):
    return Hit(rank=rank, chunk_id=chunk, score=1.0 / rank, text=text, title=title, uri="", document_id=1,
               baseline_rank=base, **kw)


def _col(config, hits, overlap=1.0, timings=None, dim=384):
    st = StorageReport(config, dim, 100, 4 * dim, 400 * dim, 1.0, 0, float32_bytes_per_vector=4 * dim)
    return ColumnResult(config, hits, timings or {"search": 1.0, "fetch_text": 0.5, "total": 1.5}, overlap, None, st)


def test_an_explained_hit_shows_why_and_a_hybrid_hit_its_leg_ranks():
    text = "Oxygen is a gas. It was discovered by Scheele in 1773. Priestley published first."
    s = text.index("It was")
    e = HitExplanation([SentenceScore(s, s + 35, 0.71)], SentenceScore(s, s + 35, 0.71), 1, 3, 0,
                       [TermSpan("scheel", text.index("Scheele"), text.index("Scheele") + 7)])
    hit = _hit(1, 7, 2, text=text, explanation=e, dense_rank=3, bm25_rank=None, matched_terms=["scheel"])
    html = result_views.hit_html(hit, ["discovered"], False, {7: (4, 5)})
    assert "sentence 2 of 3, cosine 0.71" in html and "BM25 terms: scheel" in html
    assert "<mark>Scheele</mark>" in html and "pplx-best" in html
    assert "dense #3 · BM25 –" in html and "pp. 4–5" in html
    assert "▲1" in html  # float32 #2, here #1


def test_the_rank_table_aligns_configurations_by_rank():
    f32 = IndexConfig("float32")
    binary = IndexConfig("binary")
    resp = SearchResponse("q", 1, "M", "k", "standard", 3, [
        _col(f32, [_hit(1, 1, 1, "A"), _hit(2, 2, 2, "B"), _hit(3, 3, 3, "C")]),
        _col(binary, [_hit(1, 2, 2, "B"), _hit(2, 9, None, "Z"), _hit(3, 1, 1, "A")], overlap=2 / 3)])
    html = result_views.rank_table_html(resp, "float32")
    rows = re.findall(r"<tr><th scope='row'>#(\d)</th>(.*?)</tr>", html)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    first = rows[0][1]
    assert ">A<" in first and "▲1" in first and ">B<" in first  # row 1: float32's A, binary's B moved up
    assert "new" in rows[1][1] and "▼2" in rows[2][1]
    assert html.count("<td") == 6


def test_the_summary_line_is_computed_from_the_response():
    f32, rescore = IndexConfig("float32"), IndexConfig("binary", "rescore", int8_scheme="calibrated")
    hits = [_hit(i, i, i) for i in range(1, 11)]
    moved = [_hit(1, 1, 1)] + [_hit(i, 100 + i if i == 10 else i, None if i == 10 else i) for i in range(2, 11)]
    resp = SearchResponse("q", 1, "M", "k", "standard", 10, [
        _col(f32, hits, timings={"search": 0.5, "total": 0.5}),
        _col(rescore, moved, overlap=0.9, timings={"search": 0.2, "rescore": 0.1, "total": 0.3})])
    line = summary_line(resp)
    assert line.startswith(str(rescore) + ": 9/10 of float32's top-10, same #1")
    assert "32x less RAM per vector (48 B, + 388 B on disk, vs 1.5 KiB)" in line
    assert "index search 0.30 ms vs 0.50 ms" in line
    only = SearchResponse("q", 1, "M", "k", "standard", 10, [_col(f32, hits)])
    assert "Tick another configuration" in summary_line(only)


def test_column_stats_say_ram_and_disk_and_explain_their_ratio():
    rescore = IndexConfig("binary", "rescore", int8_scheme="calibrated")
    html = result_views.column_head_html(_col(rescore, []), "M", "#000", False, 10)
    assert "RAM / vector" in html and ">48 B<" in html and ">388 B<" in html and ">32x less<" in html
    assert "share of float32&#x27;s top-10" in html and "fewer than 5 hits" in html


# ----------------------------------------------------------------------------- inputs that name the parameter


def test_inputs_refuse_bad_api_values_naming_the_parameter():
    with gr.Blocks():
        k = fields.slider(1, 50, value=10, step=1, label="Top-k", param="top_k")
        model = fields.radio([("A", "a"), ("B", "b")], value="a", label="Model", param="model_size")
        configs = fields.checkbox_group(["float32", "int8"], value=["float32"], param="configurations")
    with pytest.raises(UserError, match=r"top_k must be a number from 1 to 50 \(got 'ten'\) \[parameter: top_k\]"):
        k.preprocess("ten")
    with pytest.raises(UserError, match=r"top_k must be from 1 to 50 \(got 0\)"):
        k.preprocess(0)
    assert k.preprocess("7") == 7 and k.preprocess(3) == 3
    with pytest.raises(UserError, match=r"model_size must be one of a, b \(got 'z'\) \[parameter: model_size\]"):
        model.preprocess("z")
    with pytest.raises(UserError, match=r"configurations has 'float33'"):
        configs.preprocess(["float33"])
    assert configs.preprocess("int8") == ["int8"]
    # Gradio's own class: the page renders it as a slider, its properties are Gradio's
    assert type(k) is gr.Slider and k.get_config()["label"] == "Top-k"


# ----------------------------------------------------------------------------- browser secret


def test_the_browser_secret_persists_beside_the_database(tmp_path):
    settings = dataclasses.replace(Settings(), db_path=tmp_path / "db" / "s.duckdb")
    first = browser_secret(settings)
    path = secret_path(settings.db_path)
    assert path.is_file() and stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) >= 32
    assert browser_secret(settings) == first  # the same after a "restart"
    assert browser_secret(dataclasses.replace(settings, browser_state_secret="from-the-setting-123")) == \
        "from-the-setting-123"
    other = dataclasses.replace(Settings(), db_path=tmp_path / "other.duckdb")
    assert browser_secret(other) != first


# ----------------------------------------------------------------------------- jobs, readiness, history


def test_readiness_goes_from_preparing_to_ready_and_waits():
    r = Readiness()
    assert r.view().state == "preparing" and not r.wait(0.01)
    r.stage("embedding")
    r.progress(64, 233)
    v = r.view()
    assert (v.stage, v.done, v.total) == ("embedding", 64, 233)
    threading.Timer(0.05, r.finish, args=("done",)).start()
    assert r.wait(5) and r.ready and r.view().as_dict()["state"] == "ready"


def test_stop_sets_only_that_sessions_event():
    jobs = Jobs(1)
    a, b = jobs.cancel_event("a"), jobs.cancel_event("b")
    assert jobs.stop("a") and a.is_set() and not b.is_set()
    assert jobs.cancel_event("a") is not a  # the next job of that session starts fresh
    assert not jobs.stop("nobody")


def test_history_is_per_session_bounded_and_without_texts():
    h = SessionHistory(runs=2, max_sessions=2)
    col = _col(IndexConfig("float32"), [_hit(1, 1, 1, text="secret text")])
    resp = SearchResponse("q", 5, "M", "k", "standard", 10, [col])
    for _ in range(3):
        h.add_search("s1", resp)
    assert len(h.searches("s1")) == 2 and h.searches("s2") == []
    assert h.searches("s1")[0].columns[0].hits[0].text == "" and col.hits[0].text == "secret text"
    h.add_search("s2", resp)
    h.add_search("s3", resp)
    assert h.searches("s1") == []  # least recently used session dropped
    h.forget(lambda r: r.corpus_id == 5)
    assert h.searches("s3") == []


# ----------------------------------------------------------------------------- About, choices, pages


def test_every_file_the_about_tab_cites_exists():
    from pplx_demo.models import MODELS
    from pplx_demo.models.registry import Availability
    from pplx_demo.ui.about import about_markdown

    text = about_markdown([Availability(k, False, None, "r", "h") for k in MODELS], None, 3600)
    cited = set(re.findall(r"`([\w./-]+\.(?:py|json|md|txt|csv))`", text))
    cited |= set(re.findall(r"\b((?:benchmarks|data|docs|pplx_demo|tests)/[\w./-]+\.\w+)", text))
    assert cited, "the About tab cites files"
    missing = [c for c in cited if not (ROOT / c).exists()]
    assert missing == []


def test_the_hybrid_choice_parses_and_takes_the_rrf_setting():
    from pplx_demo.ui.choices import CONFIG_CHOICES, HYBRID_CHOICE, configs_for

    assert HYBRID_CHOICE in CONFIG_CHOICES and "hybrid" not in CONFIG_CHOICES
    configs = configs_for(["hybrid: BM25 + binary + rescore", "float32"], "full", 8, rrf_k=30)
    assert [c.family for c in configs] == ["float32", "hybrid"]
    assert configs[1].rrf_k == 30 and configs[1].dense.rescore_multiplier == 8
    assert configs_for(["hybrid: BM25 + int8 (RRF k=5)"], None, 4, rrf_k=30)[0].rrf_k == 5


def test_pdf_hits_get_their_pages_from_the_store(tmp_path):
    store = Store(tmp_path / "p.duckdb")
    text = "Page one text here. " * 5 + "Page two starts. " * 5
    cut = 100
    doc = Document("a.pdf", "A", text, metadata={"page_spans": [[1, 0, cut - 1], [2, cut, len(text)]]})
    plain = Document("b.txt", "B", "plain text")
    cid = store.add_corpus("c", [doc, plain], [[Chunk(0, text[:50], 0, 50, 5), Chunk(1, text[90:130], 90, 130, 5),
                                                Chunk(2, text[110:], 110, len(text), 5)],
                                               [Chunk(0, "plain text", 0, 10, 2)]])
    ids = [int(i) for i in store.chunk_table(cid).chunk_ids]
    pages = store.chunk_pages(ids)
    assert pages == {ids[0]: (1, 1), ids[1]: (1, 2), ids[2]: (2, 2)}  # the .txt chunk has no page


def test_corpus_counts_follow_appends(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    cid = store.add_corpus("c", [Document("u", "t", "one")], [[Chunk(0, "one", 0, 3, 1)]])
    assert store.get_corpus(cid).n_chunks == 1
    store.add_documents(cid, [Document("v", "t", "two two")], [[Chunk(0, "two two", 0, 7, 2)]])
    info = store.get_corpus(cid)
    assert (info.n_documents, info.n_chunks, info.n_tokens) == (2, 2, 3)
