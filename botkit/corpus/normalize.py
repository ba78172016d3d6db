"""Text clean-up applied between a source and the corpus file."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from pydantic import Field

from botkit.corpus.document import Document
from botkit.options import Options

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HSPACE = re.compile(r"[^\S\n]+")  # whitespace other than newlines
_BLANK_LINES = re.compile(r"\n{3,}")


class Normalization(Options):
    """How documents are cleaned; the same keys work as flags and under ``normalize:`` in config."""

    nfc: bool = Field(True, description="Unicode NFC normalisation (default on)")
    collapse_whitespace: bool = Field(True, description="collapse runs of spaces/tabs to one space, trim ends; newlines are kept (default on)")
    lowercase: bool = Field(False, description="lowercase every document")
    strip_urls: bool = Field(False, description="remove http(s):// and www. links")
    min_length: int = Field(1, ge=0, description="drop documents shorter than this many characters (after clean-up)")
    max_length: int | None = Field(None, ge=1, description="drop documents longer than this many characters")
    dedupe: bool = Field(True, description="drop documents whose text is already in the corpus (default on)")


class Normalizer:
    """Applies a :class:`Normalization` to documents; returns None for a document to drop."""

    def __init__(self, options: Normalization) -> None:
        self.options = options

    def clean(self, text: str) -> str:
        o = self.options
        if o.nfc:
            text = unicodedata.normalize("NFC", text)
        if o.strip_urls:
            text = _URL.sub("", text)
        if o.collapse_whitespace:
            text = _HSPACE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
            text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()
        if o.lowercase:
            text = text.lower()
        return text

    def __call__(self, doc: Document) -> Document | None:
        """The cleaned document. A parent is cleaned the same way, so a reply model sees its
        context as it sees its targets (lowercased, say), but the length limits are the reply's
        alone; a parent that cleans to nothing (only a link) is dropped and the reply kept."""
        text = self.clean(doc.text)
        o = self.options
        if len(text) < max(o.min_length, 1) or (o.max_length is not None and len(text) > o.max_length):
            return None
        parent = None if doc.parent is None else self.clean(doc.parent) or None
        if text == doc.text and parent == doc.parent:
            return doc
        return dataclasses.replace(doc, text=text, parent=parent)
