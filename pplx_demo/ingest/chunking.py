"""Token-aware chunking: chunks of at most N tokens, cut at paragraph, then sentence, then word
boundaries where possible, with a token overlap, exact char offsets and document order.

Contract: for every chunk `c` of `text`, `text[c.char_start:c.char_end] == c.text`, the chunk text
has no leading or trailing whitespace, and `c.token_count` (tokens of `c.text` without special
tokens, counted by the same tokenizer) is at most `chunk_tokens`. Chunks are in document order
(`order` 0, 1, ...) and their `char_start` values strictly increase.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from pplx_demo.documents import Chunk
from pplx_demo.errors import DemoError

# Boundary strengths between two tokens: where a chunk may end / the next one may start.
_MID_CHAR = -1  # inside one character (byte-level BPE split a code point): last resort only
_ANY = 0  # between two tokens of one word
_WORD = 1  # whitespace between the tokens
_SENTENCE = 2  # a line break, or the previous token ends a sentence
_PARAGRAPH = 3  # a blank line

_SENTENCE_END = ".!?…。！？।؟۔"
# Terminal punctuation of CJK scripts ends a sentence even without a following space.
_CJK_SENTENCE_END = "。！？"
_CLOSERS = "\"'”’»)]}」』"
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")

def encoder_token_budget(encoder: Any) -> int:
    """Content tokens the encoder reads per input: its window minus the framing tokens it adds."""
    layout = getattr(encoder, "layout", None)
    framing = len(layout.prefix) + len(layout.suffix) if layout is not None else 0
    return int(encoder.max_tokens) - framing


def validate_chunking(chunk_tokens: int, overlap_tokens: int, encoder: Any) -> None:
    """Raise DemoError unless 1 <= chunk_tokens <= what `encoder` reads and 0 <= overlap < chunk_tokens."""
    budget = encoder_token_budget(encoder)
    name = getattr(encoder, "name", None) or getattr(encoder, "model_key", "the model")
    if chunk_tokens < 1:
        raise DemoError(f"Chunk size must be at least 1 token (got {chunk_tokens}); "
                        f"{name} reads up to {budget} tokens per chunk.")
    if chunk_tokens > budget:
        raise DemoError(
            f"Chunks of {chunk_tokens} tokens are longer than {name} reads ({encoder.max_tokens}-token window, "
            f"{budget} tokens of text after its special tokens): the rest of each chunk would be cut off "
            f"and never searched. Use a chunk size of at most {budget} tokens."
        )
    if overlap_tokens < 0 or overlap_tokens >= chunk_tokens:
        raise DemoError(
            f"Chunk overlap must be between 0 and {chunk_tokens - 1} tokens for chunks of {chunk_tokens} "
            f"(got overlap {overlap_tokens}); lower the overlap or raise the chunk size."
        )


def chunk_text(text: str, tokenizer: Any, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Split `text` into ordered chunks of <= `chunk_tokens` tokens with ~`overlap_tokens` overlap.

    `tokenizer` is a transformers fast tokenizer (`encoder.tokenizer`). Empty or blank text gives [].
    """
    if chunk_tokens < 1:
        raise DemoError(f"Chunk size must be at least 1 token (got {chunk_tokens}).")
    if overlap_tokens < 0 or overlap_tokens >= chunk_tokens:
        raise DemoError(
            f"Chunk overlap must be between 0 and chunk size - 1 tokens "
            f"(got overlap {overlap_tokens} for chunks of {chunk_tokens})."
        )
    if not text or not text.strip():
        return []
    offsets = _content_offsets(text, tokenizer)
    if not offsets:
        return []
    strength = _boundary_strengths(text, offsets)
    n = len(offsets)
    min_fill = max(1, chunk_tokens // 2)
    chunks: list[Chunk] = []
    start, prev_end = 0, 0
    while start < n:
        end = _choose_end(strength, start, n, chunk_tokens, max(start + min_fill, prev_end + 1))
        chunk, end = _make_chunk(text, tokenizer, offsets, start, end, chunk_tokens, len(chunks))
        chunks.append(chunk)
        if end >= n:
            break
        start = _choose_next_start(strength, start, end, overlap_tokens)
        prev_end = end
    return chunks


def _content_offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """Char spans of the non-whitespace tokens of `text` (no special tokens)."""
    encoded = tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=False,
        verbose=False,  # the whole document is tokenised on purpose: no "too long" warning
    )
    spans = []
    for a, b in encoded["offset_mapping"]:
        if b > a and not text[a:b].isspace():
            spans.append((a, b))
    return spans


def _boundary_strengths(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """strength[i] = how good a cut is just before token i (index 0 is the text start)."""
    strength = [_PARAGRAPH] * len(offsets)
    for i in range(1, len(offsets)):
        prev_start, prev_end = offsets[i - 1]
        start = offsets[i][0]
        if start < prev_end:
            strength[i] = _MID_CHAR
            continue
        gap = text[prev_end:start]
        if not gap:
            last = text[prev_start:prev_end].rstrip(_CLOSERS)
            strength[i] = _SENTENCE if last and last[-1] in _CJK_SENTENCE_END else _ANY
        elif "\n" in gap:
            strength[i] = _PARAGRAPH if _BLANK_LINE.search(gap) else _SENTENCE
        else:
            last = text[prev_start:prev_end].rstrip(_CLOSERS)
            strength[i] = _SENTENCE if last and last[-1] in _SENTENCE_END else _WORD
    return strength


def _choose_end(strength: list[int], start: int, n: int, chunk_tokens: int, lowest: int) -> int:
    """Exclusive end token: the strongest boundary in [lowest, start + chunk_tokens], latest first."""
    limit = start + chunk_tokens
    if limit >= n:
        return n
    lowest = min(lowest, limit)
    for wanted in (_PARAGRAPH, _SENTENCE, _WORD, _ANY):
        for i in range(limit, lowest - 1, -1):
            if strength[i] >= wanted:
                return i
    return limit


def _choose_next_start(strength: list[int], start: int, end: int, overlap_tokens: int) -> int:
    """First token of the next chunk: the earliest good boundary within the overlap budget."""
    if overlap_tokens <= 0:
        return end
    lowest = max(start + 1, end - overlap_tokens)
    for wanted in (_SENTENCE, _WORD, _ANY):
        for i in range(lowest, end):
            if strength[i] >= wanted:
                return i
    return end


def _make_chunk(
    text: str,
    tokenizer: Any,
    offsets: list[tuple[int, int]],
    start: int,
    end: int,
    chunk_tokens: int,
    order: int,
) -> tuple[Chunk, int]:
    """The chunk for tokens [start, end), shrunk until its own tokenisation fits the budget."""
    while True:
        char_start, char_end = offsets[start][0], offsets[end - 1][1]
        # Byte-level BPE tokens may carry their leading space; the chunk text never does.
        while char_start < char_end and text[char_start].isspace():
            char_start += 1
        while char_end > char_start and text[char_end - 1].isspace():
            char_end -= 1
        piece = text[char_start:char_end]
        count = len(tokenizer(piece, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])
        # Re-tokenising a piece cut inside a word can give more tokens than the slice had.
        if count <= chunk_tokens or end - start <= 1:
            return Chunk(order, piece, char_start, char_end, count), end
        end = max(start + 1, end - (count - chunk_tokens))


def chunk_documents(
    texts: Sequence[str],
    tokenizer: Any,
    chunk_tokens: int,
    overlap_tokens: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Chunk]]:
    """`chunk_text` for each text, one list per text in the same order (the store's add_corpus shape)."""
    out: list[list[Chunk]] = []
    for i, text in enumerate(texts, start=1):
        out.append(chunk_text(text, tokenizer, chunk_tokens, overlap_tokens))
        if progress is not None:
            progress(i, len(texts))
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(char_start, char_end) of each sentence of `text`, in order, trimmed of whitespace, none empty.

    The chunker's sentence rule, on characters: a sentence ends at a line break, after terminal
    punctuation (`.!?…` and the Devanagari / Arabic / CJK stops, repeats and closing quotes or
    brackets included) followed by whitespace or the end, and after a CJK stop even without a
    space. One left-to-right pass, no regular expression: linear in the text's length.
    Abbreviations ("e.g. this") split like any full stop followed by a space.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)

    def close(a: int, b: int) -> None:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((a, b))

    start = i = 0
    while i < n:
        c = text[i]
        if c == "\n":
            close(start, i)
            start = i = i + 1
            continue
        if c in _SENTENCE_END:
            j = i + 1
            while j < n and (text[j] in _SENTENCE_END or text[j] in _CLOSERS):
                j += 1
            if j >= n or text[j].isspace() or c in _CJK_SENTENCE_END:
                close(start, j)
                start = j
            i = j
            continue
        i += 1
    close(start, n)
    return spans
