"""HTML and table views of domain results. Every piece of user or corpus text is escaped here.

Pure functions: data in, markup string out. Markup is built only from our own constants; text from
documents, queries, titles and URLs always goes through `html.escape` (and URLs through a scheme
check), so an uploaded page cannot inject markup or script into the studio.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pplx_demo.charts import colour_for

SNIPPET_CHARS = 260
_WORD = re.compile(r"\w+", re.UNICODE)
# Scripts written without spaces: a single character is a meaningful term there.
_NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")
_STOPWORDS = frozenset("""a an and are as at be by for from has have how in is it its of on or that the this
to was were what when where which who why with der die das und ist el la los las de del que y en le les des
et un une""".split())


def esc(text: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if text is None else str(text), quote=True)


def query_terms(query: str) -> list[str]:
    """Words of the query worth highlighting (no stop words, no 1-letter words except CJK/Thai)."""
    terms: list[str] = []
    for w in _WORD.findall(query or ""):
        lw = w.lower()
        if lw in _STOPWORDS or (len(w) < 2 and not _NO_SPACE_SCRIPT.search(w)):
            continue
        if lw not in terms:
            terms.append(lw)
    return terms


def _term_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    # Longest first; a term marks the whole word it starts ("discover" marks "discovered"), except in
    # scripts written without spaces, where a word boundary means nothing.
    parts = []
    for t in sorted(terms, key=len, reverse=True):
        parts.append(re.escape(t) if _NO_SPACE_SCRIPT.search(t) else r"(?<!\w)" + re.escape(t) + r"\w*")
    return re.compile("|".join(parts), re.IGNORECASE | re.UNICODE)


def snippet_window(text: str, terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """A window of about `width` chars around the first query term (or the start), with ellipses."""
    text = " ".join((text or "").split())
    if len(text) <= width:
        return text
    pattern = _term_pattern(terms)
    m = pattern.search(text) if pattern else None
    start = 0 if m is None else max(0, m.start() - width // 4)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("… " if start > 0 else "") + text[start:end] + (" …" if end < len(text) else "")


def highlight(text: str, terms: Sequence[str]) -> str:
    """Escaped `text` with every query term wrapped in <mark> (matching is done on the raw text)."""
    pattern = _term_pattern(terms)
    if pattern is None:
        return esc(text)
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(esc(text[pos:m.start()]))
        out.append("<mark>" + esc(m.group(0)) + "</mark>")
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def safe_href(uri: str | None) -> str | None:
    """The URI if it is an absolute http(s) link, else None (no javascript:, data:, file: links)."""
    if not uri:
        return None
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        return None
    return uri.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def movement(rank: int, baseline_rank: int | None, is_baseline: bool) -> tuple[str, str, str]:
    """(css class, badge text, tooltip) saying where this hit sits in the float32 column."""
    if is_baseline:
        return "", "", ""
    if baseline_rank is None:
        return "new", "new", "not in the float32 top-k"
    if baseline_rank == rank:
        return "same", "=", f"same rank in float32 (#{baseline_rank})"
    if baseline_rank > rank:
        return "up", f"▲{baseline_rank - rank}", f"#{baseline_rank} in float32: moved up"
    return "down", f"▼{rank - baseline_rank}", f"#{baseline_rank} in float32: moved down"


def notice_html(text: str, kind: str = "info") -> str:
    """A small boxed message ('info', 'warn' or 'error'); `text` is escaped."""
    return f"<div class='pplx-notice {esc(kind)}'>{esc(text)}</div>"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 chunk', '3 chunks', '1,200 queries' (pass `many` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def stats_html(title: str, stats: Mapping[str, Any]) -> str:
    """Corpus statistics as a two-column table with a caption (values escaped)."""
    rows = "".join(f"<tr><th scope='row'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in stats.items())
    return f"<table class='pplx-kv'><caption>{esc(title)}</caption><tbody>{rows}</tbody></table>"


# Columns of the evaluation table: (key in runner.report_rows, header, number format)
EVAL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("configuration", "configuration", ""), ("model", "model", ""), ("variant", "variant", ""),
    ("ndcg@10", "nDCG@10", ".2f"), ("pct_ci", "nDCG@10 % of float32 [95% interval]", ">"),
    ("recall@10", "Recall@10", ".2f"), ("recall@100", "Recall@100", ".2f"), ("mrr@10", "MRR@10", ".2f"),
    ("bytes_per_vector", "bytes / vector", ",d"), ("search_ms", "ms / query", ".3f"),
)


def _cell(value: Any, spec: str) -> str:
    if value is None or value == "":
        return "–"
    if spec == ">":  # text aligned as a number (a value with its interval)
        return esc(value)
    if spec:
        try:
            return format(int(value) if spec.endswith("d") else float(value), spec)
        except (TypeError, ValueError):
            return esc(value)
    return esc(value)


def eval_table_html(caption: str, rows: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> str:
    """One evaluation report as a table: the dataset in the caption, one row per configuration
    (metrics x100), the model and variant on every row; `notes` are printed under it."""
    head = "".join(f"<th scope='col' class='{'num' if spec else 'txt'}'>{esc(title)}</th>"
                   for _, title, spec in EVAL_COLUMNS)
    body = []
    for row in rows:
        cells = "".join(f"<td class='{'num' if spec else 'txt'}'>{_cell(row.get(key), spec)}</td>"
                        for key, _, spec in EVAL_COLUMNS)
        colour = colour_for(row.get("config"))
        body.append(f"<tr style='--pplx-config:{colour}'>{cells}</tr>")
    foot = "".join(f"<p class='pplx-table-note'>{esc(n)}</p>" for n in notes)
    return (f"<div class='pplx-table-wrap'><table class='pplx-eval'><caption>{esc(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{foot}</div>")


def _move_badge(moved: int) -> str:
    if moved > 0:
        return f"<span class='move up' title='moved up with late chunking'>▲{moved}</span>"
    if moved < 0:
        return f"<span class='move down' title='moved down with late chunking'>▼{-moved}</span>"
    return "<span class='move same' title='same rank'>=</span>"


def contextual_html(demo: Any, caveat: str = "") -> str:
    """The illustrative article's sentences ranked for one query with independent chunks and with
    late chunking, side by side; sentences that moved carry a badge, the biggest climb is marked."""
    terms = query_terms(demo.query)
    moves = demo.moves()
    best = moves[0] if moves and moves[0].moved > 0 else None
    if best is not None:
        summary = (f"For “{demo.query}”, late chunking moved {plural(len(moves), 'sentence')} of "
                   f"{len(demo.chunks)}. Biggest climb: sentence {best.order + 1}, from #{best.standard_rank} "
                   f"to #{best.contextual_rank}.")
    elif moves:
        summary = f"For “{demo.query}”, late chunking reordered {plural(len(moves), 'sentence')} but none climbed."
    else:
        summary = f"For “{demo.query}”, both rankings are the same."

    def side(variant: str, title: str, model: str) -> str:
        items = []
        for c in demo.ranking(variant):
            rank = c.standard_rank if variant == "standard" else c.contextual_rank
            score = c.standard_score if variant == "standard" else c.contextual_score
            badge = _move_badge(c.moved) if variant == "contextual" else ""
            cls = " best" if best is not None and c.order == best.order else ""
            items.append(f"<li class='pplx-hit{cls}'><div class='pplx-hit-top'><span class='rank'>#{rank}</span>"
                         f"<span class='score'>{score:.4f}</span>{badge}<span class='title'>sentence "
                         f"{c.order + 1}</span></div><div class='snippet'>{highlight(c.text, terms)}</div></li>")
        return (f"<div class='pplx-col'><div class='pplx-col-head'><div class='pplx-col-label'>{esc(title)}</div>"
                f"<div class='pplx-col-model'>{esc(model)}</div></div>"
                f"<ol class='pplx-hits'>{''.join(items)}</ol></div>")

    parts = [notice_html(summary)]
    if caveat:
        parts.append(notice_html(caveat, "warn"))
    parts.append("<div class='pplx-results pplx-pair'>"
                 + side("standard", "Independent chunks", demo.model_name)
                 + side("contextual", "Late chunking", demo.contextual_model_name) + "</div>")
    return "".join(parts)
