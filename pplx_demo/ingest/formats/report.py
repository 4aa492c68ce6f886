"""What a load returns and the limits it applies: `IngestReport` / `Rejection`, the `Budget` shared by
every file of one call, and `_Sink`, where a parser puts one file's documents (cleaned, checked, counted)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pplx_demo.config import Settings
from pplx_demo.documents import Document
from pplx_demo.ingest.archive import UnusableInput, fmt_bytes, too_big
from pplx_demo.ingest.text import clean_document, clean_text


@dataclass
class Rejection:
    """A file, archive entry or record that was not loaded, and why (one line a person can act on)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclass
class IngestReport:
    """Documents loaded plus one `Rejection` per file / entry / record that was refused."""

    documents: list[Document] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """Distinct source names of the loaded documents, in load order."""
        return list(dict.fromkeys(d.metadata.get("source", d.uri) for d in self.documents))

    def extend(self, other: "IngestReport") -> None:
        self.documents.extend(other.documents)
        self.rejected.extend(other.rejected)

    def reject(self, name: str, reason: str) -> None:
        """Add a rejection; its name and reason are cleaned like document text (names come from uploads)."""
        self.rejected.append(Rejection(clean_text(name), clean_text(reason)))

    def summary_lines(self) -> list[str]:
        """Human summary: one line of totals, then one line per rejection."""
        n_sources = len(self.sources)
        head = (
            f"Loaded {len(self.documents)} document{'s' if len(self.documents) != 1 else ''} "
            f"from {n_sources} source{'s' if n_sources != 1 else ''}; "
            f"{len(self.rejected)} rejected."
        )
        return [head] + [f"Rejected {r.name}: {r.reason}" for r in self.rejected]


@dataclass
class Budget:
    """Limits shared by every file of one load call (a worker process gets and returns one)."""

    settings: Settings
    documents_left: int
    upload_bytes_left: int
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, max_file_bytes: int | None = None) -> "Budget":
        file_limit = settings.max_file_bytes if max_file_bytes is None else max_file_bytes
        return cls(settings, settings.max_documents, settings.max_upload_bytes, file_limit)


def _too_big_for(size: int, budget: Budget) -> str:
    if budget.max_file_bytes == budget.settings.max_file_bytes:
        return too_big(size, budget.max_file_bytes, "MAX_FILE_BYTES")
    return f"file is {fmt_bytes(size)}; the limit here is {fmt_bytes(budget.max_file_bytes)}"


def _document_limit(settings: Settings, rest: str) -> str:
    return f"document limit of {settings.max_documents:,} reached (PPLX_DEMO_MAX_DOCUMENTS); {rest}"


def _too_long(chars: int, limit: int, partial: str | None = None) -> str:
    amount = f"{chars:,} characters" if partial is None else f"over {limit:,} characters ({partial})"
    return f"text is {amount}; the limit is {limit:,} per document (PPLX_DEMO_MAX_CHARS_PER_DOCUMENT); split the file"


class _Sink:
    """Where a parser puts the documents of one file: each is cleaned, checked against the
    character limit and counted against the document limit as it arrives."""

    def __init__(self, name: str, budget: Budget) -> None:
        self.name = name
        self.budget = budget
        self.settings = budget.settings
        self.report = IngestReport()
        self.dropped = 0  # documents given past the document limit (parsers that cannot stop early)

    @property
    def room(self) -> bool:
        """False once the document limit is reached: a parser stops reading then."""
        return self.budget.documents_left > 0

    def add(self, doc: Document) -> None:
        """Accept `doc` (cleaned) unless its text is over the character limit or blank."""
        if self.budget.documents_left <= 0:
            self.dropped += 1
            return
        limit = self.settings.max_chars_per_document
        if len(doc.text) > 2 * limit:  # hopeless: refused before cleaning would copy it
            self.report.reject(doc.uri, _too_long(len(doc.text), limit))
            return
        doc = clean_document(doc)
        if len(doc.text) > limit:
            self.report.reject(doc.uri, _too_long(len(doc.text), limit))
            return
        if not doc.text.strip():
            self.report.reject(doc.uri, "no text (only control characters or whitespace)")
            return
        self.budget.documents_left -= 1
        doc.metadata.setdefault("source", self.name)
        self.report.documents.append(doc)

    def reject(self, name: str, reason: str) -> None:
        self.report.reject(name, reason)

    def stop(self, where: str) -> None:
        """Reading stopped at the document limit; `where` says what was left unread."""
        self.report.reject(self.name, _document_limit(self.settings, where))

    def fail(self, reason: str) -> None:
        """The file as a whole failed; documents it already gave stay (their records were fine)."""
        if self.report.documents:
            reason += f"; the {len(self.report.documents):,} documents read before it were kept"
        self.report.reject(self.name, reason)

    def close(self, report: IngestReport) -> None:
        if self.dropped:
            self.stop(f"{_count(self.dropped, 'more document')} not loaded")
        if not self.report.documents and not self.report.rejected:
            self.report.reject(self.name, "no text found")
        report.extend(self.report)


def check_text_length(chars: int, limit: int, partial: str | None = None) -> None:
    """UnusableInput when `chars` is over the per-document character limit (`partial`: where reading stopped)."""
    if chars > limit:
        raise UnusableInput(_too_long(chars, limit, partial))


def _count(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n:,} {word if n == 1 else plural}"
