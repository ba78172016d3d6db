"""The bots' ledger: every candidate, every post, each bot's state and who runs it, in one SQL database.

SQLAlchemy Core on SQLite (WAL mode, so ``botkit status`` reads while daemons write) for one host,
or PostgreSQL for a farm spread over several hosts: one code path, and every decision that two
processes could race on is one transaction or one conditional ``UPDATE``.

Exactly-once posting rests on the candidate states here::

    approved --claim (committed, owner + lease)--> claimed --post, then mark_posted--> posted
                                                      |--> approved (certainly not posted: rate limit, bad credentials)
                                                      |--> failed   (refused for good)

* A claim names the worker that holds it and a lease; only the owner moves it on, and another
  worker takes it over (to reconcile it with the service) only once that lease has run out.
  Every change is conditional on the state it expects (``WHERE state = 'claimed' AND owner = :me``):
  a change that finds its row moved on does nothing and says so, it never resurrects a post.
* The limits (minimum interval, daily cap) are checked and the slot is reserved in the claim's own
  transaction, under a lock on the service account's row, so they hold across any number of
  processes and hosts; bots that share one account share its limits.
* Each bot is run by one worker at a time: ``bot_state.owner`` with a lease the worker renews.
* Refills advance the supplier's position with compare-and-set.

Locks: on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, so
a read-check-write inside it is atomic); on PostgreSQL the account row is locked ``FOR UPDATE`` and
candidates are picked ``FOR UPDATE SKIP LOCKED``; schema creation takes an advisory lock.

Times are aware UTC datetimes everywhere in botkit; the columns hold naive UTC (SQLite keeps no
zone) and :class:`UTCDateTime` converts at the boundary. Lease and post times come from the
database server's clock on PostgreSQL, so hosts with slightly different clocks agree.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    union_all,
)  # fmt: skip
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from botkit.errors import BotkitError
from botkit.redact import Redactor, redact_url, split_userinfo

if TYPE_CHECKING:
    from botkit.bots import Incoming, Limits, PostResult

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
#: A worker renews its leases a few times per lease; the default lets a dead worker's bots move in 30 s.
DEFAULT_LEASE_S = 30.0
SQLITE_TIMEOUT_S = 30.0
_SCHEMA_LOCK = 0x626F746B  # pg_advisory_xact_lock key for schema creation and migration ("botk")

# Candidates enter already filtered: rejected (reason: the filter), queued (awaiting review) or approved.
REJECTED, QUEUED, APPROVED, CLAIMED, POSTED, FAILED = "rejected", "queued", "approved", "claimed", "posted", "failed"
#: States of a candidate that is still waiting to be posted (the bot's queue).
WAITING = (QUEUED, APPROVED)
#: A claimed candidate as people see it (status, history, the console): the service may hold it or not,
#: and a lookup (the next tick's, or the one a clean stop makes) settles which.
IN_DOUBT = "in doubt (claimed, not confirmed)"
#: The reason of a candidate a reviewer rejected (filters put their own name there).
REVIEWED = "review"
EVERY_STATE = (REJECTED, QUEUED, APPROVED, CLAIMED, POSTED, FAILED)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
DAY = timedelta(days=1)


class LedgerError(BotkitError):
    """The ledger cannot be opened or used (bad URL, corrupt file, server down)."""


def storable(text: str) -> str:
    """``text`` as the database can hold it: a lone surrogate (from a JSON escape) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def utcnow() -> datetime:
    return datetime.now(UTC)


def show_time(when: datetime | None) -> str:
    return "-" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Candidate:
    """One candidate post, as the ledger holds it. ``rendered``: the exact text sent (set at claim)."""

    id: int
    bot: str
    text: str
    label: str | None
    score: float | None
    state: str
    attempts: int
    claimed_at: datetime | None
    created_at: datetime
    rendered: str | None = None
    owner: str | None = None
    lease_until: datetime | None = None
    reason: str | None = None  # rejected: the filter (or "review"); failed: why
    reply_to: str | None = None  # a reply: the target's link to its parent (see botkit.bots.Incoming.link); None for a post


@dataclass(frozen=True)
class NewCandidate:
    """A candidate on its way into the ledger, with the state the filters gave it."""

    text: str
    state: str
    label: str | None = None
    score: float | None = None
    temperature: float | None = None
    reason: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True)
class Answered:
    """How much a bot has answered lately in one thread or to one author (the reply guards' inputs)."""

    count: int
    last_at: datetime | None


@dataclass(frozen=True)
class Posted:
    """A post or reply the ledger's bots made, with where it sits in its thread."""

    candidate_id: int
    bot: str
    remote_id: str | None
    text: str
    thread: str  # the root post's remote id
    depth: int  # 0: a top-level post
    posted_at: datetime


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
    owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class PostRecord:
    """One line of ``botkit history``."""

    posted_at: datetime
    target: str
    remote_id: str | None
    url: str | None
    text: str
    note: str | None
    reply_to: str | None = None  # a reply: the target's link to what it answered


@dataclass(frozen=True)
class Wait:
    """A claim refused by the limits: why, and when the slot frees up."""

    reason: str
    until: datetime


@dataclass(frozen=True)
class Busy:
    """A claim refused because another worker holds the bot or its claimed candidate."""

    owner: str


# -- URLs ------------------------------------------------------------------------------------


def parse_url(url: str) -> URL:
    """A SQLAlchemy URL; a password may contain ``@``, ``:`` and ``/`` without quoting (the user name
    ends at the first ``:``, the password at the last ``@``: :func:`botkit.redact.split_userinfo`, the
    rule that redaction follows too). Raises :class:`LedgerError` without the password."""
    bare, user, password = split_userinfo(url)
    try:
        if user is None:
            return make_url(url)
        return make_url(bare).set(username=unquote(user), password=unquote(password) if password else None)
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError (a bad port): say which part, never the password
        raise LedgerError(f"ledger {redact_url(url)}: not a valid database URL ({Redactor.of([url])(str(exc))})") from None


def store_url(store: str, base_dir: Path) -> str:
    """``store:`` from config as a SQLAlchemy URL: a URL as given, else a SQLite file beside the config."""
    if "://" in store:
        return store
    path = Path(store).expanduser()
    return f"sqlite:///{path if path.is_absolute() else base_dir / path}"


def open_ledger(store: str, base_dir: Path, db: str | None = None, *, lease: float = DEFAULT_LEASE_S) -> Ledger:
    """The ledger a config names (``store:``), unless ``--db URL`` (or ``$BOTKIT_DB``) points elsewhere."""
    return Ledger(db or store_url(store, base_dir), lease=lease)


# -- schema ----------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the column: the same values on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given to the ledger: botkit uses aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _tables() -> tuple[MetaData, dict[str, Table]]:
    Time = UTCDateTime
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
            Column("created_at", Time, nullable=False),
            Column("updated_at", Time, nullable=False),
            Column("claimed_at", Time),
            Column("owner", String(200)),  # the worker holding the claim
            Column("lease_until", Time),  # ... until then; after that another worker may reconcile it
            Column("rendered", Text),  # the exact text sent, signature included: what reconciliation looks for
            Column("account", String(200)),  # the service account whose limits the claim counts against
            Column("reply_to", Text),  # a reply's link to its parent, as the target gave it; NULL for a post
            # The bot's queue in order, its claimed candidate, its queue size: all one index range.
            Index("ix_candidates_bot_state_id", "bot", "state", "id"),
            Index("ix_candidates_account_state", "account", "state"),
        ),
        "posts": Table(
            "posts",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("bot", String(200), nullable=False),
            Column("target", String(100), nullable=False),
            Column("remote_id", String(200)),  # NULL when the service confirmed the post but gave no id
            Column("url", Text),
            Column("posted_at", Time, nullable=False),
            Column("candidate_id", Integer, ForeignKey("candidates.id"), nullable=False, unique=True),
            Column("note", Text),
            Column("account", String(200)),
            # Last post, history: newest first per bot. Limits: per account.
            Index("ix_posts_bot_posted_at", "bot", "posted_at"),
            Index("ix_posts_account_posted_at", "account", "posted_at"),
        ),
        "bot_state": Table(
            "bot_state",
            metadata,
            Column("bot", String(200), primary_key=True),
            Column("last_post_at", Time),
            Column("last_error", Text),
            Column("last_error_at", Time),
            Column("next_run_at", Time),
            Column("not_before", Time),  # a rate limit's "try again after"
            Column("disabled", Text),  # why the bot is stopped (bad credentials...)
            Column("supplied", Integer, nullable=False, default=0),  # candidates taken from its supplier so far
            Column("owner", String(200)),  # the worker that runs this bot now
            Column("lease_until", Time),
        ),
        # Live `botkit run` daemons: the bots are shared out among them.
        "workers": Table(
            "workers",
            metadata,
            Column("id", String(200), primary_key=True),
            Column("host", String(200), nullable=False),
            Column("pid", Integer, nullable=False),
            Column("started_at", Time, nullable=False),
            Column("seen_at", Time, nullable=False),
        ),
        # What each reply bot saw and decided, once per parent, ever: the claim that makes
        # "answered at most once" hold across restarts, crashes and workers.
        "parents": Table(
            "parents",
            metadata,
            Column("bot", String(200), primary_key=True),
            Column("remote_id", String(200), primary_key=True),  # the parent's id on the service
            Column("thread", String(200), nullable=False),
            Column("author", String(200), nullable=False),
            Column("depth", Integer, nullable=False),
            Column("text", Text, nullable=False),
            Column("url", Text),
            Column("seen_at", Time, nullable=False),
            Column("candidate_id", Integer, ForeignKey("candidates.id"), unique=True),  # the reply, when one was written
            Column("skipped", Text),  # why it is not answered (a guard, the filters); NULL: answered
            Index("ix_parents_bot_thread", "bot", "thread"),
            Index("ix_parents_bot_author", "bot", "author"),
        ),
        # One row per service account, locked while a claim checks that account's limits.
        "accounts": Table("accounts", metadata, Column("key", String(200), primary_key=True)),
        # What targets keep for themselves (the outbox: what it delivered, for its reconciliation),
        # so a target with state of its own needs no table in the core schema.
        "target_records": Table(
            "target_records",
            metadata,
            Column("scope", String(100), primary_key=True),  # the target kind, e.g. "outbox"
            Column("key", String(200), primary_key=True),
            Column("value", Text, nullable=False),
            Column("recorded_at", Time, nullable=False),
        ),
    }
    return metadata, t


def _migrate_1_to_2(conn: Connection) -> None:
    """Owners, leases, rendered texts and accounts; the new tables come from ``create_all``."""
    for table, column, kind in [
        ("candidates", "owner", "VARCHAR(200)"), ("candidates", "lease_until", "TIMESTAMP"), ("candidates", "rendered", "TEXT"),
        ("candidates", "account", "VARCHAR(200)"), ("posts", "account", "VARCHAR(200)"),
        ("bot_state", "owner", "VARCHAR(200)"), ("bot_state", "lease_until", "TIMESTAMP"),
    ]:  # fmt: skip
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.exec_driver_sql("UPDATE posts SET account = bot")
    conn.exec_driver_sql("CREATE INDEX ix_candidates_account_state ON candidates (account, state)")
    conn.exec_driver_sql("CREATE INDEX ix_posts_account_posted_at ON posts (account, posted_at)")


def _migrate_2_to_3(conn: Connection) -> None:
    """The outbox's own table becomes its rows in ``target_records``, which any target can use."""
    _tables()[1]["target_records"].create(conn, checkfirst=True)
    conn.exec_driver_sql(
        "INSERT INTO target_records (scope, key, value, recorded_at) SELECT 'outbox', CAST(candidate_id AS VARCHAR(200)), text, posted_at FROM outbox"
    )
    conn.exec_driver_sql("DROP TABLE outbox")


#: Upgrades from version N to N+1, run in order inside the schema transaction when an older ledger opens.
def _migrate_3_to_4(conn: Connection) -> None:
    """Replies: a candidate's link to its parent; the ``parents`` table comes from ``create_all``."""
    conn.exec_driver_sql("ALTER TABLE candidates ADD COLUMN reply_to TEXT")


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin, not by the driver
    cursor = dbapi_connection.cursor()
    _wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process; only power loss can drop the last commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _wal(cursor: Any) -> None:
    """WAL mode (readers never block the daemons, and vice versa), set by the first process to open the file.

    Switching modes needs an exclusive lock, and SQLite may answer "locked" at once, without
    waiting, while several processes create the file together: try again for a while.
    """

    deadline = time.monotonic() + SQLITE_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: Connection) -> None:
    """Writes take SQLite's write lock at BEGIN, so a read-check-write inside them is atomic."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("botkit_write") else "BEGIN")


class Ledger:
    """One database connection pool and the queries the bots need. Safe to share between threads."""

    def __init__(self, url: str, *, lease: float = DEFAULT_LEASE_S) -> None:
        self.url = url
        self.lease = timedelta(seconds=lease)
        parsed = parse_url(url)
        self.safe_url = redact_url(url)
        #: Hides the URL's credentials (its password, ``?password=``...) in every message the ledger makes or stores.
        self.redact = Redactor.of([url])
        self.sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.sqlite:
                args = {} if "timeout" in parsed.query else {"timeout": SQLITE_TIMEOUT_S}
                self.engine: Engine = create_engine(parsed, connect_args=args)
                event.listen(self.engine, "connect", _sqlite_connect)
                event.listen(self.engine, "begin", _sqlite_begin)
            else:
                self.engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except Exception as exc:  # noqa: BLE001 - ArgumentError, a missing driver (ImportError)...
            raise LedgerError(self.describe_error("cannot open", exc)) from None
        self.metadata, self.t = _tables()
        self._migrate()

    def describe_error(self, what: str, exc: BaseException) -> str:
        detail = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()
        message = f"ledger {self.safe_url}: {what} ({detail[0] if detail else type(exc).__name__})"
        if isinstance(exc, ImportError) and not self.sqlite:
            message += "; PostgreSQL needs its driver: pip install 'botkit[postgres]'"
        return self.redact(message)

    def _redacted(self, text: str | None) -> str | None:
        """Free text on its way into (or out of) the database, with every credential hidden: an error
        message, a reason, a post's URL or note may quote what a library was given."""
        return None if text is None else self.redact(text)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: holding the write lock from its start)."""
        with self._errors(), self.engine.connect() as conn:
            conn.execution_options(botkit_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A database failure (down, locked, full, corrupt) as a one-line :class:`LedgerError`."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise LedgerError(self.describe_error("failed", exc)) from None

    def now(self, conn: Connection) -> datetime:
        """The time every worker agrees on: the PostgreSQL server's clock, or this host's for SQLite."""
        if self.sqlite:
            return utcnow()

        return conn.execute(select(func.now())).scalar_one().astimezone(UTC)

    def _migrate(self) -> None:
        if self.url.startswith("sqlite:///"):
            folder = Path(self.url.removeprefix("sqlite:///").partition("?")[0]).parent
            if not folder.is_dir():
                raise LedgerError(f"ledger {self.safe_url}: folder {folder} does not exist")
        versions = self.t["schema_version"]
        try:
            with self._write() as conn:
                if not self.sqlite:  # several processes starting at once: one creates, the others wait and see it
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                version = conn.execute(select(versions.c.version)).scalar() if self._has_schema(conn) else None
                if version is not None and version > SCHEMA_VERSION:
                    raise LedgerError(f"ledger {self.safe_url}: schema version {version} is newer than this botkit knows ({SCHEMA_VERSION}); upgrade botkit")
                for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                    log.warning("ledger %s: migrating schema %d -> %d", self.safe_url, step, step + 1)
                    MIGRATIONS[step](conn)
                self.metadata.create_all(conn, checkfirst=True)
                if version is None:
                    conn.execute(insert(versions).values(version=SCHEMA_VERSION))
                elif version < SCHEMA_VERSION:
                    conn.execute(versions.update().values(version=SCHEMA_VERSION))
        except LedgerError as exc:
            raise LedgerError(str(exc).replace(": failed (", ": cannot open (", 1)) from None

    @staticmethod
    def _has_schema(conn: Connection) -> bool:
        return inspect(conn).has_table("schema_version")

    def _insert_missing(self, conn: Connection, table: Table, **values: Any) -> None:
        """Insert a row unless its key is there already, without a race between two processes."""
        insert = sqlite.insert if self.sqlite else postgresql.insert
        conn.execute(insert(table).values(**values).on_conflict_do_nothing())

    # -- workers and bot leases --------------------------------------------------------------

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

    def _owner(self, conn: Connection, bot: str) -> str | None:
        s = self.t["bot_state"]
        return conn.execute(select(s.c.owner).where(s.c.bot == bot)).scalar()

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

    # -- candidates --------------------------------------------------------------------------

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
        return _candidate(row) if row else None

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
            candidate = _candidate(row)
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

    def _forget_parents(self, conn: Connection, candidate_ids: Sequence[int]) -> None:
        """Drop the text of what these replies answered: it was kept for generation and review only,
        and someone else's words (possibly deleted on the service since) are not the ledger's to keep."""
        r = self.t["parents"]
        conn.execute(r.update().where(r.c.candidate_id.in_(candidate_ids), r.c.text != "").values(text=""))

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

    def queued(self, bot: str) -> list[Candidate]:
        """Candidates waiting for review, oldest first."""
        c = self.t["candidates"]
        with self._read() as conn:
            rows = conn.execute(select(c).where(c.c.bot == bot, c.c.state == QUEUED).order_by(c.c.id)).mappings().all()
        return [_candidate(row) for row in rows]

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
        return _candidate(row) if row else None

    def latest(self, bot: str, limit: int, states: Sequence[str] = EVERY_STATE) -> list[Candidate]:
        """The bot's latest ``limit`` candidates in ``states``, newest first (rejected ones carry the
        filter that rejected them as ``reason``)."""

        c = self.t["candidates"]
        with self._read() as conn:
            rows = conn.execute(select(c).where(c.c.bot == bot, c.c.state.in_(states)).order_by(c.c.id.desc()).limit(limit)).mappings().all()
        return [_candidate(row) for row in rows]

    def post_times(self, bot: str, since: datetime) -> list[datetime]:
        """When the bot posted, since ``since``, oldest first."""
        p = self.t["posts"]
        with self._read() as conn:
            return list(conn.execute(select(p.c.posted_at).where(p.c.bot == bot, p.c.posted_at >= since).order_by(p.c.posted_at)).scalars())

    # -- replies -----------------------------------------------------------------------------

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

    def add_reply(self, bot: str, parent: Incoming, reply: NewCandidate | None, skipped: str | None, *, per_thread: int, cooldown: float) -> str | None:
        """Claim ``parent`` for ``bot`` once, ever, with its reply or the reason it is not answered, in one transaction.

        The thread and author guards are checked again inside the transaction, so they hold even
        if two workers decided at once. Returns what was recorded: None for a stored reply, the
        reason for a skip, ``"seen"`` when the parent was claimed before (nothing written).
        """

        r, c = self.t["parents"], self.t["candidates"]
        with self._write() as conn:
            now = self.now(conn)
            if conn.execute(select(r.c.remote_id).where(r.c.bot == bot, r.c.remote_id == parent.id)).first() is not None:
                return "seen"
            if reply is not None:
                skipped = self._guard(conn, bot, parent, now, per_thread=per_thread, cooldown=cooldown)
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

    def reply_guard(self, bot: str, parent: Incoming, *, per_thread: int, cooldown: float) -> str | None:
        """Why the thread cap or the author's cooldown keeps ``bot`` from answering ``parent`` now, or None."""
        with self._read() as conn:
            return self._guard(conn, bot, parent, self.now(conn), per_thread=per_thread, cooldown=cooldown)

    def _guard(self, conn: Connection, bot: str, parent: Incoming, now: datetime, *, per_thread: int, cooldown: float) -> str | None:
        """Why ``parent`` must not be answered now by the thread cap or the author's cooldown, or None."""
        in_thread = self._answered(conn, bot, thread=parent.thread)
        if in_thread.count >= per_thread:
            return f"max_per_thread: {in_thread.count} replies in this thread already"
        to_author = self._answered(conn, bot, author=parent.author)
        if to_author.last_at is not None and now < to_author.last_at + timedelta(seconds=cooldown):
            return f"cooldown: answered {parent.author} at {show_time(to_author.last_at)}"
        return None

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


def _candidate(row: Any) -> Candidate:
    return Candidate(
        id=row["id"], bot=row["bot"], text=row["text"], label=row["label"], score=row["score"], state=row["state"],
        attempts=row["attempts"], claimed_at=row["claimed_at"], created_at=row["created_at"], rendered=row["rendered"],
        owner=row["owner"], lease_until=row["lease_until"], reason=row["reason"], reply_to=row["reply_to"],
    )  # fmt: skip
