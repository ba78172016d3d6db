"""The ledger's connection: database URLs, SQLite's settings, transactions, the clock every worker agrees on, and the schema on open."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from botkit.bots.ledger.records import LedgerError, utcnow
from botkit.bots.ledger.schema import MIGRATIONS, SCHEMA_VERSION, tables
from botkit.redact import Redactor, redact_url, split_userinfo

log = logging.getLogger(__name__)


#: A worker renews its leases a few times per lease; the default lets a dead worker's bots move in 30 s.
DEFAULT_LEASE_S = 30.0
SQLITE_TIMEOUT_S = 30.0
_SCHEMA_LOCK = 0x626F746B  # pg_advisory_xact_lock key for schema creation and migration ("botk")


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


class LedgerBase:
    """One database connection pool: transactions, the agreed clock, the schema on open, and the few
    helpers more than one room of the ledger uses. The rooms (leases, claims, history, replies) add the queries."""

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
        self.metadata, self.t = tables()
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

    def __enter__(self) -> Self:
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

    def _owner(self, conn: Connection, bot: str) -> str | None:
        s = self.t["bot_state"]
        return conn.execute(select(s.c.owner).where(s.c.bot == bot)).scalar()

    def _forget_parents(self, conn: Connection, candidate_ids: Sequence[int]) -> None:
        """Drop the text of what these replies answered: it was kept for generation and review only,
        and someone else's words (possibly deleted on the service since) are not the ledger's to keep."""
        r = self.t["parents"]
        conn.execute(r.update().where(r.c.candidate_id.in_(candidate_ids), r.c.text != "").values(text=""))
