"""What the ledger holds and returns: the candidate states and the rows as Python values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botkit.errors import BotkitError

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


def candidate_of(row: Any) -> Candidate:
    """A candidates row as a :class:`Candidate`."""
    return Candidate(
        id=row["id"], bot=row["bot"], text=row["text"], label=row["label"], score=row["score"], state=row["state"],
        attempts=row["attempts"], claimed_at=row["claimed_at"], created_at=row["created_at"], rendered=row["rendered"],
        owner=row["owner"], lease_until=row["lease_until"], reason=row["reason"], reply_to=row["reply_to"],
    )  # fmt: skip
