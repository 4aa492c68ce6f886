"""End-to-end evaluation: a tiny BEIR folder, the real stand-in model, a real DuckDB file."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from pplx_demo.embedding import embed_corpus
from pplx_demo.cli import main
from pplx_demo.documents import Chunk, Document
from pplx_demo.errors import DemoError
from pplx_demo.cli.eval import report_lines
from pplx_demo.evaluate import contextual as contextual_module
from pplx_demo.evaluate import runs
from pplx_demo.evaluate.contextual import illustrative_document
from pplx_demo.evaluate.datasets import RetrievalDataset, load_beir
from pplx_demo.evaluate.metrics import evaluate_run
from pplx_demo.evaluate.reproduction import Reproduction, ReproductionRow, load_reproduction
from pplx_demo.evaluate.runner import _Vectors, _evaluate_configs, doc_level_run, pareto_frontier
from pplx_demo.evaluate.reports import report_json, report_rows
from pplx_demo.index import IndexConfig, QuantizedIndex
from model_loading import get_encoder
from pplx_demo.store import Store

# The test process is the entry point: its model hub loads the encoders every call uses.
run_evaluation = functools.partial(runs.run_evaluation, encoder_loader=get_encoder)
run_variant_pair = functools.partial(runs.run_variant_pair, encoder_loader=get_encoder)
run_corpus_evaluation = functools.partial(runs.run_corpus_evaluation, encoder_loader=get_encoder)
contextual_demo = functools.partial(contextual_module.contextual_demo, encoder_loader=get_encoder)

DOCS = {
    "d01": ("Volcanoes", "A volcano erupts when molten rock called magma rises through the crust and escapes as lava."),
    "d02": ("Honey bees", "Honey bees collect nectar from flowers and turn it into honey inside the hive."),
    "d03": ("Chess", "Chess is a board game for two players; the goal is to checkmate the opposing king."),
    "d04": ("Coffee", "Coffee beans are the roasted seeds of a plant that grows in tropical highlands."),
    "d05": ("Glaciers", "Glaciers are slow rivers of ice that carve valleys as they move downhill over centuries."),
    "d06": ("Bicycles", "A bicycle is moved by pedals that turn a chain connected to the rear wheel."),
    "d07": ("Photosynthesis", "Plants use sunlight, water and carbon dioxide to make sugar and release oxygen."),
    "d08": ("Tides", "Ocean tides rise and fall twice a day because of the pull of the moon's gravity."),
    "d09": ("Bread", "Bread dough rises because yeast ferments sugar and produces bubbles of carbon dioxide gas."),
    "d10": ("Owls", "Owls hunt at night; their large eyes and silent feathers help them catch mice."),
    "d11": ("Rainbows", "A rainbow appears when sunlight is refracted and reflected inside raindrops."),
    "d12": ("Pianos", "A piano makes sound when felt hammers strike tightened steel strings."),
    "d13": ("Vaccines", "Vaccines train the immune system to recognise a germ without causing the disease."),
    "d14": ("Earthquakes", "Earthquakes happen when tectonic plates slip suddenly along a fault line."),
    "d15": ("Compost", "Compost forms when worms, fungi and bacteria break down kitchen scraps and leaves."),
    "d16": ("Lighthouses", "A lighthouse warns ships at night with a bright rotating lamp on a tall tower."),
    "d17": ("Cheese", "Cheese is made by curdling milk with rennet and ageing the curds for weeks or years."),
    "d18": ("Satellites", "Satellites orbit the Earth and relay television, weather images and navigation signals."),
    "d19": ("Penguins", "Penguins are flightless birds that swim fast and breed on the ice of Antarctica."),
    "d20": ("Batteries", "A battery stores chemical energy and releases it as electric current through a circuit."),
}
QUERIES = {
    "q1": "why does lava come out of a mountain",
    "q2": "how do bees make honey",
    "q3": "what causes ocean tides",
    "q4": "why does bread dough rise",
    "q5": "how do vaccines protect people",
    "q6": "what makes the ground shake during an earthquake",
    "q7": "birds that cannot fly and live in Antarctica",
    "q8": "how is cheese produced from milk",
}
QRELS = {"q1": {"d01": 1, "d14": 0}, "q2": {"d02": 2}, "q3": {"d08": 1}, "q4": {"d09": 1}, "q5": {"d13": 1},
         "q6": {"d14": 2, "d01": 1}, "q7": {"d19": 1}, "q8": {"d17": 1}}
CONFIGS = [IndexConfig("float32"), IndexConfig("int8"), IndexConfig("binary"),
           IndexConfig("binary", "rescore", rescore_multiplier=2), IndexConfig("float32", dim=128)]


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("beir") / "tiny"
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, j in QRELS.items() for d, g in j.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("minilm-l6", "standard")


def _cosine_run(encoder, dataset) -> dict:
    """Reference run computed directly: encode, normalise, dot, every document scored."""
    doc_ids = list(dataset.corpus)
    d = encoder.encode([dataset.document_text(x) for x in doc_ids])
    q = encoder.encode(list(dataset.queries.values()))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s = q @ d.T
    return {qid: {doc_ids[j]: float(s[i, j]) for j in range(len(doc_ids))} for i, qid in enumerate(dataset.queries)}


def test_every_configuration_from_one_cached_embedding_set(tmp_path, beir_dir, encoder):
    ds = load_beir(beir_dir)
    with Store(tmp_path / "eval.duckdb") as store:
        report = run_evaluation(store, ds, "minilm-l6", None, CONFIGS)
        assert report.embedded_now == len(DOCS) + len(QUERIES)
        assert report.model_name.startswith("all-MiniLM-L6-v2") and "not pplx-embed" in report.model_name
        by = {r.config.precision + r.config.mode + str(r.config.dim): r for r in report.results}
        f32 = by["float32plainNone"]
        # float32 equals a run computed directly from the encoder (same vectors, same metric code)
        reference = evaluate_run(_cosine_run(encoder, ds), ds.qrels)
        for m, v in reference.items():
            assert f32.metrics[m] == pytest.approx(v, abs=1e-6)
        assert f32.metrics["ndcg@10"] > 0.8  # an easy set: the stand-in must find these
        assert f32.pct_of_float32["ndcg@10"] == pytest.approx(100.0)
        assert by["int8plainNone"].config.int8_scheme == "calibrated"  # the stand-in's native scheme
        assert [by[k].bytes_per_vector for k in ("binaryplainNone", "float32plain128", "float32plainNone")] == [48, 512, 1536]
        assert all(0 <= r.metrics["ndcg@10"] <= 1 and r.search_ms >= 0 for r in report.results)
        assert report.bm25 is not None and report.bm25["recall@100"] > 0.5

        again = run_evaluation(store, ds, "minilm-l6", None, CONFIGS)
        assert again.embedded_now == 0  # second identical run: everything from the cache
        assert [r.metrics for r in again.results] == [r.metrics for r in report.results]

        data = json.loads(report_json(report))
        for row in data["configurations"]:
            assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "bytes_per_vector"} <= set(row)
            assert set(row["pct_of_float32"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        rows = report_rows(report)
        for m in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
            assert rows[0][f"{m} % of float32"] == pytest.approx(100.0)
            assert rows[2][f"{m} % of float32"] == pytest.approx(round(by["binaryplainNone"].pct_of_float32[m], 1))
        assert rows[-1]["configuration"] == "BM25" and rows[-1]["ndcg@10 % of float32"] is None
        assert data["bm25"]["ndcg@10"] == pytest.approx(report.bm25["ndcg@10"])


def test_chunked_documents_are_scored_by_their_best_chunk_and_late_chunking_pairs(tmp_path, beir_dir):
    ds = load_beir(beir_dir)
    with Store(tmp_path / "eval.duckdb") as store:
        standard, contextual = run_variant_pair(store, ds, "minilm-l6", [IndexConfig("float32")], chunking=(8, 0))
        assert standard.n_chunks > len(DOCS)  # 8-token chunks split every document
        assert contextual.n_chunks == standard.n_chunks  # the same chunks
        assert standard.variant == "standard" and contextual.variant == "contextual"
        # late chunking is a field of the result, never a suffix of the configuration's name
        assert contextual.results[0].variant == "contextual" and contextual.results[0].label == "float32"
        # late chunking embeds the same chunks again, in context: other vectors, same rows
        assert contextual.embedded_now == standard.embedded_now == standard.n_chunks + len(QUERIES)
        assert not store.list_corpora()  # evaluation corpora are hidden by their recorded source
        corpus = next(c for c in store.list_corpora(sources=("evaluation",))
                      if c.name.startswith("[eval] tiny (test) · chunks 8/0"))
        alone = embed_corpus(store, corpus.id, get_encoder("minilm-l6", "standard"))
        in_context = embed_corpus(store, corpus.id, get_encoder("minilm-l6", "contextual"))
        assert alone.embedded_now == in_context.embedded_now == 0
        assert np.array_equal(alone.chunk_ids, in_context.chunk_ids)
        assert not np.allclose(alone.vectors, in_context.vectors, atol=1e-3)
        assert standard.results[0].metrics["recall@100"] == 1.0  # every document is ranked once
        again = run_variant_pair(store, ds, "minilm-l6", [IndexConfig("float32")], chunking=(8, 0))
        assert again[0].embedded_now == 0 and again[1].embedded_now == 0


def test_doc_level_run_keeps_each_documents_best_chunk():
    rows = np.array([[3, 0, 1, 2, -1]])
    scores = np.array([[0.9, 0.8, 0.7, 0.1, -np.inf]], dtype=np.float32)
    row_doc = np.array([0, 0, 1, 1])  # rows 0,1 -> doc a; rows 2,3 -> doc b
    run = doc_level_run(rows, scores, row_doc, ["a", "b"], ["q"], depth=10)
    assert run == {"q": {"b": pytest.approx(0.9), "a": pytest.approx(0.8)}}
    assert list(doc_level_run(rows, scores, row_doc, ["a", "b"], ["q"], depth=1)["q"]) == ["b"]


def test_pareto_frontier_keeps_only_undominated_points():
    points = [(1536, 0.94), (388, 0.94), (48, 0.91), (436, 0.94), (16, 0.79), (512, 0.90), (48, 0.80)]
    assert pareto_frontier(points) == [4, 2, 1]
    assert pareto_frontier([]) == []
    assert pareto_frontier([(10, float("nan")), (20, 0.5)]) == [1]


def test_uploaded_qrels_on_a_stored_corpus(tmp_path, encoder):
    docs = [Document(uri=f"file://{k}.txt", title=t, text=x, external_id=k) for k, (t, x) in list(DOCS.items())[:10]]
    chunks = [[Chunk(0, d.text, 0, len(d.text), encoder.count_tokens([d.text])[0])] for d in docs]
    with Store(tmp_path / "eval.duckdb") as store:
        cid = store.add_corpus("mine", docs, chunks)
        report = run_corpus_evaluation(store, cid, {"q2": QUERIES["q2"], "q3": QUERIES["q3"]},
                                       {"q2": {"d02": 1}, "q3": {"d08": 1}}, "minilm-l6", None,
                                       [IndexConfig("float32"), IndexConfig("binary")])
        assert report.n_queries == 2 and report.results[0].metrics["recall@10"] == 1.0
        with pytest.raises(DemoError, match="document ids"):
            run_corpus_evaluation(store, cid, {"q2": "bees"}, {"q2": {"nope": 1}}, "minilm-l6", None,
                                  [IndexConfig("float32")])


def test_bad_requests_are_demo_errors(tmp_path, beir_dir):
    ds = load_beir(beir_dir)
    with Store(tmp_path / "eval.duckdb") as store:
        with pytest.raises(DemoError, match="document scoring"):
            run_evaluation(store, ds, "minilm-l6", None, [IndexConfig()], doc_scoring="sum")
        with pytest.raises(DemoError, match="at least one"):
            run_evaluation(store, ds, "minilm-l6", None, [])
        with pytest.raises(DemoError, match="longer than"):
            run_evaluation(store, ds, "minilm-l6", None, [IndexConfig()], chunking=(1000, 0))
        assert store.list_corpora() == []  # refused before anything was stored
    assert main(["--db", str(tmp_path / "x.duckdb"), "eval", "--beir", str(beir_dir), "--precisions", "float16",
                 "--no-progress"]) == 1


def _pool_fixture() -> _Vectors:
    """50 decoys whose signs all match the query (Hamming distance 0) but whose cosine is ~0.07,
    and one relevant document with cosine ~0.86 but 96 of 384 signs flipped: binary ranks it 51st."""
    dim, decoys = 384, 50
    x = np.full((decoys + 1, dim), 0.01, dtype=np.float32)
    x[np.arange(decoys), np.arange(decoys)] = 10.0
    x[decoys] = 1.0
    x[decoys, :96] = -0.01
    names = [f"d{i}" for i in range(decoys)] + ["rel"]
    return _Vectors(chunk_vectors=x, row_doc=np.arange(decoys + 1), doc_names=names,
                    query_vectors=np.ones((1, dim), dtype=np.float32), query_names=["q"], max_chunks_per_doc=1,
                    embedded_now=0, n_chunks=decoys + 1)


def test_rescore_reranks_k_times_multiplier_candidates_like_the_app(encoder, monkeypatch):
    pools: list[int] = []
    original = QuantizedIndex._search_hamming

    def recording(self, q, k):
        pools.append(k)
        return original(self, q, k)

    monkeypatch.setattr(QuantizedIndex, "_search_hamming", recording)
    configs = [IndexConfig("float32"), IndexConfig("binary"), IndexConfig("binary", "rescore", rescore_multiplier=4),
               IndexConfig("binary", "rescore", rescore_multiplier=6)]
    results = _evaluate_configs(_pool_fixture(), {"q": {"rel": 1}}, encoder, configs)
    f32, binary, x4, x6 = results
    assert f32.metrics["ndcg@10"] == 1.0
    assert binary.metrics["recall@10"] == 0.0 and binary.metrics["recall@100"] == 1.0  # ranked 51st by Hamming
    # A top-10 search re-scores 10 x 4 = 40 candidates: the relevant document (Hamming rank 51) is not among them,
    # although a 100-deep pool (what this evaluation used to re-score) would have found it.
    assert x4.candidates["pool@10"] == 40 and 40 in pools
    assert x4.metrics["ndcg@10"] == 0.0 and x4.metrics["mrr@10"] == 0.0
    assert x4.metrics["recall@100"] == 1.0  # Recall@100 comes from a top-100 search (pool 400 >= 51 documents)
    assert x4.pct_of_float32["ndcg@10"] == 0.0 and x4.pct_of_float32["recall@100"] == pytest.approx(100.0)
    assert x6.metrics["ndcg@10"] == 1.0  # 60 candidates reach it; int8 re-scoring puts it first
    assert [r.candidates["k@10"] for r in results] == [10] * 4


def test_truncated_texts_are_reported_not_silent(tmp_path):
    long_text = " ".join(["The harbour of the old town is busy with ferries and fishing boats."] * 40)  # >256 tokens
    ds = RetrievalDataset(name="long", corpus={"a": ("", long_text), "b": ("", "Bees make honey.")},
                          queries={"q": "ferries in the harbour"}, qrels={"q": {"a": 1}}, language="en")
    with Store(tmp_path / "t.duckdb") as store:
        report = run_evaluation(store, ds, "minilm-l6", None, [IndexConfig("float32")], bm25=False)
        assert report.truncated == 1 and report.max_tokens == 256
        warning = next(line for line in report_lines(report) if line.startswith("WARNING"))
        assert "1 of the 3 texts" in warning and "256-token" in warning and "--chunk-tokens" in warning
        data = json.loads(report_json(report))
        assert data["truncated"] == 1 and data["warnings"] and "cut" in data["warnings"][0]
        chunked = run_evaluation(store, ds, "minilm-l6", None, [IndexConfig("float32")], bm25=False,
                                 chunking=(64, 0))
        assert chunked.truncated == 0 and not any(line.startswith("WARNING") for line in report_lines(chunked))


def test_late_chunking_moves_the_population_sentence_up(tmp_path):
    doc, chunks = illustrative_document()
    assert all(doc.text[c.char_start:c.char_end] == c.text for c in chunks)
    assert "Berlin" not in " ".join(c.text for c in chunks[1:])  # later sentences only refer back
    with Store(tmp_path / "demo.duckdb") as store:
        demo = contextual_demo(store, "minilm-l6", "Berlin population")
        assert demo.changed
        population = next(c for c in demo.chunks if "million residents" in c.text)
        assert population.contextual_rank < population.standard_rank
        assert demo.ranking("contextual")[0].order == population.order
        assert demo.moves()[0].moved > 0


def test_cli_contextual_demo_shows_both_rankings_and_what_moved(tmp_path, capsys):
    db = str(tmp_path / "cd.duckdb")
    assert main(["--db", db, "contextual-demo", "--query", "Berlin population", "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    population = next(c for c in data["chunks"] if "million residents" in c["text"])
    assert data["ranking"]["late_chunking"][0] == population["order"]
    assert population["late_chunking_rank"] < population["independent_rank"]
    assert population["order"] in data["moved"] and data["changed"] is True
    assert sorted(data["ranking"]["independent"]) == sorted(data["ranking"]["late_chunking"]) == \
        [c["order"] for c in data["chunks"]]
    assert "not pplx-embed" in data["model"]

    assert main(["--db", db, "contextual-demo", "--no-progress"]) == 0  # default query, embeddings now cached
    text = capsys.readouterr().out
    assert "independent chunks" in text and "late chunking" in text
    moved = f"#{population['order']} rank {population['independent_rank']} -> {population['late_chunking_rank']}"
    assert moved in text and "[was " in text
    assert main(["--db", db, "contextual-demo", "--query", "  ", "--no-progress"]) == 1


def test_cli_eval_prints_a_table_and_writes_json(tmp_path, beir_dir, capsys):
    out = tmp_path / "res.json"
    code = main(["--db", str(tmp_path / "cli.duckdb"), "eval", "--beir", str(beir_dir), "--precisions",
                 "float32,int8,binary+rescore", "--dims", "384,128", "--json", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ndcg@10" in printed and "BM25" in printed and "float32 @128d" in printed
    assert "% of float32: ndcg@10 / recall@10 / recall@100 / mrr@10" in printed
    f32_row = next(line for line in printed.splitlines() if line.startswith("float32 "))
    assert "100.0/100.0/100.0/100.0" in f32_row  # every metric as % of float32, float32 itself 100
    assert "rescore x4: the @10 metrics re-score 10 x 4 = 40 Hamming candidates (all 20 chunks here)" in printed
    data = json.loads(out.read_text(encoding="utf-8"))
    configs = data["reports"][0]["configurations"]
    assert len(configs) == 6
    assert {c["bytes_per_vector"] for c in configs} >= {1536, 512}
    assert all(0 <= c["ndcg@10"] <= 1 for c in configs)


def test_cli_eval_compares_several_models_in_one_run(tmp_path, beir_dir, tiny_pplx_dir, capsys):
    out = tmp_path / "models.json"
    code = main(["--db", str(tmp_path / "m.duckdb"), "eval", "--beir", str(beir_dir), "--model",
                 f"minilm-l6,{tiny_pplx_dir}", "--precisions", "float32,binary", "--no-bm25", "--json", str(out),
                 "--no-progress"])
    assert code == 0
    reports = json.loads(out.read_text(encoding="utf-8"))["reports"]
    assert [r["model_key"] for r in reports] == ["minilm-l6", str(tiny_pplx_dir.resolve())]
    assert "not pplx-embed" in reports[0]["model_name"] and "pplx-embed layout" in reports[1]["model_name"]
    assert [len(r["configurations"]) for r in reports] == [2, 3]
    # pplx layout: float32 is the cosine of tanh(pooled) (the trained form), the raw pooled cosine shown once
    assert [c["configuration"] for c in reports[1]["configurations"]] == ["float32 tanh", "float32 raw", "binary"]
    assert reports[0]["configurations"][0]["ndcg@10"] > reports[1]["configurations"][0]["ndcg@10"]  # random weights


def test_reproduction_record_round_trips(tmp_path):
    rec = Reproduction(command="python benchmarks/bench_eval.py", machine="test", date="2025-01-01",
                       rows=[ReproductionRow("XQuAD en", "all-MiniLM-L6-v2", 94.4, 94.36),
                             ReproductionRow("XQuAD de", "bm25s", 92.5, 94.0)])
    path = tmp_path / "r.json"
    path.write_text(rec.to_json(), encoding="utf-8")
    back = load_reproduction(path)
    assert back is not None and [r.within for r in back.rows] == [True, False]
    assert back.rows[0].delta == pytest.approx(-0.04)
    assert load_reproduction(tmp_path / "missing.json") is None
