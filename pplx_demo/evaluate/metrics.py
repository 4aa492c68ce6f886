"""Retrieval metrics with trec_eval / pytrec_eval conventions (what MTEB reports), pure Python.

Conventions, all as trec_eval does them:
- ranking: score descending; ties broken by document id DEScending (trec_eval sorts equal scores by
  docno in reverse string order), so a tie never depends on dict order;
- nDCG@k: linear gain (gain = grade), discount log2(rank + 1), ideal DCG from the judged grades; grades
  <= 0 count as non-relevant (gain 0);
- Recall@k: relevant documents in the top k over all relevant (grade > 0) documents;
- MRR@k: 1 / rank of the first relevant document within the top k, else 0;
- averages are over queries with at least one relevant judgement; such a query missing from the run
  (or with no hits) scores 0 everywhere (trec_eval -c). Run entries for unjudged queries are ignored.
"""

from __future__ import annotations

import math

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def ranked(scores: dict[str, float]) -> list[str]:
    """Document ids best first, ties by document id descending (trec_eval order)."""
    by_id = sorted(scores, reverse=True)
    # Python's sort is stable: sorting by score after sorting by id keeps the id order within ties.
    return sorted(by_id, key=lambda d: -float(scores[d]))


def ndcg_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains; 0 when nothing is relevant."""
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at(ranking: list[str], judged: dict[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k (0 if none)."""
    for i, d in enumerate(ranking[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def query_metrics(scores: dict[str, float], judged: dict[str, int]) -> dict[str, float]:
    """The four metrics of one query."""
    ranking = ranked(scores)
    return {
        "ndcg@10": ndcg_at(ranking, judged, 10),
        "recall@10": recall_at(ranking, judged, 10),
        "recall@100": recall_at(ranking, judged, 100),
        "mrr@10": mrr_at(ranking, judged, 10),
    }


def per_query(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Metrics per judged query (queries with at least one relevant document)."""
    return {qid: query_metrics(run.get(qid, {}), judged)
            for qid, judged in qrels.items() if any(g > 0 for g in judged.values())}


def per_query_metrics(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """{metric: {query id: value}} over the judged queries, the values `evaluate_run` averages.

    Same conventions: only queries with a relevant judgement; one missing from the run scores 0.
    """
    rows = per_query(run, qrels)
    return {m: {qid: r[m] for qid, r in rows.items()} for m in METRICS}


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 averaged over the judged queries (0..1)."""
    rows = per_query(run, qrels)
    if not rows:
        return {m: 0.0 for m in METRICS}
    return {m: sum(r[m] for r in rows.values()) / len(rows) for m in METRICS}


def retention(metrics: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Each metric as a percentage of the reference's (e.g. % of float32); NaN where the reference is 0."""
    return {m: (100.0 * v / reference[m]) if reference.get(m) else float("nan") for m, v in metrics.items()}
