"""Cutting sections into passages: by paragraphs, each under its heading, a bounded size, with overlap.

A passage is what one search hit hands the model, so it must stand on its own: whole paragraphs
where they fit, the last sentences of the previous passage repeated at its start (overlap) so an
answer split across a boundary is still found whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parsing import Section

MAX_CHARS = 900
OVERLAP_CHARS = 150

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str


def _paragraphs(text: str) -> list[str]:
    paragraphs = [re.sub(r"[ \t]*\n[ \t]*", "\n", p).strip() for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if p]


def _pieces(paragraph: str, limit: int) -> list[str]:
    """A paragraph cut at sentence ends (at word ends for a sentence longer than `limit`)."""
    if len(paragraph) <= limit:
        return [paragraph]
    out: list[str] = []
    for sentence in _SENTENCE.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def _tail(text: str, size: int) -> str:
    """The last whole sentences (or words) of `text` within `size` characters."""
    if len(text) <= size:
        return text
    tail = text[-size:]
    start = max(tail.find(". ") + 2 if ". " in tail else 0, 0)
    if start == 0:
        space = tail.find(" ")
        start = space + 1 if space >= 0 else 0
    return tail[start:].strip()


def chunk(sections: list[Section], *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """Passages of at most `max_chars` characters each (plus the overlap carried from the one before)."""
    chunks: list[Chunk] = []
    for section in sections:
        heading = section.heading.strip()[:300]
        pieces = [piece for p in _paragraphs(section.text) for piece in _pieces(p, max_chars)]
        current: list[str] = []
        size = 0
        carried = ""
        for piece in pieces:
            if current and size + len(piece) + 2 > max_chars:
                body = "\n\n".join(current)
                chunks.append(Chunk(heading, f"{carried} … {body}" if carried else body))
                carried = _tail(body, overlap)
                current, size = [], 0
            current.append(piece)
            size += len(piece) + 2
        if current:
            body = "\n\n".join(current)
            chunks.append(Chunk(heading, f"{carried} … {body}" if carried else body))
    return chunks
