"""Figure builders for the scale run and the deployment cost report: pure data -> plotly figure.

Same conventions as `pplx_demo.charts`: each builder is wrapped by `safe_figure` (a failing plot
becomes a message figure), empty input gives a message figure, one fixed colour per configuration.
Inputs are the dataclasses of `pplx_demo.scale` / `pplx_demo.deployment`; colours and axis labels come
from each row's `config` (an IndexConfig), never from label text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pplx_demo.charts import LAYOUT, axis_label, colour_for, legend_swatch, message_figure, safe_figure
from pplx_demo.storage import human_bytes


def _ms(v: float) -> str:
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


@safe_figure
def scale_latency_figure(report: Any) -> go.Figure:
    """Left: one-query latency vs corpus size, log-log, one line per configuration (p50; error bar up to p95).
    Right: bytes each configuration scans per query at the largest size, and how many times fewer than float32.

    `report` is a `ScaleReport`.
    """
    points = list(getattr(report, "points", None) or [])
    title = "Latency at scale"
    if not points:
        return message_figure("Run a scale test to see latency against corpus size.", title)
    configs = list(dict.fromkeys(p.config for p in points))
    largest = max(p.n_vectors for p in points)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=("One query, top-%d: p50 (bar to p95)" % getattr(report, "k", 10),
                                        f"Bytes scanned per query at {largest:,} vectors"))
    scanned_at_largest: dict[Any, float] = {}
    for config in configs:
        rows = sorted((p for p in points if p.config == config), key=lambda p: p.n_vectors)
        label = str(config)
        xs = [p.n_vectors for p in rows]
        p50 = [p.p50_ms for p in rows]
        up = [max(0.0, p.p95_ms - p.p50_ms) for p in rows]
        per_vector = rows[-1].scanned_bytes / max(1, rows[-1].n_vectors)
        if rows[-1].n_vectors == largest:
            scanned_at_largest[config] = float(rows[-1].scanned_bytes)
        colour = colour_for(config)
        fig.add_scatter(x=xs, y=p50, mode="lines+markers", name=f"{label} ({human_bytes(per_vector)}/vector scanned)",
                        line=dict(color=colour), marker=dict(color=colour),
                        error_y=dict(type="data", symmetric=False, array=up, arrayminus=[0.0] * len(up),
                                     color=colour, thickness=1.2),
                        customdata=[[_ms(a), _ms(b)] for a, b in zip(p50, (p.p95_ms for p in rows))],
                        hovertemplate=label + "<br>%{x:,} vectors<br>p50 %{customdata[0]}, p95 %{customdata[1]}"
                                      "<extra></extra>", row=1, col=1)
    if scanned_at_largest:
        names = list(scanned_at_largest)
        values = [scanned_at_largest[n] for n in names]
        float_ref = next((scanned_at_largest[n] for n in names if n.family == "float32" and n.dim is None), None)
        texts = []
        for v in values:
            ratio = f" ({float_ref / v:.0f}x fewer than float32)" if float_ref and v and float_ref / v >= 1.5 else ""
            texts.append(human_bytes(v) + ratio)
        fig.add_bar(x=values, y=[axis_label(n) for n in names], orientation="h",
                    marker=dict(color=[colour_for(n) for n in names]),
                    text=texts, textposition="auto", showlegend=False,
                    hovertemplate="%{y}<br>%{text}<extra></extra>", row=1, col=2)
    note = getattr(report, "note", "") or ""
    fig.update_layout(**LAYOUT)
    fig.update_layout(height=480, margin=dict(l=64, r=20, t=110, b=40),
                      legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0.0),
                      title=f"{title}: {getattr(report, 'full_dim', '?')}-d vectors" + (f" ({note})" if note else ""))
    fig.update_xaxes(type="log", title_text="vectors in the index", row=1, col=1)
    fig.update_yaxes(type="log", title_text="milliseconds", row=1, col=1)
    fig.update_xaxes(type="log", title_text="bytes", row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    return fig


@safe_figure
def deployment_cost_figure(costs: Sequence[Any], price_note: str = "") -> go.Figure:
    """$ per month per configuration, one panel per corpus size: RAM (solid) stacked with disk (hatched).

    `costs` are `DeploymentCost`s; bar text gives the bytes behind each part. `price_note` (e.g. the
    prices and their source) is shown under the title.
    """
    rows = list(costs or [])
    title = "What a configuration costs to serve: RAM vs disk"
    if not rows:
        return message_figure("No configurations to price.", title)
    sizes = sorted({r.n_vectors for r in rows})
    configs = list(dict.fromkeys(r.config for r in rows))
    fig = make_subplots(rows=1, cols=len(sizes), shared_yaxes=False, horizontal_spacing=0.06,
                        subplot_titles=[f"{n:,} vectors" for n in sizes])
    for col, n in enumerate(sizes, start=1):
        at = {r.config: r for r in rows if r.n_vectors == n}
        names = [c for c in configs if c in at]
        xs = [axis_label(c) for c in names]
        colours = [colour_for(c) for c in names]
        ram = [at[c].ram_usd_month for c in names]
        disk = [at[c].disk_usd_month for c in names]
        fig.add_bar(x=xs, y=ram, marker=dict(color=colours), showlegend=False,
                    text=[human_bytes(at[c].ram_bytes) for c in names], textposition="inside",
                    customdata=[at[c].ram_holds for c in names],
                    hovertemplate="%{x}<br>RAM: %{text} (%{customdata})<br>$%{y:,.2f} / month<extra></extra>",
                    row=1, col=col)
        fig.add_bar(x=xs, y=disk, marker=dict(color=colours, pattern_shape="/", pattern_fgcolor="#ffffff"),
                    showlegend=False, text=[human_bytes(at[c].disk_bytes) if at[c].disk_bytes else ""
                                            for c in names], textposition="inside",
                    customdata=[at[c].disk_holds for c in names],
                    hovertemplate="%{x}<br>disk: %{text} (%{customdata})<br>$%{y:,.2f} / month<extra></extra>",
                    row=1, col=col)
        totals = [a + b for a, b in zip(ram, disk)]
        fig.add_scatter(x=xs, y=totals, mode="text", text=[f"${t:,.0f}" if t >= 10 else f"${t:,.2f}" for t in totals],
                        textposition="top center", showlegend=False, hoverinfo="skip", row=1, col=col)
        fig.update_yaxes(range=[0, max(totals + [1e-9]) * 1.25], row=1, col=col)
    fig.update_yaxes(title_text="$ per month", row=1, col=1)
    legend_swatch(fig, "RAM (scanned by every query)", "#64748b", row=1, col=1)
    legend_swatch(fig, "disk (read for rescoring candidates only)", "#64748b", "/", row=1, col=1)
    fig.update_layout(**LAYOUT)
    fig.update_layout(barmode="stack", height=480, margin=dict(l=64, r=20, t=110, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.1, xanchor="left", x=0.0),
                      title=title + (f"<br><sup>{price_note}</sup>" if price_note else ""))
    return fig
