"""Labelled retrieval datasets: BEIR folders, XQuAD (built as MTEB's XQuADRetrieval) and user qrels.

Every loader returns a `RetrievalDataset`; ids are strings; qrels hold integer grades (> 0 relevant).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pplx_demo.config import DATA_DIR, ROOT
from pplx_demo.errors import DemoError

XQUAD_LANGUAGES: tuple[str, ...] = ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh")

Qrels = dict[str, dict[str, int]]


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


# --------------------------------------------------------------------------- BEIR


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DemoError(f"{path.name} line {n} is not valid JSON: {exc.msg}") from None
    return rows


def load_beir(folder: str | Path, split: str = "test") -> RetrievalDataset:
    """Read a BEIR folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""
    folder = Path(folder)
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
             "qrels": folder / "qrels" / f"{split}.tsv"}
    for what, path in paths.items():
        if not path.is_file():
            raise DemoError(f"BEIR folder {folder} has no {path.relative_to(folder)} ({what}); "
                            "expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    corpus: dict[str, tuple[str, str]] = {}
    for row in _read_jsonl(paths["corpus"]):
        if "_id" not in row:
            raise DemoError(f"{paths['corpus']}: a record has no '_id' field")
        corpus[str(row["_id"])] = (str(row.get("title") or ""), str(row.get("text") or ""))
    queries_all = {str(r["_id"]): str(r.get("text") or "") for r in _read_jsonl(paths["queries"]) if "_id" in r}
    qrels = qrels_from_file(paths["qrels"])
    # BEIR ships every split's queries in one file: keep the ones this split judges.
    queries = {qid: text for qid, text in queries_all.items() if qid in qrels}
    missing = [qid for qid in qrels if qid not in queries_all]
    if missing:
        raise DemoError(f"qrels/{split}.tsv names {len(missing)} queries not in queries.jsonl (e.g. {missing[0]!r})")
    return RetrievalDataset(name=f"{folder.name} ({split})", corpus=corpus, queries=queries, qrels=qrels)


# --------------------------------------------------------------------------- qrels files


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def qrels_from_file(path: str | Path) -> Qrels:
    """Parse qrels: TSV `query-id corpus-id score` (header optional) or TREC `qid 0 docid grade`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"cannot read qrels file {path.name}: {exc}") from None
    qrels: Qrels = {}
    first = True
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        is_first, first = first, False
        fields = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) == 4:
            qid, _, doc_id, grade = fields  # TREC: qid iteration docid relevance
        elif len(fields) == 3:
            qid, doc_id, grade = fields
        else:
            raise DemoError(f"{path.name} line {n}: expected 3 columns (query-id corpus-id score) "
                            f"or 4 (TREC qid 0 docid relevance), got {len(fields)}")
        if not _is_number(grade):
            if is_first:
                continue  # header row, e.g. "query-id corpus-id score"
            raise DemoError(f"{path.name} line {n}: relevance {grade!r} is not a number")
        qrels.setdefault(qid, {})[doc_id] = int(float(grade))
    if not qrels:
        raise DemoError(f"{path.name} holds no relevance judgements")
    return qrels


def queries_from_file(path: str | Path) -> dict[str, str]:
    """Parse queries: BEIR jsonl (`_id`, `text`) or TSV `query-id<TAB>text` (header optional)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return {str(r["_id"]): str(r.get("text") or "") for r in _read_jsonl(path) if "_id" in r}
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DemoError(f"{path.name} line {n}: expected query-id<TAB>text")
            if n == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid", "_id", "id"):
                continue
            queries[row[0].strip()] = row[1].strip()
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
    return json.loads(path.read_text(encoding="utf-8"))["data"]


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
