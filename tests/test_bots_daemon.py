"""The daemon as users run it: ``botkit run`` in a subprocess, stopped by SIGTERM, and killed with
SIGKILL at random moments again and again, against the fake Reddit and X servers.

Whatever the kills interrupt, every prepared post must reach each service exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fakes.reddit import FakeReddit
from fakes.twitter import FakeX
from zones import EAST

TESTS = Path(__file__).parent
POSTS = [f"post number {n} of the queue" for n in range(12)]
X_KEYS = {"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "at", "X_ACCESS_TOKEN_SECRET": "ats"}
FAST = "      limits: {min_interval: 0s, daily_cap: null}\n"


def daemon(config: Path, env: dict[str, str], fake_x: FakeX | None = None) -> subprocess.Popen[str]:
    """``botkit run CONFIG`` as a subprocess, its output in daemon.log; with ``fake_x``, its tweepy
    sessions routed there."""
    route = ["-m", "fakes.twitter", fake_x.url, "--"] if fake_x else ["-m", "botkit"]
    with open(config.parent / "daemon.log", "w", encoding="utf-8") as log:  # a file: a full pipe would stall the daemon
        return subprocess.Popen(
            [sys.executable, *route, "run", str(config)],
            cwd=config.parent,
            env={**os.environ, "PYTHONPATH": str(TESTS), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def output(config: Path) -> str:
    return (config.parent / "daemon.log").read_text(encoding="utf-8")


def stop(proc: subprocess.Popen[str], config: Path) -> str:
    """SIGTERM once the daemon is up (its handlers installed), then its whole output."""
    assert wait_for(lambda: "botkit: running" in output(config), 20), output(config)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return output(config)


def posted(config: Path) -> dict[str, int]:
    """Posts per bot in the ledger (read while the daemon may be writing: WAL allows it)."""
    db = config.parent / "botkit.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return dict(conn.execute("SELECT bot, count(*) FROM posts GROUP BY bot").fetchall())
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}


def wait_for(condition, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in POSTS), encoding="utf-8")
    return tmp_path


def test_sigterm_finishes_and_exits_cleanly(farm: Path) -> None:
    config = farm / "config.yaml"
    config.write_text(
        "defaults: {posts: posts.txt, filters: none, schedule: {every: 0.05s}}\nbots:\n  a: {}\n  b: {schedule: {cron: '0 0 1 1 *'}}\n",
        encoding="utf-8",
    )
    proc = daemon(config, {})
    assert wait_for(lambda: posted(config).get("a", 0) >= 3, 20)
    out = stop(proc, config)
    assert proc.returncode == 0, out
    assert "SIGTERM: finishing the posts in flight, then stopping" in out and out.rstrip().endswith("botkit: stopped")
    assert "b: posted" not in out  # a cron bot waits for its time; only interval bots start at once
    lines = (farm / "outbox" / "a.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == POSTS[: len(lines)]
    assert len(lines) == posted(config)["a"]


CRASH_POSTS = [f"crash test post {n}" for n in range(40)]
KILLS = 10


def test_sigkill_at_random_moments_never_posts_twice_nor_loses_a_post(tmp_path: Path) -> None:
    """The daemon is killed (SIGKILL) at random moments, restarted each time, then left to finish.

    The fakes wait a little between making a post and answering, so many kills land in the
    window where the service has the post and the ledger does not: reconciliation must find it.
    """
    rng = random.Random(5)
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in CRASH_POSTS), encoding="utf-8")
    (tmp_path / "xdg").mkdir()
    fast = "limits: {min_interval: 0s, daily_cap: null}"
    x_keys = ", ".join(f"{k.lower().removeprefix('x_')}: '${{{k}}}'" for k in X_KEYS)
    config = tmp_path / "config.yaml"
    config.write_text(
        "defaults: {posts: posts.txt, filters: none, schedule: {every: 0.1s}, retry: {attempts: 2, backoff: 0.05s}}\n"
        "bots:\n"
        f"  r: {{target: {{kind: reddit, site: applebot, subreddit: SubredditNN, contact: u/owner, live: true, {fast}}}}}\n"
        f"  x: {{target: {{kind: twitter, live: true, {fast}, {x_keys}}}}}\n"
        "  o: {}\n",
        encoding="utf-8",
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "TZ": EAST, **X_KEYS}  # the concurrency test runs west of UTC
    with FakeReddit(clients={"cid": "cs"}, users={"applebot": "pw"}) as reddit, FakeX({"ck": "at"}, answer_delay=0.05) as x:
        reddit.add_posts("SubredditNN", [])
        reddit.submit_delay = 0.05
        ini = reddit.praw_ini("applebot", client_id="cid", client_secret="cs", username="applebot", password="pw")
        (tmp_path / "xdg" / "praw.ini").write_text(ini, encoding="utf-8")
        for _ in range(KILLS):
            proc = daemon(config, env, x)
            time.sleep(rng.uniform(0.5, 1.3))  # start-up takes about 0.6 s: some kills land before any post
            proc.kill()
            proc.wait()
        proc = daemon(config, env, x)
        everything = {bot: len(CRASH_POSTS) for bot in "rxo"}
        done = wait_for(lambda: posted(config) == everything, 60)
        out = stop(proc, config)
        assert done, f"posted {posted(config)}\n{out}"
        assert proc.returncode == 0, out
    reconciled = sum(r.path.endswith("/submitted") for r in reddit.requests), sum(r.path.endswith("/tweets") and r.method == "GET" for r in x.requests)
    print(f"reconciliations after kills: reddit lookups {reconciled[0]}, X timeline lookups {reconciled[1]}")
    assert Counter(reddit.titles()) == Counter(CRASH_POSTS)  # each exactly once at "Reddit"
    assert Counter(x.texts()) == Counter(CRASH_POSTS)  # and at "X"
    lines = (tmp_path / "outbox" / "o.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == CRASH_POSTS  # in order, once each
    with sqlite3.connect(tmp_path / "botkit.db") as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM candidates GROUP BY state").fetchall())
    assert states == {"posted": 3 * len(CRASH_POSTS)}


def owners(config: Path) -> dict[str, str | None]:
    """Which worker holds each bot, from the ledger."""
    with sqlite3.connect(config.parent / "botkit.db", timeout=10) as conn:
        try:
            return dict(conn.execute("SELECT bot, owner FROM bot_state").fetchall())
        except sqlite3.OperationalError:
            return {}


def test_two_daemons_share_the_bots_and_a_killed_ones_move_to_the_other(farm: Path) -> None:
    names = ["a", "b", "c", "d"]
    config = farm / "config.yaml"
    config.write_text(
        "lease: 1s\ndefaults: {posts: posts.txt, filters: none, schedule: {every: 0.1s}}\nbots:\n" + "".join(f"  {n}: {{}}\n" for n in names),
        encoding="utf-8",
    )
    first = daemon(config, {})
    assert wait_for(lambda: "botkit: running" in output(config), 20)
    (farm / "daemon.log").rename(farm / "first.log")
    second = daemon(config, {})

    def split_evenly() -> bool:
        held = Counter(owner for owner in owners(config).values() if owner is not None)
        return len(held) == 2 and sorted(held.values()) == [2, 2]

    assert wait_for(split_evenly, 20), owners(config)
    survivor = next(o for o in owners(config).values() if f":{second.pid}:" in str(o))
    first.kill()
    first.wait()
    assert wait_for(lambda: set(owners(config).values()) == {survivor}, 10), owners(config)  # all four moved over
    assert wait_for(lambda: sum(posted(config).values()) == len(names) * len(POSTS), 30), posted(config)
    stop(second, config)
    assert set(owners(config).values()) == {None}  # a clean stop hands every bot back
    for name in names:
        lines = [line.split("  ", 2)[2] for line in (farm / "outbox" / f"{name}.txt").read_text(encoding="utf-8").splitlines()]
        assert lines == POSTS  # each post once, in order, whichever daemon made it
