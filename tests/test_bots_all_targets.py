"""Issue 11's "done when": one farm with a bot on each target (outbox, Reddit, X, Mastodon, Bluesky)
runs with ``botkit run`` against the fake services, and every post reaches its service exactly once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from test_bots_daemon import TESTS, every_target, run_to_the_end

POSTS = [f"farm post {n}: see https://example.com/{n}" for n in range(6)]


def botkit(*args: str, env: dict[str, str], cwd: Path) -> str:
    """A botkit command's output (it must succeed)."""
    done = subprocess.run([sys.executable, "-m", "botkit", *args], cwd=cwd, env={**os.environ, "PYTHONPATH": str(TESTS), **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_one_bot_on_every_target_posts_each_post_exactly_once(tmp_path: Path) -> None:
    with every_target(tmp_path, POSTS, answer_delay=0.0) as (config, env, services):
        listed = botkit("targets", env=env, cwd=tmp_path)
        run_to_the_end(config, env, services, len(POSTS))
        report = botkit("status", "-c", str(config), env=env, cwd=tmp_path)
    assert all(name in listed for name in ("outbox", "reddit", "twitter", "mastodon", "bluesky"))
    assert services.texts() == {bot: Counter(POSTS) for bot in "rxmb"}
    assert [s.visibility for s in services.mastodon.statuses] == ["unlisted"] * len(POSTS)
    assert all(r.value["facets"][0]["features"][0]["uri"].startswith("https://example.com/") for r in services.bluesky.posts())
    lines = (tmp_path / "outbox" / "o.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == POSTS
    for bot, kind in {"m": "mastodon", "b": "bluesky"}.items():
        assert f"{bot}\n  target:     {kind}\n" in report
    with sqlite3.connect(tmp_path / "botkit.db") as conn:
        urls = dict(conn.execute("SELECT bot, count(url) FROM posts WHERE url LIKE 'http%' GROUP BY bot").fetchall())
    assert urls == {"r": len(POSTS), "x": len(POSTS), "m": len(POSTS), "b": len(POSTS)}  # every post's URL, for status and history
    assert "mt" not in report.split() and "app-pw" not in report
