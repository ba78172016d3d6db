"""Finding the parent a document answers, for sources whose messages reply to each other.

Two rules, shared by the chat, CSV and dump sources so they pair alike:

* an explicit reply (a Matrix ``m.in_reply_to``, a Gitter ``parentId``, a Reddit ``parent_id``)
  takes the text of the message it names, if that message was seen: :class:`RecentTexts`;
* otherwise, optionally, the previous message is taken as the parent when someone else wrote it
  at most ``reply_gap`` seconds earlier: :class:`PreviousTurn`. This is a guess, so it is off
  unless asked for.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from botkit.corpus import ISO_UTC


class RecentTexts:
    """Texts by id, forgetting the least recently used past ``size`` (None: keep all).

    Replies come soon after what they answer, and a busy parent is looked up again and again,
    so keeping the recently added *or* used texts finds nearly every parent of a time-ordered
    stream in memory bounded by ``size`` texts.
    """

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self._texts: OrderedDict[str, str] = OrderedDict()
        self.found = 0
        self.missing = 0

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, key: str, text: str) -> None:
        self._texts[key] = text
        self._texts.move_to_end(key)
        if self.size is not None and len(self._texts) > self.size:
            self._texts.popitem(last=False)

    def get(self, key: str) -> str | None:
        """The text of ``key``, counted as found or missing."""
        text = self._texts.get(key)
        if text is None:
            self.missing += 1
            return None
        self._texts.move_to_end(key)
        self.found += 1
        return text


class PreviousTurn:
    """The previous message as parent, when another author wrote it within ``gap`` seconds.

    A message with no author or no time (``created``, ISO-8601 UTC) never pairs: who answered
    whom, or when, is unknown.
    """

    def __init__(self, gap: float | None) -> None:
        self.gap = gap
        self._last: tuple[str, float, str] | None = None  # author, time, text

    def parent(self, author: str | None, created: str | None, text: str) -> str | None:
        """The parent of this message by the gap rule; the message then becomes the previous one."""
        if self.gap is None:
            return None
        last, when = self._last, _seconds(created)
        if author is None or when is None:
            self._last = None
            return None
        self._last = (author, when, text)
        if last is None:
            return None
        last_author, then, last_text = last
        return last_text if last_author != author and 0 <= when - then <= self.gap else None


def _seconds(created: str | None) -> float | None:
    if created is None:
        return None
    return datetime.strptime(created, ISO_UTC).replace(tzinfo=UTC).timestamp()
