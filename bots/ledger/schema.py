"""The ledger's tables, and the migrations that bring an older ledger up to them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 4


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


def tables() -> tuple[MetaData, dict[str, Table]]:
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
    tables()[1]["target_records"].create(conn, checkfirst=True)
    conn.exec_driver_sql(
        "INSERT INTO target_records (scope, key, value, recorded_at) SELECT 'outbox', CAST(candidate_id AS VARCHAR(200)), text, posted_at FROM outbox"
    )
    conn.exec_driver_sql("DROP TABLE outbox")


#: Upgrades from version N to N+1, run in order inside the schema transaction when an older ledger opens.
def _migrate_3_to_4(conn: Connection) -> None:
    """Replies: a candidate's link to its parent; the ``parents`` table comes from ``create_all``."""
    conn.exec_driver_sql("ALTER TABLE candidates ADD COLUMN reply_to TEXT")


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}
