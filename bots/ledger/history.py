"""What people read and decide: the review queue, the history of posts, each bot's state, and what targets keep for themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from botkit.bots.ledger.base import LedgerBase
from botkit.bots.ledger.records import (
    APPROVED,
    CLAIMED,
    EVERY_STATE,
    POSTED,
    QUEUED,
    REJECTED,
    REVIEWED,
    WAITING,
    BotState,
    Candidate,
    PostRecord,
    candidate_of,
    storable,
    utcnow,
)


class History(LedgerBase):
    """Review, listings, bot state and target records."""

    def queued(self, bot: str) -> list[Candidate]:
        """Candidates waiting for review, oldest first."""
        c = self.t["candidates"]
        with self._read() as conn:
            rows = conn.execute(select(c).where(c.c.bot == bot, c.c.state == QUEUED).order_by(c.c.id)).mappings().all()
        return [candidate_of(row) for row in rows]

    def review(self, candidate: Candidate, approve: bool, *, text: str | None = None) -> bool:
        """Approve a queued candidate for posting (with ``text`` in place of its own, when the
        reviewer edited it), or reject it as reviewed; False if it was not queued any more.

        One conditional update: of two reviewers deciding one candidate, only the first wins.
        """
        c = self.t["candidates"]
        values: dict[str, Any] = {"state": APPROVED, "reason": None} if approve else {"state": REJECTED, "reason": REVIEWED}
        if approve and text is not None:
            values["text"] = storable(text)
        with self._write() as conn:
            query = c.update().where(c.c.id == candidate.id, c.c.bot == candidate.bot, c.c.state == QUEUED)
            return bool(conn.execute(query.values(updated_at=self.now(conn), **values)).rowcount)

    def candidate(self, bot: str, candidate_id: int) -> Candidate | None:
        """One of the bot's candidates, in whatever state it is now."""
        c = self.t["candidates"]
        with self._read() as conn:
            row = conn.execute(select(c).where(c.c.id == candidate_id, c.c.bot == bot)).mappings().first()
        return candidate_of(row) if row else None

    def latest(self, bot: str, limit: int, states: Sequence[str] = EVERY_STATE) -> list[Candidate]:
        """The bot's latest ``limit`` candidates in ``states``, newest first (rejected ones carry the
        filter that rejected them as ``reason``)."""

        c = self.t["candidates"]
        with self._read() as conn:
            rows = conn.execute(select(c).where(c.c.bot == bot, c.c.state.in_(states)).order_by(c.c.id.desc()).limit(limit)).mappings().all()
        return [candidate_of(row) for row in rows]

    def post_times(self, bot: str, since: datetime) -> list[datetime]:
        """When the bot posted, since ``since``, oldest first."""
        p = self.t["posts"]
        with self._read() as conn:
            return list(conn.execute(select(p.c.posted_at).where(p.c.bot == bot, p.c.posted_at >= since).order_by(p.c.posted_at)).scalars())

    # -- bot state ---------------------------------------------------------------------------

    def _update_state(self, bot: str, **values: Any) -> None:
        state = self.t["bot_state"]
        with self._write() as conn:
            self._insert_missing(conn, state, bot=bot, supplied=0)
            conn.execute(state.update().where(state.c.bot == bot).values(**values))

    def state(self, bot: str) -> BotState:
        state = self.t["bot_state"]
        with self._read() as conn:
            row = conn.execute(select(state).where(state.c.bot == bot)).mappings().first()
        if row is None:
            return BotState(bot)
        # Redacted again as read: a row written before botkit redacted everything it stores may hold a URL's password.
        return replace(BotState(**row), last_error=self._redacted(row["last_error"]), disabled=self._redacted(row["disabled"]))

    def record_error(self, bot: str, message: str) -> None:
        self._update_state(bot, last_error=self.redact(message), last_error_at=utcnow())

    def wait_until(self, bot: str, when: datetime | None) -> None:
        self._update_state(bot, not_before=when)

    def disable(self, bot: str, reason: str) -> None:
        reason = self.redact(reason)
        self._update_state(bot, disabled=reason, last_error=reason, last_error_at=utcnow())

    def enable(self, bots: Iterable[str]) -> None:
        """Clear 'disabled' marks at start: the config (credentials) may have been fixed since."""
        state = self.t["bot_state"]
        with self._write() as conn:
            conn.execute(state.update().where(state.c.bot.in_(list(bots)), state.c.disabled.is_not(None)).values(disabled=None))

    def set_next_run(self, bot: str, when: datetime | None) -> None:
        self._update_state(bot, next_run_at=when)

    # -- posts -------------------------------------------------------------------------------

    def texts(self, bot: str, states: Sequence[str] = (*WAITING, CLAIMED, POSTED)) -> list[str]:
        """Texts of the bot's candidates in ``states`` (by default: what a new candidate must not repeat)."""
        c = self.t["candidates"]
        with self._read() as conn:
            return list(conn.execute(select(c.c.text).where(c.c.bot == bot, c.c.state.in_(states))).scalars())

    def history(self, bot: str, limit: int | None = None) -> list[PostRecord]:
        """The bot's posts, newest first."""
        p, c = self.t["posts"], self.t["candidates"]
        query = (
            select(p.c.posted_at, p.c.target, p.c.remote_id, p.c.url, c.c.text, p.c.note, c.c.reply_to)
            .join(c, c.c.id == p.c.candidate_id)
            .where(p.c.bot == bot)
            .order_by(p.c.posted_at.desc(), p.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [PostRecord(**row) for row in conn.execute(query).mappings()]

    def bots(self) -> list[str]:
        """Every bot the ledger has state for."""
        state = self.t["bot_state"]
        with self._read() as conn:
            return list(conn.execute(select(state.c.bot).order_by(state.c.bot)).scalars())

    # -- what targets keep for themselves ----------------------------------------------------

    def record(self, scope: str, key: str, value: str, inside: Callable[[datetime], None] = lambda when: None) -> bool:
        """Keep ``value`` under ``(scope, key)`` once, running ``inside(time)`` in the same transaction.

        A target makes a side effect exactly-once this way: the outbox appends its file line inside
        the transaction, so the line and the record commit together (a crash between them is seen
        by the file's last line). False, and ``inside`` not run, when the key was recorded already.
        """

        r = self.t["target_records"]
        with self._write() as conn:
            if conn.execute(select(r.c.key).where(r.c.scope == scope, r.c.key == key)).first() is not None:
                return False
            when = self.now(conn)
            conn.execute(insert(r).values(scope=scope, key=key, value=value, recorded_at=when))
            inside(when)
        return True

    def recorded(self, scope: str, key: str) -> tuple[str, datetime] | None:
        """The value kept under ``(scope, key)`` and when, or None."""
        r = self.t["target_records"]
        with self._read() as conn:
            row = conn.execute(select(r.c.value, r.c.recorded_at).where(r.c.scope == scope, r.c.key == key)).first()
        return (row[0], row[1]) if row is not None else None
