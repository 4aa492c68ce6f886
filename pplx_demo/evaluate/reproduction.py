"""Published numbers we reproduce, and the machine-readable record the About tab reads.

`benchmarks/bench_eval.py` writes `benchmarks/reproduction.json`; the UI only calls
`load_reproduction()` and never carries numbers of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pplx_demo.config import ROOT

REPRODUCTION_PATH = ROOT / "benchmarks" / "reproduction.json"

# MTEB results (XQuADRetrieval, validation split, nDCG@10 x 100), as listed in shared/data/README.md.
PUBLISHED_XQUAD_NDCG10: dict[str, dict[str, float]] = {
    "all-MiniLM-L6-v2": {"en": 94.4, "de": 70.3, "es": 63.2, "ro": 60.6, "tr": 40.0, "vi": 50.8, "ru": 21.6,
                         "el": 13.0, "zh": 24.2, "ar": 3.8, "hi": 4.8, "th": 10.1},
    "bm25s": {"en": 96.5, "de": 92.5, "es": 95.2},
}
TOLERANCE = 1.0  # nDCG@10 points


@dataclass
class ReproductionRow:
    """One published number beside ours (nDCG@10 x 100)."""

    dataset: str
    system: str
    published: float
    ours: float
    tolerance: float = TOLERANCE
    how: str = ""  # which of our pipelines produced `ours`

    @property
    def delta(self) -> float:
        return self.ours - self.published

    @property
    def within(self) -> bool:
        return abs(self.delta) <= self.tolerance + 1e-9


@dataclass
class Reproduction:
    """What bench_eval.py measured, with the command and machine that produced it."""

    command: str
    machine: str
    date: str
    rows: list[ReproductionRow]
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # diagnostics and per-precision tables

    @property
    def all_within(self) -> bool:
        return all(r.within for r in self.rows)

    def to_json(self) -> str:
        data = asdict(self)
        for row, obj in zip(data["rows"], self.rows):
            row["delta"] = round(obj.delta, 2)
            row["within"] = obj.within
        return json.dumps(data, indent=2, ensure_ascii=False)


def load_reproduction(path: str | Path | None = None) -> Reproduction | None:
    """The last recorded reproduction, or None when bench_eval.py has not been run."""
    path = Path(path) if path is not None else REPRODUCTION_PATH
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    fields = ("dataset", "system", "published", "ours", "tolerance", "how")
    rows = [ReproductionRow(**{k: r[k] for k in fields if k in r}) for r in data.get("rows", [])]
    return Reproduction(command=data.get("command", ""), machine=data.get("machine", ""), date=data.get("date", ""),
                        rows=rows, notes=list(data.get("notes", [])), extra=dict(data.get("extra", {})))
