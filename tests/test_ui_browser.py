"""The studio in a real browser (Debian's Chromium driven by Playwright): upload, search side by side,
see the charts, and save the screenshot the README shows."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from ui_server import running_studio

from pplx_demo.ingest.sample import sample_queries
from pplx_demo.models import MODELS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The README's picture is refreshed only on request, so a test run leaves the tree clean:
#   PPLX_DEMO_UPDATE_SCREENSHOT=1 python -m pytest tests/test_ui_browser.py
_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = (_ROOT / "docs" / "screenshot.png" if os.environ.get("PPLX_DEMO_UPDATE_SCREENSHOT")
              else _ROOT / "tests" / "artifacts" / "screenshot.png")
STAND_IN = MODELS["minilm-l6"].display_name
TIMEOUT_MS = 90_000

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


def _wait_for_session(page) -> None:
    """The page-load event stores a session key in the hidden field; actions need it."""
    page.wait_for_function("() => { const el = document.querySelector('#pplx-session-key textarea, "
                           "#pplx-session-key input'); return el && el.value.length >= 16; }", timeout=TIMEOUT_MS)


def _search(page, query: str) -> None:
    box = page.locator("#pplx-query textarea")
    box.fill(query)
    expect(box).to_have_value(query)
    page.locator("#pplx-search").click()


def test_upload_search_side_by_side_charts_and_screenshot(browser, studio_url, tmp_path):
    notes = tmp_path / "field-notes.md"
    notes.write_text(NOTES, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1440, "height": 1280})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(studio_url)
    expect(page.locator("#pplx-upload")).to_be_visible()
    _wait_for_session(page)
    # The Variant choices name the model that really runs; idle, there is nothing to stop.
    expect(page.locator("#pplx-variant")).to_contain_text("standard (all-MiniLM-L6-v2)")
    expect(page.locator("#pplx-variant")).not_to_contain_text("pplx-embed-v1")
    expect(page.locator("#pplx-stop")).to_be_hidden()
    expect(page.locator("#pplx-rejected")).to_be_hidden()

    # The shared sample needs no name, chunking or button: only what applies is shown.
    page.get_by_role("tab", name="Shared sample").click()
    expect(page.locator("#pplx-sample-note")).to_contain_text("en, de, es")
    expect(page.locator("#pplx-corpus-name")).to_be_hidden()
    expect(page.locator("#pplx-ingest")).to_be_hidden()
    page.get_by_role("tab", name="Upload files").click()
    expect(page.locator("#pplx-corpus-name")).to_be_visible()

    # Corpus tab: upload one file as a private corpus.
    page.locator("#pplx-upload input[type=file]").set_input_files(str(notes))
    expect(page.locator("#pplx-upload")).to_contain_text("field-notes.md")
    page.locator("#pplx-corpus-name textarea").fill("browser notes")
    page.locator("#pplx-ingest").click()
    expect(page.locator("#pplx-corpus-status")).to_contain_text("Added “browser notes”: 1 document,")
    expect(page.locator("#pplx-corpus-stats")).to_contain_text("documents")
    expect(page.locator("#pplx-stop")).to_be_hidden()  # shown only while the work ran
    expect(page.locator("#pplx-rejected")).to_be_hidden()  # nothing was refused
    expect(page.locator("#pplx-embed")).to_contain_text("“browser notes”")  # it says which corpus

    # A crawl of a local address is refused naming the server setting; Stop goes away after the error.
    page.get_by_role("tab", name="Crawl a site").click()
    expect(page.locator("#pplx-ingest")).to_be_hidden()
    page.get_by_role("textbox", name="Start URL").fill("http://127.0.0.1:9/")
    page.locator("#pplx-crawl").click()
    expect(page.get_by_text(re.compile("PPLX_DEMO_ALLOW_PRIVATE=1")).first).to_be_visible()
    expect(page.locator("#pplx-stop")).to_be_hidden()
    page.get_by_role("tab", name="Upload files").click()

    # Search tab: the new corpus is selected; four configurations side by side (plain binary included).
    page.get_by_role("tab", name="Search").click()
    expect(page.locator("#pplx-corpus input")).to_have_value(re.compile("browser notes"))
    _search(page, "How many bytes does a binary vector take?")
    columns = page.locator("#pplx-results .pplx-col")
    expect(columns).to_have_count(4)
    assert [columns.nth(i).get_attribute("data-config") for i in range(4)] == [
        "float32", "int8 calibrated", "binary", "binary + rescore x4 (int8 calibrated)"]
    for i in range(4):
        col = columns.nth(i)
        expect(col.locator(".pplx-col-model")).to_have_text(STAND_IN)
        expect(col.locator(".pplx-hit").first).to_contain_text("128 bytes")
        expect(col.locator(".pplx-hit .rank").first).to_have_text("#1")
    expect(columns.nth(0).locator("mark").first).to_be_visible()  # query terms highlighted
    expect(columns.nth(2).locator(".stat", has_text="size")).to_contain_text("32x smaller")

    # Five columns fit side by side at 1440 px, none squeezed below a readable width.
    page.locator("#pplx-configs label", has_text="binary + asymmetric").click()
    _search(page, "How many bytes does a binary vector take?")
    expect(columns).to_have_count(5)
    boxes = [columns.nth(i).bounding_box() for i in range(5)]
    assert len({round(b["y"]) for b in boxes}) == 1 and min(b["width"] for b in boxes) >= 220
    assert page.evaluate("() => { const r = document.querySelector('#pplx-results .pplx-results'); "
                         "return r.scrollWidth <= r.clientWidth; }")
    page.locator("#pplx-configs label", has_text="binary + asymmetric").click()

    # Compare tab: the latency and storage charts are drawn by plotly.
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#pplx-latency .js-plotly-plot .trace.bars").first).to_be_attached()
    expect(page.locator("#pplx-storage .js-plotly-plot .trace.bars").first).to_be_attached()
    expect(page.locator("#pplx-latency")).to_contain_text("Index search (+ rescore)")
    expect(page.locator("#pplx-latency")).to_contain_text("all-MiniLM-L6-v2")

    # The screenshot for the README: the shared sample corpus and one of its example questions.
    page.get_by_role("tab", name="Search").click()
    page.locator("#pplx-corpus input").click()
    page.get_by_role("option", name=re.compile("XQuAD sample")).click()
    expect(page.locator("#pplx-corpus input")).to_have_value(re.compile("XQuAD sample"))
    question = sample_queries("en", 8)[2]
    _search(page, question)
    expect(columns).to_have_count(4)
    expect(columns.nth(0).locator(".pplx-hit").first).to_contain_text("Oxygen")
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 50_000

    # A model that is not installed stays visible, says why, and its actions are disabled.
    page.locator("#pplx-model label", has_text="pplx-embed 4B").click()
    expect(page.locator("#pplx-model-note")).to_contain_text("not available here")
    expect(page.locator("#pplx-model-note")).to_contain_text("To enable it")
    expect(page.locator("#pplx-search")).to_be_disabled()
    expect(page.locator("#pplx-variant")).to_contain_text("pplx-embed-context-v1-4B")
    page.locator("#pplx-model label", has_text="stand-in").click()
    expect(page.locator("#pplx-search")).to_be_enabled()

    # The private corpus survives a reload of this browser, and another browser never sees it.
    page.reload()
    _wait_for_session(page)
    expect(page.locator("#pplx-corpora")).to_contain_text("browser notes")
    other = browser.new_context().new_page()
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(studio_url)
    _wait_for_session(other)
    expect(other.locator("#pplx-corpora")).to_contain_text("XQuAD sample")
    expect(other.locator("#pplx-corpora")).not_to_contain_text("browser notes")
    other.context.close()
    assert not page_errors, page_errors
    page.close()
