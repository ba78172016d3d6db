"""The bots' ledger: every candidate, every post, each bot's state and who runs it, in one SQL database.

Its rooms: :mod:`.schema` (tables, migrations), :mod:`.base` (connection, transactions, clock),
:mod:`.leases` (workers and bot leases), :mod:`.claims` (candidates, claims, limits),
:mod:`.history` (review, history, bot state, target records), :mod:`.replies` (parents heard),
:mod:`.records` (states and row types). :class:`Ledger` is all of them on one connection pool.

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
zone) and :class:`~.schema.UTCDateTime` converts at the boundary. Lease and post times come from the
database server's clock on PostgreSQL, so hosts with slightly different clocks agree.
"""

from __future__ import annotations

from pathlib import Path

from botkit.bots.ledger.base import DEFAULT_LEASE_S, SQLITE_TIMEOUT_S, parse_url, store_url
from botkit.bots.ledger.claims import Claims
from botkit.bots.ledger.history import History
from botkit.bots.ledger.leases import Leases
from botkit.bots.ledger.records import (
    APPROVED,
    CLAIMED,
    DAY,
    EVERY_STATE,
    FAILED,
    IN_DOUBT,
    POSTED,
    QUEUED,
    REJECTED,
    REVIEWED,
    WAITING,
    Answered,
    BotState,
    Busy,
    Candidate,
    LedgerError,
    NewCandidate,
    Posted,
    PostRecord,
    Wait,
    show_time,
    storable,
    utcnow,
)
from botkit.bots.ledger.replies import Replies
from botkit.bots.ledger.schema import SCHEMA_VERSION

__all__ = [
    "APPROVED", "CLAIMED", "DAY", "DEFAULT_LEASE_S", "EVERY_STATE", "FAILED", "IN_DOUBT", "POSTED", "QUEUED", "REJECTED", "REVIEWED",
    "SCHEMA_VERSION", "SQLITE_TIMEOUT_S", "WAITING", "Answered", "BotState", "Busy", "Candidate", "Ledger", "LedgerError", "NewCandidate",
    "PostRecord", "Posted", "Wait", "open_ledger", "parse_url", "show_time", "storable", "store_url", "utcnow",
]  # fmt: skip


class Ledger(Leases, Claims, History, Replies):
    """One database connection pool and the queries the bots need, room by room. Safe to share between threads."""


def open_ledger(store: str, base_dir: Path, db: str | None = None, *, lease: float = DEFAULT_LEASE_S) -> Ledger:
    """The ledger a config names (``store:``), unless ``--db URL`` (or ``$BOTKIT_DB``) points elsewhere."""
    return Ledger(db or store_url(store, base_dir), lease=lease)
