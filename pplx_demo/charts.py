"""Figure builders: pure functions from result data to plotly figures.

Each public builder is wrapped by `safe_figure`, so a plot that cannot be drawn becomes a figure
carrying a short message instead of an exception that would abort the whole UI callback.
Inputs are the domain dataclasses (search responses and columns, evaluation results) read by
attribute. Every figure names the model(s) that produced its numbers, and every configuration has
one fixed colour (`colour_for`) shared with the search columns.
"""

from __future__ import annotations

import functools
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pplx_demo.storage import human_bytes

log = logging.getLogger(__name__)

# One colour per configuration family, the same in the search columns and in every chart.
CONFIG_COLOURS: dict[str, str] = {
    "float32": "#2563eb",
    "int8": "#16a34a",
    "binary": "#dc2626",
    "binary + rescore": "#9333ea",
    "binary asymmetric": "#ea580c",
}
OTHER_COLOUR = "#64748b"  # BM25 and anything that is not an index configuration
_STAGE_COLOURS = {"embed_query": "#94a3b8", "fetch_text": "#cbd5e1"}
_LATE_CHUNKING = " · late chunking"
_LAYOUT = dict(template="plotly_white", height=400, margin=dict(l=64, r=20, t=96, b=40),
               font=dict(family="Inter, system-ui, sans-serif", size=12),
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0.0))


def config_family(label: str) -> str:
    """The configuration family of a label ('binary + rescore(int8) x4 @256d' -> 'binary + rescore')."""
    text = label.strip().lower()
    if text.startswith("binary + rescore"):
        return "binary + rescore"
    if text.startswith("binary + asymmetric") or text.startswith("binary asymmetric"):
        return "binary asymmetric"
    for family in ("binary", "int8", "float32"):
        if text.startswith(family):
            return family
    return "other"


def _tint(hex_colour: str, share_white: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * share_white) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def colour_for(label: str, labels: Sequence[str] | None = None) -> str:  # noqa: ARG001 - old call sites
    """The fixed colour of a configuration label; Matryoshka sizes below full are lighter tints of it."""
    base = CONFIG_COLOURS.get(config_family(label), OTHER_COLOUR)
    if " @" in label:  # a truncated size: same family, lighter the smaller it is
        try:
            dim = int(label.split(" @")[1].split("d")[0])
        except (IndexError, ValueError):
            dim = 0
        return _tint(base, 0.25 if dim >= 256 else 0.45)
    return base


def short_model_name(name: str) -> str:
    """'all-MiniLM-L6-v2 (offline stand-in, not pplx-embed)' -> 'all-MiniLM-L6-v2'."""
    return name.split(" (")[0].strip() or name


def _model_subtitle(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(n for n in names if n))
    if not unique:
        return ""
    return "<br><sup>model: " + " · ".join(unique) + "</sup>"


def _wrap(label: str) -> str:
    """Break a long configuration label over lines so axis labels need no rotation."""
    return (label.replace(" + ", "<br>+ ").replace(" @", "<br>@").replace(_LATE_CHUNKING, "<br>late chunking")
            .replace("<br>+ rescore(", "<br>+ rescore<br>("))


def _byte_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Log-axis ticks at powers of 1024 between lo and hi, labelled '1 KB', '1 MB', ..."""
    vals, text = [], []
    exp = max(0, int(math.floor(math.log(max(lo, 1.0), 1024))))
    while 1024.0 ** exp <= hi * 10:
        vals.append(1024.0 ** exp)
        text.append(human_bytes(1024.0 ** exp).replace(".0", ""))
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


def _legend_swatch(fig: go.Figure, name: str, colour: str, pattern: str = "", **where: Any) -> None:
    """A legend-only bar entry (explains a colour or hatching used by several traces)."""
    fig.add_bar(x=[None], y=[None], name=name, marker=dict(color=colour, pattern_shape=pattern),
                showlegend=True, hoverinfo="skip", **where)


@safe_figure
def latency_figure(runs: Sequence[Any]) -> go.Figure:
    """Median latency per (model, configuration) over the session's searches, in two panels:
    the index search (+ rescore), which is what the configurations change, and the whole query
    (embed query + index + fetch text), where embedding the query usually dominates.

    `runs` are search responses: `.model_name` and `.columns` (each `.label`, `.timings_ms`).
    """
    pairs = [(r.model_name, c) for r in runs for c in r.columns]
    if not pairs:
        return message_figure("Run a search to see latency per configuration.", "Latency per configuration")
    keys = list(dict.fromkeys((m, c.label) for m, c in pairs))
    many_models = len({m for m, _ in keys}) > 1
    by_key = {}
    for k in keys:
        timings = [c.timings_ms for m, c in pairs if (m, c.label) == k]
        # A configuration's first search carries one-off costs (index build, kernel compilation):
        # leave it out once there are later searches to show the steady state.
        steady = [t for t in timings if "build" not in t]
        by_key[k] = steady or timings

    def med(key: tuple[str, str], stage: str) -> float:
        return statistics.median([float(t.get(stage, 0.0)) for t in by_key[key]])

    xs = [(f"{short_model_name(m)}<br>" if many_models else "") + _wrap(lab) for m, lab in keys]
    colours = [colour_for(lab) for _, lab in keys]
    search = [med(k, "search") for k in keys]
    rescore = [med(k, "rescore") for k in keys]
    embed = [med(k, "embed_query") for k in keys]
    fetch = [med(k, "fetch_text") for k in keys]
    index = [s + r for s, r in zip(search, rescore)]
    totals = [e + i + f for e, i, f in zip(embed, index, fetch)]

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09,
                        subplot_titles=("Index search (+ rescore)", "Whole query"))
    hover = "%{x}<br>%{customdata}: %{y:.3f} ms<extra></extra>"
    fig.add_bar(x=xs, y=search, marker=dict(color=colours), showlegend=False, customdata=["index search"] * len(xs),
                hovertemplate=hover, row=1, col=1)
    fig.add_bar(x=xs, y=rescore, marker=dict(color=colours, pattern_shape="/", pattern_fgcolor="#ffffff"),
                showlegend=False, customdata=["rescore"] * len(xs), hovertemplate=hover, row=1, col=1)
    fig.add_scatter(x=xs, y=index, mode="text", text=[_ms(v) for v in index], textposition="top center",
                    showlegend=False, hoverinfo="skip", row=1, col=1)
    fig.add_bar(x=xs, y=embed, marker=dict(color=_STAGE_COLOURS["embed_query"]), showlegend=False,
                customdata=["embed query"] * len(xs), hovertemplate=hover, row=1, col=2)
    fig.add_bar(x=xs, y=index, marker=dict(color=colours), showlegend=False,
                customdata=["index search + rescore"] * len(xs), hovertemplate=hover, row=1, col=2)
    fig.add_bar(x=xs, y=fetch, marker=dict(color=_STAGE_COLOURS["fetch_text"]), showlegend=False,
                customdata=["fetch text"] * len(xs), hovertemplate=hover, row=1, col=2)
    fig.add_scatter(x=xs, y=totals, mode="text", text=[_ms(v) for v in totals], textposition="top center",
                    showlegend=False, hoverinfo="skip", row=1, col=2)
    _legend_swatch(fig, "index search (configuration colour)", OTHER_COLOUR, row=1, col=1)
    _legend_swatch(fig, "rescore (hatched)", OTHER_COLOUR, "/", row=1, col=1)
    _legend_swatch(fig, "embed query", _STAGE_COLOURS["embed_query"], row=1, col=2)
    _legend_swatch(fig, "fetch text", _STAGE_COLOURS["fetch_text"], row=1, col=2)
    n = len(runs)
    fig.update_layout(**_LAYOUT)
    fig.update_layout(barmode="stack", height=440, margin=dict(l=64, r=20, t=120, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, xanchor="left", x=0.0,
                                  traceorder="normal"),
                      title=f"Latency per query: median over {n} search{'es' if n != 1 else ''} this session "
                            "(a configuration's first search, with its one-off costs, left out)"
                            + _model_subtitle(r.model_name for r in runs))
    fig.update_yaxes(title_text="milliseconds", range=[0, max(index + [1e-3]) * 1.3], row=1, col=1)
    fig.update_yaxes(range=[0, max(totals + [1e-3]) * 1.3], row=1, col=2)
    return fig


def _ms(v: float) -> str:
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


_PROJECTION_ORDER = ("1M", "100M", "1B")


@safe_figure
def storage_figure(response: Any | None) -> go.Figure:
    """Index bytes per configuration on a log axis: this corpus, then projections to 1M..1B vectors.

    `response` is a search response (`.model_name`, `.columns` with `.label` and `.storage`).
    """
    columns = list(getattr(response, "columns", None) or [])
    if not columns:
        return message_figure("Run a search to see storage per configuration.", "Storage per configuration")
    corpus_vectors = columns[0].storage.n_vectors
    groups = [f"this corpus ({corpus_vectors:,} vectors)"]
    projections = [p for p in _PROJECTION_ORDER if all(p in c.storage.projections for c in columns)]
    groups.extend(f"{p} vectors" for p in projections)
    fig = go.Figure()
    all_y: list[float] = []
    for c in columns:
        st = c.storage
        ys = [float(st.index_nbytes)] + [float(st.projections[p]) for p in projections]
        fig.add_bar(name=f"{c.label} ({st.bytes_per_vector:,} B/vector)", x=groups, y=ys,
                    marker_color=colour_for(c.label), customdata=[human_bytes(y) for y in ys],
                    hovertemplate=c.label + "<br>%{x}: %{customdata}<extra></extra>")
        all_y.extend(ys)
    tickvals, ticktext = _byte_ticks(min(all_y), max(all_y))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(barmode="group", height=460, margin=dict(l=64, r=20, t=70, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0.0),
                      title="Index size: this corpus and projections (log scale)"
                            + _model_subtitle([response.model_name]))
    fig.update_yaxes(type="log", title_text="index size", tickvals=tickvals, ticktext=ticktext)
    return fig


@safe_figure
def score_distribution_figure(response: Any | None) -> go.Figure:
    """Box plot of the top-k scores each configuration returned for the last query."""
    columns = list(getattr(response, "columns", None) or [])
    if not columns or not any(c.hits for c in columns):
        return message_figure("Run a search to see score distributions.", "Score distributions")
    fig = go.Figure()
    for c in columns:
        fig.add_box(name=_wrap(c.label), y=[h.score for h in c.hits], boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=colour_for(c.label), showlegend=False)
    fig.update_layout(**_LAYOUT)
    fig.update_layout(title="Score distribution of the top-k hits (last search)"
                            + _model_subtitle([response.model_name]))
    fig.update_yaxes(title_text="score (scale differs by mode)")
    return fig


_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star")


def _dim_of(label: str) -> int | None:
    if " @" not in label:
        return None
    try:
        return int(label.split(" @")[1].split("d")[0])
    except (IndexError, ValueError):
        return None


@safe_figure
def quality_bytes_figure(results: Sequence[Any], metric: str, frontier: Sequence[str] = ()) -> go.Figure:
    """Quality (`metric`, shown x100) against bytes per vector, one point per configuration.

    Each result needs `.label`, `.bytes_per_vector`, `.metrics[metric]` and `.model_name`; `frontier`
    lists the labels on the Pareto frontier (as computed by the evaluation module). Points carry no
    text (neighbours would overprint): the legend names them, colours are the configurations'.
    """
    points = [r for r in results if metric in r.metrics]
    if not points:
        return message_figure("Quality needs labelled data: run an evaluation first.", "Quality vs bytes per vector")
    front = set(frontier)
    fig = go.Figure()
    on_front = sorted((r for r in points if r.label in front), key=lambda r: r.bytes_per_vector)
    if on_front:
        fig.add_scatter(x=[r.bytes_per_vector for r in on_front], y=[100 * r.metrics[metric] for r in on_front],
                        mode="lines", line=dict(color="#94a3b8", dash="dash"), name="Pareto frontier (outlined points)",
                        hoverinfo="skip")
    dims = sorted({d for d in (_dim_of(r.label) for r in points) if d is not None}, reverse=True)
    for r in points:
        d = _dim_of(r.label)
        symbol = _SYMBOLS[0] if d is None else _SYMBOLS[(dims.index(d) + 1) % len(_SYMBOLS)]
        if r.label.endswith(_LATE_CHUNKING):
            symbol += "-open"
        fig.add_scatter(x=[r.bytes_per_vector], y=[100 * r.metrics[metric]], mode="markers", name=r.label,
                        marker=dict(size=13, symbol=symbol, color=colour_for(r.label),
                                    line=dict(width=2, color="#0f172a" if r.label in front else colour_for(r.label))),
                        hovertemplate=r.label + f"<br>%{{x}} bytes/vector<br>{metric}: %{{y:.2f}}<extra></extra>")
    ys = [100 * r.metrics[metric] for r in points]
    pad = max(0.5, (max(ys) - min(ys)) * 0.2)
    xs = [r.bytes_per_vector for r in points]
    fig.update_layout(**_LAYOUT)
    fig.update_layout(height=420, margin=dict(l=64, r=20, t=60, b=40),
                      legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02),
                      title=f"{metric} vs bytes per vector"
                            + _model_subtitle(getattr(r, "model_name", "") for r in points))
    fig.update_xaxes(type="log", title_text="bytes per vector (log)",
                     range=[math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2])
    fig.update_yaxes(title_text=f"{metric} (x100)", range=[min(ys) - pad, max(ys) + pad])
    return fig


@safe_figure
def per_language_figure(results_by_language: Mapping[str, Sequence[Any]], metric: str) -> go.Figure:
    """Grouped bars: `metric` (x100) per language (x) and configuration (colour), values written on
    the bars; the y axis starts near the smallest value so small differences stay visible."""
    langs = [lang for lang, rs in results_by_language.items() if rs]
    if not langs:
        return message_figure("Run an evaluation to see per-language results.", f"{metric} per language")
    labels = list(dict.fromkeys(r.label for lang in langs for r in results_by_language[lang]))
    fig = go.Figure()
    values: list[float] = []
    written = len(labels) <= 6  # more bars per language than that: values would overprint (hover has them)
    for lab in labels:
        ys: list[float | None] = []
        for lang in langs:
            match = [r.metrics.get(metric) for r in results_by_language[lang] if r.label == lab]
            ys.append(100 * match[0] if match and match[0] is not None else None)
        values.extend(y for y in ys if y is not None)
        fig.add_bar(name=lab, x=langs, y=ys, marker=dict(color=colour_for(lab),
                                                         pattern_shape="/" if lab.endswith(_LATE_CHUNKING) else ""),
                    text=[f"{y:.1f}" if y is not None and written else "" for y in ys], textposition="outside",
                    textfont=dict(size=10), cliponaxis=False,
                    hovertemplate=lab + "<br>%{x}: %{y:.2f}<extra></extra>")
    lo, hi = min(values), max(values)
    # Bars from zero hide differences of a point or two: start the axis below the smallest bar
    # (said in the axis title), unless the values already span most of the range.
    floor = 0.0 if hi - lo > 0.5 * hi else max(0.0, lo - max(2.0, (hi - lo) * 0.6))
    fig.update_layout(**_LAYOUT)
    fig.update_layout(barmode="group", height=420, margin=dict(l=64, r=20, t=60, b=40),
                      legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02),
                      title=f"{metric} per language and configuration"
                            + _model_subtitle(getattr(r, "model_name", "") for lang in langs
                                              for r in results_by_language[lang]))
    axis = f"{metric} (x100)" + (f", axis from {floor:.0f}" if floor > 0 else "")
    fig.update_yaxes(title_text=axis, range=[floor, hi + max(1.5, (hi - floor) * 0.12)])
    return fig
