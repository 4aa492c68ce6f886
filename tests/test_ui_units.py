"""The UI's pure parts: escaping and highlighting, movement badges, session keys and expiry,
throughput estimates, corpus statistics, the evaluation's query sample, the starter corpus, the
ZeroGPU wrapper and the studio's refusals (chunks too long, a private crawl target)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest

from pplx_demo.embedding import embed_corpus
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.sessions import Sessions, new_session_key, owner_id
from pplx_demo.stats import corpus_stats, guess_language
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter, format_duration
from pplx_demo.ui import result_views, views

# ----------------------------------------------------------------------------- escaping / highlighting


def test_highlight_escapes_markup_and_marks_query_terms():
    text = 'Berlin <script>alert("x")</script> is the capital; berlin\'s "museums" & more'
    out = views.highlight(text, views.query_terms("capital of Berlin"))
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "&quot;museums&quot;" in out and "&amp; more" in out
    assert out.count("<mark>") == 3  # Berlin, capital, berlin (case-insensitive)
    assert "<mark>Berlin</mark>" in out and "<mark>berlin</mark>" in out and "<mark>capital</mark>" in out


def test_markup_in_a_query_term_cannot_escape_the_mark():
    out = views.highlight("a <b>bold</b> claim", ["<b>bold</b>", "bold"])
    assert "<b>" not in out and "</b>" not in out
    assert out == "a <mark>&lt;b&gt;bold&lt;/b&gt;</mark> claim"


def test_query_terms_drop_stop_words_keep_cjk_single_characters():
    assert views.query_terms("What is the capital of Germany?") == ["capital", "germany"]
    assert "柏" in views.query_terms("柏 林")


def test_snippet_window_centres_on_the_first_term():
    text = ("lorem ipsum " * 60) + "the Zeppelin landed " + ("dolor sit " * 60)
    snip = views.snippet_window(text, ["zeppelin"], width=120)
    assert "Zeppelin" in snip and snip.startswith("… ") and snip.endswith(" …")
    assert len(snip) <= 124


def test_only_http_links_become_hrefs():
    assert views.safe_href("https://example.org/a?b=1") == "https://example.org/a?b=1"
    assert views.safe_href("javascript:alert(1)") is None
    assert views.safe_href("data:text/html,<b>x</b>") is None
    assert views.safe_href("xquad://en/0-0") is None
    assert views.safe_href("file:///etc/passwd") is None


@pytest.mark.parametrize("rank, base, cls, badge", [
    (3, 5, "up", "▲2"), (4, 1, "down", "▼3"), (2, 2, "same", "="), (1, None, "new", "new")])
def test_movement_badge_against_float32(rank, base, cls, badge):
    got_cls, got_badge, tip = views.movement(rank, base, is_baseline=False)
    assert (got_cls, got_badge) == (cls, badge)
    assert tip
    assert views.movement(rank, base, is_baseline=True) == ("", "", "")


def test_stats_table_has_a_caption_no_empty_header_and_escapes_values():
    html = views.stats_html("“<b>notes</b>”", {"documents": "2", "name": "<img src=x onerror=alert(1)>"})
    assert "<img" not in html and "&lt;img" in html and "&lt;b&gt;notes" in html
    assert "<thead>" not in html and "<caption>" in html
    assert "<th scope='row'>documents</th><td>2</td>" in html


def test_plurals():
    assert views.plural(1, "chunk") == "1 chunk" and views.plural(3, "chunk") == "3 chunks"
    assert views.plural(1200, "query", "queries") == "1,200 queries"


def test_eval_table_keeps_model_and_variant_and_puts_the_dataset_in_the_caption():
    rows = [{"configuration": "int8 <b>", "config": None, "model": "all-MiniLM-L6-v2", "variant": "standard", "ndcg@10": 95.84,
             "ndcg@10 % of float32": 99.9, "recall@10": 99.33, "recall@100": 100.0, "mrr@10": 94.66,
             "bytes_per_vector": 388, "search_ms": 0.0123}]
    html = views.eval_table_html("XQuAD en · 300 queries", rows, ["BM25: bm25s"])
    assert "<caption>XQuAD en · 300 queries</caption>" in html and html.count("XQuAD en") == 1
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert headers[:3] == ["configuration", "model", "variant"] and any("% of float32" in h for h in headers)
    assert "int8 &lt;b&gt;" in html and ">95.84<" in html and ">388<" in html and ">0.012<" in html
    assert "BM25: bm25s" in html


def test_results_use_the_fixed_configuration_colours_and_show_notices():
    from pplx_demo import charts
    from pplx_demo.index import IndexConfig
    from pplx_demo.search import ColumnResult, SearchResponse
    from pplx_demo.storage import StorageReport

    def col(cfg):
        st = StorageReport(cfg, 384, 10, 48, 480, 0.03, 0)
        return ColumnResult(cfg, [], {"total": 1.0}, 1.0, None, st)

    resp = SearchResponse("q", 1, "M <i>", "k", "standard", 10, [col(IndexConfig("binary")), col(IndexConfig("int8"))],
                          embed_query_ms=12.5)
    html = result_views.results_html(resp, "q", "float32", [("<b>cut</b>", "warn")])
    assert html.count("embed query") == 1 and "12.5" in html  # the query embedding once, above the columns
    assert f"border-top-color:{charts.CONFIG_COLOURS['binary']}" in html
    assert f"border-top-color:{charts.CONFIG_COLOURS['int8']}" in html
    assert "pplx-notice warn'>&lt;b&gt;cut" in html and "M &lt;i&gt;" in html
    assert ">480 B<" in html  # the one byte formatter (storage.human_bytes)


# ----------------------------------------------------------------------------- sessions


class _CountingStore(Store):
    """The real store, counting how often the sessions ask it to expire corpora."""

    def __init__(self, path):
        super().__init__(path)
        self.sweeps: list[float] = []

    def expire_private_corpora(self, idle_seconds):
        self.sweeps.append(idle_seconds)
        return super().expire_private_corpora(idle_seconds)


def test_owner_ids_are_hashes_of_well_formed_keys():
    key = new_session_key()
    assert owner_id(key) == owner_id(key) and key not in owner_id(key)
    assert owner_id(key) != owner_id(new_session_key())
    for bad in ("short", "x" * 200, "has space in it 1234", "<script>alert(1)</script>"):
        with pytest.raises(DemoError, match="session key"):
            owner_id(bad)


def test_sessions_give_each_gradio_session_its_own_stable_key(tmp_path):
    s = Sessions(Store(tmp_path / "s.duckdb"), idle_s=60)
    k1, o1 = s.resolve("", "session-a")
    assert s.resolve(None, "session-a") == (k1, o1)  # the same client keeps its key
    k2, o2 = s.resolve("", "session-b")
    assert o2 != o1
    assert s.resolve(k1, "session-b") == (k1, o1)  # bringing a key wins over the session


def _doc(text):
    return [Document("u", "t", text)], [[Chunk(0, text, 0, len(text), 3)]]


def test_idle_private_corpora_are_swept_and_the_shared_one_stays(tmp_path):
    now = [0.0]
    store = _CountingStore(tmp_path / "s.duckdb")
    shared = store.add_corpus("shared", *_doc("public text"), owner=None)
    _, owner = Sessions(store, 60).resolve(new_session_key(), None)
    private = store.add_corpus("mine", *_doc("private text"), owner=owner)
    s = Sessions(store, idle_s=3600, sweep_every_s=10, clock=lambda: now[0])
    s.sweep()
    s.sweep()  # within sweep_every_s: not asked again
    assert len(store.sweeps) == 1 and {c.id for c in store.list_corpora(owner)} == {shared, private}
    s.idle_s = 0.0  # everything private is now idle for too long
    now[0] = 11.0
    s.sweep()
    assert len(store.sweeps) == 2
    assert [c.id for c in store.list_corpora(owner)] == [shared]


def test_sweeps_are_rate_limited_unless_forced(tmp_path):
    now = [0.0]
    store = _CountingStore(tmp_path / "s.duckdb")
    s = Sessions(store, idle_s=30, sweep_every_s=10, clock=lambda: now[0])
    s.sweep()
    s.sweep()
    now[0] = 11.0
    s.sweep()
    s.sweep(force=True)
    assert store.sweeps == [30.0, 30.0, 30.0]


# ----------------------------------------------------------------------------- throughput and stats


def test_throughput_is_measured_once_then_replaced_by_real_jobs(minilm):
    meter = ThroughputMeter()
    first = meter.measure(minilm)
    assert first.tokens_per_s > 0 and first.measured_tokens > 0 and first.source == "warm-up batch"
    assert meter.measure(minilm) is first  # cached per model
    est = meter.estimate(minilm, 10 * first.measured_tokens)
    assert est.seconds == pytest.approx(10 * first.measured_tokens / first.tokens_per_s)
    assert minilm.name in est.describe()
    meter.record(minilm, tokens=10_000, seconds=4.0)
    assert meter.measure(minilm).tokens_per_s == pytest.approx(2500.0)
    assert meter.measure(minilm).source == "last embedding job"


def test_format_duration():
    assert format_duration(0.2) == "< 1 s"
    assert format_duration(42) == "42 s"
    assert format_duration(600) == "10.0 min"
    assert format_duration(7200) == "2.0 h"


def test_corpus_stats_count_tokens_and_languages():
    docs = [Document("a", "A", "Das ist ein Satz über die Stadt Berlin und ihre Geschichte."),
            Document("b", "B", "This is a sentence about the city of Berlin and its history."),
            Document("c", "C", "whatever", metadata={"lang": "en"})]
    chunks = [[Chunk(0, "x", 0, 1, 5), Chunk(1, "y", 1, 2, 7)], [Chunk(0, "z", 0, 1, 3)], []]
    st = corpus_stats(docs, chunks)
    assert (st.documents, st.chunks, st.tokens) == (3, 3, 15)
    assert st.languages == {"de": 1, "en": 2}
    assert st.languages_text() == "en 2, de 1"
    assert guess_language("   ") is None


# ----------------------------------------------------------------------------- starter corpus


def test_starter_corpus_is_the_first_paragraph_of_every_article_in_three_languages():
    from pplx_demo.ingest.sample import STARTER_LANGUAGES, sample_query_pairs, sample_queries, starter_documents

    docs = starter_documents()
    assert STARTER_LANGUAGES == ("en", "de", "es")
    assert len(docs) == 48 * 3 and {d.metadata["lang"] for d in docs} == set(STARTER_LANGUAGES)
    assert all(d.metadata["paragraph_id"].endswith("-0") for d in docs)
    for lang in STARTER_LANGUAGES:
        asked_about = dict(sample_query_pairs(lang))
        questions = sample_queries(lang, 8)
        assert len(set(questions)) == 8
        # Every example question is answered by a paragraph the starter corpus holds.
        assert all(asked_about[q].endswith("-0") for q in questions)
    assert len(sample_queries("en", 100)) == 100  # topped up from the same paragraphs' other questions
    assert all(dict(sample_query_pairs("en"))[q].endswith("-0") for q in sample_queries("en", 100))


def test_example_questions_come_in_several_languages():
    from pplx_demo.ui.choices import example_questions

    examples = example_questions()
    assert len(examples) == 8 and len(set(examples)) == 8
    assert any("¿" in q for q in examples) and any(q.startswith("Wie ") or " der " in q for q in examples)
    assert "When did Carl Wilhelm Scheele discover oxygen?" in examples


# ----------------------------------------------------------------------------- evaluation sample


def test_the_evaluation_sample_is_seeded_random_not_the_first_queries():
    from pplx_demo.evaluate.datasets import load_xquad

    full = load_xquad("en")
    judged = full.judged_queries()
    sample = full.sample(50)
    kept = list(sample.queries)
    assert len(kept) == 50 and set(kept) <= set(judged)
    assert kept != judged[:50]  # the file is ordered by article: a prefix covers a few topics only
    assert max(judged.index(q) for q in kept) > 900  # drawn from the whole file
    assert full.sample(50).queries == sample.queries  # repeatable (seeded)
    assert full.sample(50, seed=1).queries != sample.queries
    assert set(sample.qrels) == set(kept) and sample.corpus == full.corpus  # every document stays
    assert full.sample(10_000) is full


def test_whole_numbers_in_range():
    from pplx_demo.ui.choices import whole_number

    assert whole_number(10.0, "top_k", 1, 50) == 10
    for bad in (2.5, 0, 51, "x", None):
        with pytest.raises(DemoError, match="top_k must be a whole number from 1 to 50"):
            whole_number(bad, "top_k", 1, 50)


# ----------------------------------------------------------------------------- honesty of labels


def test_variant_labels_name_the_model_that_runs():
    from pplx_demo.ui.choices import variant_choices

    stand_in = dict((v, label) for label, v in variant_choices("stand-in"))
    assert "all-MiniLM-L6-v2" in stand_in["standard"] and "pplx" not in stand_in["standard"]
    assert "not trained" in stand_in["contextual"]
    pplx = dict((v, label) for label, v in variant_choices("0.6B"))
    assert "pplx-embed-v1-0.6B" in pplx["standard"] and "pplx-embed-context-v1-0.6B" in pplx["contextual"]


def test_about_storage_numbers_are_measured_from_real_indexes():
    from pplx_demo.ui.about import storage_table

    for dim, row in storage_table():
        assert row["float32"] == 4 * dim and row["binary"] == dim // 8
        assert row["int8"] > dim  # codes plus what the index keeps per vector (its norm)
        assert row["binary + rescore (int8 kept)"] == row["binary"] + row["int8"]


def test_app_messages_name_the_server_setting_not_cli_flags():
    from pplx_demo.cli.common import error_line
    from pplx_demo.ui.errors import app_message

    exc = DemoError("refused 127.0.0.1, a loopback address", setting="PPLX_DEMO_ALLOW_PRIVATE",
                    cli_flag="--allow-private")
    text = app_message(exc)
    assert "PPLX_DEMO_ALLOW_PRIVATE=1" in text and "--allow-private" not in text
    assert error_line(exc) == "refused 127.0.0.1, a loopback address (--allow-private)"  # each front end its own
    assert "[parameter: top_k]" in app_message(DemoError("a bad number", field="top_k"))


# ----------------------------------------------------------------------------- ZeroGPU wrapper


def test_only_the_encoder_forward_passes_become_gpu_tasks(monkeypatch, minilm, tmp_path):
    decorated, calls = [], []
    fake = types.ModuleType("spaces")

    def gpu(duration=60):
        def wrap(fn):
            decorated.append((fn.__name__, duration))

            def run(*args, **kwargs):
                calls.append(fn.__name__)
                return fn(*args, **kwargs)
            return run
        return wrap

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    path = Path(__file__).resolve().parent.parent / "pplx_demo" / "ui" / "gpu.py"
    spec = importlib.util.spec_from_file_location("gpu_on_zero", path)
    gpu_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_mod)
    assert gpu_mod.ON_ZERO_GPU and [name for name, _ in decorated] == ["_encode", "_encode_documents"]

    enc = gpu_mod.GpuEncoder(minilm)
    assert (enc.name, enc.dim, enc.cache_key) == (minilm.name, minilm.dim, minilm.cache_key)  # the rest delegates
    store = Store(tmp_path / "g.duckdb")
    long_text = " ".join(["lighthouse"] * 400)  # longer than the stand-in's window
    cid = store.add_corpus("c", [Document("u", "t", "short text. " + long_text)],
                           [[Chunk(0, "short text.", 0, 11, 2), Chunk(1, long_text, 12, 12 + len(long_text), 400)]])
    matrix = embed_corpus(store, cid, enc)  # DuckDB reads and writes stay outside the GPU task
    assert matrix.embedded_now == 2 and matrix.truncated_now == 1  # stats come back from the task
    assert calls == ["_encode"]
    assert enc.encode(["a query"]).shape == (1, minilm.dim) and calls[-1] == "_encode"


def test_without_spaces_the_wrapper_changes_nothing(minilm):
    from pplx_demo.ui import gpu

    assert not gpu.ON_ZERO_GPU
    assert gpu.gpu_task(30)(len) is len
    np_out = gpu.GpuEncoder(minilm).encode(["same text"])
    assert (np_out == minilm.encode(["same text"])).all()


# ----------------------------------------------------------------------------- studio refusals


@pytest.fixture()
def bare_studio(tmp_path):
    """A studio on its own store, not prepared (no sample corpus): enough for argument checks."""
    from pplx_demo.config import Settings
    from pplx_demo.ui.studio import Studio

    return Studio(dataclasses.replace(Settings.from_env(), db_path=tmp_path / "studio.duckdb"))


def test_a_chunk_size_over_the_models_window_is_refused(bare_studio, tmp_path):
    from pplx_demo.ui.errors import UserError

    page = tmp_path / "page.txt"
    page.write_text("Lighthouses guide ships at night.", encoding="utf-8")
    _, _, budget = bare_studio.chunking_for("stand-in", "standard")
    assert budget == 254  # 256-token window minus [CLS] and [SEP]
    with pytest.raises(UserError, match=r"Chunks of 1000 tokens are longer than .*all-MiniLM-L6-v2.* reads"
                                        r".*at most 254 tokens"):
        bare_studio.ingest([str(page)], "too long", "stand-in", "standard", 1000, 0, "", None, None)
    assert bare_studio.store.list_corpora(None) == []  # nothing stored
    with pytest.raises(UserError, match="chunk size must be a whole number"):
        bare_studio.ingest([str(page)], "x", "stand-in", "standard", 100.5, 0, "", None, None)


def test_a_crawl_of_a_private_address_names_the_server_setting(bare_studio):
    from pplx_demo.ui.errors import UserError

    with pytest.raises(UserError) as err:
        bare_studio.crawl("http://127.0.0.1:9/", 1, 0, True, None, "stand-in", "standard", None, None, None, None,
                          None)
    assert "PPLX_DEMO_ALLOW_PRIVATE" in str(err.value) and "--allow-private" not in str(err.value)


def test_a_corpus_named_instead_of_numbered_is_unknown(bare_studio):
    with pytest.raises(DemoError, match="unknown corpus 'api notes'"):
        bare_studio._corpus_for("api notes", "s-owner")


def test_chunk_sliders_end_at_what_a_pplx_model_reads_here(tmp_path, tiny_pplx_dir):
    """For a pplx-layout model the limit is its window on this device (capped by the settings)
    minus the special tokens its tokenizer adds; the stand-in's is 254."""
    from pplx_demo.config import Settings
    from pplx_demo.ingest.chunking import encoder_token_budget
    from pplx_demo.ui.studio import Studio

    settings = dataclasses.replace(Settings.from_env(), db_path=tmp_path / "studio.duckdb",
                                   model_folders={"PPLX_EMBED_V1_0_6B": tiny_pplx_dir})
    studio = Studio(settings)
    size, overlap, budget = studio.chunking_for("0.6B", "standard")
    enc = studio.models.get("pplx-embed-v1-0.6b")
    assert budget == encoder_token_budget(enc) and budget <= settings.max_tokens_cpu
    assert (size, overlap) == (512, 64) and overlap < size <= budget
    chunk, _ = studio.chunk_sliders("0.6B", "standard")
    assert chunk["maximum"] == budget
