"""The Scale panel's handlers: grow the corpus in view to 100k-10M vectors, time every configuration, price it.

A mixin of `Studio`. The run is `pplx_demo.scale_run.scale_corpus` (shared with the CLI's `scale`): the
corpus' own vectors first, then seeded synthetic ones, so its numbers are about speed and memory only,
never quality (every view says so). It is a heavy job with progress and Stop; a size over the scale
budget is refused before anything is written, with the reason and the largest size that fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from pplx_demo import charts
from pplx_demo.charts_scale import deployment_cost_figure, scale_latency_figure
from pplx_demo.deployment import COST_SOURCES
from pplx_demo.errors import DemoError
from pplx_demo.models import MODELS
from pplx_demo.scale import SYNTHETIC_NOTE, ScaleBudget, default_scale_configs, plan_scale
from pplx_demo.scale_run import ScaleRun, scale_corpus
from pplx_demo.storage import human_bytes
from pplx_demo.ui import views
from pplx_demo.ui.choices import DEFAULT_SCALE_SIZES, SCALE_SIZE_CHOICES, encoder_args, model_key_for
from pplx_demo.ui.errors import user_errors
from pplx_demo.ui.outputs import ScaleResults, progress_bridge
from pplx_demo.ui.views import esc

ALLOWED_SIZES = {value for _, value in SCALE_SIZE_CHOICES}


def _sizes(sizes: Sequence[Any] | None) -> list[int]:
    chosen = sorted({int(s) for s in (sizes or [])})
    if not chosen:
        raise DemoError("Tick at least one corpus size to grow to.", field="sizes")
    bad = [s for s in chosen if s not in ALLOWED_SIZES]
    if bad:
        raise DemoError(f"sizes must be among {', '.join(f'{s:,}' for s in sorted(ALLOWED_SIZES))} (got {bad[0]:,})",
                        field="sizes")
    return chosen


def cost_sources_markdown() -> str:
    """Where the default prices come from (shown under every cost chart)."""
    return "Default prices: " + "; ".join(f"{c.resource}: {c.what} ([source]({c.url}), {c.as_of})"
                                          for c in COST_SOURCES) + "."


def scale_table_html(run: ScaleRun) -> str:
    """Per configuration and size: p50 / p95 latency, RAM, disk and $ per month."""
    cost_at = {(c.config, c.n_vectors): c for c in run.costs}
    rows = []
    for p in run.report.points:
        c = cost_at.get((p.config, p.n_vectors))
        cells = [esc(str(p.config)), f"{p.n_vectors:,}", f"{p.p50_ms:.2f}", f"{p.p95_ms:.2f}",
                 human_bytes(c.ram_bytes) if c else "–", human_bytes(c.disk_bytes) if c and c.disk_bytes else "–",
                 f"${c.total_usd_month:,.2f}" if c else "–"]
        tds = "".join(f"<td class='{'txt' if i == 0 else 'num'}'>{v}</td>" for i, v in enumerate(cells))
        rows.append(f"<tr style='--pplx-config:{charts.colour_for(p.config)}'>{tds}</tr>")
    head = "".join(f"<th class='{'txt' if i == 0 else 'num'}'>{h}</th>" for i, h in enumerate(
        ["configuration", "vectors", "p50 ms", "p95 ms", "RAM", "disk", "$ / month"]))
    return (f"<div class='pplx-table-wrap'><table class='pplx-eval'><caption>{esc(run.corpus_name)} grown with "
            f"{esc(SYNTHETIC_NOTE)} · {esc(charts.short_model_name(run.model_name))} · one query, top-{run.report.k}"
            f", {run.n_questions} real questions x {run.report.repeats}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><p class='pplx-table-note'>RAM = what every query scans (binary "
            "codes, or the int8 / float32 rows of a plain scan); disk = what is read only for rescoring "
            "candidates.</p></div>")


class ScalePanel:
    """scale_estimate and scale (mixin; `self` is the Studio)."""

    settings: Any
    store: Any

    def scale_estimate(self, sizes: Sequence[Any] | None, model_size: str, variant: str) -> str:
        """Before running: what the largest size needs against the budget (from the model's size alone)."""
        try:
            chosen = _sizes(sizes)
        except DemoError as exc:
            return views.notice_html(str(exc), "warn")
        spec = MODELS[model_key_for(model_size, variant)]
        plan = plan_scale(spec.dim, chosen[-1], default_scale_configs(spec.dim, spec.int8_scheme), spec.int8_scheme)
        budget = ScaleBudget.from_settings(self.settings)
        fits = plan.ram_bytes <= budget.ram_bytes and plan.disk_bytes <= budget.disk_bytes
        text = (f"{chosen[-1]:,} vectors of {spec.dim} dimensions need about {human_bytes(plan.ram_bytes)} of RAM and "
                f"{human_bytes(plan.disk_bytes)} of disk (budget: {human_bytes(budget.ram_bytes)} RAM, "
                f"{human_bytes(budget.disk_bytes)} disk). Vectors beyond the corpus' own are {SYNTHETIC_NOTE}.")
        if not fits:
            text += " Over the budget: the run will be refused; untick the largest size."
        return views.notice_html(text, "info" if fits else "warn")

    @user_errors
    def scale(self, corpus: str, sizes: list[int] | None = None, model_size: str = "stand-in",
              variant: str = "standard", session_key: str | None = None, runtime: str = "torch",
              request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> ScaleResults:
        """Grow the corpus' vectors (embedded first if needed) to each size with synthetic vectors and time
        every configuration on real questions; RAM, disk and $ per month of each at each size."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        c = self._corpus_for(corpus, owner)  # type: ignore[attr-defined]
        chosen = _sizes(list(DEFAULT_SCALE_SIZES) if sizes is None else sizes)
        if self.sample_preparing(c.id):  # type: ignore[attr-defined]
            return ScaleResults(views.notice_html(self.preparing_message(), "info"))  # type: ignore[attr-defined]
        model_key, enc_variant = encoder_args(model_size, variant)
        encoder = self._encoder_with_notice(model_key, enc_variant, runtime, progress)  # type: ignore[attr-defined]
        with self.jobs.heavy():  # type: ignore[attr-defined]
            run = scale_corpus(self.store, c.id, encoder, chosen, settings=self.settings,
                               embed_progress=progress_bridge(progress, f"Embedding “{c.name}”"),
                               progress=progress_bridge(progress, "Growing the index and timing it"),
                               cancel=self._cancel_event(key), meter=self.meter)  # type: ignore[attr-defined]
        largest = run.report.sizes[-1] if run.report.sizes else None
        note = (f"“{run.corpus_name}”: {run.report.sizes[0].n_real if run.report.sizes else 0:,} real vectors grown to "
                f"{', '.join(f'{n:,}' for n in run.sizes)} with {SYNTHETIC_NOTE}."
                + (f" Largest index: {human_bytes(largest.disk_bytes)} on disk, {human_bytes(largest.index_ram_bytes)}"
                   f" in RAM, grown in {largest.build_seconds:.1f} s." if largest else ""))
        price = (f"RAM ${self.settings.ram_usd_per_gb_month:g}/GiB-month, disk ${self.settings.disk_usd_per_gb_month:g}"
                 "/GiB-month (sources under the chart)")
        return ScaleResults(views.notice_html(note, "info"), scale_table_html(run), scale_latency_figure(run.report),
                            deployment_cost_figure(run.costs, price))
