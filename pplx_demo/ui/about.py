"""The About tab and the sample note: models, availability here, published and reproduced numbers, storage.

Everything is read from data (the registry, availability checks, benchmarks/reproduction.json,
indexes measured on the spot), never typed in as numbers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from pplx_demo.evaluate.reproduction import load_reproduction
from pplx_demo.index import IndexConfig
from pplx_demo.ingest.sample import SAMPLE_ATTRIBUTION, SAMPLE_CORPUS_NAME, STARTER_LANGUAGES
from pplx_demo.models import MODELS
from pplx_demo.storage import bytes_per_vector_table
from pplx_demo.ui import views
from pplx_demo.ui.views import plural

_URL = re.compile(r"https?://[^\s;,)]+")


def about_markdown(availabilities: Sequence[Any], models_dir: Any, private_corpus_idle_s: float) -> str:
    """Models, their published numbers, our reproduction and availability here, all read from data."""
    return "\n".join(_about_models() + about_availability(availabilities, models_dir) + _about_published()
                     + _about_reproduction() + _about_storage() + about_rest(private_corpus_idle_s))


def sample_note(corpus: Any | None) -> str:
    """What the shared starter corpus is (sizes from the stored corpus, when it is there)."""
    size = f" ({plural(corpus.n_documents, 'paragraph')}, {plural(corpus.n_chunks, 'chunk')})" if corpus else ""
    return (f"**{SAMPLE_CORPUS_NAME}**: the first paragraph of each XQuAD article in "
            f"{', '.join(STARTER_LANGUAGES)}{size}. It is shared by everyone, read-only, and already embedded "
            f"with the offline stand-in. Pick it in the Search tab; the example questions there are answered by "
            f"it.\n\n{SAMPLE_ATTRIBUTION}")


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (escaped HTML, no pipes or newlines)."""
    return views.esc(text).replace("|", "\\|").replace("\n", " ")


def _md_cite(text: str) -> str:
    """A citation with its URLs as Markdown links (the rest escaped)."""
    out, pos = [], 0
    for m in _URL.finditer(text):
        out.append(_md(text[pos:m.start()]))
        out.append(f"[{_md(m.group(0).removeprefix('https://'))}]({m.group(0)})")
        pos = m.end()
    out.append(_md(text[pos:]))
    return "".join(out)


def _about_models() -> list[str]:
    lines = ["## Models", "",
             "| model | params | dims | context (tokens) | int8 | Matryoshka sizes | licence |",
             "|---|---|---|---|---|---|---|"]
    for spec in MODELS.values():
        dims = ", ".join(str(d) for d in spec.matryoshka_dims)
        lines.append(f"| {_md(spec.display_name)} | {spec.params} | {spec.dim} | {spec.max_context:,} | "
                     f"{spec.int8_scheme} | {dims} | {spec.licence} |")
    return lines


def _about_published() -> list[str]:
    lines = ["", "## Published results", "", "Numbers as their sources report them, not measured here.", "",
             "| model | benchmark | score | source |", "|---|---|---|---|"]
    sources: list[str] = []
    for spec in MODELS.values():
        if not spec.published:
            continue
        source = getattr(spec, "published_source", "") or "model card"
        if source not in sources:
            sources.append(source)
        ref = f"[{sources.index(source) + 1}]"
        for bench, score in spec.published.items():
            lines.append(f"| {_md(spec.display_name)} | {_md(bench)} | {score:g} | {ref} |")
    lines += [""] + [f"{i}. {_md_cite(s)}" for i, s in enumerate(sources, 1)]
    return lines


def _about_reproduction() -> list[str]:
    lines = ["", "## Reproduced here", ""]
    rep = load_reproduction()
    if rep is None or not rep.rows:
        return lines + ["No reproduction has been recorded yet (`python benchmarks/bench_eval.py` writes "
                        "`benchmarks/reproduction.json`)."]
    lines += [f"Command: `{_md(rep.command)}` · machine: {_md(rep.machine)} · date: {_md(rep.date)}", "",
              "| dataset | system | published | ours | difference | within tolerance |",
              "|---|---|---|---|---|---|"]
    for row in rep.rows:
        lines.append(f"| {_md(row.dataset)} | {_md(row.system)} | {row.published:.1f} | {row.ours:.2f} | "
                     f"{row.delta:+.2f} | {'yes' if row.within else 'no'} (±{row.tolerance:g}) |")
    return lines + [f"- {_md(n)}" for n in rep.notes]


STORAGE_CONFIGS = {"float32": IndexConfig("float32"), "int8": IndexConfig("int8", int8_scheme="tanh"),
                   "binary": IndexConfig("binary"),
                   "binary + rescore (int8 kept)": IndexConfig("binary", "rescore", int8_scheme="tanh")}


@functools.cache
def storage_table() -> list[tuple[int, dict[str, int]]]:
    """Bytes per vector of each configuration at each model size, measured on tiny real indexes."""
    return bytes_per_vector_table([spec.dim for spec in MODELS.values()], STORAGE_CONFIGS)


def _about_storage() -> list[str]:
    table = storage_table()
    names = list(table[0][1])
    lines = ["", "## What an index holds per vector", "",
             "Measured from the arrays of a real index of each size (`storage_report`), not from a formula:", "",
             "| dimensions | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for dim, row in table:
        lines.append(f"| {dim:,} | " + " | ".join(f"{row[n]:,} B" for n in names) + " |")
    dim, row = table[-1]
    extra = row["int8"] - dim
    lines += ["", f"int8 holds one byte of code per dimension plus {extra} bytes per vector (its float32 norm, kept "
              f"for cosine scoring): {row['int8']:,} B at {dim:,} dimensions. Binary packs one bit per dimension into "
              f"64-bit words ({row['binary']:,} B at {dim:,}). The search columns and the Compare tab report these "
              "measured sizes and project them to 1M, 100M and 1B vectors."]
    return lines


def about_availability(availabilities: Sequence[Any], models_dir: Any) -> list[str]:
    lines = ["", "## Available on this machine", "", "| model | available | why |", "|---|---|---|"]
    missing = []
    for a in availabilities:
        spec = MODELS[a.key]
        lines.append(f"| {_md(spec.display_name)} | {'yes' if a.available else '**no**'} | {_md(a.reason)} |")
        if not a.available:
            missing.append(spec)
    if missing:
        repos = ", ".join(f"`{s.hub_id}` ({s.weights_gb:g} GB)" for s in missing)
        parent = models_dir or "a folder of your choice"
        lines += ["", "**How to enable the missing models** (" + repos + "): download a model's files "
                  "(config.json, tokenizer.json, the *.safetensors weights) into a folder named like the "
                  f"repository under {_md(parent)} and set `PPLX_DEMO_MODELS_DIR` to that parent folder; or run "
                  "`hf download <repository>` on a machine that reaches the hub (the studio reads "
                  "the Hugging Face cache); on a Space, list the repositories under `preload_from_hub` in the "
                  "README's front matter. The 4B models need a GPU for practical speed."]
    return lines

def about_rest(private_corpus_idle_s: float) -> list[str]:
    idle_min = private_corpus_idle_s / 60
    return ["", "## How the numbers are made", "",
            "- Every column is compared with an exact float32 search of the same query: overlap@k is the share "
            "of the float32 top-k it also finds, and each hit shows its float32 rank.",
            "- pplx-embed int8 is the models' own tanh quantisation; the stand-in uses per-dimension ranges "
            "calibrated on the corpus. Binary keeps the sign of each float coordinate; rescoring re-ranks the "
            "binary candidates with the int8 vectors.",
            "- Evaluations use a seeded random sample of the queries (never the first ones in the file), and "
            "every metric is also given as % of the same model's float32 result.",
            "", "## Privacy", "",
            f"Files you upload and sites you crawl form private corpora that only your browser (or API "
            f"session key) can list, search or evaluate. They are deleted after {idle_min:g} idle "
            "minutes. The sample corpus is shared and read-only. Queries and document text are not "
            "written to the logs.",
            "", "## Data", "", SAMPLE_ATTRIBUTION]
