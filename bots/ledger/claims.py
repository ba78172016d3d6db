"""Candidates in, claims out: the supplier's position, the claim that reserves the account's limits, and a claim's end (posted, released, failed)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select, union_all

from botkit.bots.ledger.base import LedgerBase
from botkit.bots.ledger.records import APPROVED, CLAIMED, DAY, FAILED, POSTED, WAITING, Busy, Candidate, NewCandidate, Wait, candidate_of

if TYPE_CHECKING:
    from botkit.bots.targets import Limits, PostResult

log = logging.getLogger(__name__)


class Claims(LedgerBase):
    """The states a candidate goes through on its way to a post, each move one conditional update."""

    def add_candidates(self, bot: str, new: Sequence[NewCandidate], start: int | None, taken: int = 0) -> bool:
        """Insert candidates and move the bot's supplier position from ``start`` to ``start + taken``,
        in one transaction, only if nobody moved it meanwhile (compare-and-set). False: discarded.

        ``start=None``: candidates that did not come from the supplier (a reviewer's picks); the
        position is left alone and the insert always happens.
        """

        s = self.t["bot_state"]
        with self._write() as conn:
            now = self.now(conn)
            self._insert_missing(conn, s, bot=bot, supplied=0)
            if start is not None:
                moved = conn.execute(s.update().where(s.c.bot == bot, s.c.supplied == start).values(supplied=start + taken)).rowcount
                if not moved:
                    return False
            rows = [
                {
                    "bot": bot, "text": c.text, "label": c.label, "score": c.score, "temperature": c.temperature,
                    "state": c.state, "reason": c.reason, "attempts": 0, "created_at": now, "updated_at": now, "reply_to": c.reply_to,
                }
                for c in new
            ]  # fmt: skip
            if rows:
                conn.execute(insert(self.t["candidates"]), rows)
        return True

    def waiting(self, bot: str, states: Sequence[str] = WAITING, *, replies: bool | None = None) -> int:
        """Candidates queued for review or approved (or in ``states``), not yet claimed: a count, no rows read.

        ``replies``: only replies (True), only posts (False: the buffer a refill tops up), or both.
        """

        c = self.t["candidates"]
        query = select(func.count()).where(c.c.bot == bot, c.c.state.in_(states))
        if replies is not None:
            query = query.where(c.c.reply_to.is_not(None) if replies else c.c.reply_to.is_(None))
        with self._read() as conn:
            return conn.execute(query).scalar_one()

    def claimed(self, bot: str) -> Candidate | None:
        """The bot's claimed-but-unconfirmed candidate, if one is in flight or a crash left one."""
        c = self.t["candidates"]
        query = select(c).where(c.c.bot == bot, c.c.state == CLAIMED).order_by(c.c.id).limit(1)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return candidate_of(row) if row else None

    def claim_next(
        self, bot: str, worker: str, *, account: str, limits: Limits, render: Callable[[Candidate], str], replies: bool = False
    ) -> Candidate | Wait | Busy | None:
        """Check the account's limits and claim the bot's oldest approved post (or, with ``replies``,
        reply), in one transaction.

        The claim is made only while ``worker`` holds the bot and no other claim of the bot is in
        flight; the claim itself reserves the limits' slot (it counts as a post until it is
        released), so replies and posts share one account's limits. None: nothing approved.
        """

        c = self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            self._insert_missing(conn, self.t["accounts"], key=account)
            conn.execute(select(self.t["accounts"]).where(self.t["accounts"].c.key == account).with_for_update()).first()
            owner = self._owner(conn, bot)
            if owner != worker:
                return Busy(owner or "nobody (the bot's lease ran out)")
            if conn.execute(select(c.c.id).where(c.c.bot == bot, c.c.state == CLAIMED).limit(1)).first() is not None:
                return Busy("the bot's claimed candidate, which must be reconciled first")
            wait = self._limits(conn, account, limits, now)
            if wait is not None:
                return wait
            kind = c.c.reply_to.is_not(None) if replies else c.c.reply_to.is_(None)
            query = select(c).where(c.c.bot == bot, c.c.state == APPROVED, kind).order_by(c.c.id).limit(1).with_for_update(skip_locked=True)
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            candidate = candidate_of(row)
            rendered = render(candidate)
            values = {
                "state": CLAIMED, "claimed_at": now, "updated_at": now, "attempts": c.c.attempts + 1,
                "owner": worker, "lease_until": now + self.lease, "rendered": rendered, "account": account,
            }  # fmt: skip
            conn.execute(c.update().where(c.c.id == candidate.id, c.c.state == APPROVED).values(**values))
            return replace(
                candidate, state=CLAIMED, claimed_at=now, attempts=candidate.attempts + 1, owner=worker, lease_until=now + self.lease, rendered=rendered
            )

    def _limits(self, conn: Connection, account: str, limits: Limits, now: datetime) -> Wait | None:
        """A :class:`Wait` when the account's minimum interval or daily cap holds the claim back.

        Claims in flight count as posts: they hold the slot until they are released.
        """

        c, p = self.t["candidates"], self.t["posts"]
        recent = union_all(
            select(p.c.posted_at.label("at")).where(p.c.account == account, p.c.posted_at > now - DAY),
            select(c.c.claimed_at.label("at")).where(c.c.account == account, c.c.state == CLAIMED),
        ).subquery()
        times = sorted(conn.execute(select(recent.c.at)).scalars(), reverse=True)
        if limits.min_interval:
            last = max((t for t in (times[0] if times else None, self._last_post(conn, account)) if t is not None), default=None)
            if last is not None and now < last + timedelta(seconds=limits.min_interval):
                return Wait(f"minimum interval {limits.min_interval:g}s since the last post", last + timedelta(seconds=limits.min_interval))
        if limits.daily_cap and len(times) >= limits.daily_cap:
            return Wait(f"daily cap of {limits.daily_cap} posts reached", times[limits.daily_cap - 1] + DAY)
        return None

    def _last_post(self, conn: Connection, account: str) -> datetime | None:
        p = self.t["posts"]
        return conn.execute(select(func.max(p.c.posted_at)).where(p.c.account == account)).scalar()

    def take_over(self, candidate: Candidate, worker: str, *, dead: Callable[[str], bool] = lambda owner: False) -> Candidate | Busy:
        """Hold a claimed candidate to reconcile it: ours already, or its owner's lease ran out (or it is ``dead``)."""
        c = self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            free = (c.c.owner.is_(None)) | (c.c.owner == worker) | (c.c.lease_until < now)
            if candidate.owner is not None and candidate.owner != worker and dead(candidate.owner):
                free |= c.c.owner == candidate.owner
            values = {"owner": worker, "lease_until": now + self.lease, "attempts": c.c.attempts + 1, "updated_at": now}
            if not conn.execute(c.update().where(c.c.id == candidate.id, c.c.state == CLAIMED, free).values(**values)).rowcount:
                return Busy(candidate.owner or "another worker")
        return replace(candidate, owner=worker, lease_until=now + self.lease, attempts=candidate.attempts + 1)

    def renew_claim(self, candidate: Candidate, worker: str) -> bool:
        """Extend our claim before each try; False when it is no longer ours (then we must not post)."""
        c = self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            mine = (c.c.id == candidate.id) & (c.c.state == CLAIMED) & (c.c.owner == worker)
            return bool(conn.execute(c.update().where(mine).values(lease_until=now + self.lease)).rowcount)

    def mark_posted(self, candidate: Candidate, target: str, result: PostResult) -> bool:
        """Record a confirmed post: the posts row, the candidate's state and the bot's last post, atomically.

        A post is a fact about the service, so it is recorded whoever holds the claim now; False
        (and nothing written) when the candidate was recorded as posted already.
        """

        c, s = self.t["candidates"], self.t["bot_state"]
        with self._write() as conn:
            when = self.now(conn)
            # Rows are locked in one order everywhere (bot_state, then candidates), or PostgreSQL
            # finds a deadlock between this and a worker renewing its leases.
            conn.execute(select(s.c.bot).where(s.c.bot == candidate.bot).with_for_update()).first()
            moved = conn.execute(
                c.update().where(c.c.id == candidate.id, c.c.state == CLAIMED).values(state=POSTED, updated_at=when, owner=None, lease_until=None)
            ).rowcount
            if not moved:
                log.warning("%s: candidate %d was no longer claimed when its post was confirmed; recorded already", candidate.bot, candidate.id)
                return False
            conn.execute(
                insert(self.t["posts"]).values(
                    bot=candidate.bot, target=target, remote_id=result.remote_id, url=self._redacted(result.url),
                    posted_at=when, candidate_id=candidate.id, note=self._redacted(result.note), account=self._account_of(conn, candidate.id),
                )
            )  # fmt: skip
            conn.execute(s.update().where(s.c.bot == candidate.bot).values(last_post_at=when, last_error=None))
            self._forget_parents(conn, [candidate.id])
        return True

    def _account_of(self, conn: Connection, candidate_id: int) -> str | None:
        c = self.t["candidates"]
        return conn.execute(select(c.c.account).where(c.c.id == candidate_id)).scalar()

    def release(self, candidate: Candidate, worker: str) -> bool:
        """Give our claimed candidate back to the queue: it was certainly not posted."""
        return self._move_claim(candidate, worker, APPROVED, None)

    def fail(self, candidate: Candidate, worker: str, why: str) -> bool:
        """The service refused our claimed candidate for good; keep it, visibly, as failed."""
        return self._move_claim(candidate, worker, FAILED, self.redact(why))

    def _move_claim(self, candidate: Candidate, worker: str, state: str, reason: str | None) -> bool:
        c = self.t["candidates"]
        with self._write() as conn:
            mine = (c.c.id == candidate.id) & (c.c.state == CLAIMED) & (c.c.owner == worker)
            moved = conn.execute(c.update().where(mine).values(state=state, reason=reason, owner=None, lease_until=None, updated_at=self.now(conn))).rowcount
            if moved and state == FAILED:
                self._forget_parents(conn, [candidate.id])
        if not moved:
            log.warning("%s: candidate %d is no longer ours to mark %s; left as it is", candidate.bot, candidate.id, state)
        return bool(moved)
