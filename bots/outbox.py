"""``outbox``: the embedded default target. Posts land in the ledger and a readable file per bot.

What it delivered is kept with :meth:`Ledger.record` under the scope ``outbox`` (the hook any
target can use for state of its own), and its reconciliation looks there.

It is where a bot posts until its real target is marked ``live: true``, and what the README demo
uses: no network, no accounts, and the same exactly-once path as Reddit and X.

It listens too, so reply bots can be tried offline: every post and reply the ledger's bots made to
the outbox is one community's feed (a local subreddit), and a reply line names its parent
(``re #12: ...``). Who may answer whom is the reply guards' business, as on a real service.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pydantic import Field

from botkit.bots import Incoming, PostResult, Target, TargetOptions
from botkit.bots.ledger import Candidate, show_time
from botkit.corpus.io import encode_txt

_SEP = "  "
_TAIL = 64 * 1024  # more than one line of any post


class OutboxOptions(TargetOptions):
    folder: Path = Field(Path("outbox"), description="folder of the outbox files, one BOT.txt per bot (default: outbox/ beside the config)")


class OutboxTarget(Target):
    """Appends ``TIME  #CANDIDATE  text`` lines to ``FOLDER/BOT.txt`` (newlines escaped as ``\\n``)."""

    summary = "the local outbox: the ledger plus a readable file per bot (the default; no network)"
    Options = OutboxOptions
    options: OutboxOptions
    listens = True

    @property
    def path(self) -> Path:
        return self.options.folder / f"{self.bot}.txt"

    def post(self, candidate: Candidate) -> PostResult:
        text = self.text_of(candidate)
        line = text if candidate.reply_to is None else f"re {candidate.reply_to}: {text}"
        self.ledger.record("outbox", str(candidate.id), text, lambda when: self._append(candidate.id, when, line))
        return self._result(candidate)

    def incoming(self, watch: list[str]) -> list[Incoming]:
        """Every post and reply made to the outbox lately, by any bot of the ledger (the bot's own
        are dropped by the bot)."""
        return [
            Incoming(
                id=post.remote_id or f"#{post.candidate_id}", text=post.text, author=post.bot, thread=post.thread, depth=post.depth,
                link=post.remote_id or f"#{post.candidate_id}", url=str(self.options.folder / f"{post.bot}.txt"), created_at=post.posted_at,
            )
            for post in self.ledger.posted("outbox")
        ]  # fmt: skip

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        return self._result(candidate) if self.ledger.recorded("outbox", str(candidate.id)) is not None else None

    def _result(self, candidate: Candidate) -> PostResult:
        return PostResult(remote_id=f"#{candidate.id}", url=str(self.path))

    def _append(self, candidate_id: int, when: datetime, text: str) -> None:
        """Append the line unless a crash after the write (and before the ledger commit) left it there."""
        marker = f"#{candidate_id}"
        if self._last_marker() == marker:
            return
        self.options.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{show_time(when)}{_SEP}{marker}{_SEP}{encode_txt(text)}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _last_marker(self) -> str | None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(max(fh.seek(0, os.SEEK_END) - _TAIL, 0))
                tail = fh.read()
        except FileNotFoundError:
            return None
        # Lines end in "\n" only: a post may hold U+2028, a form feed or other characters that
        # str.splitlines() would take for line ends.
        lines = [line for line in tail.split(b"\n") if line]
        fields = lines[-1].decode("utf-8", "replace").split(_SEP, 2) if lines else []
        return fields[1] if len(fields) == 3 else None

    def describe(self) -> str:
        return f"outbox {self.path}"
