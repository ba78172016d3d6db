"""What reply bots heard: each parent decided once, ever, with the reply written or why none was."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select

from botkit.bots.ledger.base import LedgerBase
from botkit.bots.ledger.records import FAILED, REJECTED, WAITING, Answered, NewCandidate, Posted, storable

if TYPE_CHECKING:
    from collections.abc import Callable

    from botkit.bots.targets import Incoming

    #: The thread and author guards' policy (:class:`botkit.bots.replies.Guards`): why not to answer a
    #: parent, given what the bot answered in its thread and to its author, and the time; or None.
    ReplyGuard = Callable[[Incoming, Answered, Answered, datetime], str | None]


class Replies(LedgerBase):
    """The parents table: claims on what to answer, and what was answered."""

    def unseen(self, bot: str, remote_ids: Iterable[str]) -> set[str]:
        """Which of ``remote_ids`` the bot has never decided about (answered or skipped)."""
        r, ids = self.t["parents"], set(remote_ids)
        if not ids:
            return set()
        with self._read() as conn:
            seen = set(conn.execute(select(r.c.remote_id).where(r.c.bot == bot, r.c.remote_id.in_(sorted(ids)))).scalars())
        return ids - seen

    def answered(self, bot: str, *, thread: str | None = None, author: str | None = None) -> Answered:
        """How many parents the bot answered in ``thread`` (or to ``author``), and when it last did."""
        with self._read() as conn:
            return self._answered(conn, bot, thread=thread, author=author)

    def _answered(self, conn: Connection, bot: str, *, thread: str | None = None, author: str | None = None) -> Answered:
        r = self.t["parents"]
        query = select(func.count(), func.max(r.c.seen_at)).where(r.c.bot == bot, r.c.skipped.is_(None))
        if thread is not None:
            query = query.where(r.c.thread == thread)
        if author is not None:
            query = query.where(r.c.author == author)
        count, last = conn.execute(query).one()
        return Answered(count, None if last is None else (last if last.tzinfo else last.replace(tzinfo=UTC)))

    def add_reply(self, bot: str, parent: Incoming, reply: NewCandidate | None, skipped: str | None, *, guard: ReplyGuard) -> str | None:
        """Claim ``parent`` for ``bot`` once, ever, with its reply or the reason it is not answered, in one transaction.

        ``guard`` (the thread and author guards, :class:`botkit.bots.replies.Guards`) is asked again
        inside the transaction, so it holds even if two workers decided at once. Returns what was recorded: None for a stored reply, the
        reason for a skip, ``"seen"`` when the parent was claimed before (nothing written).
        """

        r, c = self.t["parents"], self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            if conn.execute(select(r.c.remote_id).where(r.c.bot == bot, r.c.remote_id == parent.id)).first() is not None:
                return "seen"
            if reply is not None:
                skipped = self._guard(conn, bot, parent, now, guard)
            candidate_id = None
            if reply is not None and skipped is None:
                values = {
                    "bot": bot, "text": reply.text, "label": reply.label, "score": reply.score, "temperature": reply.temperature,
                    "state": reply.state, "reason": reply.reason, "attempts": 0, "created_at": now, "updated_at": now, "reply_to": parent.link,
                }  # fmt: skip
                candidate_id = conn.execute(insert(c).values(**values).returning(c.c.id)).scalar_one()
                if reply.state == REJECTED:
                    skipped = f"no reply passed the filters ({reply.reason})"
            conn.execute(
                insert(r).values(
                    bot=bot, remote_id=parent.id, thread=parent.thread, author=parent.author, depth=parent.depth,
                    url=parent.url, seen_at=now, candidate_id=candidate_id, skipped=skipped, text=storable(parent.text) if skipped is None else "",
                )
            )  # fmt: skip
        return skipped

    def reply_guard(self, bot: str, parent: Incoming, guard: ReplyGuard) -> str | None:
        """What ``guard`` says about ``bot`` answering ``parent`` now, or None."""
        with self._read() as conn:
            return self._guard(conn, bot, parent, self.now(conn), guard)

    def _guard(self, conn: Connection, bot: str, parent: Incoming, now: datetime, guard: ReplyGuard) -> str | None:
        """``guard`` given what the bot answered in the parent's thread and to its author."""
        return guard(parent, self._answered(conn, bot, thread=parent.thread), self._answered(conn, bot, author=parent.author), now)

    def expire_replies(self, bot: str, max_age: float) -> int:
        """Fail the bot's waiting replies made more than ``max_age`` seconds ago (a reply that waited
        hours behind the limits or a review is no answer any more); how many."""
        c = self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            late = (c.c.bot == bot) & c.c.reply_to.is_not(None) & c.c.state.in_(WAITING) & (c.c.created_at < now - timedelta(seconds=max_age))
            ids = list(conn.execute(select(c.c.id).where(late)).scalars())
            if ids:
                reason = f"max_age: not posted within {max_age:g}s of being written"
                conn.execute(c.update().where(c.c.id.in_(ids), c.c.state.in_(WAITING)).values(state=FAILED, reason=reason, updated_at=now))
                self._forget_parents(conn, ids)
        return len(ids)

    def heard(self, bot: str) -> tuple[int, int]:
        """How many parents the bot answered and how many it skipped (a guard or the filters), ever."""
        r = self.t["parents"]
        query = select(r.c.skipped.is_(None).label("answered"), func.count()).where(r.c.bot == bot).group_by(r.c.skipped.is_(None))
        with self._read() as conn:
            counts = {bool(answered): n for answered, n in conn.execute(query)}
        return counts.get(True, 0), counts.get(False, 0)

    def parents_of(self, bot: str, candidate_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
        """What each reply candidate answers (its text and web address), for review and the console."""
        r, ids = self.t["parents"], sorted(set(candidate_ids))
        if not ids:
            return {}
        query = select(r.c.candidate_id, r.c.text, r.c.url).where(r.c.bot == bot, r.c.candidate_id.in_(ids))
        with self._read() as conn:
            return {row.candidate_id: (row.text, row.url) for row in conn.execute(query)}

    def posted(self, target: str, *, limit: int = 200) -> list[Posted]:
        """The newest posts and replies the ledger's bots made to ``target`` (a target kind), each
        with its thread and depth: what a target that lives in the ledger (the outbox) listens to."""

        p, c, r = self.t["posts"], self.t["candidates"], self.t["parents"]
        query = (
            select(p.c.candidate_id, p.c.bot, p.c.remote_id, p.c.posted_at, c.c.rendered, c.c.text, r.c.thread, r.c.depth)
            .join(c, c.c.id == p.c.candidate_id)
            .outerjoin(r, r.c.candidate_id == p.c.candidate_id)
            .where(p.c.target == target)
            .order_by(p.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            Posted(
                row.candidate_id, row.bot, row.remote_id, row.text,
                row.thread if row.thread is not None else (row.remote_id or f"#{row.candidate_id}"),
                0 if row.depth is None else row.depth + 1, row.posted_at,
            )
            for row in reversed(rows)
        ]  # fmt: skip
