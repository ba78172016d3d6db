"""The test PostgreSQL server (tests/pgserver.py) is a real PostgreSQL reached by SQLAlchemy URL."""

from __future__ import annotations

import sqlalchemy as sa

from pgserver import PostgresServer


def test_sqlalchemy_round_trip_on_real_postgres(pg_url: str, postgres: PostgresServer) -> None:
    # The password needs quoting; SQLAlchemy must read back exactly what the server was given.
    assert sa.make_url(pg_url).password == postgres.password
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert conn.scalar(sa.text("select version()")).startswith("PostgreSQL ")
            conn.execute(sa.text("create table notes (id serial primary key, body text not null)"))
            conn.execute(sa.text("insert into notes (body) values (:body)"), [{"body": "hello"}, {"body": "wörld"}])
        with engine.connect() as conn:
            assert conn.scalars(sa.text("select body from notes order by id")).all() == ["hello", "wörld"]
    finally:
        engine.dispose()


def test_skip_locked_skips_a_row_another_connection_holds(pg_url: str) -> None:
    """Two connections claiming work: the second must pass over the row the first has locked.

    SQLite has no row locks, so this only holds on a real server; it is what lets several bot
    processes share one ledger without claiming the same post.
    """
    engine = sa.create_engine(pg_url)
    claim = sa.text("select id from jobs order by id limit 1 for update skip locked")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table jobs (id int primary key)"))
            conn.execute(sa.text("insert into jobs values (1), (2)"))
        with engine.connect() as first, engine.connect() as second:
            with first.begin():
                assert first.scalar(claim) == 1
                with second.begin():
                    assert second.scalar(claim) == 2
            with second.begin():  # the first transaction is over, so its lock with it
                assert second.scalar(claim) == 1
    finally:
        engine.dispose()
