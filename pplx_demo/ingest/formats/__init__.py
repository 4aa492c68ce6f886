"""Uploads -> Documents: txt, md, html, pdf, docx, csv/tsv, json/jsonl and zip archives of these.

Nothing here raises on bad input: every file, archive entry or record that cannot be used becomes
a `Rejection` (which item, and why, in one line) in the `IngestReport`, and the rest still loads;
an unexpected exception while parsing one file or one record rejects that item only.
Limits come from `Settings` (file size, upload size, documents, characters per document, zip
entries, uncompressed zip size, compression ratio) and are applied before the work they bound:

- a file over the byte budget is not read; once `max_documents` documents are loaded, later
  files are refused unread;
- HTML over `HTML_BYTES_PER_CHAR` bytes per allowed character (`max_chars_per_document`) is
  refused before trafilatura parses it (markup is rarely 8x the text of a page; 16 MB with the
  default 2,000,000 characters); a .docx whose `word/document.xml` declares more than
  `DOCX_XML_BYTES_PER_CHAR` bytes per allowed character likewise; PDF text extraction stops at
  the page that crosses the character limit;
- JSON arrays (top level, under a 'data' / 'documents' / ... key, SQuAD articles, `{id: {...}}`
  corpora), JSONL and CSV/TSV are read one record at a time (`pplx_demo.ingest.jsonstream`, the
  csv reader row by row); a record over the character limit is refused as it is read, and reading
  stops at the document limit (the rejection says where).

Every Document passes through `pplx_demo.ingest.text.clean_document` exactly once, on its way
into the report (no lone surrogates, NULs or other control characters reach the tokenizers).

Archives follow the rules in `pplx_demo.ingest.archive` (unsafe names, symlinks, encryption,
bombs refused; nested archives refused, not opened). `.docx` files are zips too: every part gets
the per-entry checks of a `.zip` upload (`check_container`) before python-docx opens the file.

Modules, one per stage: `loader` (the entry points: paths / bytes -> parser by suffix, zip
archives), `report` (IngestReport, Rejection, the shared Budget and the per-file sink that
applies the limits), `decoding` (bytes -> text), one parser per format (`text_parser`,
`html_parser`, `pdf_parser`, `docx_parser`, `table_parser`, `json_parser`) and `records` (one
record -> one Document, shared by the table and JSON parsers).

`load_files` parses in the calling process; `pplx_demo.ingest.worker.load_files_isolated` runs the
same code in a worker process with a wall-clock limit per file.
"""

from pplx_demo.ingest.formats.decoding import decode_text
from pplx_demo.ingest.formats.docx_parser import DOCX_XML_BYTES_PER_CHAR
from pplx_demo.ingest.formats.html_parser import HTML_BYTES_PER_CHAR, check_html_size, html_to_text
from pplx_demo.ingest.formats.loader import (SUPPORTED_SUFFIXES, expand_paths, load_bytes, load_data_checked,
                                             load_files, load_path)
from pplx_demo.ingest.formats.pdf_parser import page_of
from pplx_demo.ingest.formats.records import ID_FIELDS, LIST_FIELDS, TEXT_FIELDS, TITLE_FIELDS
from pplx_demo.ingest.formats.report import Budget, IngestReport, Rejection, check_text_length
from pplx_demo.ingest.formats.table_parser import sniff_delimiter
from pplx_demo.ingest.formats.text_parser import markdown_title

__all__ = ["DOCX_XML_BYTES_PER_CHAR", "HTML_BYTES_PER_CHAR", "ID_FIELDS", "LIST_FIELDS", "SUPPORTED_SUFFIXES",
           "TEXT_FIELDS", "TITLE_FIELDS", "Budget", "IngestReport", "Rejection", "check_html_size",
           "check_text_length", "decode_text", "expand_paths", "html_to_text", "load_bytes", "load_data_checked",
           "load_files", "load_path", "markdown_title", "page_of", "sniff_delimiter"]
