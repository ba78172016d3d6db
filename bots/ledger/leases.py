"""Who runs what: live workers, each bot's owner and lease."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import func, select

from botkit.bots.ledger.base import LedgerBase
from botkit.bots.ledger.records import CLAIMED


class Leases(LedgerBase):
    """Workers and the leases by which one worker at a time runs a bot."""

    def heartbeat(self, worker: str, host: str, pid: int) -> int:
        """Say this worker is alive; forget workers silent for ten leases. Returns the live workers."""
        w = self.t["workers"]
        with self._write() as conn:
            now = self.now(conn)
            self._insert_missing(conn, w, id=worker, host=host, pid=pid, started_at=now, seen_at=now)
            conn.execute(w.update().where(w.c.id == worker).values(seen_at=now))
            conn.execute(w.delete().where(w.c.seen_at < now - 10 * self.lease))
            return conn.execute(select(func.count()).where(w.c.seen_at >= now - self.lease)).scalar_one()

    def acquire(self, bot: str, worker: str, *, dead: Callable[[str], bool] = lambda owner: False) -> str | None:
        """Take (or keep) the bot for ``worker`` unless another worker's lease on it is running.

        ``dead(owner)`` may declare the holder gone (its process no longer exists) before its lease
        runs out. Returns None when the bot is now ours, else the worker that holds it.
        """
        s = self.t["bot_state"]
        with self._write() as conn:
            now = self.now(conn)
            self._insert_missing(conn, s, bot=bot, supplied=0)
            owner = self._owner(conn, bot)
            free = (s.c.owner.is_(None)) | (s.c.owner == worker) | (s.c.lease_until < now)
            if owner is not None and owner != worker and dead(owner):
                free |= s.c.owner == owner
            if conn.execute(s.update().where(s.c.bot == bot, free).values(owner=worker, lease_until=now + self.lease)).rowcount:
                return None
            return owner or "another worker"

    def renew(self, worker: str, bots: Iterable[str]) -> set[str]:
        """Extend the leases ``worker`` still holds on ``bots`` and on their claims in flight (a slow
        lookup or post must not lose its claim); returns the bots it holds."""

        s, c, names = self.t["bot_state"], self.t["candidates"], list(bots)
        if not names:
            return set()
        with self._write() as conn:
            now = self.now(conn)
            mine = (s.c.owner == worker) & s.c.bot.in_(names)
            conn.execute(s.update().where(mine).values(lease_until=now + self.lease))
            claims = (c.c.owner == worker) & (c.c.state == CLAIMED) & c.c.bot.in_(names)
            conn.execute(c.update().where(claims).values(lease_until=now + self.lease))
            return set(conn.execute(select(s.c.bot).where(mine)).scalars())

    def release_bot(self, bot: str, worker: str) -> None:
        s = self.t["bot_state"]
        with self._write() as conn:
            conn.execute(s.update().where(s.c.bot == bot, s.c.owner == worker).values(owner=None, lease_until=None))

    def retire(self, worker: str) -> None:
        """A clean stop: give up the bots, end the leases of claims left unsure, leave the worker list."""
        s, c, w = self.t["bot_state"], self.t["candidates"], self.t["workers"]
        with self._write() as conn:
            now = self.now(conn)
            conn.execute(s.update().where(s.c.owner == worker).values(owner=None, lease_until=None))
            conn.execute(c.update().where(c.c.owner == worker, c.c.state == CLAIMED).values(lease_until=now))
            conn.execute(w.delete().where(w.c.id == worker))

    def workers(self) -> dict[str, tuple[str, int, datetime]]:
        """Every worker seen recently: id → (host, pid, last seen)."""
        w = self.t["workers"]
        with self._read() as conn:
            return {row.id: (row.host, row.pid, row.seen_at) for row in conn.execute(select(w))}
