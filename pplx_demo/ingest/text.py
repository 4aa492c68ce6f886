"""Text normalisation at the ingestion boundary: every Document leaves a loader or the crawler clean.

`clean_text` is the one place that decides which characters may reach the store, the tokenizers and
the views. Surrogate pairs (possible in a str built from JSON escapes) are joined into the character
they encode; a lone surrogate becomes U+FFFD (tokenizers raise on it, UTF-8 cannot encode it).
Line breaks become "\\n" (CR LF, CR, vertical tab, form feed, NEL), tabs stay; every other C0 / C1
control character (NUL included), DEL and the Unicode non-characters (U+FDD0..U+FDEF, U+xFFFE and
U+xFFFF on every plane) are removed. Unassigned and private-use code points are kept: they are
valid text that a newer Unicode or a private font gives meaning to.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pplx_demo.documents import Document

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile("\r\n?|[\x0b\x0c\x85]")
_DROP = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f{_NONCHARACTERS}]+")
# One scan decides whether there is anything to do: the common case costs a single regex search.
_ANY = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")


def clean_text(text: str) -> str:
    """`text` with surrogates repaired, line breaks as "\\n" and control / non-characters removed."""
    if _ANY.search(text) is None:
        return text
    if _SURROGATE.search(text) is not None:
        # UTF-16 round trip: a valid pair decodes to its character, a lone half to U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _LINE_BREAK.sub("\n", text)
    return _DROP.sub("", text)


def clean_document(doc: Document) -> Document:
    """A copy of `doc` whose uri, title, text, external id and string metadata are `clean_text`-ed."""
    metadata = {k: clean_text(v) if isinstance(v, str) else v for k, v in doc.metadata.items()}
    uri = clean_text(doc.uri)
    title = " ".join(clean_text(doc.title).split()) or uri  # a title is one line
    external_id = clean_text(doc.external_id) if doc.external_id is not None else None
    return replace(doc, uri=uri, title=title, text=clean_text(doc.text), metadata=metadata, external_id=external_id)
