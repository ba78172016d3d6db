"""Fixtures shared by the test modules: a real PostgreSQL server for the ledger's PostgreSQL path,
and ``zone`` (tests that touch time run west and east of UTC)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pgserver import PostgresServer, PostgresUnavailable
from zones import zone

__all__ = ["pg_url", "postgres", "zone"]


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
