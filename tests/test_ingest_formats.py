"""Uploads: every supported format from real generated files, and broken inputs that must be refused
with a reason while the good files beside them still load."""

from __future__ import annotations

import codecs
import json
import random
import zipfile
from dataclasses import replace

import pytest

from fixtures.ingest_files import make_docx, make_pdf, make_zip
from pplx_demo.config import Settings
from pplx_demo.ingest.formats import SUPPORTED_SUFFIXES, load_bytes, load_files, page_of

SETTINGS = Settings()


def _one(name: str, data: bytes, settings: Settings = SETTINGS):
    report = load_bytes(name, data, settings)
    assert not report.rejected, report.rejected
    assert len(report.documents) == 1
    return report.documents[0]


def _rejected(name: str, data: bytes, settings: Settings = SETTINGS) -> str:
    report = load_bytes(name, data, settings)
    assert not report.documents
    assert len(report.rejected) == 1 and report.rejected[0].name == name
    return report.rejected[0].reason


# ---------------------------------------------------------------- formats


def test_plain_text_utf8():
    doc = _one("notes.txt", "Harbour cranes.\r\nSecond line – ünïcode.".encode())
    assert doc.text == "Harbour cranes.\nSecond line – ünïcode."
    assert doc.title == "notes" and doc.uri == "notes.txt"
    assert doc.metadata["encoding"] == "utf-8" and doc.metadata["source"] == "notes.txt"


@pytest.mark.parametrize("codec, bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                         ("utf-8", codecs.BOM_UTF8)])
def test_text_with_byte_order_mark(codec, bom):
    doc = _one("bom.txt", bom + "Grüße aus Köln — 東京".encode(codec))
    assert doc.text == "Grüße aus Köln — 東京"
    assert doc.metadata["encoding"] == codec


def test_legacy_encoding_falls_back_to_detection():
    doc = _one("latin.txt", "Café naïve: élève à la crème brûlée, déjà vu.".encode("cp1252"))
    assert doc.text == "Café naïve: élève à la crème brûlée, déjà vu."
    assert doc.metadata["encoding"] == "cp1252"


def test_invalid_utf8_bytes_in_utf8_text_are_replaced_not_misdecoded():
    data = "Ein schöner Tag in Zürich. ".encode() * 40 + b"\xff\xfe broken tail"
    doc = _one("damaged.txt", data)
    assert doc.text.startswith("Ein schöner Tag in Zürich.")
    assert "\ufffd" in doc.text and doc.metadata["encoding"] == "utf-8 (invalid bytes replaced)"


def test_markdown_title_from_first_heading():
    doc = _one("guide.md", b"Intro line\n\n# The Real Title\n\nBody text here.")
    assert doc.title == "The Real Title" and doc.metadata["format"] == "markdown"
    assert "Body text here." in doc.text


def test_html_main_text_and_title_without_scripts():
    html = (
        b"<html><head><title>Harbour Guide</title><style>p{color:red}</style></head><body>"
        b"<nav>Home | About | Contact</nav><article><h1>Cranes</h1>"
        b"<p>Container cranes move boxes between ships and quays all day long.</p>"
        b"<p>Their operators sit in cabins forty metres above the water.</p></article>"
        b"<script>var secret = 'do not index';</script></body></html>"
    )
    doc = _one("page.html", html)
    assert doc.title == "Harbour Guide"
    assert "Container cranes move boxes" in doc.text and "forty metres" in doc.text
    assert "secret" not in doc.text and "color:red" not in doc.text
    assert "\n\n" in doc.text  # blocks become paragraphs for the chunker


def test_pdf_text_pages_and_title():
    data = make_pdf(["First page about tides.", "Second page about quays."], title="Port Manual")
    doc = _one("manual.pdf", data)
    assert doc.title == "Port Manual" and doc.metadata["pages"] == 2
    assert "First page about tides." in doc.text and "Second page about quays." in doc.text
    second = doc.text.index("Second page")
    assert page_of(doc, 0) == 1 and page_of(doc, second) == 2
    for number, start, end in doc.metadata["page_spans"]:
        assert doc.text[start:end].strip()


def test_pdf_title_falls_back_to_file_name():
    assert _one("scan-2024.pdf", make_pdf(["Some text."])).title == "scan-2024"


def test_docx_paragraphs_headings_and_tables():
    data = make_docx(["First paragraph.", "", "Second paragraph."], heading="Mooring",
                     table=[["Bollard", "Load"], ["B1", "50 t"]])
    doc = _one("mooring.docx", data)
    assert doc.title == "Mooring"
    assert doc.text.split("\n\n") == ["Mooring", "First paragraph.", "Second paragraph.", "Bollard | Load", "B1 | 50 t"]
    assert _one("titled.docx", make_docx(["x"], title="Core Title")).title == "Core Title"


def test_csv_text_title_and_id_columns_by_header_name():
    data = b"ID,Title,Body,extra\nd1,First,Text one,x\nd2,,Text two,y\nd3,Third,,z\n"
    report = load_bytes("rows.csv", data, SETTINGS)
    assert [(d.external_id, d.title, d.text) for d in report.documents] == [
        ("d1", "First", "Text one"), ("d2", "rows row 3", "Text two")]
    assert [r.reason for r in report.rejected] == ["1 row with an empty 'Body' column skipped"]
    assert report.documents[0].uri == "rows.csv#d1"


def test_tsv_and_semicolon_csv():
    tsv = _one("a.tsv", b"text\ttitle\nhello, world\tGreeting\n")
    assert tsv.text == "hello, world" and tsv.title == "Greeting"
    semi = _one("b.csv", b"content;name\nline one;N1\n")
    assert semi.text == "line one" and semi.title == "N1"


def test_csv_without_a_text_column_says_which_names_work():
    reason = _rejected("numbers.csv", b"a,b\n1,2\n")
    assert "no text column" in reason and "['a', 'b']" in reason and "text" in reason


def test_json_list_object_mapping_and_squad_layouts():
    records = [{"id": 1, "title": "A", "text": "alpha"}, {"content": "beta"}, 7]
    report = load_bytes("list.json", json.dumps(records).encode(), SETTINGS)
    assert [(d.external_id, d.title, d.text) for d in report.documents] == [
        ("1", "A", "alpha"), (None, "list record 2", "beta")]
    assert [r.reason for r in report.rejected] == ["1 record not an object, skipped"]
    wrapped = load_bytes("w.json", json.dumps({"documents": [{"body": "x"}]}).encode(), SETTINGS)
    assert [d.text for d in wrapped.documents] == ["x"]
    mapping = load_bytes("corpus.json", json.dumps({"d1": {"title": "T", "text": "one"}}).encode(), SETTINGS)
    assert [(d.external_id, d.title) for d in mapping.documents] == [("d1", "T")]
    squad = {"data": [{"title": "Super_Bowl", "paragraphs": [{"context": "P1", "qas": []},
                                                              {"context": "P2", "qas": []}]}]}
    docs = load_bytes("squad.json", json.dumps(squad).encode(), SETTINGS).documents
    assert [(d.title, d.text) for d in docs] == [("Super_Bowl", "P1"), ("Super_Bowl", "P2")]


def test_beir_corpus_jsonl_ingests_as_is():
    lines = [{"_id": "doc-1", "title": "Aspirin", "text": "Aspirin reduces fever.", "metadata": {}},
             {"_id": "doc-2", "title": "", "text": "Second abstract."}]
    data = "\n".join(json.dumps(r) for r in lines).encode()
    report = load_bytes("corpus.jsonl", data, SETTINGS)
    assert not report.rejected
    assert [(d.external_id, d.title, d.text) for d in report.documents] == [
        ("doc-1", "Aspirin", "Aspirin reduces fever."), ("doc-2", "corpus line 2", "Second abstract.")]


def test_jsonl_bad_lines_are_reported_and_good_lines_kept():
    data = b'{"text": "one"}\n{not json\n\n{"text": "three"}\n'
    report = load_bytes("mixed.jsonl", data, SETTINGS)
    assert [d.text for d in report.documents] == ["one", "three"]
    assert [(r.name, r.reason.split(" (")[0]) for r in report.rejected] == [("mixed.jsonl line 2", "invalid JSON")]


def test_zip_of_supported_files_with_folders():
    data = make_zip({
        "docs/readme.md": b"# Read me\n\nHello.",
        "docs/deep/table.csv": b"text\nrow text\n",
        "report.pdf": make_pdf(["Zipped PDF text."]),
        "__MACOSX/._readme.md": b"\x00\x05\x16\x07junk",
        "docs/": b"",
    })
    report = load_bytes("bundle.zip", data, SETTINGS)
    assert not report.rejected
    assert sorted(d.uri for d in report.documents) == [
        "bundle.zip:docs/deep/table.csv#row=2", "bundle.zip:docs/readme.md", "bundle.zip:report.pdf"]


def test_load_files_walks_folders_and_names_uploads(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub" / "b.md").write_text("beta")
    (tmp_path / ".hidden.txt").write_text("secret")
    report = load_files([tmp_path], SETTINGS)
    folder = tmp_path.name
    assert [d.uri for d in report.documents] == [f"{folder}/a.txt", f"{folder}/sub/b.md"]
    renamed = load_files([tmp_path / "a.txt"], SETTINGS, display_names=["Original Name.txt"])
    assert renamed.documents[0].uri == "Original Name.txt" and renamed.documents[0].title == "Original Name"


# ---------------------------------------------------------------- broken inputs


def test_corrupt_and_truncated_pdf():
    assert "no %PDF header" in _rejected("fake.pdf", b"this is not a pdf at all")
    good = make_pdf(["Text that will be cut off."])
    assert _rejected("cut.pdf", good[: len(good) // 3]).startswith(("not a readable PDF", "no extractable text"))


def test_pdf_without_text():
    assert "no extractable text" in _rejected("blank.pdf", make_pdf([""]))


def test_truncated_zip():
    data = make_zip({"a.txt": b"hello " * 100})
    assert "not a readable zip archive" in _rejected("cut.zip", data[:-30])


def test_corrupt_docx():
    assert "not a readable .docx" in _rejected("broken.docx", b"PK\x03\x04 not really")
    good = make_docx(["Paragraph."])
    assert "not a readable .docx" in _rejected("half.docx", good[: len(good) // 2])


def test_zip_bomb_entry_is_refused_by_ratio_and_neighbours_load():
    data = make_zip({"bomb.txt": b"\x00" * (30 * 1024 * 1024), "ok.txt": b"fine text"})
    assert len(data) < 100_000
    report = load_bytes("bomb.zip", data, SETTINGS)
    assert [d.uri for d in report.documents] == ["bomb.zip:ok.txt"]
    assert len(report.rejected) == 1 and report.rejected[0].name == "bomb.zip:bomb.txt"
    assert "compression ratio" in report.rejected[0].reason and "zip bomb" in report.rejected[0].reason


def test_zip_declared_total_and_entry_count_limits():
    data = make_zip({f"f{i}.txt": b"x" * 1000 for i in range(5)})
    small = replace(SETTINGS, max_zip_uncompressed_bytes=4000)
    assert "would unpack to" in _rejected("big.zip", data, small)
    few = replace(SETTINGS, max_zip_entries=3)
    assert "5 entries; the limit is 3" in _rejected("many.zip", data, few)


def test_zip_entry_lying_about_its_size_is_refused():
    data = bytearray(make_zip({"liar.txt": b"A" * 5000, "ok.txt": b"fine"}, compression=zipfile.ZIP_STORED))
    # Shrink the declared size of liar.txt in its local header and central directory entry.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(signature)
        data[pos + offset: pos + offset + 4] = (100).to_bytes(4, "little")
    report = load_bytes("liar.zip", bytes(data), SETTINGS)
    assert [d.uri for d in report.documents] == ["liar.zip:ok.txt"]
    assert report.rejected[0].name == "liar.zip:liar.txt"
    assert "cannot be unpacked" in report.rejected[0].reason or "larger than its header" in report.rejected[0].reason


def test_path_traversal_absolute_and_nested_archive_entries():
    data = make_zip({
        "../../etc/evil.txt": b"escape",
        "/abs/path.txt": b"absolute",
        "C:/windows/win.txt": b"drive",
        "inner.zip": make_zip({"x.txt": b"nested"}),
        "good.txt": b"the good one",
    })
    report = load_bytes("sneaky.zip", data, SETTINGS)
    assert [d.uri for d in report.documents] == ["sneaky.zip:good.txt"]
    reasons = {r.name: r.reason for r in report.rejected}
    for name in ("../../etc/evil.txt", "/abs/path.txt", "C:/windows/win.txt"):
        assert "unsafe path" in reasons[f"sneaky.zip:{name}"]
    assert "archives inside archives" in reasons["sneaky.zip:inner.zip"]


def test_binary_junk_named_txt():
    junk = random.Random(4).randbytes(4000)
    assert "binary data" in _rejected("photo.txt", junk)
    assert "binary data" in _rejected("elf.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 500 + b"\x01\x02" * 300)
    assert "binary data" in _rejected("tiny.txt", b"\x00\x01junk")


def test_empty_and_blank_files():
    assert _rejected("empty.txt", b"") == "empty file"
    assert "no text found" in _rejected("blank.md", b"   \n\n\t  ")
    assert "no header row" in _rejected("empty.csv", b"\n")


def test_one_enormous_line_loads_under_the_limit_and_is_refused_over_it():
    line = ("word " * 400_000).encode()  # 2,000,000 characters, no newline
    small = replace(SETTINGS, max_chars_per_document=1_000_000)
    reason = _rejected("line.txt", line, small)
    assert "2,000,000 characters" in reason and "1,000,000" in reason
    doc = _one("line.txt", line)
    assert len(doc.text) == 2_000_000 - 1 or len(doc.text) == 2_000_000


def test_unsupported_extension_and_invalid_json():
    assert "unsupported format (.exe)" in _rejected("setup.exe", b"MZ")
    assert "invalid JSON at line 1" in _rejected("bad.json", b"{oops")


def test_size_limits_name_their_setting(tmp_path):
    tight = replace(SETTINGS, max_file_bytes=10)
    assert "PPLX_DEMO_MAX_FILE_BYTES" in _rejected("big.txt", b"x" * 11, tight)
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("y" * 40)
    report = load_files(sorted(tmp_path.iterdir()), replace(SETTINGS, max_upload_bytes=100))
    assert [d.uri for d in report.documents] == ["f0.txt", "f1.txt"]
    assert report.rejected[0].name == "f2.txt" and "PPLX_DEMO_MAX_UPLOAD_BYTES" in report.rejected[0].reason


def test_document_count_limit():
    data = "\n".join(json.dumps({"text": f"t{i}"}) for i in range(10)).encode()
    report = load_bytes("many.jsonl", data, replace(SETTINGS, max_documents=4))
    assert len(report.documents) == 4
    # Reading stops at the limit: the rest of the file is not parsed, and the rejection says how much.
    assert [r.name for r in report.rejected] == ["many.jsonl"]
    assert "PPLX_DEMO_MAX_DOCUMENTS" in report.rejected[0].reason
    assert "6 more lines not read" in report.rejected[0].reason


def test_broken_files_never_stop_the_good_ones(tmp_path):
    files = {
        "good.txt": b"good text",
        "corrupt.pdf": b"%PDF-1.4 nonsense",
        "truncated.zip": make_zip({"a.txt": b"a" * 500})[:40],
        "bomb.zip": make_zip({"z.txt": b"\x00" * (2 * 1024 * 1024)}),
        "junk.txt": random.Random(1).randbytes(2000),
        "empty.md": b"",
        "traversal.zip": make_zip({"../x.txt": b"x"}),
        "good.pdf": make_pdf(["A good PDF."]),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = load_files([tmp_path / n for n in files] + [tmp_path / "missing.txt"], SETTINGS)
    assert sorted(d.uri for d in report.documents) == ["good.pdf", "good.txt"]
    rejected = {r.name for r in report.rejected}
    assert rejected == {"corrupt.pdf", "truncated.zip", "bomb.zip:z.txt", "junk.txt", "empty.md",
                        "traversal.zip:../x.txt", "missing.txt"}
    lines = report.summary_lines()
    assert lines[0] == "Loaded 2 documents from 2 sources; 7 rejected."
    assert all(line.startswith("Rejected ") for line in lines[1:]) and len(lines) == 8


def test_random_bytes_never_raise():
    rng = random.Random(7)
    for suffix in SUPPORTED_SUFFIXES:
        for size in (1, 7, 300, 5000):
            data = rng.randbytes(size)
            for prefix in (b"", b"%PDF-1.4\n", b"PK\x03\x04", b"{", b"\xef\xbb\xbf"):
                report = load_bytes(f"fuzz{suffix}", prefix + data, SETTINGS)
                assert report.documents or report.rejected


# ---------------------------------------------------------------- the built-in sample


def test_sample_corpus_is_xquad_paragraphs_with_parallel_ids():
    from pplx_demo.errors import DemoError
    from pplx_demo.ingest.sample import SAMPLE_CORPUS_NAME, sample_documents, sample_queries, sample_query_pairs

    assert "CC BY-SA 4.0" in SAMPLE_CORPUS_NAME
    en = sample_documents(("en",))
    assert len(en) == 240 and len({d.text for d in en}) == 240
    assert en[0].title == "Super Bowl 50" and en[0].metadata["lang"] == "en"
    assert en[0].external_id == "en:0-0" and en[0].metadata["paragraph_id"] == "0-0"
    de = sample_documents(("de",))
    assert [d.metadata["paragraph_id"] for d in de] == [d.metadata["paragraph_id"] for d in en]
    assert de[0].text != en[0].text and de[0].title == en[0].title
    pairs = sample_query_pairs("en")
    assert len(pairs) == 1190
    queries = sample_queries("en", 8)
    assert len(queries) == len(set(queries)) == 8
    questions = {q for q, _ in pairs}
    assert all(q in questions for q in queries)
    assert len(sample_queries("th", 3)) == 3 and sample_queries("en", 0) == []
    with pytest.raises(DemoError):
        sample_documents(("xx",))
