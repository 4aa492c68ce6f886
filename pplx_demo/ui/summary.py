"""The one-line answer shown above the results after every search, computed from the response alone.

"binary + rescore x4 (int8 calibrated): 9/10 of float32's top-10, same #1; 32x less RAM per vector (48 B,
+ 388 B on disk, vs 1.5 KiB); index search 0.3 ms vs 0.4 ms." Nothing in it is typed in: agreement comes
from the column's hits, RAM and disk from `deployment.bytes_split`, times from the column's timings.
"""

from __future__ import annotations

from typing import Any

from pplx_demo.deployment import bytes_split
from pplx_demo.storage import human_bytes
from pplx_demo.ui.result_views import ram_ratio_text

# Which column the line is about, when several are shown: the deployment the studio is about first.
_PREFERENCE = ("binary + rescore", "hybrid", "binary + asymmetric", "binary", "int8")


def headline_column(response: Any, baseline_label: str) -> Any | None:
    """The column the summary speaks about (None when only the reference was searched)."""
    others = [c for c in response.columns if c.label != baseline_label]
    if not others:
        return None
    rank = {family: i for i, family in enumerate(_PREFERENCE)}
    return min(others, key=lambda c: (rank.get(c.config.family, len(rank)), c.config.dim is not None))


def summary_line(response: Any, baseline_label: str = "float32") -> str:
    """One sentence: how close the headline configuration came to float32, what it saves, how fast it was."""
    columns = response.columns
    if not columns:
        return ""
    base = next((c for c in columns if c.label == baseline_label), None)
    col = headline_column(response, baseline_label)
    if col is None:
        top = columns[0].hits[0].title if columns[0].hits else "nothing"
        return f"{columns[0].label}: top hit “{top}”. Tick another configuration to compare it with float32."
    k = response.k
    shown = min(k, len(base.hits)) if base is not None else k
    found = round(col.overlap_at_k * shown)
    parts = [f"{col.label}: {found}/{shown} of float32's top-{shown}"]
    if base is not None and base.hits and col.hits:
        if [h.chunk_id for h in col.hits[:shown]] == [h.chunk_id for h in base.hits[:shown]]:
            parts[0] += " in the same order"
        else:
            parts[0] += ", same #1" if col.hits[0].chunk_id == base.hits[0].chunk_id else ", a different #1"
    full_dim = max(1, col.storage.float32_bytes_per_vector // 4)
    split = bytes_split(col.config, full_dim)
    f32 = 4 * full_dim
    disk = f", + {human_bytes(split.disk_bytes_per_vector)} on disk" if split.disk_bytes_per_vector else ""
    parts.append(f"{ram_ratio_text(split.ram_bytes_per_vector, f32)} RAM per vector "
                 f"({human_bytes(split.ram_bytes_per_vector)}{disk}, vs {human_bytes(f32)})")
    if base is not None:
        parts.append(f"index search {col.search_ms:.2f} ms vs {base.search_ms:.2f} ms")
    return "; ".join(parts) + "."
