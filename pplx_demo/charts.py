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

from pplx_demo.index import IndexConfig
from pplx_demo.storage import human_bytes

log = logging.getLogger(__name__)

# One colour per configuration family (IndexConfig.family), the same in the search columns and every chart.
CONFIG_COLOURS: dict[str, str] = {
    "float32": "#2563eb",
    "int8": "#16a34a",
    "binary": "#dc2626",
    "binary + rescore": "#9333ea",
    "binary + asymmetric": "#ea580c",
    "hybrid": "#0d9488",
}
OTHER_COLOUR = "#64748b"  # BM25 and anything that is not an index configuration
_STAGE_COLOURS = {"embed_query": "#94a3b8", "fetch_text": "#cbd5e1"}
LATE_CHUNKING_PATTERN = "/"  # late chunking (the contextual variant) is hatched / open everywhere
LAYOUT = dict(template="plotly_white", height=400, margin=dict(l=64, r=20, t=96, b=40),
               font=dict(family="Inter, system-ui, sans-serif", size=12),
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0.0))


def _tint(hex_colour: str, share_white: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * share_white) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def colour_for(config: IndexConfig | None) -> str:
    """The fixed colour of a configuration's family; Matryoshka sizes are lighter tints of it."""
    if config is None:
        return OTHER_COLOUR
    base = CONFIG_COLOURS.get(config.family, OTHER_COLOUR)
    if config.dim is not None:  # a truncated size: same family, lighter the smaller it is
        return _tint(base, 0.25 if config.dim >= 256 else 0.45)
    return base


def series_name(config: IndexConfig, variant: str = "standard") -> str:
    """A legend / table name: the canonical configuration, plus "late chunking" for the contextual variant."""
    return f"{config} (late chunking)" if variant == "contextual" else str(config)


def axis_label(config: IndexConfig, variant: str = "standard") -> str:
    """A configuration over several short lines (axis labels need no rotation), built from its fields."""
    if config.hybrid:
        return f"BM25 + RRF k={config.rrf_k}<br>" + axis_label(config.dense, variant)
    lines = [config.precision + (f" {config.int8_scheme}" if config.precision == "int8" and config.int8_scheme
                                 else "")]
    if config.mode == "rescore":
        target = "float32" if config.rescore_with == "float32" else "int8"
        lines.append(f"+ rescore x{config.rescore_multiplier}")
        if target != "int8" or config.int8_scheme:
            lines.append(f"({target}{' ' + config.int8_scheme if target == 'int8' and config.int8_scheme else ''})")
    elif config.mode == "asymmetric":
        lines.append("+ asymmetric")
    if config.dim is not None:
        lines.append(f"@{config.dim}d")
    if variant == "contextual":
        lines.append("late chunking")
    return "<br>".join(lines)


def short_model_name(name: str) -> str:
    """'all-MiniLM-L6-v2 (offline stand-in, not pplx-embed)' -> 'all-MiniLM-L6-v2'."""
    return name.split(" (")[0].strip() or name


def _model_subtitle(names: Iterable[str]) -> str:
    unique = list(dict.fromkeys(n for n in names if n))
    if not unique:
        return ""
    return "<br><sup>model: " + " · ".join(unique) + "</sup>"


def _byte_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Log-axis ticks at powers of 1024 between lo and hi, labelled '1 KB', '1 MB', ..."""
    vals, text = [], []
    exp = max(0, int(math.floor(math.log(max(lo, 1.0), 1024))))
    while 1024.0 ** exp <= hi * 10:
        vals.append(1024.0 ** exp)
        text.append(human_bytes(1024.0 ** exp).replace(".0", ""))
        exp += 1
    return vals, text


def _decade_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Log-axis ticks at powers of ten only (no minor labels like "4 5 6 7 8 9 100 2 3")."""
    vals = [10.0 ** e for e in range(int(math.floor(math.log10(max(lo, 1e-9)))),
                                     int(math.ceil(math.log10(max(hi, 1e-9)))) + 1)]
    return vals, [f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in vals]


def message_figure(text: str, title: str = "") -> go.Figure:
    """An empty figure that shows `text` in its middle (for 'no data yet' and errors)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#475569"))
    fig.update_layout(**LAYOUT, title=title or None)
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


def legend_swatch(fig: go.Figure, name: str, colour: str, pattern: str = "", **where: Any) -> None:
    """A legend-only bar entry (explains a colour or hatching used by several traces)."""
    fig.add_bar(x=[None], y=[None], name=name, marker=dict(color=colour, pattern_shape=pattern),
                showlegend=True, hoverinfo="skip", **where)


@safe_figure
def latency_figure(runs: Sequence[Any]) -> go.Figure:
    """Median latency per (model, configuration) over the session's searches, in two panels:
    the index search (+ rescore), which is what the configurations change, and the whole query
    (embed query, once per search + index + fetch text), where embedding the query usually dominates.

    `runs` are search responses: `.model_name`, `.embed_query_ms` and `.columns` (each `.config`, `.timings_ms`).
    """
    pairs = [(r, c) for r in runs for c in r.columns]
    if not pairs:
        return message_figure("Run a search to see latency per configuration.", "Latency per configuration")
    keys = list(dict.fromkeys((r.model_name, c.config) for r, c in pairs))
    many_models = len({m for m, _ in keys}) > 1
    by_key: dict[tuple[str, IndexConfig], list[tuple[float, dict[str, float]]]] = {}
    for k in keys:
        timings = [(float(r.embed_query_ms), c.timings_ms) for r, c in pairs if (r.model_name, c.config) == k]
        # A configuration's first search carries one-off costs (index build): leave it out once there
        # are later searches to show the steady state.
        steady = [t for t in timings if "build" not in t[1]]
        by_key[k] = steady or timings

    def med(key: tuple[str, IndexConfig], stage: str) -> float:
        if stage == "embed_query":
            return statistics.median([e for e, _ in by_key[key]])
        return statistics.median([float(t.get(stage, 0.0)) for _, t in by_key[key]])

    xs = [(f"{short_model_name(m)}<br>" if many_models else "") + axis_label(cfg) for m, cfg in keys]
    colours = [colour_for(cfg) for _, cfg in keys]
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
    legend_swatch(fig, "index search (configuration colour)", OTHER_COLOUR, row=1, col=1)
    legend_swatch(fig, "rescore (hatched)", OTHER_COLOUR, "/", row=1, col=1)
    legend_swatch(fig, "embed query", _STAGE_COLOURS["embed_query"], row=1, col=2)
    legend_swatch(fig, "fetch text", _STAGE_COLOURS["fetch_text"], row=1, col=2)
    n = len(runs)
    fig.update_layout(**LAYOUT)
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

    `response` is a search response (`.model_name`, `.columns` with `.config` and `.storage`).
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
        fig.add_bar(name=f"{c.config} ({st.bytes_per_vector:,} B/vector)", x=groups, y=ys,
                    marker_color=colour_for(c.config), customdata=[human_bytes(y) for y in ys],
                    hovertemplate=str(c.config) + "<br>%{x}: %{customdata}<extra></extra>")
        all_y.extend(ys)
    tickvals, ticktext = _byte_ticks(min(all_y), max(all_y))
    fig.update_layout(**LAYOUT)
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
        fig.add_box(name=axis_label(c.config), y=[h.score for h in c.hits], boxpoints="all", jitter=0.3, pointpos=0,
                    marker_color=colour_for(c.config), showlegend=False)
    fig.update_layout(**LAYOUT)
    fig.update_layout(title="Score distribution of the top-k hits (last search)"
                            + _model_subtitle([response.model_name]))
    fig.update_yaxes(title_text="score (scale differs by mode)")
    return fig


_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star")


def _series_key(r: Any) -> tuple[str, str, IndexConfig]:
    return (str(getattr(r, "model_key", "")), str(getattr(r, "variant", "standard")), r.config)


@safe_figure
def quality_bytes_figure(results: Sequence[Any], metric: str, frontier: Sequence[Any] = (),
                         intervals: Mapping[Any, tuple[float, float]] | None = None) -> go.Figure:
    """Quality (`metric`, shown x100) against bytes per vector, one point per (model, variant, configuration).

    Each result needs `.config`, `.variant`, `.model_key`, `.bytes_per_vector`, `.metrics[metric]` and
    `.model_name`; `frontier` lists the results on the Pareto frontier (as the evaluation computes it).
    `intervals` ((model_key, variant, config) -> (low, high) of `metric`, 0..1) draws error bars where given.
    Points carry no text (neighbours would overprint): the legend names them.
    """
    points = [r for r in results if metric in r.metrics]
    if not points:
        return message_figure("Quality needs labelled data: run an evaluation first.", "Quality vs bytes per vector")
    front = {_series_key(r) for r in frontier}
    fig = go.Figure()
    on_front = sorted((r for r in points if _series_key(r) in front), key=lambda r: r.bytes_per_vector)
    if on_front:
        fig.add_scatter(x=[r.bytes_per_vector for r in on_front], y=[100 * r.metrics[metric] for r in on_front],
                        mode="lines", line=dict(color="#94a3b8", dash="dash"), name="Pareto frontier (outlined points)",
                        hoverinfo="skip")
    dims = sorted({r.config.dim for r in points if r.config.dim is not None}, reverse=True)
    low_high: list[float] = []
    for r in points:
        d = r.config.dim
        symbol = _SYMBOLS[0] if d is None else _SYMBOLS[(dims.index(d) + 1) % len(_SYMBOLS)]
        if getattr(r, "variant", "standard") == "contextual":
            symbol += "-open"
        name = series_name(r.config, getattr(r, "variant", "standard"))
        colour = colour_for(r.config)
        y = 100 * r.metrics[metric]
        bounds = (intervals or {}).get(_series_key(r))
        error = dict(type="data", symmetric=False, array=[max(0.0, 100 * bounds[1] - y)],
                     arrayminus=[max(0.0, y - 100 * bounds[0])], thickness=1.5, width=4, color=colour) \
            if bounds is not None else None
        if bounds is not None:
            low_high.extend([100 * bounds[0], 100 * bounds[1]])
        extra = f" [{100 * bounds[0]:.2f}, {100 * bounds[1]:.2f}] (95%)" if bounds is not None else ""
        fig.add_scatter(x=[r.bytes_per_vector], y=[y], mode="markers", name=name, error_y=error,
                        marker=dict(size=13, symbol=symbol, color=colour,
                                    line=dict(width=2, color="#0f172a" if _series_key(r) in front else colour)),
                        hovertemplate=name + f"<br>%{{x}} bytes/vector<br>{metric}: %{{y:.2f}}{extra}<extra></extra>")
    ys = [100 * r.metrics[metric] for r in points] + low_high
    pad = max(0.5, (max(ys) - min(ys)) * 0.2)
    xs = [r.bytes_per_vector for r in points]
    tickvals, ticktext = _decade_ticks(min(xs), max(xs))
    fig.update_layout(**LAYOUT)
    fig.update_layout(height=460, margin=dict(l=64, r=20, t=60, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0),
                      title=f"{metric} vs bytes per vector"
                            + _model_subtitle(getattr(r, "model_name", "") for r in points))
    fig.update_xaxes(type="log", title_text="bytes per vector (log)", tickvals=tickvals, ticktext=ticktext,
                     range=[math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2])
    fig.update_yaxes(title_text=f"{metric} (x100)", range=[min(ys) - pad, max(ys) + pad])
    return fig


@safe_figure
def per_language_figure(results_by_language: Mapping[str, Sequence[Any]], metric: str) -> go.Figure:
    """Grouped bars from zero: `metric` (x100) per language (x) and (variant, configuration) (colour; late
    chunking hatched), values written on the bars when they fit."""
    langs = [lang for lang, rs in results_by_language.items() if rs]
    if not langs:
        return message_figure("Run an evaluation to see per-language results.", f"{metric} per language")
    series = list(dict.fromkeys((r.variant, r.config) for lang in langs for r in results_by_language[lang]))
    fig = go.Figure()
    values: list[float] = []
    written = len(series) <= 6  # more bars per language than that: values would overprint (hover has them)
    for variant, config in series:
        ys: list[float | None] = []
        for lang in langs:
            match = [r.metrics.get(metric) for r in results_by_language[lang]
                     if r.config == config and r.variant == variant]
            ys.append(100 * match[0] if match and match[0] is not None else None)
        values.extend(y for y in ys if y is not None)
        name = series_name(config, variant)
        fig.add_bar(name=name, x=langs, y=ys,
                    marker=dict(color=colour_for(config),
                                pattern_shape=LATE_CHUNKING_PATTERN if variant == "contextual" else ""),
                    text=[f"{y:.1f}" if y is not None and written else "" for y in ys], textposition="outside",
                    textfont=dict(size=10), cliponaxis=False,
                    hovertemplate=name + "<br>%{x}: %{y:.2f}<extra></extra>")
    hi = max(values)
    fig.update_layout(**LAYOUT)
    fig.update_layout(barmode="group", height=460, margin=dict(l=64, r=20, t=60, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0.0),
                      title=f"{metric} per language and configuration"
                            + _model_subtitle(getattr(r, "model_name", "") for lang in langs
                                              for r in results_by_language[lang]))
    fig.update_yaxes(title_text=f"{metric} (x100)", range=[0, hi * 1.12 + 1.0])
    return fig
