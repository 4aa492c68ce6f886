"""A BEIR folder uploaded as one zip: the three files are read with the archive guards, then parsed
by `load_beir` from a private temporary folder (nothing else in the zip is unpacked)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from pplx_demo.config import Settings
from pplx_demo.errors import DemoError
from pplx_demo.evaluate.datasets import RetrievalDataset, load_beir
from pplx_demo.ingest.archive import UnusableInput, check_archive, entry_problem, is_ignored_entry, read_entry


def load_beir_zip(path: str | Path, settings: Settings, split: str = "test") -> RetrievalDataset:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv from a zip (at its top or in one folder).

    Upload limits apply: Settings.max_documents, max_queries and max_chars_per_document (a DemoError
    names the one exceeded), besides the archive guards.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DemoError(f"{path.name} is not a readable zip archive ({exc})") from None
    with archive:
        try:
            entries = check_archive(archive, settings, path.name)
        except UnusableInput as exc:
            raise DemoError(str(exc)) from None
        by_name = {i.filename.replace("\\", "/"): i for i in entries if not is_ignored_entry(i.filename)}
        roots = [n[: -len("corpus.jsonl")] for n in by_name if PurePosixPath(n).name == "corpus.jsonl"]
        if len(roots) != 1:
            raise DemoError(f"{path.name} must hold exactly one BEIR folder (corpus.jsonl, queries.jsonl, "
                            f"qrels/{split}.tsv); found {len(roots)} corpus.jsonl files")
        root = roots[0]
        wanted = {"corpus.jsonl": root + "corpus.jsonl", "queries.jsonl": root + "queries.jsonl",
                  f"qrels/{split}.tsv": root + f"qrels/{split}.tsv"}
        with tempfile.TemporaryDirectory(prefix="beir-") as tmp:
            folder = Path(tmp) / (PurePosixPath(root).name or path.stem)
            (folder / "qrels").mkdir(parents=True)
            for target, name in wanted.items():
                info = by_name.get(name)
                if info is None:
                    raise DemoError(f"{path.name} has no {name} (a BEIR folder needs corpus.jsonl, "
                                    f"queries.jsonl and qrels/{split}.tsv)")
                problem = entry_problem(info, settings)
                if problem:
                    raise DemoError(f"{path.name}: {name}: {problem}")
                try:
                    data = read_entry(archive, info, settings.max_zip_uncompressed_bytes)
                except UnusableInput as exc:
                    raise DemoError(f"{path.name}: {name}: {exc}") from None
                (folder / target).write_bytes(data)
            return load_beir(folder, split=split, limits=settings)
