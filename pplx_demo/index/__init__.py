"""Exact vector search over float32, int8 or binary codes (see `quantized` for the score conventions).

- `config`: `IndexConfig`, the one configuration vocabulary (`IndexConfig.parse`, canonical `str`).
- `topk`: exact running top-k selection and `SearchHits`.
- `scan`: blocked / threaded scans and the kernel choice; `numba_kernels`: their compiled twins.
- `quantized`: `QuantizedIndex`, built from a corpus' float vectors for one configuration.
"""

from pplx_demo.index.config import (DEFAULT_RESCORE_MULTIPLIER, DENSE_FAMILIES, FAMILIES, INT8_SCHEMES, MODES, Family, IndexConfig,
                                    Mode, RescoreWith, matryoshka_sizes, validate_dim)
from pplx_demo.index.quantized import QuantizedIndex, warm_up
from pplx_demo.index.scan import KERNEL_CHOICES, kernel_path
from pplx_demo.index.topk import Kernels, SearchHits, top_k_rows

__all__ = ["DEFAULT_RESCORE_MULTIPLIER", "DENSE_FAMILIES", "FAMILIES", "INT8_SCHEMES", "KERNEL_CHOICES", "MODES", "Family",
           "IndexConfig", "Kernels", "Mode", "QuantizedIndex", "RescoreWith", "SearchHits", "kernel_path",
           "matryoshka_sizes", "top_k_rows", "validate_dim", "warm_up"]
