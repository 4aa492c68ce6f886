"""The studio in a real browser (Debian's Chromium driven by Playwright): example questions that run, upload,
search side by side with a one-line answer, the rank table, persistent errors, charts that fit their tab,
a phone layout, nothing private in local storage, private corpora across a server restart, and the two
screenshots the README shows."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from ui_server import free_port, running_studio

from pplx_demo.ingest.sample import sample_queries
from pplx_demo.models import MODELS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The README's pictures are refreshed only on request, so a test run leaves the tree clean:
#   PPLX_DEMO_UPDATE_SCREENSHOT=1 python -m pytest tests/test_ui_browser.py
_ROOT = Path(__file__).resolve().parent.parent
_SHOTS = _ROOT / "docs" if os.environ.get("PPLX_DEMO_UPDATE_SCREENSHOT") else _ROOT / "tests" / "artifacts"
SCREENSHOT = _SHOTS / "screenshot.png"
SCREENSHOT_PHONE = _SHOTS / "screenshot-phone.png"
STAND_IN = MODELS["minilm-l6"].display_name
TIMEOUT_MS = 90_000
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

NOTES = """# Binary quantisation

Binary quantisation keeps one bit per dimension, the sign of each coordinate. A vector of 1024
dimensions then takes 128 bytes instead of 4096, and distances are computed with XOR and popcount.

# Rescoring

Rescoring takes the best candidates of the binary index and scores them again with int8 vectors,
which recovers most of the quality the single bits lose.

# Sourdough bread

A sourdough starter is a culture of wild yeast and lactic acid bacteria; bakers feed it flour and
water every day.
"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: install it with `apt-get install chromium` "
                    "(.ci/run does this). The browser test never downloads a browser.")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    with running_studio(tmp_path_factory.mktemp("ui-browser") / "studio.duckdb") as url:
        yield url


def _open(context_or_browser, url: str, viewport: dict):
    page = context_or_browser.new_page()
    page.set_viewport_size(viewport)
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    _wait_for_session(page)
    return page, errors


def _wait_for_session(page) -> None:
    """The page-load event stores a session key in the hidden field; actions need it."""
    page.wait_for_function("() => { const el = document.querySelector('#pplx-session-key textarea, "
                           "#pplx-session-key input'); return el && el.value.length >= 16; }", timeout=TIMEOUT_MS)


def _search(page, query: str) -> None:
    box = page.locator("#pplx-query textarea")
    box.fill(query)
    expect(box).to_have_value(query)
    page.locator("#pplx-search").click()


def _in_viewport(page, selector: str) -> bool:
    return page.evaluate("(s) => { const r = document.querySelector(s).getBoundingClientRect(); "
                         "return r.top >= -1 && r.top < window.innerHeight; }", selector)


def _plot_fits(page, elem_id: str) -> tuple[float, float]:
    """(drawn chart width, its container's width) of a visible plot."""
    return page.evaluate("(id) => { const c = document.getElementById(id); const p = c.querySelector("
                         "'.js-plotly-plot .main-svg'); return [p.getBoundingClientRect().width, "
                         "c.getBoundingClientRect().width]; }", elem_id)


def test_examples_search_upload_errors_compare_and_the_desktop_screenshot(browser, studio_url, tmp_path):
    notes = tmp_path / "field-notes.md"
    notes.write_text(NOTES, encoding="utf-8")
    page, page_errors = _open(browser, studio_url, {"width": 1440, "height": 1000})
    # Unavailable models are listed, greyed out and not selectable, with the reason before anyone picks.
    page.locator("#pplx-model-box").get_by_text("Model: all-MiniLM-L6-v2").click()
    expect(page.locator("#pplx-variant")).to_contain_text("standard (all-MiniLM-L6-v2)")
    expect(page.locator("#pplx-model label", has_text="pplx-embed 4B").locator("input")).to_be_disabled()
    expect(page.locator("#pplx-model label", has_text="stand-in").locator("input")).to_be_enabled()
    expect(page.locator("#pplx-unavailable")).to_contain_text("pplx-embed-v1-4B")
    expect(page.locator("#pplx-unavailable")).to_contain_text("hf download perplexity-ai/pplx-embed-v1-4b")
    expect(page.locator("#pplx-runtime")).to_contain_text("ONNX int8")
    expect(page.locator("#pplx-search-stop")).to_be_hidden()

    # An example question runs at once, on the shared sample, with the one-line answer in view.
    question = sample_queries("en", 8)[2]
    page.locator("#pplx-examples").get_by_text(question).click()
    columns = page.locator("#pplx-results .pplx-col")
    expect(columns).to_have_count(4)
    expect(page.locator("#pplx-corpus input")).to_have_value(re.compile("XQuAD sample"))
    expect(page.locator("#pplx-results .pplx-summary")).to_contain_text("of float32's top-10")
    expect(columns.nth(0).locator(".pplx-hit").first).to_contain_text("Oxygen")
    expect(columns.nth(0).locator(".pplx-best").first).to_be_visible()  # why it matched
    page.wait_for_timeout(800)  # the smooth scroll
    assert _in_viewport(page, "#pplx-results .pplx-summary")
    expect(page.locator("#pplx-search-stop")).to_be_hidden()

    # The corpus name is never cut in its box.
    assert page.evaluate("() => { const i = document.querySelector('#pplx-corpus input'); "
                         "return i.scrollWidth <= i.clientWidth + 1; }")

    # The compact rank table, one row per rank, a cell per configuration; back to columns.
    page.locator("#pplx-search-options").get_by_text("More search options").click()
    page.locator("#pplx-view label", has_text="rank table").click()
    expect(page.locator("#pplx-results .pplx-rank-table")).to_be_visible()
    expect(page.locator("#pplx-results .pplx-results")).to_be_hidden()
    assert page.locator("#pplx-results .pplx-rank-table tbody tr").count() == 10
    page.locator("#pplx-view label", has_text="columns").click()
    expect(columns.first).to_be_visible()

    # An error stays readable in the tab (no toast that fades): an empty query.
    page.locator("#pplx-query textarea").fill("")
    page.locator("#pplx-search").click()
    error = page.locator("#pplx-results .pplx-notice.error")
    expect(error).to_contain_text("Type a query first")
    page.wait_for_timeout(8000)
    expect(error).to_be_visible()

    # Corpus tab: upload one file as a private corpus.
    page.get_by_role("tab", name="Corpus").click()
    page.get_by_role("tab", name="Shared sample").click()
    expect(page.locator("#pplx-sample-note")).to_contain_text("en, de, es")
    expect(page.locator("#pplx-ingest")).to_be_hidden()
    page.get_by_role("tab", name="Upload files").click()
    page.locator("#pplx-upload input[type=file]").set_input_files(str(notes))
    expect(page.locator("#pplx-upload")).to_contain_text("field-notes.md")
    page.locator("#pplx-corpus-name textarea").fill("browser notes")
    page.locator("#pplx-ingest").click()
    expect(page.locator("#pplx-corpus-status")).to_contain_text("Added “browser notes”: 1 document,")
    expect(page.locator("#pplx-stop")).to_be_hidden()  # shown only while the work ran
    expect(page.locator("#pplx-rejected")).to_be_hidden()  # nothing was refused
    expect(page.locator("#pplx-embed")).to_be_hidden()  # embedded already: nothing to offer

    # A crawl of a local address is refused naming the server setting, and the message stays.
    page.get_by_role("tab", name="Crawl a site").click()
    page.get_by_role("textbox", name="Start URL").fill("http://127.0.0.1:9/")
    page.locator("#pplx-crawl").click()
    refusal = page.locator("#pplx-corpus-status .pplx-notice.error")
    expect(refusal).to_contain_text("PPLX_DEMO_ALLOW_PRIVATE=1")
    page.wait_for_timeout(6000)
    expect(refusal).to_be_visible()
    expect(page.locator("#pplx-stop")).to_be_hidden()
    page.get_by_role("tab", name="Upload files").click()

    # Search the new corpus: four configurations side by side, the true model on each.
    page.get_by_role("tab", name="Search").click()
    expect(page.locator("#pplx-corpus input")).to_have_value(re.compile("browser notes"))
    _search(page, "How many bytes does a binary vector take?")
    expect(columns.nth(0)).to_contain_text("128 bytes")
    assert [columns.nth(i).get_attribute("data-config") for i in range(4)] == [
        "float32", "int8 calibrated", "binary", "binary + rescore x4 (int8 calibrated)"]
    for i in range(4):
        expect(columns.nth(i).locator(".pplx-col-model")).to_have_text(STAND_IN)
        expect(columns.nth(i).locator(".pplx-hit .rank").first).to_have_text("#1")
    expect(columns.nth(2).locator(".stat", has_text="RAM vs float32")).to_contain_text("32x less")
    expect(columns.nth(0).locator(".snippet").first).not_to_contain_text("#")  # markdown headings blanked

    # Five columns fit side by side at 1440 px, none squeezed below a readable width.
    page.locator("#pplx-configs label", has_text="binary + asymmetric").click()
    _search(page, "How many bytes does a binary vector take?")
    expect(columns).to_have_count(5)
    page.wait_for_timeout(1000)  # the smooth scroll to the results
    tops = page.evaluate("() => Array.from(document.querySelectorAll('#pplx-results .pplx-col')).map(c => c.offsetTop)")
    widths = page.evaluate("() => Array.from(document.querySelectorAll('#pplx-results .pplx-col'))"
                           ".map(c => c.getBoundingClientRect().width)")
    assert len(set(tops)) == 1 and min(widths) >= 220, (tops, widths)
    page.locator("#pplx-configs label", has_text="binary + asymmetric").click()

    # Compare: charts drawn for this session, as wide as their containers (Plotly draws hidden charts at 700 px).
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#pplx-latency .js-plotly-plot .trace.bars").first).to_be_attached()
    expect(page.locator("#pplx-storage .js-plotly-plot .trace.bars").first).to_be_attached()
    expect(page.locator("#pplx-latency")).to_contain_text("Index search (+ rescore)")
    expect(page.locator("#pplx-storage")).to_contain_text("$ per month")
    page.wait_for_timeout(1000)
    for plot in ("pplx-latency", "pplx-storage", "pplx-scale-latency"):
        drawn, box = _plot_fits(page, plot)
        assert abs(drawn - box) <= 24, (plot, drawn, box)
    page.set_viewport_size({"width": 1000, "height": 900})  # and again after the window changes
    page.wait_for_timeout(1200)
    drawn, box = _plot_fits(page, "pplx-latency")
    assert abs(drawn - box) <= 24, (drawn, box)

    # Nothing about the searches is kept in the browser: no run history, no query text.
    stored = page.evaluate("() => JSON.stringify(Object.entries(localStorage))")
    assert "How many bytes" not in stored and question not in stored and "browser notes" not in stored
    assert "run" not in " ".join(k for k, _ in page.evaluate("() => Object.entries(localStorage)")).lower()

    # The screenshot for the README: 1366 x 768 after a search of the shared sample.
    page.set_viewport_size(DESKTOP)
    page.get_by_role("tab", name="Search").click()
    page.locator("#pplx-corpus input").click()
    page.get_by_role("option", name=re.compile("XQuAD sample")).click()
    _search(page, question)
    expect(page.locator("#pplx-results .pplx-summary")).to_be_visible()
    expect(columns.nth(0).locator(".pplx-hit").first).to_contain_text("Oxygen")
    page.mouse.move(0, 0)
    page.wait_for_timeout(1000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 50_000

    # The private corpus survives a reload of this browser, and another browser never sees it.
    page.reload()
    _wait_for_session(page)
    page.get_by_role("tab", name="Corpus").click()
    expect(page.locator("#pplx-corpora")).to_contain_text("browser notes")
    page.get_by_role("tab", name="Compare").click()  # and the session's charts are still there
    expect(page.locator("#pplx-latency")).to_contain_text("median over")
    other, _ = _open(browser.new_context(), studio_url, DESKTOP)
    other.get_by_role("tab", name="Corpus").click()
    expect(other.locator("#pplx-corpora")).to_contain_text("XQuAD sample")
    expect(other.locator("#pplx-corpora")).not_to_contain_text("browser notes")
    other.context.close()
    assert not page_errors, page_errors
    page.close()


def test_a_phone_sees_every_tab_a_rank_table_and_charts_that_fit(browser, studio_url):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page, page_errors = _open(context, studio_url, PHONE)
    for name in ("Search", "Corpus", "Compare", "Evaluate", "About"):  # no "more tabs" menu hides one
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    expect(page.locator("#pplx-model")).to_be_hidden()  # the pickers are collapsed
    _search(page, sample_queries("es", 8)[0])
    table = page.locator("#pplx-results .pplx-rank-table")
    expect(table).to_be_visible()
    expect(page.locator("#pplx-results .pplx-results")).to_be_hidden()
    page.wait_for_timeout(800)
    assert _in_viewport(page, "#pplx-results .pplx-summary")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    # every configuration's column is in view: the table needs no sideways scrolling inside its wrapper
    assert page.evaluate("() => { const w = document.querySelector('#pplx-results .pplx-rank-table-wrap');"
                         " return w.scrollWidth <= w.clientWidth + 1; }")
    page.screenshot(path=str(SCREENSHOT_PHONE))
    assert SCREENSHOT_PHONE.stat().st_size > 30_000
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#pplx-latency .js-plotly-plot .trace.bars").first).to_be_attached()
    page.wait_for_timeout(1000)
    drawn, box = _plot_fits(page, "pplx-latency")
    assert abs(drawn - box) <= 24 and box <= PHONE["width"], (drawn, box)
    assert not page_errors, page_errors
    context.close()


def test_private_corpora_survive_a_server_restart(browser, tmp_path):
    db, port = tmp_path / "restart.duckdb", free_port()
    context = browser.new_context()
    notes = tmp_path / "keep.md"
    notes.write_text("# Keep me\n\nThe harbour lantern burns all night for the returning boats.", encoding="utf-8")
    with running_studio(db, port=port) as url:
        page, _ = _open(context, url, DESKTOP)
        page.get_by_role("tab", name="Corpus").click()
        page.locator("#pplx-upload input[type=file]").set_input_files(str(notes))
        page.locator("#pplx-corpus-name textarea").fill("kept across restarts")
        page.locator("#pplx-ingest").click()
        expect(page.locator("#pplx-corpus-status")).to_contain_text("Added “kept across restarts”")
        page.close()
    with running_studio(db, port=port) as url:  # same database, same origin: same browser storage
        page, _ = _open(context, url, DESKTOP)
        page.get_by_role("tab", name="Corpus").click()
        expect(page.locator("#pplx-corpora")).to_contain_text("kept across restarts")
    context.close()
