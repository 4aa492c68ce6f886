"""The corpus workflow both front ends run: plan chunking, build a corpus, embed it, ensure the sample.

The CLI and the studio call these functions and only add their own wording and widgets:
- `plan_chunking`: one rule for chunk sizes (defaults, overlap, the model's window, `--append` /
  existing corpora) and one recorded format (`ChunkingPlan.as_dict()`).
- `build_corpus`: chunk documents (a document that cannot be chunked is rejected alone), record
  each document's language, compute statistics, store them as a new corpus or append.
- `embed`: embed what a corpus lacks, timed, feeding the throughput meter that estimates later jobs.
- `ensure_sample`: the shared starter corpus, built exactly one way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pplx_demo.documents import Chunk, Document
from pplx_demo.embedding import embed_corpus
from pplx_demo.errors import Cancelled, DemoError
from pplx_demo.ingest.chunking import chunk_text, encoder_token_budget, validate_chunking
from pplx_demo.models.registry import default_chunking
from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME, STARTER_LANGUAGES, starter_documents
from pplx_demo.stats import CorpusStats, corpus_stats, document_language
from pplx_demo.store import CorpusInfo, Store
from pplx_demo.throughput import ThroughputMeter

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------
# chunking


@dataclass
class ChunkingPlan:
    """How documents are chunked: whose tokenizer, sizes in tokens, and notes on choices made for the user."""

    model_key: str
    variant: str
    chunk_tokens: int
    overlap_tokens: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The one format a corpus records about its chunking."""
        return {"model_key": self.model_key, "variant": self.variant, "chunk_tokens": self.chunk_tokens,
                "overlap_tokens": self.overlap_tokens}


def default_sizes(encoder: Any) -> tuple[int, int, int]:
    """(chunk tokens, overlap tokens, largest chunk the encoder reads) for an encoder."""
    budget = encoder_token_budget(encoder)
    size, overlap = default_chunking(str(encoder.model_key), str(encoder.variant))
    size = min(size, budget)
    return size, min(overlap, max(0, size // 4)), budget


def plan_chunking(encoder: Any, chunk_tokens: int | None = None, overlap_tokens: int | None = None, *,
                  existing: CorpusInfo | None = None) -> ChunkingPlan:
    """Chunk sizes for `encoder`'s tokenizer: the options given, else the model's defaults, else (for an
    existing corpus with no options) exactly how that corpus was chunked.

    An omitted overlap is min(model default, chunk size // 4) and the plan notes it; sizes the model
    cannot read, or an overlap not below the chunk size, are DemoErrors. Appending with another
    tokenizer or other sizes than the corpus recorded is refused: one chunking per corpus.
    """
    recorded = (existing.chunking or {}) if existing is not None else {}
    default_tokens, default_overlap, _ = default_sizes(encoder)
    notes: list[str] = []
    if existing is not None and "chunk_tokens" in recorded and chunk_tokens is None and overlap_tokens is None:
        tokens, overlap = int(recorded["chunk_tokens"]), int(recorded.get("overlap_tokens", 0))
    elif chunk_tokens is None:
        tokens = default_tokens
        overlap = default_overlap if overlap_tokens is None else int(overlap_tokens)
    else:
        tokens = int(chunk_tokens)
        if overlap_tokens is None:
            overlap = min(default_overlap, tokens // 4)
            if overlap != default_overlap:
                notes.append(f"Overlap set to {overlap} tokens: at most a quarter of the {tokens}-token chunks "
                             f"(the model's default is {default_overlap}).")
        else:
            overlap = int(overlap_tokens)
    validate_chunking(tokens, overlap, encoder)
    plan = ChunkingPlan(str(encoder.model_key), str(encoder.variant), tokens, overlap, notes)
    if existing is not None:
        check_same_chunking(existing, plan, getattr(encoder, "name", ""))
    return plan


def check_same_chunking(existing: CorpusInfo, plan: ChunkingPlan, encoder_name: str = "") -> None:
    """Refuse to add chunks of other sizes or from another tokenizer than the corpus recorded."""
    recorded = existing.chunking or {}
    if "chunk_tokens" not in recorded:
        return  # nothing recorded to compare with (a corpus stored by other code)
    same_sizes = (int(recorded["chunk_tokens"]), int(recorded.get("overlap_tokens", 0))) == \
        (plan.chunk_tokens, plan.overlap_tokens)
    if "model_key" in recorded:
        tokenizer = str(recorded["model_key"])
        same_tokenizer = tokenizer == plan.model_key
    else:  # older records name the tokenizer's model
        tokenizer = str(recorded.get("tokenizer", "?"))
        same_tokenizer = tokenizer in (encoder_name, plan.model_key)
    if same_sizes and same_tokenizer:
        return
    raise DemoError(
        f"corpus {existing.name!r} was chunked into {recorded['chunk_tokens']}-token chunks with overlap "
        f"{recorded.get('overlap_tokens', 0)} ({tokenizer} tokenizer); adding {plan.chunk_tokens}-token chunks with "
        f"overlap {plan.overlap_tokens} ({plan.model_key} tokenizer) would mix the two. Append with the corpus' own "
        f"chunking and model, or add the documents to a new corpus", field="chunking",
        cli_flag="--model/--chunk-tokens/--overlap-tokens")


# ---------------------------------------------------------------------------------------------
# building a corpus


@dataclass(frozen=True)
class CorpusBuilt:
    """What `build_corpus` stored: the corpus, what was added, and documents it had to reject."""

    corpus_id: int
    stats: CorpusStats  # of the documents added now
    plan: ChunkingPlan
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (document uri, reason)


def chunk_documents(documents: Sequence[Document], encoder: Any, plan: ChunkingPlan, *,
                    progress: Progress | None = None, cancel: threading.Event | None = None
                    ) -> tuple[list[Document], list[list[Chunk]], list[tuple[str, str]]]:
    """(kept documents, their chunks, rejected (uri, reason)): a document that fails is rejected alone."""
    kept: list[Document] = []
    chunks: list[list[Chunk]] = []
    rejected: list[tuple[str, str]] = []
    for i, doc in enumerate(documents, start=1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("stopped before the corpus was stored; nothing was kept")
        try:
            doc_chunks = chunk_text(doc.text, encoder.tokenizer, plan.chunk_tokens, plan.overlap_tokens)
        except DemoError as exc:
            rejected.append((doc.uri, f"could not be chunked: {exc}"))
        except Exception as exc:  # noqa: BLE001 - one bad document must not cost the others
            log.warning("chunking failed for one document: %s", type(exc).__name__)
            rejected.append((doc.uri, f"could not be chunked ({type(exc).__name__})"))
        else:
            kept.append(doc)
            chunks.append(doc_chunks)
        if progress is not None:
            progress(i, len(documents))
    return kept, chunks, rejected


def tag_languages(documents: Sequence[Document]) -> None:
    """Record each document's language in metadata["lang"] (the store lists a corpus' languages from it)."""
    for doc in documents:
        if not doc.metadata.get("lang"):
            lang = document_language(doc)
            if lang:
                doc.metadata["lang"] = lang


def build_corpus(store: Store, name: str, documents: Sequence[Document], encoder: Any, plan: ChunkingPlan, *,
                 owner: str | None, source: str, existing: CorpusInfo | None = None,
                 progress: Progress | None = None, cancel: threading.Event | None = None) -> CorpusBuilt:
    """Chunk, tag languages and store `documents` as a new corpus (or append to `existing`).

    All or nothing for what is stored (one transaction); documents that cannot be chunked are
    rejected one by one with a reason and the rest are stored. DemoError when nothing is left.
    """
    kept, chunks, rejected = chunk_documents(documents, encoder, plan, progress=progress, cancel=cancel)
    tag_languages(kept)
    stats = corpus_stats(kept, chunks)
    if stats.chunks == 0:
        detail = f" ({rejected[0][0]}: {rejected[0][1]})" if rejected else ""
        raise DemoError(f"the documents hold no text to search{detail}")
    if cancel is not None and cancel.is_set():
        raise Cancelled("stopped before the corpus was stored; nothing was kept")
    if existing is not None:
        store.add_documents(existing.id, kept, chunks)
        corpus_id = existing.id
    else:
        corpus_id = store.add_corpus(name.strip(), kept, chunks, owner=owner, chunking=plan.as_dict(), source=source)
    log.info("corpus %s: +%d documents, +%d chunks, %d rejected", corpus_id, stats.documents, stats.chunks,
             len(rejected))
    return CorpusBuilt(corpus_id, stats, plan, rejected)


# ---------------------------------------------------------------------------------------------
# embedding


@dataclass(frozen=True)
class TruncationReport:
    """Chunks an encoder had to cut at its window (their ends are not searchable), rendered per front end."""

    truncated: int
    embedded: int
    budget_tokens: int  # tokens of text one input may hold for this encoder
    model_name: str
    model_key: str

    def __bool__(self) -> bool:
        return self.truncated > 0


@dataclass(frozen=True)
class EmbedOutcome:
    """What one embedding job did: seconds, chunks embedded now, chunks the encoder cut, corpus chunks."""

    seconds: float
    embedded: int
    chunks: int
    truncation: TruncationReport

    @property
    def truncated(self) -> int:
        return self.truncation.truncated


def truncation_report(encoder: Any, truncated: int, embedded: int) -> TruncationReport:
    return TruncationReport(int(truncated), int(embedded), encoder_token_budget(encoder), str(encoder.name),
                            str(encoder.model_key))


def embed(store: Store, corpus_id: int, encoder: Any, *, meter: ThroughputMeter | None = None,
          progress: Progress | None = None, cancel: threading.Event | None = None) -> EmbedOutcome:
    """Embed what the corpus lacks for `encoder` (cached vectors are reused), timed for the estimates."""
    start = time.perf_counter()
    matrix = embed_corpus(store, corpus_id, encoder, progress=progress, cancel=cancel)
    seconds = time.perf_counter() - start
    if matrix.embedded_now and meter is not None:
        tokens = store.get_corpus(corpus_id).n_tokens
        share = matrix.embedded_now / max(1, len(matrix.chunk_ids))
        meter.record(encoder, int(tokens * share), seconds)
    return EmbedOutcome(seconds, int(matrix.embedded_now), len(matrix.chunk_ids),
                        truncation_report(encoder, matrix.truncated_now, matrix.embedded_now))


# ---------------------------------------------------------------------------------------------
# the shared sample


def ensure_sample(store: Store, encoder: Any, *, embed_it: bool = True,
                  meter: ThroughputMeter | None = None, progress: Progress | None = None) -> tuple[int, int]:
    """(corpus id, documents added now) of the shared starter corpus: the first paragraph of each XQuAD
    article in STARTER_LANGUAGES, chunked with `encoder`'s tokenizer and its default sizes; languages
    missing from an older store are added. Embedded with `encoder` unless `embed_it` is False."""
    found = store.find_corpus(SAMPLE_CORPUS_NAME, None)
    missing = [lang for lang in STARTER_LANGUAGES if found is None or lang not in found.languages]
    added = 0
    if missing:
        documents = starter_documents(missing)
        plan = plan_chunking(encoder) if found is None or "chunk_tokens" not in (found.chunking or {}) else \
            ChunkingPlan(str(encoder.model_key), str(encoder.variant), int(found.chunking["chunk_tokens"]),
                         int(found.chunking.get("overlap_tokens", 0)))
        built = build_corpus(store, SAMPLE_CORPUS_NAME, documents, encoder, plan, owner=None, source="sample",
                             existing=found)
        corpus_id, added = built.corpus_id, built.stats.documents
    else:
        assert found is not None
        corpus_id = found.id
    if embed_it:
        embed(store, corpus_id, encoder, meter=meter, progress=progress)
    return corpus_id, added
