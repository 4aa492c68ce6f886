"""The Search and Compare tabs' handlers: one search across configurations, and the session's charts.

A mixin of `Studio`. A search of a corpus not yet embedded with the chosen model embeds it first as a
heavy job (progress bar, Stop); a search of the shared sample while it is still being prepared at
start-up answers with a notice saying so. Every search is remembered (without hit texts) per session on
the server, so the Compare charts survive a reload of the page.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import gradio as gr

from pplx_demo import charts, workflows
from pplx_demo.charts_scale import deployment_cost_figure
from pplx_demo.deployment import PROJECTION_SIZES, deployment_costs
from pplx_demo.errors import DemoError
from pplx_demo.index import IndexConfig
from pplx_demo.models import MODELS
from pplx_demo.models.encoder import RUNTIME_LABELS
from pplx_demo.search import SearchResponse, response_payload
from pplx_demo.ui import result_views, views
from pplx_demo.ui.choices import (DEFAULT_CONFIGS, MAX_RESCORE_MULTIPLIER, MAX_TOP_K, QUALITY_METRIC, configs_for,
                                  encoder_args, whole_number)
from pplx_demo.ui.errors import user_errors
from pplx_demo.ui.outputs import CompareCharts, SearchResults
from pplx_demo.ui.summary import summary_line
from pplx_demo.ui.views import plural

BASELINE_LABEL = "float32"
SLOW_LOAD_S = 2.0  # a model load longer than this is worth a line above the results


class SearchHandlers:
    """search and compare_charts (mixin; `self` is the Studio)."""

    settings: Any
    store: Any
    history: Any

    @user_errors
    def search(self, corpus: str, query: str, model_size: str = "stand-in", variant: str = "standard",
               configurations: list[str] | None = None, top_k: float = 10, rescore_multiplier: float = 4,
               matryoshka: str = "full", session_key: str | None = None, runtime: str = "torch",
               explain: bool = True, request: gr.Request = None,
               progress: gr.Progress = gr.Progress()) -> SearchResults:
        """Search one corpus with every ticked configuration; one ranked column per configuration, a one-line
        summary against float32, and with `explain` (the page's default; off unless asked over the API) each
        hit's sentence closest to the query and the query terms it holds, timed as its own stage."""
        key, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        c = self._corpus_for(corpus, owner)  # type: ignore[attr-defined]
        if not (query or "").strip():
            raise DemoError("Type a query first.", field="query")
        k = whole_number(top_k, "top_k", 1, MAX_TOP_K)
        mult = whole_number(rescore_multiplier, "rescore_multiplier", 1, MAX_RESCORE_MULTIPLIER)
        configs = configs_for(list(DEFAULT_CONFIGS) if configurations is None else configurations, matryoshka, mult,
                              self.settings.hybrid_rrf_k)
        model_key, enc_variant = encoder_args(model_size, variant)
        available = self.model_available(model_key)  # type: ignore[attr-defined]
        if not available.available:
            raise DemoError(f"{MODELS[model_key].display_name} is not available here: {available.reason}. "
                            f"To enable it: {available.how_to_enable}.", field="model_size")
        if self.sample_preparing(c.id):  # type: ignore[attr-defined]
            message = self.preparing_message()  # type: ignore[attr-defined]
            return SearchResults(views.notice_html(message, "info"),
                                 {"status": "preparing", "message": message, "startup": self.status()})  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        encoder = self._encoder_with_notice(model_key, enc_variant, runtime, progress)  # type: ignore[attr-defined]
        load_s = time.perf_counter() - t0
        ready = (c.id, c.revision, str(encoder.cache_key), str(encoder.variant))
        outcome = None
        if ready not in self._embedded:  # type: ignore[attr-defined]  # first search with this model: may embed
            outcome = self._embed(c.id, encoder, progress, self._cancel_event(key))  # type: ignore[attr-defined]
            self._embedded.add(ready)  # type: ignore[attr-defined]
        response = self.service(runtime).search(c.id, model_key, enc_variant, configs, query.strip(), k,  # type: ignore[attr-defined]
                                                explain=bool(explain))
        if outcome is not None and outcome.embedded:
            response = replace(response, embedded_now=outcome.embedded, truncated_now=outcome.truncated)
        self.history.add_search(owner, response)
        pages = self.store.chunk_pages([h.chunk_id for col in response.columns for h in col.hits]) \
            if c.source != "sample" else {}
        notices = self._search_notices(response, encoder, configs, runtime, load_s)
        summary = summary_line(response, BASELINE_LABEL)
        html = result_views.results_html(response, query, BASELINE_LABEL, notices, pages, summary)
        payload = response_payload(response)
        payload["summary"] = summary
        payload["runtime"] = runtime
        for col in payload["columns"]:
            for hit in col["hits"]:
                if hit["chunk_id"] in pages:
                    hit["pages"] = list(pages[hit["chunk_id"]])
        return SearchResults(html, payload)

    def use_sample(self, corpus: Any) -> Any:
        """The example questions are about the shared sample: select it before they run."""
        sample = getattr(self, "sample_corpus_id", None)
        return gr.update(value=str(sample)) if sample is not None else gr.update()

    def _search_notices(self, response: SearchResponse, encoder: Any, configs: list[IndexConfig], runtime: str,
                        load_s: float) -> list[tuple[str, str]]:
        notices = []
        model = charts.short_model_name(encoder.name)
        if load_s > SLOW_LOAD_S:
            how = f" on {RUNTIME_LABELS[runtime]} (its first use exports the model to ONNX, once)" \
                if runtime != "torch" else ""
            notices.append((f"Loading {model}{how} took {load_s:.0f} s before this search; not part of any "
                            "latency below.", "info"))
        if response.embedded_now:
            notices.append((f"This search first embedded {plural(response.embedded_now, 'chunk')} of the corpus with "
                            f"{model} (done once; later searches reuse them).", "info"))
        if response.truncated_now:
            report = workflows.truncation_report(encoder, response.truncated_now, response.embedded_now)
            notices.append((f"{plural(report.truncated, 'chunk')} of this corpus "
                            f"{'is' if report.truncated == 1 else 'are'} longer than {model} reads "
                            f"({report.budget_tokens} tokens) and were cut: their ends are not searchable.", "warn"))
        truncated_dims = sorted({cfg.dim for cfg in configs if cfg.dim is not None and cfg.dim < encoder.dim})
        if truncated_dims and not encoder.is_pplx:
            notices.append((f"{model} was not trained for Matryoshka truncation: at "
                            f"{', '.join(str(d) for d in truncated_dims)} of its {encoder.dim} dimensions these "
                            "columns show what cutting a vector does to a model without that training, not what "
                            "pplx-embed (trained for it) does.", "warn"))
        return notices

    # ------------------------------------------------------------------ Compare tab

    def cost_figure(self, response: SearchResponse | None) -> Any:
        """RAM / disk / $ per month of the last search's configurations at 1M, 100M and 1B vectors."""
        if response is None or not response.columns:
            return charts.message_figure("Run a search to see what its configurations cost to serve.",
                                         "What a configuration costs to serve: RAM vs disk")
        full_dim = max(1, response.columns[0].storage.float32_bytes_per_vector // 4)
        configs = list(dict.fromkeys(c.config.dense for c in response.columns))
        costs = deployment_costs(configs, full_dim, PROJECTION_SIZES.values(),
                                 ram_usd_per_gb_month=self.settings.ram_usd_per_gb_month,
                                 disk_usd_per_gb_month=self.settings.disk_usd_per_gb_month)
        note = (f"{full_dim}-d vectors ({charts.short_model_name(response.model_name)}); RAM "
                f"${self.settings.ram_usd_per_gb_month:g}/GiB-month, disk ${self.settings.disk_usd_per_gb_month:g}"
                "/GiB-month (sources under the chart)")
        return deployment_cost_figure(costs, note)

    def compare_charts(self, session_key: str | None = None, request: gr.Request = None) -> CompareCharts:
        """The session's searches (latency, cost, scores of the last) and its last evaluation (quality)."""
        _, owner = self._who(session_key, request)  # type: ignore[attr-defined]
        runs = self.history.searches(owner)
        last = runs[-1] if runs else None
        evaluation = self.history.last_eval(owner)
        quality = evaluation.points() if evaluation is not None else []
        frontier = evaluation.frontier() if evaluation is not None else []
        intervals = evaluation.intervals() if evaluation is not None else None
        return CompareCharts(charts.latency_figure(runs), self.cost_figure(last),
                             charts.quality_bytes_figure(quality, QUALITY_METRIC, frontier, intervals),
                             charts.score_distribution_figure(last))
