"""The unit every source yields and every corpus line holds."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

#: The one timestamp format of corpora: ISO-8601, UTC, whole seconds.
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"

#: Reddit's placeholders for text that is gone; no source should let them into a corpus.
REDDIT_GONE = frozenset({"[deleted]", "[removed]"})


def iso_utc(when: float | datetime) -> str:
    """A Unix time or an aware datetime as a corpus ``created`` string; naive datetimes count as UTC."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(ISO_UTC)


_SURROGATE = re.compile("[\ud800-\udfff]")  # a plain class: ten times faster to search than _SURROGATES
#: A high and a low surrogate side by side (group 1: one character split in two), else a surrogate alone.
_SURROGATES = re.compile("([\ud800-\udbff][\udc00-\udfff])|[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> tuple[str, int]:
    """``text`` as valid Unicode: each lone UTF-16 surrogate becomes U+FFFD; also how many did.

    JSON can escape half a character (``"\\ud83d"``: an emoji cut by a length limit, a buggy
    exporter, a hand-written corpus line) and ``json.loads`` returns that half as a lone surrogate,
    which no UTF-8 file, hash or database can hold: left in, it stops the corpus write or the
    trainer far from where it came in. A whole pair that arrives as two code points (CESU-8 decoded
    leniently) is one real character and becomes it, uncounted; ``json.loads`` already joins the
    escapes of a pair (``"\\ud83d\\ude00"`` is 😀), so only lone halves from JSON are replaced.
    """
    if text.isascii() or _SURROGATE.search(text) is None:  # the usual case: no scan, or one, and no copy
        return text, 0
    lone = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal lone
        if match.group(1) is None:
            lone += 1
            return "\ufffd"
        high, low = map(ord, match.group(1))
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))

    return _SURROGATES.sub(fix, text), lone


def _digest(kind: bytes, value: str) -> int:
    # 64-bit keys: a million documents cost tens of MB in a set, and a collision needs ~4e9 of them.
    return int.from_bytes(hashlib.blake2b(kind + value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Document:
    """One document: a title, a chat message, a tweet, or a whole text in single-text mode.

    ``label`` is the optional context label (a subreddit, a chat user); ``id`` is the source's own
    id when it has one; ``created`` is an ISO-8601 UTC timestamp. ``parent`` is the text this
    document answers (the comment or message it replies to), for pair corpora that teach a model
    to reply rather than only to post.
    """

    text: str
    label: str | None = None
    id: str | None = None
    source: str | None = None
    created: str | None = None
    parent: str | None = None

    @property
    def key(self) -> int:
        """Identity for incremental writes: the source id when there is one, else the text."""
        return _digest(b"id:", self.id) if self.id is not None else self.text_key

    @property
    def text_key(self) -> int:
        """Identity for text dedupe. A reply is kept once per parent: "Thanks!" answering two
        different comments is two lessons for a reply model, not a repeat."""
        if self.parent is None:
            return _digest(b"text:", self.text)
        return _digest(b"pair:", f"{len(self.parent)}:{self.parent}{self.text}")

    def with_surrogates_replaced(self) -> tuple[Document, int]:
        """This document with :func:`replace_lone_surrogates` applied to every field, and the count.

        Every field, not only the text: a label or id comes from the same JSON, and ``source``
        holds a file name, which Python gives undecodable bytes of as surrogates.
        """
        changes, lone = {}, 0
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            fixed, count = replace_lone_surrogates(value)
            if fixed is not value:
                changes[name] = fixed
                lone += count
        return (dataclasses.replace(self, **changes) if changes else self), lone

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(Document))
