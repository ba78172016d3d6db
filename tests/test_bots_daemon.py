"""The daemon as users run it: ``botkit run`` in a subprocess, stopped by SIGTERM, and killed with
SIGKILL at random moments again and again, against the fake Reddit, X, Mastodon and Bluesky servers.

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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from console_farm import BEARER, TOKEN
from starlette.testclient import TestClient

from botkit.bots.ledger import Ledger, show_time, store_url
from botkit.cli import main
from botkit.config import load_config
from botkit.console.app import create_app

from fakes import Answer
from fakes.bluesky import FakeBluesky
from fakes.mastodon import FakeMastodon
from fakes.reddit import FakeReddit
from fakes.twitter import FakeX
from zones import EAST

TESTS = Path(__file__).parent
POSTS = [f"post number {n} of the queue" for n in range(12)]
X_KEYS = {"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "at", "X_ACCESS_TOKEN_SECRET": "ats"}
SOCIAL_KEYS = {"MASTODON_TOKEN": "mt", "BLUESKY_APP_PASSWORD": "app-pw"}
BLUESKY_HANDLE = "farm.bsky.social"
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


@dataclass(frozen=True)
class Services:
    """The fake services a farm with every target posts to."""

    reddit: FakeReddit
    x: FakeX
    mastodon: FakeMastodon
    bluesky: FakeBluesky

    def texts(self) -> dict[str, Counter[str]]:
        """What each service holds, by the name of the bot that posts there."""
        held = [self.reddit.titles(), self.x.texts(), self.mastodon.texts(), self.bluesky.texts()]
        return {bot: Counter(texts) for bot, texts in zip("rxmb", held, strict=True)}


@contextmanager
def every_target(
    tmp_path: Path, posts: list[str], *, answer_delay: float, retry: str = "{attempts: 2, backoff: 0.05s}"
) -> Iterator[tuple[Path, dict[str, str], Services]]:
    """A farm with one bot on each target (o: outbox, r: Reddit, x: X, m: Mastodon, b: Bluesky), the
    environment ``botkit run`` needs for it, and the fake services, each ``answer_delay`` slow to answer a post."""
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    (tmp_path / "xdg").mkdir()
    with ExitStack() as stack:
        reddit = stack.enter_context(FakeReddit(clients={"cid": "cs"}, users={"applebot": "pw"}))
        x = stack.enter_context(FakeX({"ck": "at"}, answer_delay=answer_delay))
        mastodon = stack.enter_context(FakeMastodon({SOCIAL_KEYS["MASTODON_TOKEN"]: "toots"}, answer_delay=answer_delay))
        bluesky = stack.enter_context(FakeBluesky({BLUESKY_HANDLE: SOCIAL_KEYS["BLUESKY_APP_PASSWORD"]}, answer_delay=answer_delay))
        reddit.add_posts("SubredditNN", [])
        reddit.submit_delay = answer_delay
        ini = reddit.praw_ini("applebot", client_id="cid", client_secret="cs", username="applebot", password="pw")
        (tmp_path / "xdg" / "praw.ini").write_text(ini, encoding="utf-8")
        fast = "live: true, limits: {min_interval: 0s, daily_cap: null}"
        x_keys = ", ".join(f"{k.lower().removeprefix('x_')}: '${{{k}}}'" for k in X_KEYS)
        config = tmp_path / "config.yaml"
        config.write_text(
            f"defaults: {{posts: posts.txt, filters: none, schedule: {{every: 0.1s}}, retry: {retry}}}\n"
            "bots:\n"
            f"  r: {{target: {{kind: reddit, site: applebot, subreddit: SubredditNN, contact: u/owner, {fast}}}}}\n"
            f"  x: {{target: {{kind: twitter, {fast}, {x_keys}}}}}\n"
            f"  m: {{target: {{kind: mastodon, api_base_url: '{mastodon.url}', access_token: '${{MASTODON_TOKEN}}', {fast}}}}}\n"
            f"  b: {{target: {{kind: bluesky, handle: {BLUESKY_HANDLE}, app_password: '${{BLUESKY_APP_PASSWORD}}', base_url: '{bluesky.url}', {fast}}}}}\n"
            "  o: {}\n",
            encoding="utf-8",
        )
        env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "TZ": EAST, **X_KEYS, **SOCIAL_KEYS}  # the concurrency test runs west of UTC
        yield config, env, Services(reddit, x, mastodon, bluesky)


def lookups(services: Services) -> dict[str, int]:
    """How often each service was asked whether a post went out (the targets' reconciliations)."""
    return {
        "reddit": sum(r.path.endswith("/submitted") for r in services.reddit.requests),
        "X": sum(r.path.endswith("/tweets") and r.method == "GET" for r in services.x.requests),
        "Mastodon": sum(r.path.endswith("/statuses") and r.method == "GET" for r in services.mastodon.requests),
        "Bluesky": sum(r.path.endswith("getRecord") and r.query.get("collection") == "app.bsky.feed.post" for r in services.bluesky.requests),
    }


def run_to_the_end(config: Path, env: dict[str, str], services: Services, posts: int) -> None:
    """``botkit run`` until each of the five bots has ``posts`` posts, then SIGTERM: it must stop cleanly."""
    proc = daemon(config, env, services.x)
    everything = dict.fromkeys("rxmbo", posts)
    done = wait_for(lambda: posted(config) == everything, 60)
    out = stop(proc, config)
    assert done, f"posted {posted(config)}\n{out}"
    assert proc.returncode == 0, out


@pytest.mark.slow  # SIGKILLs at random moments: tens of seconds; ./task test runs it, -m 'not slow' skips it
def test_sigkill_at_random_moments_never_posts_twice_nor_loses_a_post(tmp_path: Path) -> None:
    """The daemon is killed (SIGKILL) at random moments, restarted each time, then left to finish.

    The fakes wait a little between making a post and answering, so many kills land in the
    window where the service has the post and the ledger does not: reconciliation must find it.
    """
    rng = random.Random(5)
    with every_target(tmp_path, CRASH_POSTS, answer_delay=0.05) as (config, env, services):
        for _ in range(KILLS):
            proc = daemon(config, env, services.x)
            time.sleep(rng.uniform(0.5, 1.3))  # start-up takes about 0.6 s: some kills land before any post
            proc.kill()
            proc.wait()
        run_to_the_end(config, env, services, len(CRASH_POSTS))
    print(f"reconciliations after kills: {lookups(services)}")
    assert services.texts() == {bot: Counter(CRASH_POSTS) for bot in "rxmb"}  # each exactly once at each service
    assert [c[1] for c in services.bluesky.calls()].count("com.atproto.server.createSession") <= 2  # the session outlives the kills
    lines = (tmp_path / "outbox" / "o.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("  ", 2)[2] for line in lines] == CRASH_POSTS  # in order, once each
    with sqlite3.connect(tmp_path / "botkit.db") as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM candidates GROUP BY state").fetchall())
    assert states == {"posted": 5 * len(CRASH_POSTS)}


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


# -- a clean stop settles what it started ------------------------------------------------------

IN_DOUBT = "in doubt (claimed, not confirmed)"
LOST = "the post whose answer was lost"
#: A lost answer leaves the bot waiting a minute to retry: a SIGTERM lands in that wait.
SLOW_RETRY = "{attempts: 3, backoff: 60s}"


def lose_the_answers(services: Services, bots: str) -> None:
    """The next post to each service of ``bots`` is made, and its answer lost (the connection drops)."""
    if "r" in bots:
        services.reddit.drop_submit(post_first=True)
    if "x" in bots:
        services.x.fail_next(0, post_first=True)
    if "m" in bots:
        services.mastodon.fail_next(Answer(0), act_first=True)
    if "b" in bots:
        services.bluesky.fail_next(Answer(0), act_first=True)


def waiting_to_retry(config: Path, bots: str) -> bool:
    """Every bot of ``bots`` logged its first failed try and now waits out its backoff."""
    out = output(config)
    return all(f"{bot}: try 1 of 3:" in out for bot in bots)


def states(config: Path) -> dict[str, str]:
    """Each bot's candidate states, from the ledger (one candidate per bot here)."""
    with sqlite3.connect(config.parent / "botkit.db") as conn:
        return dict(conn.execute("SELECT bot, state FROM candidates").fetchall())


def test_sigterm_in_the_retry_wait_settles_each_lost_answer_with_one_lookup(tmp_path: Path, zone: str) -> None:
    """Every service made the post and lost its answer; SIGTERM comes while the bots wait to retry.

    The stop cuts the minute's backoff short, looks each claim up once, finds the post and records
    it: the ledger says posted, once, as the service does, and no later start is needed for that.
    """
    with every_target(tmp_path, [LOST], answer_delay=0, retry=SLOW_RETRY) as (config, env, services):
        lose_the_answers(services, "rxmb")
        proc = daemon(config, {**env, "TZ": zone}, services.x)
        assert wait_for(lambda: waiting_to_retry(config, "rxmb"), 60), output(config)
        began = time.monotonic()
        out = stop(proc, config)
        took = time.monotonic() - began
        assert proc.returncode == 0, out
        assert took < 20, f"the stop took {took:.1f}s\n{out}"  # not the minute's backoff
        assert services.texts() == {bot: Counter([LOST]) for bot in "rxmb"}
        assert lookups(services) == {"reddit": 1, "X": 1, "Mastodon": 1, "Bluesky": 1}  # one each, no retry loop
    assert posted(config) == dict.fromkeys("rxmbo", 1)
    assert states(config) == dict.fromkeys("rxmbo", "posted")
    for bot in "rxmb":
        assert sum(line.startswith(f"{bot}: posted: ") and line.endswith("(found by its lookup on the way out)") for line in out.splitlines()) == 1, out
    print(f"stop with four lookups took {took:.2f}s")


def test_a_service_unreachable_at_stop_leaves_its_claim_in_doubt_and_every_view_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mastodon made the post and lost its answer, then went down before the SIGTERM: the stop's lookup
    fails, the claim stays (the next start looks it up), one line says so, and ``botkit history``,
    ``botkit status`` and the console show the candidate in doubt, with since when."""
    with every_target(tmp_path, [LOST], answer_delay=0, retry=SLOW_RETRY) as (config, env, services):
        lose_the_answers(services, "m")
        proc = daemon(config, env, services.x)
        assert wait_for(lambda: waiting_to_retry(config, "m") and posted(config) == dict.fromkeys("rxbo", 1), 60), output(config)
        services.mastodon.stop()  # the instance is unreachable from now on
        out = stop(proc, config)
        assert proc.returncode == 0, out
        assert services.mastodon.texts() == [LOST]  # live on the service
    assert states(config) == {**dict.fromkeys("rxbo", "posted"), "m": "claimed"}
    with Ledger(store_url("botkit.db", tmp_path)) as ledger:
        claimed = ledger.claimed("m")
        assert claimed is not None and claimed.claimed_at is not None
        since = show_time(claimed.claimed_at)
        said = [line for line in out.splitlines() if line.startswith("m: ") and "on the way out" in line]
        assert said == [f"m: error: candidate {claimed.id} left {IN_DOUBT}: its lookup on the way out failed ({said[0].split('failed (', 1)[1]}"], out
        assert "looked up again at the next start" in said[0]

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        assert main(["history", "m", str(config)]) == 0
        history = capsys.readouterr().out
        assert history.startswith(f"{since}  {IN_DOUBT}  candidate {claimed.id}, looked up at the next tick  {LOST}"), history
        assert main(["status", str(config)]) == 0
        assert f"  in flight:  candidate {claimed.id} {IN_DOUBT} since {since}; looked up at the next tick" in capsys.readouterr().out

        client = TestClient(create_app(load_config(config), ledger, TOKEN))
        page = client.get("/bots/m", headers=BEARER).text
        assert f'<tr class="in-doubt" id="in-doubt-{claimed.id}">' in page and f"candidate {claimed.id} {IN_DOUBT} since {since}" in page
        assert LOST in page and "1 in doubt" in page
        assert f"candidate {claimed.id} {IN_DOUBT}" in client.get("/", headers=BEARER).text
        (view,) = [bot for bot in client.get("/api/status", headers=BEARER).json()["bots"] if bot["name"] == "m"]
        assert view["in_doubt"]["candidate"] == claimed.id and view["in_doubt"]["text"] == LOST
