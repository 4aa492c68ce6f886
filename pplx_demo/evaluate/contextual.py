"""The contextual effect, shown: one article, sentence chunks, ranked with and without late chunking.

Later sentences of the built-in Berlin article say "it", "the city" or "there" instead of
"Berlin". Embedded alone they lose the subject; embedded in context (late chunking) they keep it,
so a query such as "Berlin population" moves the sentence with the number up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pplx_demo.config import DATA_DIR
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.store import Store, content_hash

ILLUSTRATIVE_PATH = DATA_DIR / "illustrative" / "berlin.md"
DEFAULT_QUERY = "Berlin population"
DEMO_QUERIES = ("Berlin population", "Berlin wall", "Berlin museums")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class ChunkMove:
    """Where one chunk ranks for the query with independent chunks and with late chunking (1 = top)."""

    order: int
    text: str
    standard_rank: int
    contextual_rank: int
    standard_score: float
    contextual_score: float

    @property
    def moved(self) -> int:
        """Positions gained with late chunking (positive = moved up)."""
        return self.standard_rank - self.contextual_rank


@dataclass
class ContextualDemo:
    """Both rankings of the article's chunks for one query, and what changed."""

    query: str
    title: str
    model_name: str
    contextual_model_name: str
    chunks: list[ChunkMove]  # in document order

    def ranking(self, variant: str) -> list[ChunkMove]:
        """Chunks best first under 'standard' or 'contextual'."""
        key = (lambda c: c.standard_rank) if variant == "standard" else (lambda c: c.contextual_rank)
        return sorted(self.chunks, key=key)

    @property
    def changed(self) -> bool:
        """True when late chunking reorders the chunks."""
        return any(c.moved for c in self.chunks)

    def moves(self) -> list[ChunkMove]:
        """Chunks whose rank changed, biggest climb first."""
        return sorted((c for c in self.chunks if c.moved), key=lambda c: (-c.moved, c.order))


def illustrative_document(path: Path | None = None,
                          count_tokens: Callable[[list[str]], list[int]] | None = None) -> tuple[Document, list[Chunk]]:
    """The built-in article and its sentence chunks (exact character offsets; headings dropped).

    `count_tokens` (an encoder's) fills `token_count`; without it, words are counted.
    """
    path = path or ILLUSTRATIVE_PATH
    if not path.is_file():
        raise DemoError(f"the illustrative document {path} is missing from the installation")
    text = path.read_text(encoding="utf-8")
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), path.stem)
    chunks: list[Chunk] = []
    for para in re.finditer(r"[^\n]+", text):
        if para.group().startswith("#"):
            continue
        start = para.start()
        for piece in _SENTENCE_END.split(para.group()):
            offset = text.index(piece, start)
            chunks.append(Chunk(order=len(chunks), text=piece, char_start=offset, char_end=offset + len(piece),
                                token_count=len(piece.split())))
            start = offset + len(piece)
    if count_tokens is not None:
        counts = count_tokens([c.text for c in chunks])
        chunks = [Chunk(c.order, c.text, c.char_start, c.char_end, int(n)) for c, n in zip(chunks, counts)]
    doc = Document(uri=f"builtin:{path.name}", title=title, text=text, metadata={"lang": "en"},
                   external_id=path.stem)
    return doc, chunks


def _rank(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, ties to the earlier chunk."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    ranks = np.empty(len(scores), dtype=np.int64)
    for r, i in enumerate(order):
        ranks[i] = r + 1
    return ranks


def _cosines(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    q = query / (np.linalg.norm(query) or 1.0)
    norms = np.linalg.norm(vectors, axis=1)
    return (vectors @ q) / np.where(norms > 0, norms, 1.0)


def contextual_demo(store: Store, model_key: str, query: str = DEFAULT_QUERY, *,
                    encoder_loader: Callable[[str, str], Any],
                    path: Path | None = None) -> ContextualDemo:
    """Rank the article's sentences for `query` with independent chunks and with late chunking.

    The article is stored once as a shared corpus; its vectors come from the store's cache.
    """
    from pplx_demo.embedding import embed_corpus
    from pplx_demo.evaluate.runner import EVAL_PREFIX
    from pplx_demo.models.registry import variant_keys

    if not isinstance(query, str) or not query.strip():
        raise DemoError("type a query first: the search text is empty")
    standard_key, contextual_key = variant_keys(model_key)
    standard = encoder_loader(standard_key, "standard")
    contextual = encoder_loader(contextual_key, "contextual")
    doc, chunks = illustrative_document(path, standard.count_tokens)
    name = f"{EVAL_PREFIX}illustrative: {doc.title} (sentences) · {content_hash(doc.text)[:12]}"
    info = store.find_corpus(name)
    corpus_id = info.id if info is not None else store.add_corpus(name, [doc], [chunks], source="builtin")
    vecs = {}
    for variant, enc in (("standard", standard), ("contextual", contextual)):
        matrix = embed_corpus(store, corpus_id, enc)
        qvec = np.asarray(enc.encode([query]), dtype=np.float32)[0]
        vecs[variant] = _cosines(qvec, matrix.vectors)
    table = store.chunk_table(corpus_id)
    ranks = {v: _rank(s) for v, s in vecs.items()}
    moves = [ChunkMove(order=int(table.orders[i]), text=table.texts[i],
                       standard_rank=int(ranks["standard"][i]), contextual_rank=int(ranks["contextual"][i]),
                       standard_score=float(vecs["standard"][i]), contextual_score=float(vecs["contextual"][i]))
             for i in range(len(table))]
    return ContextualDemo(query=query, title=doc.title, model_name=str(standard.name),
                          contextual_model_name=str(contextual.name), chunks=moves)
