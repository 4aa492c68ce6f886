"""Figure builders for the quality sweep: pure functions from a `SweepResult` to plotly figures.

- `sweep_multiplier_figure`: quality against the rescore multiplier (binary + rescore as a line
  with 95% interval bars; binary + asymmetric and float32 as flat lines with their interval bands,
  since neither has a multiplier; BM25 as a flat line when the sweep has it), one panel per metric.
- `sweep_bytes_figure`: quality against bytes per vector for every swept configuration, with
  interval bars, the Pareto frontier and the recommended configuration marked.
Inputs are read by attribute (`points[i].confidence[metric].value` is an `Interval`), colours are
the configurations' fixed colours (`charts.colour_for`), and every title names the true model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pplx_demo.charts import OTHER_COLOUR, colour_for, message_figure, safe_figure

_LAYOUT = dict(template="plotly_white", font=dict(family="Inter, system-ui, sans-serif", size=12),
               margin=dict(l=64, r=20, t=80, b=48))
_FLOAT32 = "#2563eb"


def _subtitle(sweep: Any) -> str:
    return f"<br><sup>model: {sweep.model_name} · {sweep.dataset} · {sweep.n_queries} queries</sup>"


def _interval(point: Any, metric: str) -> tuple[float, float, float] | None:
    """(estimate, low, high) x100 of `metric`, or None when the point has no interval for it."""
    conf = getattr(point, "confidence", {}).get(metric)
    if conf is None:
        return None
    v = conf.value
    if not all(math.isfinite(x) for x in (v.estimate, v.low, v.high)):
        return None
    return 100 * v.estimate, 100 * v.low, 100 * v.high


def _flat(fig: go.Figure, xs: Sequence[float], iv: tuple[float, float, float], name: str, colour: str, dash: str,
          row: int, col: int, show: bool) -> None:
    """A horizontal line at the estimate with a shaded interval band, across `xs`."""
    lo_x, hi_x = min(xs), max(xs)
    fig.add_scatter(x=[lo_x, hi_x, hi_x, lo_x, lo_x], y=[iv[1], iv[1], iv[2], iv[2], iv[1]], fill="toself",
                    fillcolor=colour, opacity=0.12, line=dict(width=0), hoverinfo="skip", showlegend=False,
                    legendgroup=name, row=row, col=col)
    fig.add_scatter(x=[lo_x, hi_x], y=[iv[0], iv[0]], mode="lines", line=dict(color=colour, dash=dash, width=2),
                    name=name, legendgroup=name, showlegend=show, row=row, col=col,
                    hovertemplate=f"{name}<br>%{{y:.2f}} [{iv[1]:.2f}, {iv[2]:.2f}]<extra></extra>")


@safe_figure
def sweep_multiplier_figure(sweep: Any, metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> go.Figure:
    """Quality (x100, 95% paired bootstrap intervals) against the rescore multiplier, one panel per metric."""
    series = sweep.rescore_series() if sweep is not None else []
    if not series:
        return message_figure("Run a sweep to see quality against the rescore multiplier.",
                              "Quality vs rescore multiplier")
    mults = [p.multiplier for p in series]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=list(metrics), horizontal_spacing=0.1)
    asym, ref = sweep.asymmetric(), sweep.reference
    for j, metric in enumerate(metrics, start=1):
        first = j == 1
        ivs = [_interval(p, metric) for p in series]
        pts = [(m, iv, p) for m, iv, p in zip(mults, ivs, series) if iv is not None]
        if pts:
            colour = colour_for(pts[0][2].config)
            fig.add_scatter(x=[m for m, _, _ in pts], y=[iv[0] for _, iv, _ in pts], mode="lines+markers",
                            name="binary + rescore", legendgroup="rescore", showlegend=first,
                            line=dict(color=colour, width=2), marker=dict(size=9, color=colour),
                            error_y=dict(type="data", symmetric=False, array=[iv[2] - iv[0] for _, iv, _ in pts],
                                         arrayminus=[iv[0] - iv[1] for _, iv, _ in pts], thickness=1.5, width=5),
                            customdata=[[p.label, iv[1], iv[2]] for _, iv, p in pts],
                            hovertemplate="%{customdata[0]}<br>" + metric
                                          + " %{y:.2f} [%{customdata[1]:.2f}, %{customdata[2]:.2f}]<extra></extra>",
                            row=1, col=j)
        if asym is not None and (iv := _interval(asym, metric)) is not None:
            _flat(fig, mults, iv, "binary + asymmetric (no multiplier)", colour_for(asym.config), "dash", 1, j, first)
        if (iv := _interval(ref, metric)) is not None:
            _flat(fig, mults, iv, "float32 (reference)", _FLOAT32, "dot", 1, j, first)
        bm25 = (sweep.bm25 or {}).get(metric)
        if bm25 is not None:
            fig.add_scatter(x=[min(mults), max(mults)], y=[100 * bm25] * 2, mode="lines", name="BM25",
                            legendgroup="bm25", showlegend=first, line=dict(color=OTHER_COLOUR, dash="dashdot"),
                            hovertemplate=f"BM25<br>{100 * bm25:.2f}<extra></extra>", row=1, col=j)
        fig.update_xaxes(type="log", tickvals=mults, ticktext=[f"x{m}" for m in mults], title_text="rescore multiplier",
                         row=1, col=j)
        fig.update_yaxes(title_text=f"{metric} (x100)" if first else None, row=1, col=j)
    fig.update_layout(**_LAYOUT, height=420,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0.0),
                      title="Quality vs rescore multiplier (95% intervals)" + _subtitle(sweep))
    return fig


@safe_figure
def sweep_bytes_figure(sweep: Any, metric: str = "ndcg@10", recommended: Any = None) -> go.Figure:
    """`metric` (x100, 95% intervals) against bytes per vector (log) for every sweep point, the
    Pareto frontier dashed and `recommended` (a Recommendation or a point) marked with a star."""
    points = [p for p in (sweep.points if sweep is not None else []) if _interval(p, metric) is not None]
    if not points:
        return message_figure("Run a sweep to see quality against bytes per vector.", "Quality vs bytes per vector")
    fig = go.Figure()
    front = sweep.frontier(metric)
    front_labels = {p.label for p in front}
    fig.add_scatter(x=[p.bytes_per_vector for p in front], y=[100 * p.metrics[metric] for p in front],
                    mode="lines", line=dict(color="#94a3b8", dash="dash"), name="Pareto frontier (outlined)",
                    hoverinfo="skip")
    for p in points:
        est, lo, hi = _interval(p, metric)  # type: ignore[misc]
        colour = colour_for(p.config)
        fig.add_scatter(x=[p.bytes_per_vector], y=[est], mode="markers", name=p.label,
                        marker=dict(size=11, color=colour,
                                    line=dict(width=2, color="#0f172a" if p.label in front_labels else colour)),
                        error_y=dict(type="data", symmetric=False, array=[hi - est], arrayminus=[est - lo],
                                     thickness=1.5, width=4, color=colour),
                        hovertemplate=f"{p.label}<br>{p.bytes_per_vector:,} bytes/vector<br>{metric} "
                                      f"{est:.2f} [{lo:.2f}, {hi:.2f}]<extra></extra>")
    best = getattr(recommended, "point", recommended)
    if best is not None and (iv := _interval(best, metric)) is not None:
        fig.add_scatter(x=[best.bytes_per_vector], y=[iv[0]], mode="markers", name=f"recommended: {best.label}",
                        marker=dict(symbol="star", size=20, color="rgba(0,0,0,0)", line=dict(width=2, color="#0f172a")),
                        hoverinfo="skip")
    xs = [p.bytes_per_vector for p in points]
    fig.update_layout(**_LAYOUT, height=460,
                      legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02),
                      title=f"{metric} vs bytes per vector (95% intervals)" + _subtitle(sweep))
    fig.update_xaxes(type="log", title_text="bytes per vector (log)",
                     range=[math.log10(min(xs)) - 0.15, math.log10(max(xs)) + 0.15])
    fig.update_yaxes(title_text=f"{metric} (x100)")
    return fig


def sweep_figures(sweep: Any, metric: str = "ndcg@10", floor: float = 0.99) -> tuple[go.Figure, go.Figure]:
    """(multiplier figure for nDCG@10 and Recall@10, bytes figure for `metric` with the recommendation)."""
    rec = sweep.recommend(floor, metric) if sweep is not None else None
    return sweep_multiplier_figure(sweep), sweep_bytes_figure(sweep, metric, rec)
