"""Out-of-core index on one machine: binary codes in RAM, int8 and float32 rows memory-mapped from disk.

One folder per (corpus, model cache key, variant) holds raw little-endian files plus a JSON manifest:

    manifest.json          schema version, sizes, int8 scheme + calibration, per-file length + checksums
    chunk_ids.i64          (n,) int64: the chunk id of every row
    d{D}.bits              (n, words * 8) uint8: MSB-first packed sign bits, zero padded to 64-bit words
    d{D}.int8              (n, D) int8 codes               \
    d{D}.int8_inv_norm     (n,) float32: 1 / |dequantised|  > memory-mapped, read only where a search needs them
    d{D}.float32           (n, D) float32 unit rows        /

with one set of `d{dim}.*` files per stored size (the model's full size, plus any Matryoshka size asked
for when the index was created). Every file holds exactly what `QuantizedIndex.build(vectors,
IndexConfig(..., dim=dim))` would hold in RAM, so a search here runs the same scans (the same numba
kernels and top-k code, on memory-mapped arrays) and returns the same ids and scores.

- Binary codes are read into RAM when the index is opened (32x smaller than float32); int8 codes and
  float32 rows stay on disk and are read through the page cache: only the k x multiplier candidate
  rows for "binary + rescore", every row for a plain int8 / float32 scan.
- Appending adds rows to every file and then replaces the manifest atomically (temporary file +
  `os.replace`): a crash before that leaves the old index valid. Checksums are blake2b digests of
  8 MiB chunks, so an append only re-hashes the last partial chunk and the new bytes.
- `DiskIndex.open` refuses a missing or unreadable manifest and any file whose length differs from the
  manifest; `verify()` re-hashes every file. `DiskIndex.rebuild(folder, vectors, chunk_ids)` rewrites
  the folder from the float vectors the caller passes (they live in DuckDB; nothing there is touched).
- Calibrated int8: the per-dimension ranges come from the first rows written (all of them for
  `DiskIndex.build`) and are then kept, so appended rows reuse them (values outside are clipped).
  An index built in one call therefore equals `QuantizedIndex.build`; after appends with a
  calibrated scheme, it equals a QuantizedIndex calibrated on the first batch. "tanh" (pplx-embed's
  native scheme) needs no calibration: append-then-search always equals a full build.
- One writer at a time (the studio's single process); searches may run while nobody appends.

Modules: `files` (the folder's layout, the manifest and its atomic replacement), `checksums` (chunk
digests and the appending writer that keeps them), `encoding` (float rows -> the arrays
QuantizedIndex.build would hold, and a QuantizedIndex around them), `index` (`DiskIndex`: create,
open, build, append, verify, rebuild, search) and `footprint` (`IndexFootprint`, bytes per configuration).
"""

from pplx_demo.disk_index.checksums import file_chunk_digests
from pplx_demo.disk_index.encoding import encode_rows, first_batch_calibration, int8_affine, quantized_index_over
from pplx_demo.disk_index.files import (CHECKSUM_ALGORITHM, CHECKSUM_CHUNK_BYTES, CHUNK_IDS_FILE, MANIFEST_NAME,
                                        SCHEMA_VERSION, STORES, FileSpec, bits_row_bytes, index_folder, level_files)
from pplx_demo.disk_index.footprint import IndexFootprint
from pplx_demo.disk_index.index import DiskIndex, Progress

__all__ = ["CHECKSUM_ALGORITHM", "CHECKSUM_CHUNK_BYTES", "CHUNK_IDS_FILE", "MANIFEST_NAME", "SCHEMA_VERSION", "STORES",
           "DiskIndex", "FileSpec", "IndexFootprint", "Progress", "bits_row_bytes", "encode_rows",
           "file_chunk_digests", "first_batch_calibration", "index_folder", "int8_affine", "level_files",
           "quantized_index_over"]
