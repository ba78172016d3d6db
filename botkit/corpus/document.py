"""The unit every source yields and every corpus line holds."""

from __future__ import annotations

import hashlib
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

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}
