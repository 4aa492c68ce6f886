"""HTML of a search response: one column per configuration, a compact rank table, snippets that show why.

Pure functions (data in, escaped markup out) like `views`. A response renders as both views; the page
shows the columns on wide screens and the rank table on phones, or the one the reader picks (the
container's `data-view`, set in the browser without a round trip). Snippets are cut around the hit's
sentence closest to the query (when the search explained its hits), with that sentence and the query
terms marked; markdown syntax (headings, emphasis, links, code, tables) is blanked first, never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pplx_demo.charts import colour_for
from pplx_demo.deployment import bytes_split
from pplx_demo.storage import human_bytes
from pplx_demo.ui.views import _term_pattern, esc, movement, notice_html, query_terms, safe_href

SNIPPET_CHARS = 280
STAGE_NAMES = {"search": "search", "rescore": "rescore", "bm25": "BM25", "fuse": "RRF fusion",
               "fetch_text": "fetch text"}
Pages = Mapping[int, tuple[int, int]]  # chunk id -> (first page, last page) of PDF hits

_BLANK = [
    re.compile(r"(?m)^[ \t]*#{1,6}(?=[ \t])"),  # headings
    re.compile(r"(?m)^[ \t]*>+"),  # quotes
    re.compile(r"(?m)^[ \t]*[-*+](?=[ \t])"),  # bullets
    re.compile(r"(?m)^[ \t|:\-]{3,}$"),  # table rules
    re.compile(r"\*\*|__|~~|`+|\|"),  # emphasis, code, table pipes
]
_LINK = re.compile(r"(!?\[)([^\]\n]{0,300})(\]\([^)\s]{0,2000}\))")


def clean_markdown(text: str) -> str:
    """`text` with markdown syntax replaced by spaces (same length, so character offsets stay valid)."""
    out = _LINK.sub(lambda m: " " * len(m.group(1)) + m.group(2) + " " * len(m.group(3)), text or "")
    for pattern in _BLANK:
        out = pattern.sub(lambda m: " " * len(m.group(0)), out)
    return out


def _window(text: str, focus: tuple[int, int] | None, width: int) -> tuple[int, int]:
    """[start, end) of about `width` characters holding `focus` (centred), cut at spaces."""
    n = len(text)
    if n <= width:
        return 0, n
    if focus is None:
        start = 0
    else:
        a, b = focus
        start = a - max(0, width - (b - a)) // 2 if b - a <= width else a
        start = max(0, min(start, n - width))
    end = min(n, start + width)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 and space + 1 < end else start
    if end < n:
        space = text.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return start, end


def snippet_html(text: str, best: tuple[int, int] | None = None, marks: Sequence[tuple[int, int]] = (),
                 width: int = SNIPPET_CHARS, best_title: str = "") -> str:
    """Escaped snippet of `text`: a window centred on `best` (else the first mark), the best span wrapped in
    <span class='pplx-best'> and every mark span in <mark>; whitespace collapsed, markdown blanked."""
    raw = clean_markdown(text or "")
    focus = best if best is not None else (min(marks) if marks else None)
    start, end = _window(raw, focus, width)
    edges = {start, end}
    spans = [(max(a, start), min(b, end)) for a, b in marks if b > start and a < end and b > a]
    for a, b in spans:
        edges.update((a, b))
    bs = (max(best[0], start), min(best[1], end)) if best is not None and best[1] > start and best[0] < end else None
    if bs is not None:
        edges.update(bs)
    cuts = sorted(e for e in edges if start <= e <= end)
    out: list[str] = ["… "] if start > 0 else []
    in_best = False
    for a, b in zip(cuts, cuts[1:]):
        if bs is not None and not in_best and bs[0] <= a < bs[1]:
            out.append(f"<span class='pplx-best' title='{esc(best_title)}'>")
            in_best = True
        piece = esc(re.sub(r"\s+", " ", raw[a:b]))
        if any(x <= a and b <= y for x, y in spans) and piece.strip():
            piece = f"<mark>{piece}</mark>"
        out.append(piece)
        if in_best and b >= bs[1]:  # type: ignore[index]
            out.append("</span>")
            in_best = False
    if in_best:
        out.append("</span>")
    body = re.sub(r" {2,}", " ", "".join(out)).strip()
    return body + (" …" if end < len(raw) else "")


def _term_marks(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    pattern = _term_pattern(terms)
    return [(m.start(), m.end()) for m in pattern.finditer(text)] if pattern else []


def hit_snippet(hit: Any, terms: Sequence[str]) -> tuple[str, str]:
    """(snippet html, 'why' line) for a hit: centred on its best sentence when it was explained."""
    e = getattr(hit, "explanation", None)
    text = hit.text or ""
    if e is None:
        extra = [t for t in getattr(hit, "matched_terms", []) or [] if t not in terms]
        return snippet_html(text, None, _term_marks(text, list(terms) + extra)), ""
    best = (e.best.char_start, e.best.char_end) if e.best is not None else None
    marks = [(t.char_start, t.char_end) for t in e.terms] or _term_marks(text, terms)
    why = []
    if e.best is not None:
        where = f"sentence {e.best_position + 1} of {e.n_sentences}" if e.best_position is not None else "a sentence"
        why.append(f"closest sentence: {where}, cosine {e.best.score:.2f}")
    found = list(dict.fromkeys(t.term for t in e.terms))
    if found:
        why.append("BM25 terms: " + ", ".join(found[:8]))
    title = f"the sentence closest to the query (cosine {e.best.score:.2f})" if e.best is not None else ""
    return snippet_html(text, best, marks, best_title=title), " · ".join(why)


def page_label(pages: Pages | None, chunk_id: int) -> str:
    if not pages or chunk_id not in pages:
        return ""
    first, last = pages[chunk_id]
    return f"p. {first}" if first == last else f"pp. {first}–{last}"


def _stat(name: str, value: str, tip: str = "") -> str:
    return f"<div class='stat' title='{esc(tip)}'><span>{esc(name)}</span><b>{esc(value)}</b></div>"


def _fmt_opt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def _timings_html(timings: Mapping[str, float]) -> str:
    """This column's own stages; 'build' (first use of a configuration) is shown apart: not per query."""
    parts = [f"<span>{esc(STAGE_NAMES.get(stage, stage))} <b>{ms:.1f}</b> ms</span>"
             for stage, ms in timings.items() if stage not in ("total", "build")]
    total = timings.get("total", sum(v for k, v in timings.items() if k != "build"))
    parts.append(f"<span class='total'>total <b>{total:.1f}</b> ms</span>")
    if "build" in timings:
        parts.append(f"<span title='one-off: building this index on first use, not part of the query'>(index "
                     f"built in {timings['build']:.1f} ms)</span>")
    return "".join(parts)


def ram_ratio_text(ram: int, reference: int) -> str:
    if not ram or not reference or ram == reference:
        return "same" if ram == reference else "–"
    times = reference / ram
    if times >= 1:
        return f"{times:.0f}x less" if times >= 10 else f"{times:.1f}x less"
    return f"{1 / times:.1f}x more"


def column_head_html(column: Any, model_name: str, colour: str, is_baseline: bool, k: int) -> str:
    st = column.storage
    full_dim = max(1, st.float32_bytes_per_vector // 4)
    split = bytes_split(column.config, full_dim)
    f32 = 4 * full_dim
    ratio = "reference" if is_baseline else ram_ratio_text(split.ram_bytes_per_vector, f32)
    stats = (_stat("RAM / vector", human_bytes(split.ram_bytes_per_vector),
                   f"bytes every query scans, kept in RAM, per vector: {split.ram_holds}")
             + _stat("disk / vector", human_bytes(split.disk_bytes_per_vector) if split.disk_bytes_per_vector
                     else "–", split.disk_holds or "nothing: everything this configuration reads is in RAM")
             + _stat("RAM vs float32", ratio, f"full-size float32 RAM per vector ({human_bytes(f32)}) divided by "
                     "this configuration's RAM per vector")
             + _stat("overlap@k", "–" if is_baseline else _fmt_opt(column.overlap_at_k),
                     f"share of float32's top-{k} that this column also found (1.00 = the same {k} hits)")
             + _stat("rank corr.", "–" if is_baseline else _fmt_opt(getattr(column, "rank_correlation", None)),
                     "Spearman rank correlation with the float32 column over the hits both found; '–' when they "
                     "share fewer than 5 hits (too few for the number to mean anything)")
             + _stat("index", human_bytes(st.index_nbytes), "measured size of this index's arrays in this "
                     "process (binary + rescore holds its rescoring codes here too; a deployment keeps those on "
                     "disk)"))
    return (f"<div class='pplx-col-head' style='border-top-color:{colour}'>"
            f"<div class='pplx-col-label'>{esc(column.label)}</div>"
            f"<div class='pplx-col-model' title='model that produced this column'>{esc(model_name)}</div>"
            f"<div class='pplx-stats'>{stats}</div>"
            f"<div class='pplx-timings'>{_timings_html(column.timings_ms)}</div></div>")


def _title_html(hit: Any, pages: Pages | None) -> str:
    href = safe_href(getattr(hit, "uri", None))
    title = esc(hit.title or hit.uri or "untitled")
    link = (f"<a href='{esc(href)}' target='_blank' rel='noopener noreferrer nofollow'>{title}</a>"
            if href else f"<span>{title}</span>")
    page = page_label(pages, hit.chunk_id)
    return f"<span class='title'>{link}</span>" + (f"<span class='page'>{esc(page)}</span>" if page else "")


def _legs_html(hit: Any) -> str:
    if getattr(hit, "dense_rank", None) is None and getattr(hit, "bm25_rank", None) is None:
        return ""
    dense = f"#{hit.dense_rank}" if hit.dense_rank is not None else "–"
    bm25 = f"#{hit.bm25_rank}" if hit.bm25_rank is not None else "–"
    return (f"<span class='legs' title='rank in each leg before fusion (– = not among that leg&#x27;s "
            f"candidates)'>dense {dense} · BM25 {bm25}</span>")


def hit_html(hit: Any, terms: Sequence[str], is_baseline: bool, pages: Pages | None,
             memo: dict | None = None) -> str:
    """One hit; `memo` shares the snippets of one response (a chunk found by several columns is cut once)."""
    cls, badge, tip = movement(hit.rank, hit.baseline_rank, is_baseline)
    badge_html = f"<span class='move {cls}' title='{esc(tip)}'>{esc(badge)}</span>" if badge else ""
    key = (hit.chunk_id, tuple(getattr(hit, "matched_terms", None) or ()))
    if memo is not None and key in memo:
        snippet, why = memo[key]
    else:
        snippet, why = hit_snippet(hit, terms)
        if memo is not None:
            memo[key] = (snippet, why)
    why_html = f"<div class='why'>{esc(why)}</div>" if why else ""
    return ("<li class='pplx-hit'>"
            f"<div class='pplx-hit-top'><span class='rank'>#{hit.rank}</span>"
            f"<span class='score' title='score'>{hit.score:.4f}</span>{badge_html}{_legs_html(hit)}"
            f"{_title_html(hit, pages)}</div><div class='snippet'>{snippet}</div>{why_html}</li>")


def column_html(column: Any, model_name: str, terms: Sequence[str], colour: str, is_baseline: bool,
                k: int = 10, pages: Pages | None = None, memo: dict | None = None) -> str:
    """One result column: header (configuration, true model name, storage and agreement), timings, hits."""
    items = "".join(hit_html(h, terms, is_baseline, pages, memo) for h in column.hits) or \
        "<li class='pplx-empty'>no results</li>"
    return (f"<div class='pplx-col' data-config='{esc(column.label)}'>"
            f"{column_head_html(column, model_name, colour, is_baseline, k)}<ol class='pplx-hits'>{items}</ol></div>")


def rank_table_html(response: Any, baseline_label: str | None, pages: Pages | None = None) -> str:
    """Rows = ranks 1..k, one cell per configuration (the hit at that rank, moved up / down / new against
    float32), so the configurations line up; float32 first."""
    cols = response.columns
    if not cols:
        return ""
    head = "".join(f"<th scope='col' style='border-top:4px solid {colour_for(c.config)}'>{esc(c.label)}</th>"
                   for c in cols)
    depth = max((len(c.hits) for c in cols), default=0)
    rows = []
    for i in range(depth):
        cells = []
        for c in cols:
            if i >= len(c.hits):
                cells.append("<td class='pplx-empty'>–</td>")
                continue
            h = c.hits[i]
            cls, badge, tip = movement(h.rank, h.baseline_rank, c.label == baseline_label)
            badge_html = f"<span class='move {cls}' title='{esc(tip)}'>{esc(badge)}</span> " if badge else ""
            page = page_label(pages, h.chunk_id)
            title = esc(h.title or h.uri or "untitled") + (f" <span class='page'>{esc(page)}</span>" if page else "")
            cells.append(f"<td>{badge_html}<span class='t' title='{esc(h.title)}'>{title}</span></td>")
        rows.append(f"<tr><th scope='row'>#{i + 1}</th>{''.join(cells)}</tr>")
    return (f"<div class='pplx-rank-table-wrap'><table class='pplx-rank-table'><caption>Rank by rank: each "
            f"configuration's hit at that rank, moved against float32</caption><thead><tr><th scope='col'>rank</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def shared_timing_html(response: Any) -> str:
    """The stages done once for every column: embedding the query, explaining the hits."""
    parts = [f"embed query <b>{response.embed_query_ms:.1f}</b> ms"]
    explain = getattr(response, "explain_ms", None)
    if explain is not None:
        parts.append(f"why it matched <b>{explain:.1f}</b> ms")
    return (f"<div class='pplx-shared-timing'>{' · '.join(parts)} · once for every column, with "
            f"{esc(response.model_name)}</div>")


def results_html(response: Any, query: str, baseline_label: str | None = None,
                 notices: Sequence[tuple[str, str]] = (), pages: Pages | None = None, summary: str = "") -> str:
    """The one-line summary, notices, shared timings, then the columns and the rank table (CSS shows one)."""
    terms = query_terms(query)
    labels = [c.label for c in response.columns]
    baseline = baseline_label if baseline_label is not None else (labels[0] if labels else None)
    memo: dict = {}
    cols = [column_html(c, response.model_name, terms, colour_for(c.config), c.label == baseline, response.k, pages,
                        memo) for c in response.columns]
    head = f"<div class='pplx-summary' role='status'>{esc(summary)}</div>" if summary else ""
    head += "".join(notice_html(text, kind) for text, kind in notices)
    return (head + shared_timing_html(response)
            + f"<div class='pplx-views'><div class='pplx-results' style='--pplx-cols:{max(1, len(cols))}'>"
            + "".join(cols) + "</div>" + rank_table_html(response, baseline, pages) + "</div>")
