"""Metrics agree with pytrec_eval (trec_eval) and ranx; datasets and BM25 match MTEB's construction."""

from __future__ import annotations

import json
import random
import zipfile
from dataclasses import replace

import pytest
import pytrec_eval

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.beir_zip import load_beir_zip
from pplx_demo.evaluate.bm25 import bm25_run, bm25_setup
from pplx_demo.evaluate.datasets import (
    RetrievalDataset,
    default_xquad_root,
    load_beir,
    load_xquad,
    qrels_from_file,
    queries_from_file,
)
from pplx_demo.evaluate.metrics import METRICS, evaluate_run, per_query, ranked, retention


def _random_case(seed: int, *, ties: bool, grades: list[int]):
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(160)]
    qrels, run = {}, {}
    for q in range(80):
        qid = f"q{q}"
        judged = {d: rng.choice(grades) for d in rng.sample(docs, rng.randint(1, 9))}
        if not any(g > 0 for g in judged.values()):
            judged[docs[q]] = 1
        qrels[qid] = judged
        n = rng.randint(0, 140) if q % 7 else 0  # every 7th query: no hits at all
        picked = rng.sample(docs, n)
        run[qid] = {d: (rng.randint(0, 12) / 4 if ties else rng.random()) for d in picked}
    return qrels, run


def _pytrec(qrels, run):
    """pytrec_eval per query; MRR@10 = recip_rank of the run cut at 10 in trec_eval order."""
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100"})
    full = ev.evaluate({q: s for q, s in run.items() if s})
    cut = {q: {d: s[d] for d in ranked(s)[:10]} for q, s in run.items() if s}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
    out = {}
    for q in qrels:
        if q in full:
            out[q] = {"ndcg@10": full[q]["ndcg_cut_10"], "recall@10": full[q]["recall_10"],
                      "recall@100": full[q]["recall_100"], "mrr@10": rr[q]["recip_rank"]}
        else:  # trec_eval -c: a judged query without results scores 0
            out[q] = dict.fromkeys(METRICS, 0.0)
    return out


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_pytrec_eval_with_ties_empty_runs_and_graded_qrels(ties):
    qrels, run = _random_case(1 + ties, ties=ties, grades=[-1, 0, 1, 1, 2, 3])
    mine, ref = per_query(run, qrels), _pytrec(qrels, run)
    assert set(mine) == set(ref)
    for q in ref:
        for m in METRICS:
            assert mine[q][m] == pytest.approx(ref[q][m], abs=1e-12), (q, m)
    means = evaluate_run(run, qrels)
    for m in METRICS:
        assert means[m] == pytest.approx(sum(r[m] for r in ref.values()) / len(ref), abs=1e-12)
    assert 0.0 < means["ndcg@10"] < 1.0


def test_metrics_match_ranx_on_tie_free_runs():
    from ranx import Qrels, Run, evaluate

    qrels, run = _random_case(7, ties=False, grades=[1, 1, 2, 3])
    run = {q: s for q, s in run.items() if s}  # ranx cannot hold an empty ranking
    qrels = {q: j for q, j in qrels.items() if q in run}
    ref = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
    mine = evaluate_run(run, qrels)
    for m in METRICS:
        assert mine[m] == pytest.approx(float(ref[m]), abs=1e-9), m


def test_ties_are_broken_by_document_id_descending_like_trec_eval():
    assert ranked({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5}) == ["c", "b", "a", "z"]
    # the relevant "b" ties with "c" and "a": trec_eval puts it second
    assert evaluate_run({"q": {"a": 1.0, "b": 1.0, "c": 1.0}}, {"q": {"b": 1}})["mrr@10"] == 0.5


def test_hand_computed_values_and_unjudged_queries_ignored():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"x": 0}}  # q3: nothing relevant -> skipped
    run = {"q1": {"b": 0.9, "x": 0.5, "a": 0.1}, "q2": {}, "q9": {"c": 1.0}}
    res = evaluate_run(run, qrels)
    ndcg_q1 = (1 / 1 + 2 / 2) / (2 / 1 + 1 / 1.584962500721156)
    assert res["ndcg@10"] == pytest.approx(ndcg_q1 / 2)
    assert res["mrr@10"] == pytest.approx(0.5)
    assert res["recall@10"] == pytest.approx(0.5)


def test_retention_is_percent_of_reference():
    r = retention({"ndcg@10": 0.45, "mrr@10": 0.2}, {"ndcg@10": 0.5, "mrr@10": 0.0})
    assert r["ndcg@10"] == pytest.approx(90.0)
    assert r["mrr@10"] != r["mrr@10"]  # NaN: no reference to compare with


# ----------------------------------------------------------------------------- datasets


def _write_beir(folder):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Cats", "text": "Cats purr."}\n{"_id": "d2", "title": "", "text": "Dogs bark."}\n',
        encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "purring"}\n{"_id": "q2", "text": "barking"}\n{"_id": "q3", "text": "train only"}\n',
        encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n", encoding="utf-8")


def test_load_beir_joins_title_and_text_and_keeps_split_queries(tmp_path):
    _write_beir(tmp_path / "tiny")
    ds = load_beir(tmp_path / "tiny")
    assert ds.corpus["d1"] == ("Cats", "Cats purr.")
    assert ds.document_text("d1") == "Cats Cats purr."
    assert ds.document_text("d2") == "Dogs bark."
    assert set(ds.queries) == {"q1", "q2"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    with pytest.raises(DemoError, match="qrels/dev.tsv"):
        load_beir(tmp_path / "tiny", split="dev")


def test_qrels_formats_tsv_with_and_without_header_and_trec(tmp_path):
    variants = {
        "h.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\n",
        "n.tsv": "q1\td1\t1\nq1\td2\t2\n",
        "t.txt": "q1 0 d1 1\nq1 0 d2 2\n",
    }
    for name, text in variants.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert qrels_from_file(tmp_path / name) == {"q1": {"d1": 1, "d2": 2}}, name
    (tmp_path / "bad.tsv").write_text("q1\td1\t1\nq2\td2\tyes\n", encoding="utf-8")
    with pytest.raises(DemoError, match="line 2"):
        qrels_from_file(tmp_path / "bad.tsv")
    (tmp_path / "q.tsv").write_text("query-id\ttext\nq1\twhat purrs\n", encoding="utf-8")
    assert queries_from_file(tmp_path / "q.tsv") == {"q1": "what purrs"}


BAD_FILES = [
    # (file name, bytes, message the DemoError must carry)
    ("qrels.tsv", b"q1\td1\t1\nq2\td2\t\xff\xfe\n", r"qrels.tsv line 2 is not UTF-8"),
    ("qrels.tsv", b"q1\td1\t1\nq2\td2\tnan\n", r"qrels.tsv line 2: relevance 'nan' is not a whole number"),
    ("qrels.tsv", b"q1\td1\tinf\n", r"line 1: relevance 'inf' is not a whole number"),
    ("qrels.tsv", b"q1\td1\t1.5\n", r"line 1: relevance '1.5'"),
    ("qrels.tsv", b"q1\td1\n", r"line 1: expected 3 columns"),
    ("qrels.tsv", b"query-id\tcorpus-id\tscore\n", r"no relevance judgements"),
    ("queries.jsonl", b'{"_id": "q1", "text": "a"}\n42\n', r"queries.jsonl line 2: expected a JSON object.*a number"),
    ("queries.jsonl", b'["q1", "a"]\n', r"line 1: expected a JSON object.*a list"),
    ("queries.jsonl", b'{"_id": "q1", "text": "a"\n', r"queries.jsonl line 1 is not valid JSON"),
    ("queries.jsonl", b'{"text": "no id"}\n', r"line 1: the record has no '_id' field"),
    ("queries.jsonl", b'{"_id": ["q1"], "text": "a"}\n', r"line 1: '_id' must be a non-empty string or number"),
    ("queries.jsonl", b'{"_id": "q1", "text": {"en": "a"}}\n', r"line 1: 'text' must be text"),
    ("queries.jsonl", b'{"_id": "q1", "text": "caf\xe9"}\n', r"queries.jsonl line 1 is not UTF-8"),
    ("queries.jsonl", b"[" * 100_000 + b"\n", r"line 1 is not valid JSON"),
    ("queries.tsv", b"q1\tfine\nq2 no tab here\n", r"queries.tsv line 2: expected query-id<TAB>text"),
    ("queries.tsv", b"q1\tok\n\x80\tbad\n", r"queries.tsv line 2 is not UTF-8"),
    ("queries.tsv", b"\n\n", r"holds no queries"),
]


@pytest.mark.parametrize("name,data,message", BAD_FILES, ids=[f"{n}:{m[:30]}" for n, _, m in BAD_FILES])
def test_bad_query_and_qrels_files_are_demo_errors_naming_file_and_line(tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    parse = qrels_from_file if name.startswith("qrels") else queries_from_file
    with pytest.raises(DemoError, match=message):
        parse(path)


def test_missing_or_unreadable_files_are_demo_errors(tmp_path):
    with pytest.raises(DemoError, match="qrels file .*nope.tsv does not exist"):
        qrels_from_file(tmp_path / "nope.tsv")
    with pytest.raises(DemoError, match="queries file .* is not a file"):
        queries_from_file(tmp_path)
    with pytest.raises(DemoError, match="does not exist or is not a folder"):
        load_beir(tmp_path / "no-such-folder")
    _write_beir(tmp_path / "tiny")
    (tmp_path / "tiny" / "queries.jsonl").unlink()
    with pytest.raises(DemoError, match="has no queries.jsonl"):
        load_beir(tmp_path / "tiny")


def test_bom_crlf_and_trec_files_parse(tmp_path):
    (tmp_path / "q.tsv").write_bytes(b"\xef\xbb\xbfquery-id\ttext\r\nq1\twhat purrs\r\n")
    assert queries_from_file(tmp_path / "q.tsv") == {"q1": "what purrs"}
    (tmp_path / "r.tsv").write_bytes(b"\xef\xbb\xbfq1\t0\td1\t1.0\r\n")
    assert qrels_from_file(tmp_path / "r.tsv") == {"q1": {"d1": 1}}


def test_bad_beir_corpus_lines_name_the_line(tmp_path):
    _write_beir(tmp_path / "tiny")
    corpus = tmp_path / "tiny" / "corpus.jsonl"
    corpus.write_text(corpus.read_text(encoding="utf-8") + "3.5\n", encoding="utf-8")
    with pytest.raises(DemoError, match="corpus.jsonl line 3: expected a JSON object"):
        load_beir(tmp_path / "tiny")
    corpus.write_text("", encoding="utf-8")
    with pytest.raises(DemoError, match="holds no documents"):
        load_beir(tmp_path / "tiny")


def _beir_zip(path, n_docs=3, n_queries=2, doc_text="Cats purr."):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny/corpus.jsonl", "".join(json.dumps({"_id": f"d{i}", "title": "T", "text": doc_text}) + "\n"
                                                for i in range(n_docs)))
        z.writestr("tiny/queries.jsonl", "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n"
                                                 for i in range(n_queries + 1)))  # one query of another split
        z.writestr("tiny/qrels/test.tsv", "query-id\tcorpus-id\tscore\n" +
                   "".join(f"q{i}\td{i % n_docs}\t1\n" for i in range(n_queries)))
    return path


def test_beir_zip_enforces_the_upload_limits_and_names_the_setting(tmp_path):
    settings = Settings()
    ds = load_beir_zip(_beir_zip(tmp_path / "ok.zip"), settings)
    assert len(ds.corpus) == 3 and set(ds.queries) == {"q0", "q1"}  # q2 belongs to no judged split query
    cases = [
        (replace(settings, max_documents=2), {}, r"more than 2 documents.*Settings.max_documents.*PPLX_DEMO_MAX_DOCUMENTS"),
        (replace(settings, max_queries=1), {}, r"more than 1 queries.*Settings.max_queries.*PPLX_DEMO_MAX_QUERIES"),
        (replace(settings, max_chars_per_document=50), {"doc_text": "x" * 60},
         r"document 'd0' has 61 characters.*Settings.max_chars_per_document"),
        (replace(settings, max_chars_per_document=5), {"doc_text": "ok"},
         r"query 'q0' has 7 characters.*Settings.max_chars_per_document"),
    ]
    for i, (limits, shape, message) in enumerate(cases):
        with pytest.raises(DemoError, match=message):
            load_beir_zip(_beir_zip(tmp_path / f"{i}.zip", **shape), limits)
    # the queries cap counts only the split's queries: 2 judged of 3 in the file fit under 2
    assert len(load_beir_zip(tmp_path / "ok.zip", replace(settings, max_queries=2)).queries) == 2


def test_uploaded_queries_file_honours_limits(tmp_path):
    (tmp_path / "q.tsv").write_text("q1\tone\nq2\ttwo\nq1\tagain\n", encoding="utf-8")
    assert queries_from_file(tmp_path / "q.tsv", Settings(max_queries=2)) == {"q1": "again", "q2": "two"}
    with pytest.raises(DemoError, match="more than 1 queries.*max_queries"):
        queries_from_file(tmp_path / "q.tsv", Settings(max_queries=1))


def test_xquad_is_built_like_mteb_xquadretrieval():
    # MTEB's task metadata: 240 documents; 1185 en / 1181 de queries (duplicate question texts merged);
    # average document length 784.83 characters for en.
    en = load_xquad("en")
    assert len(en.corpus) == 240 and len(en.queries) == 1185
    assert sum(len(t) for _, t in en.corpus.values()) / 240 == pytest.approx(784.8333, abs=1e-3)
    assert all(title == "" for title, _ in en.corpus.values())
    assert len(load_xquad("de").queries) == 1181
    cross = load_xquad("en", query_language="de")
    assert cross.language == "en" and cross.query_language == "de"
    assert set(cross.corpus) == set(en.corpus)
    some = next(iter(cross.qrels))
    assert set(cross.qrels[some]) <= set(en.corpus)
    with pytest.raises(DemoError, match="no language"):
        load_xquad("xx")


# ----------------------------------------------------------------------------- BM25


def test_bm25_uses_the_language_stemmer():
    assert bm25_setup("de").stemmer == "german" and bm25_setup("de").stopwords == "de"
    assert bm25_setup("el").stopwords is None
    ds = RetrievalDataset(
        name="de", language="de",
        corpus={"a": ("", "Die Häuser der Stadt sind alt."), "b": ("", "Der Hund schläft im Garten.")},
        queries={"q": "Haus"}, qrels={"q": {"a": 1}})
    german = bm25_run(ds)
    assert list(german["q"])[0] == "a"
    assert bm25_run(ds, language="en")["q"] == {}  # no stemming: "haus" never matches "häuser"


@pytest.mark.skipif(not (default_xquad_root() / "xquad.en.json").is_file(), reason="XQuAD data not present")
def test_bm25_reproduces_mteb_xquad_en():
    ds = load_xquad("en")
    res = evaluate_run(bm25_run(ds, language="en"), ds.qrels)
    assert res["ndcg@10"] * 100 == pytest.approx(96.5, abs=1.0)  # MTEB bm25s baseline
