"""Labelled retrieval datasets: BEIR folders, XQuAD (built as MTEB's XQuADRetrieval) and user qrels.

Every loader returns a `RetrievalDataset`; ids are strings; qrels hold integer grades (> 0 relevant).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
import random
from dataclasses import dataclass, replace
from pathlib import Path

from pplx_demo.config import DATA_DIR, ROOT, Settings
from pplx_demo.errors import DemoError

XQUAD_LANGUAGES: tuple[str, ...] = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")

Qrels = dict[str, dict[str, int]]
SAMPLE_SEED = 0  # evaluation query samples are random but repeatable
SMALL_SAMPLE = 100  # fewer judged queries than this: differences between configurations are mostly noise


@dataclass
class RetrievalDataset:
    """A corpus, its queries and graded relevance judgements (query id -> doc id -> grade)."""

    name: str
    corpus: dict[str, tuple[str, str]]  # doc_id -> (title, text)
    queries: dict[str, str]  # query_id -> text
    qrels: Qrels
    language: str | None = None  # corpus language (ISO 639-1), None when unknown
    query_language: str | None = None  # differs from `language` for cross-lingual sets

    def document_text(self, doc_id: str) -> str:
        """Title and text joined with a space, as MTEB embeds a BEIR document."""
        title, text = self.corpus[doc_id]
        return f"{title} {text}".strip() if title else text

    def judged_queries(self) -> list[str]:
        """Query ids that have at least one relevant document, in query order."""
        return [qid for qid in self.queries if any(g > 0 for g in self.qrels.get(qid, {}).values())]

    def sample(self, n: int, seed: int = SAMPLE_SEED) -> "RetrievalDataset":
        """This dataset with a seeded random sample of `n` of its judged queries (all documents stay).

        Random, not the first n: files are ordered by article, so a prefix covers a few topics only.
        """
        judged = self.judged_queries()
        if n >= len(judged):
            keep = judged
        else:
            picked = set(random.Random(seed).sample(judged, max(1, int(n))))
            keep = [q for q in judged if q in picked]  # file order, for stable tables
        if len(keep) == len(self.queries):
            return self
        return replace(self, queries={q: self.queries[q] for q in keep}, qrels={q: self.qrels[q] for q in keep})


# --------------------------------------------------------------------------- reading files


def _lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file (a BOM is dropped); DemoError naming the file and line
    when it is missing, unreadable or not UTF-8."""
    if not path.exists():
        raise DemoError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise DemoError(f"{what} file {path} is not a file")
    try:
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DemoError(f"{path.name} line {n} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                                    f"column {exc.start + 1}); save the file as UTF-8") from None
                yield n, (line.lstrip("\ufeff") if n == 1 else line).rstrip("\r\n")
    except OSError as exc:
        raise DemoError(f"cannot read {what} file {path.name}: {exc.strerror or exc}") from None


def _json_kind(value: object) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
            type(None): "null"}.get(type(value), type(value).__name__)


def _jsonl_rows(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON Lines file; DemoError naming the line
    for invalid JSON or a line that is not an object."""
    for n, line in _lines(path, what):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested or too large"
            raise DemoError(f"{path.name} line {n} is not valid JSON: {reason}") from None
        if not isinstance(row, dict):
            raise DemoError(f"{path.name} line {n}: expected a JSON object such as "
                            f'{{"_id": "...", "text": "..."}}, got {_json_kind(row)}')
        yield n, row


def _record_id(row: dict, path: Path, n: int) -> str:
    """The record's `_id` as a string; DemoError naming the line when it is missing or not a scalar."""
    if "_id" not in row:
        raise DemoError(f"{path.name} line {n}: the record has no '_id' field")
    value = row["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DemoError(f"{path.name} line {n}: '_id' must be a non-empty string or number, "
                        f"got {_json_kind(value) if not isinstance(value, str) else 'an empty string'}")
    return str(value)


def _record_text(row: dict, key: str, path: Path, n: int) -> str:
    """A text field (missing or null = ""); DemoError naming the line when it is a list or object."""
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise DemoError(f"{path.name} line {n}: '{key}' must be text, got {_json_kind(value)}")
    return str(value)


def _limit_error(what: str, limit: int, setting: str) -> DemoError:
    return DemoError(f"{what} (the limit is {limit:,}: Settings.{setting}, "
                     f"environment variable PPLX_DEMO_{setting.upper()})")


# --------------------------------------------------------------------------- BEIR


def load_beir(folder: str | Path, split: str = "test", limits: Settings | None = None) -> RetrievalDataset:
    """Read a BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

    With `limits` (uploads), documents, queries and text lengths are capped by max_documents,
    max_queries and max_chars_per_document; exceeding one is a DemoError naming the setting.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DemoError(f"BEIR folder {folder} does not exist or is not a folder")
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
             "qrels": folder / "qrels" / f"{split}.tsv"}
    for what, path in paths.items():
        if not path.is_file():
            raise DemoError(f"BEIR folder {folder} has no {path.relative_to(folder).as_posix()} ({what}); "
                            "expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    corpus: dict[str, tuple[str, str]] = {}
    for n, row in _jsonl_rows(paths["corpus"], "corpus"):
        doc_id = _record_id(row, paths["corpus"], n)
        title, text = _record_text(row, "title", paths["corpus"], n), _record_text(row, "text", paths["corpus"], n)
        if limits is not None:
            if doc_id not in corpus and len(corpus) >= limits.max_documents:
                raise _limit_error(f"corpus.jsonl holds more than {limits.max_documents:,} documents",
                                   limits.max_documents, "max_documents")
            if len(title) + len(text) > limits.max_chars_per_document:
                raise _limit_error(f"corpus.jsonl line {n}: document {doc_id!r} has {len(title) + len(text):,} "
                                   "characters", limits.max_chars_per_document, "max_chars_per_document")
        corpus[doc_id] = (title, text)
    if not corpus:
        raise DemoError(f"{paths['corpus']} holds no documents")
    qrels = qrels_from_file(paths["qrels"])
    # BEIR ships every split's queries in one file: keep the ones this split judges.
    queries: dict[str, str] = {}
    for n, row in _jsonl_rows(paths["queries"], "queries"):
        qid = _record_id(row, paths["queries"], n)
        if qid not in qrels:
            continue
        text = _record_text(row, "text", paths["queries"], n)
        if limits is not None:
            _check_query(qid, text, len(queries) + (qid not in queries), limits,
                         f"queries.jsonl line {n} (split {split})")
        queries[qid] = text
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise DemoError(f"qrels/{split}.tsv names {len(missing)} queries not in queries.jsonl (e.g. {missing[0]!r})")
    return RetrievalDataset(name=f"{folder.name} ({split})", corpus=corpus, queries=queries, qrels=qrels)


def _check_query(qid: str, text: str, count: int, limits: Settings, where: str) -> None:
    """DemoError naming the setting when `count` queries (this one included) or this query's length
    is over the limit."""
    if count > limits.max_queries:
        raise _limit_error(f"{where}: more than {limits.max_queries:,} queries", limits.max_queries, "max_queries")
    if len(text) > limits.max_chars_per_document:
        raise _limit_error(f"{where}: query {qid!r} has {len(text):,} characters", limits.max_chars_per_document,
                           "max_chars_per_document")


# --------------------------------------------------------------------------- qrels files


def _grade(text: str) -> int | None:
    """The integer relevance grade in `text` ("2", "1.0"), or None when it is not a whole number."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def qrels_from_file(path: str | Path) -> Qrels:
    """Parse qrels: TSV `query-id corpus-id score` (header optional) or TREC `qid 0 docid grade`.

    Grades are whole numbers (> 0 relevant); anything else is a DemoError naming the file and line.
    """
    path = Path(path)
    qrels: Qrels = {}
    first = True
    for n, line in _lines(path, "qrels"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        is_first, first = first, False
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) == 4:
            qid, _, doc_id, grade_text = fields  # TREC: qid iteration docid relevance
        elif len(fields) == 3:
            qid, doc_id, grade_text = fields
        else:
            raise DemoError(f"{path.name} line {n}: expected 3 columns (query-id corpus-id score) "
                            f"or 4 (TREC qid 0 docid relevance), got {len(fields)}")
        grade = _grade(grade_text)
        if grade is None:
            if is_first and not _is_number(grade_text):
                continue  # header row, e.g. "query-id corpus-id score"
            raise DemoError(f"{path.name} line {n}: relevance {grade_text!r} is not a whole number")
        if not qid or not doc_id:
            raise DemoError(f"{path.name} line {n}: the query id and the document id must not be empty")
        qrels.setdefault(qid, {})[doc_id] = grade
    if not qrels:
        raise DemoError(f"{path.name} holds no relevance judgements")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def queries_from_file(path: str | Path, limits: Settings | None = None) -> dict[str, str]:
    """Parse queries: BEIR jsonl (`_id`, `text`) or TSV `query-id<TAB>text` (header optional).

    With `limits`, max_queries and max_chars_per_document apply (DemoError naming the setting).
    """
    path = Path(path)
    queries: dict[str, str] = {}
    if path.suffix.lower() in (".jsonl", ".json"):
        for n, row in _jsonl_rows(path, "queries"):
            qid, text = _record_id(row, path, n), _record_text(row, "text", path, n)
            if limits is not None:
                _check_query(qid, text, len(queries) + (qid not in queries), limits, f"{path.name} line {n}")
            queries[qid] = text
    else:
        first = True
        for n, line in _lines(path, "queries"):
            if not line.strip():
                continue
            is_first, first = first, False
            row = line.split("\t", 1)
            if len(row) < 2:
                raise DemoError(f"{path.name} line {n}: expected query-id<TAB>text")
            qid, text = row[0].strip(), row[1].strip()
            if is_first and qid.lower() in ("query-id", "query_id", "qid", "_id", "id"):
                continue
            if not qid:
                raise DemoError(f"{path.name} line {n}: the query id is empty")
            if limits is not None:
                _check_query(qid, text, len(queries) + (qid not in queries), limits, f"{path.name} line {n}")
            queries[qid] = text
    if not queries:
        raise DemoError(f"{path.name} holds no queries")
    return queries


# --------------------------------------------------------------------------- XQuAD


def default_xquad_root() -> Path:
    """The project's data/xquad when it ships there, else the shared copy beside the repo."""
    local = DATA_DIR / "xquad"
    if (local / "xquad.en.json").is_file():
        return local
    return ROOT.parent / "shared" / "data" / "xquad"


def _xquad_file(root: Path, language: str) -> list[dict]:
    if language not in XQUAD_LANGUAGES:
        raise DemoError(f"XQuAD has no language {language!r}; choose from {', '.join(XQUAD_LANGUAGES)}")
    path = root / f"xquad.{language}.json"
    if not path.is_file():
        raise DemoError(f"XQuAD file {path} not found; put the xquad.<lang>.json files in {root}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"XQuAD file {path} is unreadable or not SQuAD-format JSON ({type(exc).__name__}); "
                        "replace it with the original xquad.<lang>.json") from None


def _xquad_rows(articles: list[dict]) -> list[tuple[tuple[int, int], str, str, str]]:
    """(paragraph position, question id, question, context), stripped as the HF loader does."""
    return [((a, p), qa["id"], qa["question"].strip(), para["context"].strip())
            for a, article in enumerate(articles)
            for p, para in enumerate(article["paragraphs"])
            for qa in para["qas"]]


def load_xquad(corpus_language: str, query_language: str | None = None, root: Path | None = None) -> RetrievalDataset:
    """XQuAD as MTEB's XQuADRetrieval builds it; `query_language` asks questions in another language.

    Corpus = the unique paragraphs (id = sha256 of the text, no title); queries = the unique question
    texts (id = the last XQuAD id carrying that text); a question is relevant to every paragraph it
    was asked about. Cross-lingual: the translations are parallel, so the relevant paragraph is the
    one at the same position in the corpus language.
    """
    root = Path(root) if root is not None else default_xquad_root()
    query_language = query_language or corpus_language
    corpus_rows = _xquad_rows(_xquad_file(root, corpus_language))
    query_rows = corpus_rows if query_language == corpus_language else _xquad_rows(_xquad_file(root, query_language))
    context_at = {pos: ctx for pos, _, _, ctx in corpus_rows}
    if {pos for pos, *_ in query_rows} != set(context_at):
        raise DemoError(f"XQuAD {query_language} and {corpus_language} files are not parallel")

    doc_ids = {ctx: hashlib.sha256(ctx.encode("utf-8")).hexdigest() for ctx in context_at.values()}
    corpus = {doc_ids[ctx]: ("", ctx) for ctx in context_at.values()}
    question_ids = {question: qid for _, qid, question, _ in query_rows}  # last id wins, as in MTEB
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    for pos, _, question, _ in query_rows:
        qid = question_ids[question]
        queries[qid] = question
        qrels.setdefault(qid, {})[doc_ids[context_at[pos]]] = 1
    name = f"XQuAD {corpus_language}" if query_language == corpus_language else f"XQuAD {query_language}->{corpus_language}"
    return RetrievalDataset(name=name, corpus=corpus, queries=queries, qrels=qrels,
                            language=corpus_language, query_language=query_language)
