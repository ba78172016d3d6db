"""The ledger where it fails in the field: several processes at once, edited posts files, broken
text, a corrupt or locked database, a server that is down, passwords in URLs. SQLite, and a real
PostgreSQL where the test says so."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botkit.bots.bot import build_bots
from botkit.bots.daemon import run_once
from botkit.bots.ledger import APPROVED, SCHEMA_VERSION, Ledger, LedgerError, NewCandidate
from botkit.cli import main
from botkit.config import load_config
from botkit.redact import redact_url

ONE_BOT = """\
    store: botkit.db
    bots:
      apple: {posts: posts.txt, filters: none, schedule: {every: 10s}}
"""


def write(folder: Path, posts: list[str], body: str = ONE_BOT) -> Path:
    (folder / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text(textwrap.dedent(body), encoding="utf-8")
    return config


def outbox(folder: Path, bot: str = "apple") -> list[str]:
    path = folder / "outbox" / f"{bot}.txt"
    return [line.split("  ", 2)[2] for line in path.read_bytes().decode().split("\n") if line] if path.exists() else []


def once(config: Path, *args: str) -> int:
    return main(["run", str(config), "--once", *args])


# -- prepared posts ------------------------------------------------------------------------------


def test_editing_the_posts_file_never_skips_nor_repeats_a_post(tmp_path: Path) -> None:
    body = ONE_BOT.replace("filters: none", "filters: none, buffer: {size: 2, low: 1}")
    config = write(tmp_path, ["one", "two", "three", "four"], body)
    for _ in range(2):
        once(config)  # "one" and "two" taken and posted; "three" sits in the buffer
    # The owner removes the lines already posted and inserts a new one at the top.
    (tmp_path / "posts.txt").write_text("urgent news\nthree\nfour\nfive\n", encoding="utf-8")
    for _ in range(6):
        once(config)
    # "three" and "four" were in the buffer when the file changed; nothing lost, nothing twice.
    assert outbox(tmp_path) == ["one", "two", "three", "four", "urgent news", "five"]


def test_a_line_with_a_lone_surrogate_is_skipped_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "posts.jsonl").write_text('{"text": "fine"}\n{"text": "bad \\ud800 text"}\n{"text": "after"}\n', encoding="utf-8")
    config = write(tmp_path, [], ONE_BOT.replace("posts.txt", "posts.jsonl"))
    for _ in range(3):
        assert once(config) == 0
    assert outbox(tmp_path) == ["fine", "after"]
    with Ledger(f"sqlite:///{tmp_path / 'botkit.db'}") as ledger, ledger.engine.connect() as conn:
        ((text, state, reason),) = conn.exec_driver_sql("SELECT text, state, reason FROM candidates WHERE text LIKE 'bad%'")
    assert (text, state) == ("bad \ufffd text", "rejected") and "lone surrogate" in reason
    assert "Traceback" not in capsys.readouterr().err


def test_the_outbox_ends_lines_at_newlines_only(tmp_path: Path) -> None:
    posts = ["a line separator \u2028 inside", "a form feed \f inside", "next"]
    (tmp_path / "posts.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in posts), encoding="utf-8")
    config = write(tmp_path, [], ONE_BOT.replace("posts.txt", "posts.jsonl"))
    for _ in range(4):
        once(config)
    assert outbox(tmp_path) == posts  # each once: none mistaken for "not written yet"


# -- races between processes --------------------------------------------------------------------


def test_a_refill_from_a_stale_position_stores_nothing(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        assert ledger.add_candidates("apple", [NewCandidate("one", APPROVED)], start=0, taken=1)
        assert not ledger.add_candidates("apple", [NewCandidate("one", APPROVED)], start=0, taken=1)  # the loser of a race
        assert ledger.waiting("apple") == 1 and ledger.state("apple").supplied == 1


def test_once_from_cron_skips_a_bot_a_daemon_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, ["one", "two"])
    with Ledger(f"sqlite:///{tmp_path / 'botkit.db'}") as ledger:
        assert ledger.acquire("apple", "otherhost/1:4242:abc") is None  # a daemon on another host holds it
        assert once(config) == 0
        assert "apple: skipped: run by otherhost pid 4242" in capsys.readouterr().out
        assert main(["status", "-c", str(config)]) == 0
        assert "run by:     otherhost pid 4242 (botkit run --once, lease until" in capsys.readouterr().out
    assert outbox(tmp_path) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_that_start_at_once_all_open_the_ledger(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    code = "import sys; from botkit.bots.ledger import Ledger; Ledger(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [proc.communicate(timeout=60)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6, errors
    with Ledger(url) as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalars().all() == [SCHEMA_VERSION]


def test_a_version_1_ledger_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the schema botkit 0.1 wrote
        conn.executescript(
            """
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE candidates (id INTEGER PRIMARY KEY, bot VARCHAR(200) NOT NULL, text TEXT NOT NULL, label VARCHAR(200),
                score FLOAT, temperature FLOAT, state VARCHAR(16) NOT NULL, reason TEXT, attempts INTEGER NOT NULL,
                created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, claimed_at DATETIME);
            CREATE TABLE posts (id INTEGER PRIMARY KEY, bot VARCHAR(200) NOT NULL, target VARCHAR(100) NOT NULL, remote_id VARCHAR(200),
                url TEXT, posted_at DATETIME NOT NULL, candidate_id INTEGER NOT NULL UNIQUE REFERENCES candidates (id), note TEXT);
            CREATE TABLE bot_state (bot VARCHAR(200) PRIMARY KEY, last_post_at DATETIME, last_error TEXT, last_error_at DATETIME,
                next_run_at DATETIME, not_before DATETIME, disabled TEXT, supplied INTEGER NOT NULL);
            CREATE TABLE outbox (id INTEGER PRIMARY KEY, bot VARCHAR(200) NOT NULL, candidate_id INTEGER NOT NULL UNIQUE,
                text TEXT NOT NULL, posted_at DATETIME NOT NULL);
            INSERT INTO candidates VALUES (1, 'apple', 'old post', NULL, NULL, NULL, 'posted', NULL, 1,
                '2026-01-01 10:00:00', '2026-01-01 10:00:00', '2026-01-01 10:00:00');
            INSERT INTO posts VALUES (1, 'apple', 'outbox', '#1', NULL, '2026-01-01 10:00:00', 1, NULL);
            INSERT INTO outbox VALUES (1, 'apple', 1, 'old post', '2026-01-01 10:00:00');
            INSERT INTO bot_state VALUES ('apple', '2026-01-01 10:00:00', NULL, NULL, NULL, NULL, NULL, 1);
            """
        )
    with Ledger(f"sqlite:///{db}") as ledger:
        (record,) = ledger.history("apple")
        assert record.text == "old post" and record.posted_at.isoformat() == "2026-01-01T10:00:00+00:00"
        assert ledger.acquire("apple", "me") is None
        assert ledger.recorded("outbox", "1") == ("old post", record.posted_at)  # the outbox's table moved to target_records (v3)


# -- a broken database ---------------------------------------------------------------------------


def test_a_corrupt_sqlite_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, ["one"])
    (tmp_path / "botkit.db").write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    assert once(config) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("botkit: error: ledger sqlite:///") and "file is not a database" in err


def test_a_locked_database_fails_each_tick_and_the_run_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = ONE_BOT + "      pear: {posts: posts.txt, filters: none}\n"
    config = write(tmp_path, ["one", "two"], body)
    url = f"sqlite:///{tmp_path / 'botkit.db'}?timeout=0.3"
    with Ledger(url) as ledger:
        bots = build_bots(load_config(config).bots, ledger, str(config))
        blocker = sqlite3.connect(tmp_path / "botkit.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock for longer than the timeout
        try:
            results = run_once(bots, ledger)  # every tick fails, the error handler's own write too: no exception
            assert [r.outcome for r in results] == ["error", "error"]
            assert all("database is locked" in r.message for r in results)
            assert once(config, "--db", url) == 1  # a new run cannot even open it: one line, not a traceback
            err = capsys.readouterr().err
            assert "botkit: error: ledger sqlite:///" in err and "database is locked" in err and "Traceback" not in err
        finally:
            blocker.rollback()
            blocker.close()
        assert [r.outcome for r in run_once(bots, ledger)] == ["posted", "posted"]


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("postgresql+psycopg://bot:s3cr@t:pw/x@127.0.0.1:1/farm", "bot:***@127.0.0.1:1/farm", ["s3cr", "t:pw"]),  # nothing listens on port 1
        ("postgresql+psycopg://bot:p%40ss@127.0.0.1:notaport/farm", "bot:***@127.0.0.1:notaport/farm", ["p%40ss", "p@ss"]),
        # libpq takes the password as a query parameter too
        ("postgresql+psycopg://u@127.0.0.1:1/db?password=Xq7-pw", "u@127.0.0.1:1/db?password=***: cannot open (", ["Xq7"]),
        ("postgresql+psycopg://u@127.0.0.1:1/db?sslmode=disable&password=p%40Xq7&application_name=a", "password=***&application_name=a", ["Xq7"]),
    ],
)
def test_database_urls_never_show_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, shown: str, secrets: list[str]) -> None:
    config = write(tmp_path, ["one"])
    assert once(config, "--db", url) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("botkit: error: ledger postgresql+psycopg://") and shown in err, err
    for part in secrets:
        assert part not in err


def test_redact_url_hides_everything_between_user_and_host() -> None:
    assert redact_url("postgresql://u:a@b:c@host/db") == "postgresql://u:***@host/db"
    assert redact_url("postgresql://u@host/db") == "postgresql://u@host/db"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert redact_url("postgresql://u@host/db?password=a@b&sslmode=require") == "postgresql://u@host/db?password=***&sslmode=require"


def test_botkit_db_reads_the_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, ["one"])
    monkeypatch.setenv("BOTKIT_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert once(config) == 0
    assert (tmp_path / "env.db").exists() and not (tmp_path / "botkit.db").exists()
    assert main(["history", "apple", "-c", str(config)]) == 0
    assert "one" in capsys.readouterr().out


def test_a_farm_on_postgresql(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, ["one", "two", "three"], ONE_BOT.replace("filters: none", "filters: none, target: {kind: outbox, limits: {daily_cap: 2}}"))
    for _ in range(3):
        assert once(config, "--db", pg_url) == 0
    out = capsys.readouterr().out
    assert out.count("apple: posted") == 2 and "daily cap of 2 posts reached" in out
    assert main(["status", "-c", str(config), "--db", pg_url]) == 0
    report = capsys.readouterr().out
    assert "queue:      1 waiting" in report and "p@ss" not in report and "p%40ss" not in report
    assert outbox(tmp_path) == ["one", "two"]
    with pytest.raises(LedgerError, match="newer than this botkit"):
        with Ledger(pg_url) as ledger, ledger.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1}")
        Ledger(pg_url)
