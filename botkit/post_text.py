"""The text of a post on each service botkit posts to: how long it may be, how the service counts
it, and the @mentions a reply starts with. Stated once, for the length filter (its ``target:`` key)
and the targets (their ``max_chars``, their checks before posting, the words a reply answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import regex

#: Posting limits in characters (Bluesky and Mastodon count graphemes). X counts some characters
#: double and links as 23; the plain count is right for the text a bot usually writes.
LIMITS = {"twitter": 280, "x": 280, "reddit-title": 300, "bluesky": 300, "mastodon": 500}

_LEADING_MENTIONS = re.compile(r"^(?:@[\w.-]+(?:@[\w.-]+)?(?:\s+|$))+")
_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> int:
    """How many user-perceived characters (extended grapheme clusters, Unicode's UAX #29) ``text``
    has: what Bluesky and Mastodon count (a flag, a skin-toned emoji or e + combining accent is one)."""
    return len(_GRAPHEME.findall(text))


def room_for(limit: int, signature: str | None, count: Callable[[str], int] = len) -> int:
    """What is left of ``limit`` for the text once the signature is added (after a blank line: two more)."""
    return limit - (count(signature) + 2 if signature else 0)


def without_mentions(text: str) -> str:
    """``text`` without the @mentions it starts with (``@bot@host @other hello`` is ``hello``): the words a reply model answers."""
    return _LEADING_MENTIONS.sub("", text.strip())
