"""Fixtures shared by the test modules: a real PostgreSQL server for the ledger's PostgreSQL path,
``zone`` (tests that touch time run west and east of UTC), and ``live_bots`` (bots that post
prepared lines to a live target)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url
from botkit.config import load_config

from pgserver import PostgresServer, PostgresUnavailable
from zones import zone

__all__ = ["live_bots", "pg_url", "postgres", "zone"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the whole session, started only if some test asks for it (a start costs seconds).

    Skips, with the reason, where PostgreSQL cannot run; any other start failure is an error.
    """
    try:
        server = PostgresServer()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")
    with server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of a fresh, empty database, so tests never see each other's tables."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def live_bots(tmp_path: Path) -> Iterator[Callable[..., tuple[list[Bot], Ledger]]]:
    """``live_bots(target, posts, bots={"bot": ""}, worker=None)``: bots posting ``posts`` in order to a live target.

    ``target`` is the target mapping's keys as YAML flow text (``kind: mastodon, api_base_url: ...``),
    given to every bot with its limits lifted and fast retries; ``bots`` maps each bot's name to
    keys of its own (``access_token: ${OTHER}``). Every call reads config.yaml again, as a
    restarted daemon does; the ledgers are closed when the test ends.
    """
    ledgers: list[Ledger] = []

    def make(target: str, posts: list[str], *, bots: dict[str, str] | None = None, worker: str | None = None) -> tuple[list[Bot], Ledger]:
        (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
        config = tmp_path / "config.yaml"
        config.write_text(
            "defaults:\n  posts: posts.txt\n  filters: none\n  schedule: {every: 1s}\n  retry: {attempts: 3, backoff: 0.01s}\n"
            f"  target: {{{target}, live: true, limits: {{min_interval: 0s, daily_cap: null}}}}\n"
            "bots:\n" + "".join(f"  {name}: {{target: {{{own}}}}}\n" for name, own in (bots or {"bot": ""}).items()),
            encoding="utf-8",
        )
        ledger = Ledger(store_url("botkit.db", tmp_path))
        ledgers.append(ledger)
        return build_bots(load_config(config).bots, ledger, str(config), worker=worker), ledger

    yield make
    for ledger in ledgers:
        ledger.close()
