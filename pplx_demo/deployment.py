"""What serving one configuration costs: bytes that must sit in RAM vs bytes read from disk, in $ per month.

The split follows how practitioners deploy quantised retrieval (HF quantized-retrieval Space,
Qdrant / Vespa binary quantisation with rescoring): whatever every query scans in full must be in
RAM (or resident in the page cache) to be interactive; what is read only for a few rescoring
candidates per query can stay on disk, memory-mapped.

    float32 / int8 plain      the codes every query scans          -> RAM
    binary (plain, asym.)     packed bits                           -> RAM
    binary + rescore          packed bits -> RAM; int8 (+ row norm) or float32 -> disk

Bytes per vector are those of the index files (`pplx_demo.disk_index`, equal to `QuantizedIndex`'s
arrays): float32 4*d, int8 d + a 4-byte row norm, bits d/8 rounded up to 64-bit words. Chunk ids
(8 B/vector) and the DuckDB copy of the float vectors are the same for every configuration and left
out. Prices are per GiB-month (2^30 bytes, as both providers bill memory and volumes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from pplx_demo.disk_index import IndexFootprint, bits_row_bytes
from pplx_demo.index import IndexConfig
from pplx_demo.quantize import Int8Scheme

GIB = 1 << 30
HOURS_PER_MONTH = 730  # the providers' own month for hourly prices


@dataclass(frozen=True)
class CostSource:
    """Where a default price comes from, for the UI to cite next to the numbers."""

    resource: str  # "RAM" | "disk"
    usd_per_gb_month: float
    what: str
    url: str
    as_of: str


# Public list prices, on-demand, US East (N. Virginia). AWS publishes both on its pricing pages:
#   https://aws.amazon.com/ec2/pricing/on-demand/  r6i.xlarge (memory optimised, 4 vCPU, 32 GiB): $0.252 per hour
#   https://aws.amazon.com/ebs/pricing/            gp3 SSD volume storage: $0.08 per GB-month
# Both are the list prices in force since those products launched (gp3 Dec 2020, r6i Aug 2021); last
# compared with the published pages in 2025. Not re-checked from this offline machine on 2026-12-01: override
# with PPLX_DEMO_RAM_USD_PER_GB_MONTH / PPLX_DEMO_DISK_USD_PER_GB_MONTH for another provider or region.
# The RAM price charges the whole memory-optimised instance to its memory (vCPUs included): what RAM
# costs when a box is sized by its memory, which is the case for an in-RAM vector index.
COST_SOURCES: tuple[CostSource, ...] = (
    CostSource("RAM", round(0.252 * HOURS_PER_MONTH / 32, 2),
               "AWS EC2 r6i.xlarge on-demand (memory optimised, 4 vCPU, 32 GiB), US East: $0.252/hour "
               "x 730 hours / 32 GiB", "https://aws.amazon.com/ec2/pricing/on-demand/", "list price as of 2025"),
    CostSource("disk", 0.08, "AWS EBS gp3 SSD volume storage, US East: $0.08 per GB-month (3,000 IOPS and "
               "125 MB/s included)", "https://aws.amazon.com/ebs/pricing/", "list price as of 2025"),
)

PROJECTION_SIZES: dict[str, int] = {"1M": 1_000_000, "100M": 100_000_000, "1B": 1_000_000_000}


@dataclass(frozen=True)
class BytesSplit:
    """Per-vector bytes of one configuration: what must be in RAM, what may stay on disk."""

    config: IndexConfig
    dim: int  # searched size (Matryoshka size or the full size)
    ram_bytes_per_vector: int
    disk_bytes_per_vector: int
    ram_holds: str  # e.g. "binary codes"
    disk_holds: str  # e.g. "int8 codes + row norms (rescoring candidates only)"; "" when nothing

    @property
    def config_label(self) -> str:
        return str(self.config)


def bytes_split(config: IndexConfig, full_dim: int) -> BytesSplit:
    """RAM vs disk bytes per vector for `config` over `full_dim`-dimensional vectors."""
    d = int(full_dim) if config.dim is None else min(int(config.dim), int(full_dim))
    bits = bits_row_bytes(d)
    if config.precision == "float32":
        return BytesSplit(config, d, 4 * d, 0, "float32 unit vectors", "")
    if config.precision == "int8":
        return BytesSplit(config, d, d + 4, 0, "int8 codes + row norms", "")
    if config.mode == "rescore" and config.rescore_with == "int8":
        return BytesSplit(config, d, bits, d + 4, "binary codes",
                          "int8 codes + row norms (read for rescoring candidates only)")
    if config.mode == "rescore":
        return BytesSplit(config, d, bits, 4 * d, "binary codes",
                          "float32 unit vectors (read for rescoring candidates only)")
    return BytesSplit(config, d, bits, 0, "binary codes", "")


@dataclass(frozen=True)
class DeploymentCost:
    """Bytes and $ per month of serving one configuration over `n_vectors` vectors."""

    config: IndexConfig
    n_vectors: int
    dim: int
    ram_bytes: int
    disk_bytes: int
    ram_usd_month: float
    disk_usd_month: float
    ram_holds: str = ""
    disk_holds: str = ""
    measured: bool = False  # True: bytes measured from an index's files; False: per-vector arithmetic

    @property
    def total_usd_month(self) -> float:
        return self.ram_usd_month + self.disk_usd_month

    @property
    def config_label(self) -> str:
        return str(self.config)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["config"] = out["config_label"] = str(self.config)
        out["total_usd_month"] = self.total_usd_month
        return out


def _usd(nbytes: int, usd_per_gb_month: float) -> float:
    return nbytes / GIB * float(usd_per_gb_month)


def deployment_cost(config: IndexConfig, full_dim: int, n_vectors: int, *, ram_usd_per_gb_month: float,
                    disk_usd_per_gb_month: float) -> DeploymentCost:
    """RAM and disk bytes and their monthly price for `config` at `n_vectors` vectors."""
    split = bytes_split(config, full_dim)
    n = int(n_vectors)
    ram, disk = split.ram_bytes_per_vector * n, split.disk_bytes_per_vector * n
    return DeploymentCost(split.config, n, split.dim, ram, disk, _usd(ram, ram_usd_per_gb_month),
                          _usd(disk, disk_usd_per_gb_month), split.ram_holds, split.disk_holds)


def deployment_costs(configs: Iterable[IndexConfig], full_dim: int,
                     sizes: Iterable[int] = tuple(PROJECTION_SIZES.values()), *, ram_usd_per_gb_month: float,
                     disk_usd_per_gb_month: float) -> list[DeploymentCost]:
    """`deployment_cost` for every configuration at every size (configuration-major order)."""
    sizes = list(sizes)
    return [deployment_cost(c, full_dim, n, ram_usd_per_gb_month=ram_usd_per_gb_month,
                            disk_usd_per_gb_month=disk_usd_per_gb_month) for c in configs for n in sizes]


def measured_cost(footprint: IndexFootprint, dim: int, *, ram_usd_per_gb_month: float,
                  disk_usd_per_gb_month: float) -> DeploymentCost:
    """The cost of an opened disk index's configuration from its measured files (`DiskIndex.footprint`).

    Files every query scans count as RAM (they must be resident in the page cache to be fast);
    files read only for rescoring candidates count as disk.
    """
    ram = footprint.ram_bytes + footprint.scanned_file_bytes
    disk = footprint.candidate_file_bytes
    return DeploymentCost(footprint.config, footprint.n_vectors, int(dim), ram, disk,
                          _usd(ram, ram_usd_per_gb_month), _usd(disk, disk_usd_per_gb_month), measured=True)


def deployment_configs(full_dim: int, int8_scheme: Int8Scheme | None = None,
                       matryoshka_dim: int | None = 512) -> list[IndexConfig]:
    """The configurations a deployment table compares: all in RAM, then binary in RAM + rescoring from disk."""
    configs = [
        IndexConfig("float32"),
        IndexConfig("int8", int8_scheme=int8_scheme),
        IndexConfig("binary"),
        IndexConfig("binary", "rescore", rescore_with="int8", int8_scheme=int8_scheme),
        IndexConfig("binary", "rescore", rescore_with="float32"),
    ]
    if matryoshka_dim is not None and matryoshka_dim < full_dim:
        configs.append(IndexConfig("binary", "rescore", dim=matryoshka_dim, rescore_with="int8",
                                   int8_scheme=int8_scheme))
    return configs

