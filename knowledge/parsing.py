"""Text out of a document: PDF, Word .docx, plain text, Markdown, a web page.

Each reader returns sections (heading, text). Anything unreadable raises `Unreadable` with one
sentence a non-developer can act on; nothing else escapes.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from django.conf import settings

MIN_TEXT_CHARS = 20  # a PDF with less than this per page is taken to be scanned images


class Unreadable(Exception):
    """The document cannot be read; the message says why, in plain language."""


@dataclass(frozen=True)
class Section:
    heading: str
    text: str


def kind_for_name(name: str) -> str:
    """The document kind a file name suggests (Unreadable for a type we do not read)."""
    lower = name.lower()
    for ext, kind in (
        (".pdf", "pdf"),
        (".docx", "docx"),
        (".txt", "text"),
        (".md", "markdown"),
        (".markdown", "markdown"),
    ):
        if lower.endswith(ext):
            return kind
    if lower.endswith(".doc"):
        raise Unreadable(
            "Old Word files (.doc) cannot be read: save it as .docx (Word: File → Save as) and upload that."
        )
    raise Unreadable(
        f"“{name}” is not a type that can be read. "
        "Upload a PDF, a Word file (.docx), a text file (.txt) or Markdown (.md)."
    )


def check_size(size: int) -> None:
    limit = settings.KNOWLEDGE_MAX_BYTES
    if size > limit:
        raise Unreadable(
            f"The document is too big ({size / 1e6:.1f} MB; at most {limit / 1e6:.1f} MB). Split it into smaller files."
        )


def parse(kind: str, data: bytes) -> list[Section]:
    """The sections of a document of `kind` (see DocumentKind) whose content is `data`."""
    check_size(len(data))
    reader = {"pdf": parse_pdf, "docx": parse_docx, "markdown": parse_markdown, "text": parse_text}.get(kind)
    if reader is None:
        raise Unreadable(f"Documents of kind {kind!r} cannot be read.")
    sections = [s for s in reader(data) if s.text.strip()]
    if not sections:
        raise Unreadable("The document has no text in it.")
    return sections


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def parse_text(data: bytes) -> list[Section]:
    if b"\x00" in data[:4096]:
        raise Unreadable(
            "This does not look like a text file (it holds binary data). Upload it as PDF or Word instead."
        )
    return [Section("", decode(data))]


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def parse_markdown(data: bytes) -> list[Section]:
    if b"\x00" in data[:4096]:
        raise Unreadable("This does not look like a Markdown file (it holds binary data).")
    sections: list[Section] = []
    heading, lines = "", []
    for line in decode(data).splitlines():
        found = _HEADING.match(line)
        if found:
            sections.append(Section(heading, "\n".join(lines)))
            heading, lines = found.group(2).strip(), []
        else:
            lines.append(line)
    sections.append(Section(heading, "\n".join(lines)))
    return sections


def parse_pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    if not data.startswith(b"%PDF"):
        raise Unreadable("This is not a PDF file (or it is damaged). Open it and save it as PDF again.")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise Unreadable(
                    "The PDF is protected by a password. Save a copy without the password and upload that."
                ) from None
        pages = [page.extract_text() or "" for page in reader.pages]
    except Unreadable:
        raise
    except FileNotDecryptedError:
        raise Unreadable(
            "The PDF is protected by a password. Save a copy without the password and upload that."
        ) from None
    except (PdfReadError, Exception) as exc:
        raise Unreadable(
            f"The PDF is damaged and cannot be read ({type(exc).__name__}). Save it as PDF again."
        ) from None
    if not pages:
        raise Unreadable("The PDF has no pages.")
    if sum(len(p.strip()) for p in pages) < MIN_TEXT_CHARS * len(pages):
        raise Unreadable(
            "The PDF has no text in it: it looks scanned (pictures of pages). Use a PDF with real text, "
            "or paste the text instead."
        )
    return [Section(f"Page {n}" if len(pages) > 1 else "", text) for n, text in enumerate(pages, 1)]


def parse_docx(data: bytes) -> list[Section]:
    import zipfile

    import docx

    if not data.startswith(b"PK"):
        raise Unreadable(
            "This is not a Word .docx file (or it is damaged). Open it in Word and save it as .docx again."
        )
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, Exception) as exc:
        raise Unreadable(
            f"The Word file is damaged and cannot be read ({type(exc).__name__}). Save it as .docx again."
        ) from None
    sections: list[Section] = []
    heading, lines = "", []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.lower().startswith(("heading", "title", "rubrik")) and text:
            sections.append(Section(heading, "\n\n".join(lines)))
            heading, lines = text, []
        elif text:
            lines.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                lines.append(" | ".join(dict.fromkeys(cells)))
    sections.append(Section(heading, "\n\n".join(lines)))
    return sections


class _HtmlText(HTMLParser):
    """Headings and paragraphs of a web page, without scripts, styles and navigation."""

    SKIP = {"script", "style", "noscript", "nav", "footer", "header", "svg", "form", "template"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "dd", "dt", "blockquote"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.in_heading = False
        self.title = ""
        self.in_title = False
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        elif tag in self.HEADINGS:
            self.parts.append("\n\n# ")
            self.in_heading = True
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in self.HEADINGS:
            self.parts.append("\n\n")
            self.in_heading = False

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data) if self.in_heading else data)


def parse_html(data: bytes) -> tuple[str, list[Section]]:
    """A web page's title and sections."""
    parser = _HtmlText()
    parser.feed(decode(data))
    parser.close()
    markdown = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return html.unescape(parser.title).strip(), parse_markdown(markdown.encode())
