"""`IndexFootprint`: the bytes one configuration of an opened disk index holds in RAM and reads from
its files (what `DiskIndex.footprint` measures and the deployment costs are priced from)."""

from __future__ import annotations

from dataclasses import dataclass

from pplx_demo.index import IndexConfig


@dataclass(frozen=True)
class IndexFootprint:
    """Bytes one configuration of an opened disk index uses: held in RAM, and read from disk files."""

    config: IndexConfig
    n_vectors: int
    ram_bytes: int  # arrays this process holds for the configuration (packed bits)
    scanned_file_bytes: int  # memory-mapped files every query scans in full (needs page cache to be fast)
    candidate_file_bytes: int  # memory-mapped files read only for the rescoring candidates
    disk_bytes: int  # every file the configuration reads, on disk

    @property
    def config_label(self) -> str:
        return str(self.config)

    def to_dict(self) -> dict:
        return {**self.__dict__, "config": str(self.config), "config_label": str(self.config)}
