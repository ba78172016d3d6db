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

import errno
import logging
import os
from datetime import datetime
from pathlib import Path

from pydantic import Field

from botkit.bots.ledger import Candidate, show_time
from botkit.bots.targets import Incoming, PostResult, Target, TargetOptions, Transient
from botkit.corpus.io import encode_txt

_SEP = "  "
_TAIL = 64 * 1024  # read back in steps of this many bytes: more than one line of most posts

log = logging.getLogger(__name__)


def _after_time(line: bytes) -> bytes | None:
    """A line's marker and text (None for a line that is not ``TIME  #ID  text``): what proves a post."""
    fields = line.split(_SEP.encode(), 1)
    return fields[1] if len(fields) == 2 and fields[1].startswith(b"#") else None


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
        """Put the post's line in the file, whole and on disk, before the ledger may count it.

        Runs inside the ledger's transaction (:meth:`Ledger.record`): an exception here rolls the
        record back, so the post counts only once its complete line, ``"\\n"`` included, was
        written and fsynced. A line that is already the last whole line of the file (a crash
        after the write, before the commit) is kept instead of written twice, but only a whole line
        counts as that proof: a torn tail (an earlier write that ran out of disk or was cut short
        by a crash) is cut away first, so it is never taken for the post, nor has the next line
        glued onto it. Any OSError (a full disk, an I/O error, a read-only folder) becomes
        :class:`Transient`, naming the file: the bot's retry path tries again (reconciling
        first) and the candidate stays unposted meanwhile.
        """
        record = f"{show_time(when)}{_SEP}#{candidate_id}{_SEP}{encode_txt(text)}\n".encode()
        try:
            self.options.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise self._failed(candidate_id, exc) from exc
        try:
            whole, last = self._repair(fd)
            if last is not None and _after_time(last) == _after_time(record):
                os.fsync(fd)  # written before a crash: make sure it is on disk before it counts
                return
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(fd, view) :]  # a short write (a disk filling up) goes on, or raises
                os.fsync(fd)
            except OSError:
                self._truncate(fd, whole)  # leave no torn line behind when the disk allows it
                raise
            if whole == 0:  # a new (or emptied) file: its name must last as long as its line
                self._sync_folder()
        except OSError as exc:
            raise self._failed(candidate_id, exc) from exc
        finally:
            os.close(fd)

    def _repair(self, fd: int) -> tuple[int, bytes | None]:
        """Cut a torn tail off the file: where its whole lines end, and its last whole line (None if none).

        Lines end in "\\n" only (a post may hold U+2028, a form feed or other characters that
        str.splitlines() would take for line ends, and its own newlines are escaped), so whatever
        follows the last "\\n" is a line whose write never finished.
        """
        size = os.fstat(fd).st_size
        tail, start = b"", size
        while start > 0 and tail.count(b"\n") < 2:  # the end of the last whole line, and of the one before
            step = min(_TAIL, start)
            start -= step
            os.lseek(fd, start, os.SEEK_SET)
            tail = os.read(fd, step) + tail
        cut = tail.rfind(b"\n") + 1  # 0: no whole line at all
        whole = start + cut
        if whole < size:
            log.warning("%s: cut off a torn last line (%d bytes of a write that never finished); it is not a post", self.path, size - whole)
            os.ftruncate(fd, whole)
            os.fsync(fd)
        if not cut:
            return whole, None
        return whole, tail[tail.rfind(b"\n", 0, cut - 1) + 1 : cut]

    @staticmethod
    def _truncate(fd: int, size: int) -> None:
        """Undo a write that failed, as far as the disk lets us (the next append repairs the rest)."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            log.debug("could not undo a failed outbox write: %s", exc)

    def _sync_folder(self) -> None:
        """Make a new file's name as durable as its first line (a crash must not lose the whole file)."""
        try:
            fd = os.open(self.options.folder, os.O_RDONLY)
        except OSError:  # a system that cannot open folders (Windows) has nothing to fsync
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems without folder fsync
                raise
        finally:
            os.close(fd)

    def _failed(self, candidate_id: int, exc: OSError) -> Transient:
        return Transient(f"{self.path}: cannot write candidate {candidate_id} to the outbox ({exc.strerror or exc}); not posted")

    def describe(self) -> str:
        return f"outbox {self.path}"
