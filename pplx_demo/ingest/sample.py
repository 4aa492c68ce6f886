"""The built-in sample corpus: XQuAD paragraphs (12 languages, parallel) and their questions.

Data: `data/xquad/xquad.<lang>.json`, unmodified from google-deepmind/xquad, CC BY-SA 4.0 (see
`data/xquad/ATTRIBUTION.md`). A paragraph id is `"<article index>-<paragraph index>"`, the same in
every language (metadata["paragraph_id"]), so a German question's relevant English paragraph has
the same id; a document's external_id is `"<lang>:<paragraph id>"`, unique in a mixed corpus.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from pplx_demo.config import DATA_DIR
from pplx_demo.documents import Document
from pplx_demo.errors import DemoError

SAMPLE_CORPUS_NAME = "XQuAD sample (CC BY-SA 4.0)"
XQUAD_DIR = DATA_DIR / "xquad"
XQUAD_LANGUAGES = ("en", "de", "es", "ro", "tr", "vi", "ru", "el", "zh", "ar", "hi", "th")
# The starter corpus the app loads on first start (shared by every session): small enough to embed
# in seconds on two CPU cores, and parallel, so a German question finds its English paragraph too.
STARTER_LANGUAGES = ("en", "de", "es")
SAMPLE_ATTRIBUTION = (
    "XQuAD (Artetxe, Ruder, Yogatama 2020; google-deepmind/xquad), CC BY-SA 4.0: "
    "translated SQuAD v1.1 paragraphs from Wikipedia."
)


def xquad_path(language: str) -> Path:
    """Path of the XQuAD file for `language`; DemoError when the language is not shipped."""
    if language not in XQUAD_LANGUAGES:
        raise DemoError(f"No XQuAD sample for language {language!r}; available: {', '.join(XQUAD_LANGUAGES)}.")
    path = XQUAD_DIR / f"xquad.{language}.json"
    if not path.is_file():
        raise DemoError(f"The XQuAD sample file {path} is missing; restore data/xquad/ from the repository.")
    return path


@lru_cache(maxsize=len(XQUAD_LANGUAGES))
def _load(language: str) -> tuple[dict[str, Any], ...]:
    """The articles of one language file (cached: the files never change while running)."""
    with xquad_path(language).open(encoding="utf-8") as handle:
        return tuple(json.load(handle)["data"])


def _article_title(article: dict[str, Any]) -> str:
    return str(article.get("title") or "").replace("_", " ").strip()


def sample_documents(languages: Sequence[str] = ("en",)) -> list[Document]:
    """The unique XQuAD paragraphs of each language, in file order, titled by their article."""
    docs: list[Document] = []
    for language in dict.fromkeys(languages):
        seen: set[str] = set()
        for a_i, article in enumerate(_load(language)):
            title = _article_title(article)
            for p_i, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"].strip()
                if context in seen:
                    continue
                seen.add(context)
                paragraph_id = f"{a_i}-{p_i}"
                docs.append(
                    Document(
                        uri=f"xquad://{language}/{paragraph_id}",
                        title=title,
                        text=context,
                        metadata={
                            "lang": language,
                            "article": title,
                            "paragraph_id": paragraph_id,
                            "source": "XQuAD",
                            "license": "CC BY-SA 4.0",
                        },
                        external_id=f"{language}:{paragraph_id}",
                    )
                )
    return docs


def sample_query_pairs(language: str = "en") -> list[tuple[str, str]]:
    """Every (question, paragraph id) pair of one language, in file order (ids are language-free)."""
    pairs = []
    for a_i, article in enumerate(_load(language)):
        for p_i, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph.get("qas", []):
                pairs.append((qa["question"].strip(), f"{a_i}-{p_i}"))
    return pairs


def starter_documents(languages: Sequence[str] = STARTER_LANGUAGES) -> list[Document]:
    """The first paragraph of each of the 48 XQuAD articles per language (the app's starter corpus)."""
    return [d for d in sample_documents(languages) if str(d.metadata["paragraph_id"]).endswith("-0")]


def sample_queries(language: str = "en", n: int = 8) -> list[str]:
    """`n` real XQuAD questions about the articles' first paragraphs (the starter corpus), spread over
    different articles, deterministic; every one is answerable from `starter_documents`."""
    articles = _load(language)
    if n <= 0:
        return []
    # Questions per article, first paragraph only (paragraph id "<article>-0").
    per_article = [[qa["question"].strip() for qa in a["paragraphs"][0].get("qas", [])] for a in articles]
    picks: list[str] = []
    step = max(1, len(articles) // n)
    for a_i in range(0, len(articles), step):
        if per_article[a_i]:
            picks.append(per_article[a_i][0])
        if len(picks) == n:
            return picks
    # Fewer articles than requested queries: top up with further first-paragraph questions.
    for question in (q for questions in per_article for q in questions):
        if len(picks) == n:
            break
        if question not in picks:
            picks.append(question)
    return picks
