"""Documents to plain text, and plain text to passages.

Formats: `.txt` (and files without a suffix, like licence texts), `.md`, `.html`/`.htm` (BeautifulSoup),
`.pdf` (pypdf); any of them may be gzip-compressed (`manual.pdf.gz`). A passage is a run of whole
paragraphs of at most `max_chars`; a longer paragraph is cut between sentences.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

TEXT_SUFFIXES = {"", ".txt", ".text", ".rst"}
FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    **{s: "txt" for s in TEXT_SUFFIXES},
}
BLOCK_TAGS = [
    "p",
    "div",
    "li",
    "dd",
    "dt",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "td",
    "th",
    "tr",
    "table",
    "ul",
    "ol",
    "dl",
    "section",
    "article",
    "br",
    "hr",
    "title",
    "caption",
    "figcaption",
]
SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9(\"'])")
ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "etc.",
    "vs.",
    "cf.",
    "no.",
    "fig.",
    "sec.",
    "eq.",
    "approx.",
    "mr.",
    "dr.",
    "st.",
)


class DocumentError(ValueError):
    """A document that cannot be read; the message names the file."""


def document_format(path: Path) -> str:
    """'txt', 'md', 'html' or 'pdf' from the suffix (a trailing `.gz` is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in FORMATS:
        if re.fullmatch(r"\.\d+(\.\d+)*", suffix):  # a versioned name like GPL-3.0 or crc-doc.1.0
            return "txt"
        raise DocumentError(f"{path}: unknown document type {suffix!r}; use .txt, .md, .html or .pdf")
    return FORMATS[suffix]


def _bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix.lower() == ".gz" else data


def html_text(html: str) -> str:
    """Visible text of an HTML page with block elements as paragraphs (scripts, styles, navigation dropped)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "head", "noscript", "svg", "form"]):
        tag.decompose()
    for tag in soup.find_all("pre"):
        tag.replace_with("\n\n" + tag.get_text().replace("\n\n", "\n") + "\n\n")
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    return soup.get_text()


def markdown_text(md: str) -> str:
    """Markdown without code blocks, images, link targets and emphasis marks."""
    md = re.sub(r"```.*?```", "\n\n", md, flags=re.DOTALL)
    md = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", md)
    md = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)
    md = re.sub(r"^\s{0,3}#{1,6}\s*", "", md, flags=re.MULTILINE)
    md = re.sub(r"(\*\*|__|`)", "", md)
    return md


def pdf_text(data: bytes, path: Path) -> str:
    """Text of every page (pypdf's layout-free extraction), pages as paragraphs."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError) as e:
        raise DocumentError(f"{path}: not a readable PDF ({e})") from e


def read_document(path: str | Path) -> str:
    """The text of the document at `path`."""
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    kind = document_format(path)
    data = _bytes(path)
    if kind == "pdf":
        return pdf_text(data, path)
    text = data.decode("utf-8", errors="replace")
    if kind == "html":
        return html_text(text)
    if kind == "md":
        return markdown_text(text)
    return text


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs with hard line wraps (and hyphenated breaks) joined."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\f", "\n\n")):
        block = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", block)
        block = re.sub(r"\s+", " ", block).strip()
        if block:
            out.append(block)
    return out


def sentences(paragraph: str) -> list[str]:
    """The paragraph cut after `.`, `!` or `?` before a capital or digit (common abbreviations kept)."""
    out: list[str] = []
    start = 0
    for m in SENTENCE_END_RE.finditer(paragraph):
        head = paragraph[start : m.start()]
        if head.lower().endswith(ABBREVIATIONS) or re.search(r"\b[A-Z]\.$", head):
            continue
        out.append(paragraph[start : m.start()].strip())
        start = m.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def split_passages(text: str, max_chars: int = 1000, min_chars: int = 40) -> list[str]:
    """Passages of whole paragraphs up to `max_chars` (long paragraphs cut between sentences); pieces
    shorter than `min_chars` (headings, page numbers) are merged into their neighbour or dropped."""
    pieces: list[str] = []
    for para in paragraphs(text):
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        current = ""
        for sentence in sentences(para):
            if current and len(current) + 1 + len(sentence) > max_chars:
                pieces.append(current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            pieces.append(current)
    passages: list[str] = []
    for piece in pieces:
        if (
            passages
            and (len(passages[-1]) < min_chars or len(piece) < min_chars)
            and len(passages[-1]) + 1 + len(piece) <= max_chars
        ):
            passages[-1] = f"{passages[-1]}\n{piece}"
        else:
            passages.append(piece)
    return [p for p in passages if len(p) >= min_chars]
