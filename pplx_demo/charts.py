"""Figure builders: pure functions from result data to plotly figures.

Each public builder is wrapped by `safe_figure`, so a plot that cannot be drawn becomes a figure
carrying a short message instead of an exception that would abort the whole UI callback.
Inputs are the domain dataclasses (search columns, evaluation results) read by attribute.
"""

from __future__ import annotations

import functools
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

log = logging.getLogger(__name__)

# One colour per configuration family, so a configuration looks the same in every chart.
_PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
_STAGE_COLOURS = {"embed_query": "#6366f1", "search": "#0ea5e9", "rescore": "#f97316", "fetch_text": "#84cc16"}
# Stages that are not part of a query's latency (one-off index builds) or are the sum itself.
_NOT_STAGES = frozenset({"total", "build"})
_LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=64, r=20, t=48, b=40),
               font=dict(family="Inter, system-ui, sans-serif", size=12),
               legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0))


def _wrap(label: str) -> str:
    """Break a long configuration label over lines so axis labels need no rotation."""
    return label.replace(" + ", "<br>+ ").replace(" @", "<br>@")


def _byte_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Log-axis ticks at powers of 1000 between lo and hi, labelled '1 kB', '1 MB', ..."""
    vals, text = [], []
    exp = max(0, int(math.floor(math.log10(max(lo, 1.0)) / 3)))
    while 1000.0 ** exp <= hi * 10:
        vals.append(1000.0 ** exp)
        text.append(format_bytes(1000.0 ** exp).replace(".0", ""))
        exp += 1
    return vals, text


def message_figure(text: str, title: str = "") -> go.Figure:
    """An empty figure that shows `text` in its middle (for 'no data yet' and errors)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#475569"))
    fig.update_layout(**_LAYOUT, title=title or None)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def safe_figure(fn: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
    """Turn any exception raised while building a figure into a message figure."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> go.Figure:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a broken chart must not break the callback
            log.exception("chart %s failed", fn.__name__)
            return message_figure(f"Could not draw this chart: {type(exc).__name__}: {exc}")

    return wrapper


def colour_for(label: str, labels: Sequence[str]) -> str:
    """Stable colour of `label` within the ordered list of labels shown together."""
    try:
        i = list(labels).index(label)
    except ValueError:
        i = abs(hash(label))
    return _PALETTE[i % len(_PALETTE)]


def _labels_in_order(columns: Iterable[Any]) -> list[str]:
    seen: list[str] = []
    for c in columns:
        if c.label not in seen:
            seen.append(c.label)
    return seen


def _stage_names(timings: Iterable[Mapping[str, float]]) -> list[str]:
    stages: list[str] = []
    for t in timings:
        for name in t:
            if name not in _NOT_STAGES and name not in stages:
                stages.append(name)
    return stages


@safe_figure
def latency_figure(runs: Sequence[Sequence[Any]]) -> go.Figure:
    """Median per-stage latency (ms) of each configuration over the given search runs, stacked.

    `runs` is a list of runs, each a list of columns with `.label` and `.timings_ms` (stage -> ms).
    """
    columns = [c for run in runs for c in run]
    if not columns:
        return message_figure("Run a search to see latency per configuration.", "Latency per configuration")
    labels = _labels_in_order(columns)
    by_label = {lab: [c.timings_ms for c in columns if c.label == lab] for lab in labels}
    stages = _stage_names(c.timings_ms for c in columns)
    fig = go.Figure()
    for stage in stages:
        ys = [statistics.median([t.get(stage, 0.0) for t in by_label[lab]]) for lab in labels]
        name = stage.replace("_", " ")
        fig.add_bar(name=name, x=[_wrap(x) for x in labels], y=ys, marker_color=_STAGE_COLOURS.get(stage),
                    hovertemplate="%{x}<br>" + name + ": %{y:.2f} ms<extra></extra>")
    totals = [statistics.median([_total(t) for t in by_label[lab]]) for lab in labels]
    fig.add_scatter(x=[_wrap(x) for x in labels], y=totals, mode="text", text=[f"{v:.1f} ms" for v in totals],
                    textposition="top center", showlegend=False, hoverinfo="skip")
    n = len(runs)
    fig.update_layout(**_LAYOUT, barmode="stack",
                      title=f"Latency per query (median of {n} search{'es' if n != 1 else ''})")
    fig.update_yaxes(title_text="milliseconds", range=[0, max(totals + [1e-3]) * 1.25])
    return fig


def _total(timings: Mapping[str, float]) -> float:
    if "total" in timings:
        return float(timings["total"])
    return float(sum(v for k, v in timings.items() if k not in _NOT_STAGES))


_PROJECTION_ORDER = ("1M", "100M", "1B")


@safe_figure
def storage_figure(columns: Sequence[Any], corpus_vectors: int | None = None) -> go.Figure:
    """Index bytes per configuration on a log axis: this corpus, then projections to 1M..1B vectors.

    Each column needs `.label` and `.storage` with `index_nbytes`, `bytes_per_vector`, `projections`.
    """
    if not columns:
        return message_figure("Run a search to see storage per configuration.", "Storage per configuration")
    labels = _labels_in_order(columns)
    last = {c.label: c for c in columns}  # latest report per configuration
    groups: list[str] = []
    if corpus_vectors:
        groups.append(f"this corpus ({corpus_vectors:,} vectors)")
    projections = [p for p in _PROJECTION_ORDER if all(p in last[lab].storage.projections for lab in labels)]
    groups.extend(f"{p} vectors" for p in projections)
    fig = go.Figure()
    all_y: list[float] = []
    for lab in labels:
        st = last[lab].storage
        ys = ([float(st.index_nbytes)] if corpus_vectors else []) + [float(st.projections[p]) for p in projections]
        fig.add_bar(name=f"{lab} ({st.bytes_per_vector:,} B/vector)", x=groups, y=ys,
                    marker_color=colour_for(lab, labels), customdata=[format_bytes(y) for y in ys],
                    hovertemplate=lab + "<br>%{x}: %{customdata}<extra></extra>")
        all_y.extend(ys)
    tickvals, ticktext = _byte_ticks(min(all_y), max(all_y))
    fig.update_layout(**_LAYOUT, barmode="group", title="Index size: this corpus and projections (log scale)")
    fig.update_yaxes(type="log", title_text="index size", tickvals=tickvals, ticktext=ticktext)
    return fig


@safe_figure
def score_distribution_figure(columns: Sequence[Any]) -> go.Figure:
    """Box plot of the top-k scores each configuration returned for the last query."""
    if not columns or not any(c.hits for c in columns):
        return message_figure("Run a search to see score distributions.", "Score distributions")
    labels = _labels_in_order(columns)
    fig = go.Figure()
    for c in columns:
        fig.add_box(name=_wrap(c.label), y=[h.score for h in c.hits], boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=colour_for(c.label, labels), showlegend=False)
    fig.update_layout(**_LAYOUT, title="Score distribution of the top-k hits (last search)")
    fig.update_yaxes(title_text="score (scale differs by mode)")
    return fig


@safe_figure
def quality_bytes_figure(results: Sequence[Any], metric: str, frontier: Sequence[str] = ()) -> go.Figure:
    """Quality (`metric`) against bytes per vector, one point per configuration, frontier joined.

    Each result needs `.label`, `.bytes_per_vector` and `.metrics[metric]`; `frontier` lists the
    labels on the Pareto frontier (as computed by the evaluation module).
    """
    points = [r for r in results if metric in r.metrics]
    if not points:
        return message_figure("Quality needs labelled data: run an evaluation first.", "Quality vs bytes per vector")
    labels = [r.label for r in points]
    fig = go.Figure()
    on_front = [r for r in points if r.label in set(frontier)]
    if on_front:
        on_front.sort(key=lambda r: r.bytes_per_vector)
        fig.add_scatter(x=[r.bytes_per_vector for r in on_front], y=[r.metrics[metric] for r in on_front],
                        mode="lines", line=dict(color="#94a3b8", dash="dash"), name="Pareto frontier")
    # Alternate label positions along the cost axis so neighbouring labels do not overprint.
    positions = ("top center", "bottom center", "middle right", "middle left")
    by_cost = sorted(points, key=lambda r: (r.bytes_per_vector, r.metrics[metric]))
    for i, r in enumerate(by_cost):
        fig.add_scatter(x=[r.bytes_per_vector], y=[r.metrics[metric]], mode="markers+text", name=r.label,
                        text=[_wrap(r.label)], textposition=positions[i % len(positions)], showlegend=False,
                        textfont=dict(size=11),
                        marker=dict(size=12, color=colour_for(r.label, labels),
                                    line=dict(width=2, color="#0f172a") if r.label in set(frontier) else None),
                        hovertemplate=r.label + f"<br>%{{x}} bytes/vector<br>{metric}: %{{y:.4f}}<extra></extra>")
    ys = [r.metrics[metric] for r in points]
    pad = max(0.01, (max(ys) - min(ys)) * 0.25)
    fig.update_yaxes(range=[min(ys) - pad, max(ys) + pad])
    xs = [r.bytes_per_vector for r in points]
    fig.update_xaxes(range=[math.log10(min(xs)) - 0.3, math.log10(max(xs)) + 0.3])
    fig.update_layout(**_LAYOUT, title=f"{metric} vs bytes per vector")
    fig.update_xaxes(type="log", title_text="bytes per vector (log)")
    fig.update_yaxes(title_text=metric)
    return fig


@safe_figure
def per_language_figure(results_by_language: Mapping[str, Sequence[Any]], metric: str) -> go.Figure:
    """Grouped bars: `metric` per language (x) and configuration (colour)."""
    langs = [lang for lang, rs in results_by_language.items() if rs]
    if not langs:
        return message_figure("Run an evaluation to see per-language results.", f"{metric} per language")
    labels: list[str] = []
    for lang in langs:
        for r in results_by_language[lang]:
            if r.label not in labels:
                labels.append(r.label)
    fig = go.Figure()
    for lab in labels:
        ys = []
        for lang in langs:
            match = [r.metrics.get(metric) for r in results_by_language[lang] if r.label == lab]
            ys.append(match[0] if match and match[0] is not None else None)
        fig.add_bar(name=lab, x=langs, y=ys, marker_color=colour_for(lab, labels))
    fig.update_layout(**_LAYOUT, barmode="group", title=f"{metric} per language and configuration")
    fig.update_yaxes(title_text=metric, rangemode="tozero")
    return fig


def format_bytes(n: float) -> str:
    """Human size with binary-free SI units (1 kB = 1000 B), as storage is usually quoted."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"
