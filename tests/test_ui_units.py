"""The UI's pure parts: escaping and highlighting, movement badges, session keys and expiry,
throughput estimates and corpus statistics."""

from __future__ import annotations

import pytest

from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.sessions import Sessions, new_session_key, owner_id
from pplx_demo.stats import corpus_stats, guess_language
from pplx_demo.store import Store
from pplx_demo.throughput import ThroughputMeter, format_duration
from pplx_demo.ui import views

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


def test_stats_markdown_escapes_values():
    md = views.corpus_stats_markdown({"name": "<img src=x onerror=alert(1)>"})
    assert "<img" not in md and "&lt;img" in md


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
