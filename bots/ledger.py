"""The bots' ledger: every candidate, every post and each bot's state, in one SQL database.

SQLAlchemy Core on SQLite (WAL mode, so ``botkit status`` reads while the daemon writes) by
default, or any SQLAlchemy URL (PostgreSQL) when one machine is not enough: one code path.

Exactly-once posting rests on the candidate states here::

    approved --claim (committed)--> claimed --post, then mark_posted--> posted
                                       |--> approved (certainly not posted: rate limit, bad credentials)
                                       |--> failed   (refused for good)

A candidate left ``claimed`` (a crash, an ambiguous error) is reconciled with the target before
the bot posts anything else; see ``botkit.bots.bot``.

All times are naive UTC datetimes (SQLite keeps no time zone; PostgreSQL gets the same values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table

    from botkit.bots import PostResult

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# Candidates enter already filtered: rejected (reason: the filter), queued (awaiting review) or approved.
REJECTED, QUEUED, APPROVED, CLAIMED, POSTED, FAILED = "rejected", "queued", "approved", "claimed", "posted", "failed"
#: States of a candidate that is still waiting to be posted (the bot's queue).
WAITING = (QUEUED, APPROVED)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def show_time(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Candidate:
    """One candidate post, as the ledger holds it."""

    id: int
    bot: str
    text: str
    label: str | None
    score: float | None
    state: str
    attempts: int
    claimed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class NewCandidate:
    """A candidate on its way into the ledger, with the state the filters gave it."""

    text: str
    state: str
    label: str | None = None
    score: float | None = None
    temperature: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BotState:
    """What the ledger knows about one bot between ticks."""

    bot: str
    last_post_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_run_at: datetime | None = None
    not_before: datetime | None = None
    disabled: str | None = None
    supplied: int = 0


@dataclass(frozen=True)
class PostRecord:
    """One line of ``botkit history``."""

    posted_at: datetime
    target: str
    remote_id: str | None
    url: str | None
    text: str
    note: str | None


def store_url(store: str, base_dir: Path) -> str:
    """``store:`` from config as a SQLAlchemy URL: a URL as given, else a SQLite file beside the config."""
    if "://" in store:
        return store
    path = Path(store).expanduser()
    return f"sqlite:///{path if path.is_absolute() else base_dir / path}"


def open_ledger(store: str, base_dir: Path, db: str | None = None) -> Ledger:
    """The ledger a config names (``store:``), unless ``--db URL`` points elsewhere."""
    return Ledger(db or store_url(store, base_dir))


def _tables() -> tuple[Any, dict[str, Table]]:
    from sqlalchemy import Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

    metadata = MetaData()
    t = {
        "schema_version": Table("schema_version", metadata, Column("version", Integer, nullable=False)),
        "candidates": Table(
            "candidates",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("bot", String(200), nullable=False),
            Column("text", Text, nullable=False),
            Column("label", String(200)),
            Column("score", Float),
            Column("temperature", Float),
            Column("state", String(16), nullable=False),
            Column("reason", Text),  # the filter that rejected it, or why it failed
            Column("attempts", Integer, nullable=False, default=0),
            Column("created_at", DateTime, nullable=False),
            Column("updated_at", DateTime, nullable=False),
            Column("claimed_at", DateTime),
            # The bot's queue in order, its claimed candidate, its queue size: all one index range.
            Index("ix_candidates_bot_state_id", "bot", "state", "id"),
        ),
        "posts": Table(
            "posts",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("bot", String(200), nullable=False),
            Column("target", String(100), nullable=False),
            Column("remote_id", String(200)),  # NULL when the service confirmed the post but gave no id
            Column("url", Text),
            Column("posted_at", DateTime, nullable=False),
            Column("candidate_id", Integer, ForeignKey("candidates.id"), nullable=False, unique=True),
            Column("note", Text),
            # Last post, posts in the last 24 h (daily cap), history: newest first per bot.
            Index("ix_posts_bot_posted_at", "bot", "posted_at"),
        ),
        "bot_state": Table(
            "bot_state",
            metadata,
            Column("bot", String(200), primary_key=True),
            Column("last_post_at", DateTime),
            Column("last_error", Text),
            Column("last_error_at", DateTime),
            Column("next_run_at", DateTime),
            Column("not_before", DateTime),  # a rate limit's "try again after"
            Column("disabled", Text),  # why the bot is stopped (bad credentials...)
            Column("supplied", Integer, nullable=False, default=0),  # candidates taken from its supplier so far
        ),
        # The outbox target's own record of what it delivered: its reconciliation looks here.
        "outbox": Table(
            "outbox",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("bot", String(200), nullable=False),
            Column("candidate_id", Integer, nullable=False, unique=True),
            Column("text", Text, nullable=False),
            Column("posted_at", DateTime, nullable=False),
        ),
    }
    return metadata, t


#: Upgrades from version N to N+1, run in order inside one transaction when an older ledger opens.
MIGRATIONS: dict[int, Callable[[Any], None]] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the daemon, and vice versa
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process; only power loss can drop the last commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Ledger:
    """One database connection pool and the queries the bots need. Safe to share between threads."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.exc import ArgumentError

        self.url = url
        try:
            if url.startswith("sqlite"):
                self.engine: Engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"ledger {self.safe_url}: cannot open ({exc})") from None
        self.metadata, self.t = _tables()
        self._migrate()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden: it goes into messages."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparseable URL has no password we could find
            return "(unparseable URL)"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        from sqlalchemy import insert, select
        from sqlalchemy.exc import OperationalError

        if self.url.startswith("sqlite:///"):
            folder = Path(self.url.removeprefix("sqlite:///")).parent
            if not folder.is_dir():
                raise ConfigError(f"ledger {self.url}: folder {folder} does not exist")
        versions = self.t["schema_version"]
        try:
            with self.engine.begin() as conn:
                self.metadata.create_all(conn, checkfirst=True)
                version = conn.execute(select(versions.c.version)).scalar()
                if version is None:
                    conn.execute(insert(versions).values(version=SCHEMA_VERSION))
                    return
                if version > SCHEMA_VERSION:
                    raise ConfigError(f"ledger {self.safe_url}: schema version {version} is newer than this botkit knows ({SCHEMA_VERSION}); upgrade botkit")
                for step in range(version, SCHEMA_VERSION):
                    log.warning("ledger %s: migrating schema %d -> %d", self.safe_url, step, step + 1)
                    MIGRATIONS[step](conn)
                conn.execute(versions.update().values(version=SCHEMA_VERSION))
        except OperationalError as exc:
            raise ConfigError(f"ledger {self.safe_url}: cannot open ({exc.orig})") from None

    # -- candidates --------------------------------------------------------------------------

    def add_candidates(self, bot: str, new: Sequence[NewCandidate], supplied: int) -> None:
        """Insert candidates and advance the bot's supplier position, in one transaction.

        Together these make a prepared-posts file consumed exactly once: after a crash either
        both happened or neither did.
        """
        from sqlalchemy import insert

        now = utcnow()
        rows = [
            {
                "bot": bot, "text": c.text, "label": c.label, "score": c.score, "temperature": c.temperature,
                "state": c.state, "reason": c.reason, "attempts": 0, "created_at": now, "updated_at": now,
            }
            for c in new
        ]  # fmt: skip
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(self.t["candidates"]), rows)
            self._ensure_state(conn, bot)
            state = self.t["bot_state"]
            conn.execute(state.update().where(state.c.bot == bot).values(supplied=state.c.supplied + supplied))

    def waiting(self, bot: str) -> int:
        """Candidates queued for review or approved, not yet claimed."""
        from sqlalchemy import func, select

        c = self.t["candidates"]
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(c.c.bot == bot, c.c.state.in_(WAITING))).scalar_one()

    def _one(self, bot: str, state: str) -> Candidate | None:
        from sqlalchemy import select

        c = self.t["candidates"]
        query = select(c).where(c.c.bot == bot, c.c.state == state).order_by(c.c.id).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _candidate(row) if row else None

    def claimed(self, bot: str) -> Candidate | None:
        """The bot's claimed-but-unconfirmed candidate, if a crash or an error left one."""
        return self._one(bot, CLAIMED)

    def claim_next(self, bot: str) -> Candidate | None:
        """Claim the oldest approved candidate (committed before anything is posted)."""
        c = self.t["candidates"]
        while True:
            candidate = self._one(bot, APPROVED)
            if candidate is None:
                return None
            now = utcnow()
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    c.update()
                    .where(c.c.id == candidate.id, c.c.state == APPROVED)
                    .values(state=CLAIMED, claimed_at=now, updated_at=now, attempts=c.c.attempts + 1)
                ).rowcount
            if claimed:  # else another process took it first: try the next one
                return Candidate(**{**candidate.__dict__, "state": CLAIMED, "claimed_at": now, "attempts": candidate.attempts + 1})

    def retry_claim(self, candidate: Candidate) -> None:
        """Count one more try of a claimed candidate (reconciled as not posted, posting again)."""
        c = self.t["candidates"]
        with self.engine.begin() as conn:
            conn.execute(c.update().where(c.c.id == candidate.id).values(attempts=c.c.attempts + 1, updated_at=utcnow()))

    def mark_posted(self, candidate: Candidate, target: str, result: PostResult, when: datetime | None = None) -> None:
        """Record a confirmed post: the posts row, the candidate's state and the bot's last post, atomically."""
        from sqlalchemy import insert

        when = when or utcnow()
        c, state = self.t["candidates"], self.t["bot_state"]
        with self.engine.begin() as conn:
            conn.execute(
                insert(self.t["posts"]).values(
                    bot=candidate.bot, target=target, remote_id=result.remote_id, url=result.url,
                    posted_at=when, candidate_id=candidate.id, note=result.note,
                )
            )  # fmt: skip
            conn.execute(c.update().where(c.c.id == candidate.id).values(state=POSTED, updated_at=when))
            self._ensure_state(conn, candidate.bot)
            conn.execute(state.update().where(state.c.bot == candidate.bot).values(last_post_at=when, last_error=None))

    def release(self, candidate: Candidate) -> None:
        """Give a claimed candidate back to the queue: it was certainly not posted."""
        self._set_state(candidate.id, APPROVED, None)

    def fail(self, candidate: Candidate, why: str) -> None:
        """The service refused this candidate for good; keep it, visibly, as failed."""
        self._set_state(candidate.id, FAILED, why)

    def _set_state(self, candidate_id: int, state: str, reason: str | None) -> None:
        c = self.t["candidates"]
        with self.engine.begin() as conn:
            conn.execute(c.update().where(c.c.id == candidate_id).values(state=state, reason=reason, updated_at=utcnow()))

    def queued(self, bot: str) -> list[Candidate]:
        """Candidates waiting for review, oldest first."""
        from sqlalchemy import select

        c = self.t["candidates"]
        with self.engine.connect() as conn:
            rows = conn.execute(select(c).where(c.c.bot == bot, c.c.state == QUEUED).order_by(c.c.id)).mappings().all()
        return [_candidate(row) for row in rows]

    def review(self, candidate: Candidate, approve: bool) -> None:
        """Approve a queued candidate for posting, or reject it as reviewed."""
        self._set_state(candidate.id, APPROVED if approve else REJECTED, None if approve else "review")

    # -- bot state ---------------------------------------------------------------------------

    def _ensure_state(self, conn: Any, bot: str) -> None:
        from sqlalchemy import insert, select

        state = self.t["bot_state"]
        if conn.execute(select(state.c.bot).where(state.c.bot == bot)).first() is None:
            conn.execute(insert(state).values(bot=bot, supplied=0))

    def _update_state(self, bot: str, **values: Any) -> None:
        state = self.t["bot_state"]
        with self.engine.begin() as conn:
            self._ensure_state(conn, bot)
            conn.execute(state.update().where(state.c.bot == bot).values(**values))

    def state(self, bot: str) -> BotState:
        from sqlalchemy import select

        state = self.t["bot_state"]
        with self.engine.connect() as conn:
            row = conn.execute(select(state).where(state.c.bot == bot)).mappings().first()
        return BotState(**row) if row else BotState(bot)

    def record_error(self, bot: str, message: str) -> None:
        self._update_state(bot, last_error=message, last_error_at=utcnow())

    def wait_until(self, bot: str, when: datetime | None) -> None:
        self._update_state(bot, not_before=when)

    def disable(self, bot: str, reason: str) -> None:
        self._update_state(bot, disabled=reason, last_error=reason, last_error_at=utcnow())

    def enable(self, bots: Iterable[str]) -> None:
        """Clear 'disabled' marks at start: the config (credentials) may have been fixed since."""
        state = self.t["bot_state"]
        with self.engine.begin() as conn:
            conn.execute(state.update().where(state.c.bot.in_(list(bots)), state.c.disabled.is_not(None)).values(disabled=None))

    def set_next_run(self, bot: str, when: datetime | None) -> None:
        self._update_state(bot, next_run_at=when)

    # -- posts -------------------------------------------------------------------------------

    def nth_latest_post(self, bot: str, n: int) -> datetime | None:
        """When the bot's ``n``-th most recent post was made (the daily cap frees up 24 h after it)."""
        from sqlalchemy import select

        p = self.t["posts"]
        query = select(p.c.posted_at).where(p.c.bot == bot).order_by(p.c.posted_at.desc()).offset(n - 1).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def texts(self, bot: str) -> list[str]:
        """Texts the bot has posted or still holds: what a new candidate must not repeat."""
        from sqlalchemy import select

        c = self.t["candidates"]
        query = select(c.c.text).where(c.c.bot == bot, c.c.state.in_((*WAITING, CLAIMED, POSTED)))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def history(self, bot: str, limit: int | None = None) -> list[PostRecord]:
        """The bot's posts, newest first."""
        from sqlalchemy import select

        p, c = self.t["posts"], self.t["candidates"]
        query = (
            select(p.c.posted_at, p.c.target, p.c.remote_id, p.c.url, c.c.text, p.c.note)
            .join(c, c.c.id == p.c.candidate_id)
            .where(p.c.bot == bot)
            .order_by(p.c.posted_at.desc(), p.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [PostRecord(**row) for row in conn.execute(query).mappings()]

    def bots(self) -> list[str]:
        """Every bot the ledger has state for."""
        from sqlalchemy import select

        state = self.t["bot_state"]
        with self.engine.connect() as conn:
            return list(conn.execute(select(state.c.bot).order_by(state.c.bot)).scalars())

    # -- the outbox target's table -----------------------------------------------------------

    def outbox_add(self, bot: str, candidate_id: int, text: str, when: datetime, write: Callable[[], None]) -> bool:
        """Record an outbox delivery and run ``write`` (the file append) inside the same transaction.

        False when this candidate was delivered already (the reconciliation answer).
        """
        from sqlalchemy import insert, select

        box = self.t["outbox"]
        with self.engine.begin() as conn:
            if conn.execute(select(box.c.id).where(box.c.candidate_id == candidate_id)).first() is not None:
                return False
            conn.execute(insert(box).values(bot=bot, candidate_id=candidate_id, text=text, posted_at=when))
            write()
        return True

    def outbox_delivered(self, candidate_id: int) -> datetime | None:
        from sqlalchemy import select

        box = self.t["outbox"]
        with self.engine.connect() as conn:
            return conn.execute(select(box.c.posted_at).where(box.c.candidate_id == candidate_id)).scalar()


def _candidate(row: Any) -> Candidate:
    return Candidate(
        id=row["id"], bot=row["bot"], text=row["text"], label=row["label"], score=row["score"], state=row["state"],
        attempts=row["attempts"], claimed_at=row["claimed_at"], created_at=row["created_at"],
    )  # fmt: skip
