"""BM25 baseline with bm25s: language-aware stemming (PyStemmer) and stop words where available.

MTEB's own `bm25s` baseline uses English stop words and the English stemmer for every language;
pass `language="en"` to reproduce it exactly. By default the corpus language picks both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pplx_demo.errors import DemoError
from pplx_demo.evaluate.datasets import RetrievalDataset

Run = dict[str, dict[str, float]]

# ISO 639-1 -> Snowball algorithm in PyStemmer.
STEMMERS: dict[str, str] = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "hi": "hindi",
    "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "nl": "dutch", "no": "norwegian", "pl": "polish", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil", "tr": "turkish",
}
# bm25s' default word pattern (scikit-learn's CountVectorizer): runs of 2+ word characters, lower-cased first.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Languages bm25s ships stop-word lists for (its own codes).
STOPWORDS: frozenset[str] = frozenset({"en", "de", "nl", "fr", "es", "pt", "it", "ru", "sv", "no", "zh", "tr", "ko", "da"})


@dataclass(frozen=True)
class Bm25Setup:
    """What the tokenizer does for one language (shown next to BM25 results)."""

    language: str
    stemmer: str | None
    stopwords: str | None

    def describe(self) -> str:
        return (f"bm25s (k1=1.5, b=0.75), stemmer {self.stemmer or 'none'}, "
                f"stop words {self.stopwords or 'none'}")


def bm25_setup(language: str | None) -> Bm25Setup:
    """Stemmer and stop words for an ISO 639-1 code (None: English, as MTEB's baseline)."""
    language = (language or "en").lower()
    return Bm25Setup(language, STEMMERS.get(language), language if language in STOPWORDS else None)


def bm25_tokenizer_args(setup: Bm25Setup) -> tuple[str | list[str], Callable[[list[str]], list[str]] | None]:
    """(stopwords, stemmer) to pass to `bm25s.tokenize` for this setup: the same for corpus and queries."""
    stem = None
    if setup.stemmer:
        import Stemmer

        stem = Stemmer.Stemmer(setup.stemmer).stemWords
    return setup.stopwords or [], stem


def bm25_run(dataset: RetrievalDataset, k: int = 100, language: str | None = None) -> Run:
    """Top-k BM25 scores per query over the whole corpus (title + text), bm25s defaults (Lucene BM25).

    `language` defaults to the corpus language; pass "en" for MTEB's English-only baseline.
    """
    import bm25s

    if not dataset.corpus:
        raise DemoError(f"dataset {dataset.name} has an empty corpus")
    setup = bm25_setup(language or dataset.language)
    stop, stem = bm25_tokenizer_args(setup)
    doc_ids = list(dataset.corpus)
    texts = [dataset.document_text(d) for d in doc_ids]
    corpus_tokens = bm25s.tokenize(texts, stopwords=stop, stemmer=stem, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)

    query_ids = list(dataset.queries)
    query_tokens = bm25s.tokenize([dataset.queries[q] for q in query_ids], stopwords=stop, stemmer=stem,
                                  return_ids=False, show_progress=False)
    vocab = corpus_tokens.vocab
    run: Run = {}
    top = min(k, len(doc_ids))
    for qid, tokens in zip(query_ids, query_tokens):
        known = [t for t in tokens if t in vocab]
        if not known:
            run[qid] = {}  # no query term occurs in the corpus: BM25 has nothing to rank
            continue
        scores = retriever.get_scores(known)
        order = scores.argsort()[::-1][:top]
        run[qid] = {doc_ids[i]: float(scores[i]) for i in order}
    return run
