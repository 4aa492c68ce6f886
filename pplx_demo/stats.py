"""Corpus statistics shown after ingestion: documents, chunks, tokens, characters and languages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pplx_demo.documents import Chunk, Document

_LANGID_CHARS = 2000  # enough text for a stable guess; long documents cost no more


@dataclass(frozen=True)
class CorpusStats:
    """Counts over one corpus; `languages` maps an ISO 639-1 code to its number of documents."""

    documents: int
    chunks: int
    tokens: int
    characters: int
    languages: dict[str, int] = field(default_factory=dict)

    def languages_text(self, top: int = 6) -> str:
        """'en 40, de 8' style summary of the most common languages."""
        if not self.languages:
            return "unknown"
        items = sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0]))
        text = ", ".join(f"{lang} {n}" for lang, n in items[:top])
        return text + (f", +{len(items) - top} more" if len(items) > top else "")


def guess_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (py3langid), or None for empty text."""
    sample = " ".join(text[:_LANGID_CHARS].split())
    if not sample:
        return None
    import py3langid  # noqa: PLC0415 - loads a model; only needed when stats are computed

    lang, _ = py3langid.classify(sample)
    return str(lang)


def document_language(doc: Document) -> str | None:
    """The language a loader recorded (metadata 'lang' / 'language'), else a guess from the text."""
    for key in ("lang", "language"):
        value = doc.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return guess_language(doc.text)


def corpus_stats(documents: Sequence[Document], chunks: Sequence[Sequence[Chunk]]) -> CorpusStats:
    """Statistics of documents and their chunks (`chunks[i]` belongs to `documents[i]`)."""
    langs = Counter(lang for lang in (document_language(d) for d in documents) if lang)
    return CorpusStats(documents=len(documents), chunks=sum(len(c) for c in chunks),
                       tokens=sum(ch.token_count for cs in chunks for ch in cs),
                       characters=sum(len(d.text) for d in documents), languages=dict(langs))
