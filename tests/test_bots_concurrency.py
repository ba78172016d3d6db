"""One farm, several processes on one ledger: two daemons and a ``botkit run --once`` loop from
"cron", killed with SIGKILL at random moments and restarted, against the fake Reddit injecting
500s (some after making the post), in a zone west of UTC. On SQLite and on a real PostgreSQL.

Afterwards: no title twice on the server, every title on the server in the ledger's history,
the shared account's daily cap held across all processes, and posting carried on to the end.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import Farm, wait_for

from botkit.bots.ledger import Ledger

from fakes.reddit import FakeReddit
from zones import WEST

TESTS = Path(__file__).parent
SUB = "SubredditNN"
CAP = 8  # the daily cap of the account that bots a1 and a2 share
PLAIN = 40  # posts of each uncapped bot: more than the kills leave time for, so posting must go on after them
CHAOS_S = 18.0


def titles(bot: str, n: int) -> list[str]:
    return [f"{bot} title number {i}" for i in range(n)]


FILES = {"a1": titles("a1", 12), "a2": titles("a2", 12), "p1": titles("p1", PLAIN), "o": titles("o", PLAIN)}


def write_farm(folder: Path) -> Path:
    for bot, lines in FILES.items():
        (folder / f"{bot}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    reddit = f"kind: reddit, subreddit: {SUB}, contact: u/owner, live: true"
    config = folder / "config.yaml"
    config.write_text(
        "lease: 1s\n"
        "defaults: {filters: none, schedule: {every: 0.2s}, retry: {attempts: 2, backoff: 0.05s}, buffer: {size: 4, low: 2}}\n"
        "bots:\n"
        # a1 and a2 post as the same account (two praw sites, one user): they share its cap.
        f"  a1: {{posts: a1.txt, target: {{{reddit}, site: apple1, limits: {{min_interval: 0s, daily_cap: {CAP}}}}}}}\n"
        f"  a2: {{posts: a2.txt, target: {{{reddit}, site: apple2, limits: {{min_interval: 0s, daily_cap: {CAP}}}}}}}\n"
        f"  p1: {{posts: p1.txt, target: {{{reddit}, site: pear, limits: {{min_interval: 0s, daily_cap: null}}}}}}\n"
        "  o: {posts: o.txt}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeReddit]:
    users = {"applebot": "apple-pw", "pearbot": "pear-pw"}
    with FakeReddit(clients={"cid": "csecret"}, users=users) as server:
        server.add_posts(SUB, [])
        server.submit_delay = 0.05  # widen the window between making a post and answering
        (tmp_path / "xdg").mkdir()
        sites = [
            server.praw_ini("apple1", client_id="cid", client_secret="csecret", username="applebot", password="apple-pw"),
            server.praw_ini("apple2", client_id="cid", client_secret="csecret", username="applebot", password="apple-pw"),
            server.praw_ini("pear", client_id="cid", client_secret="csecret", username="pearbot", password="pear-pw"),
        ]
        (tmp_path / "xdg" / "praw.ini").write_text("\n".join(sites), encoding="utf-8")
        yield server


@pytest.mark.slow  # SIGKILLs at random moments: tens of seconds; ./task test runs it, -m 'not slow' skips it
def test_two_daemons_and_cron_killed_at_random_post_each_title_once(tmp_path: Path, fake: FakeReddit, ledger_url: str) -> None:
    rng = random.Random(8)
    config = write_farm(tmp_path)
    # The URL reaches the processes through $BOTKIT_DB, as a user keeps a password out of crontabs.
    farm = Farm(config, {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "TZ": WEST, "BOTKIT_DB": ledger_url})
    farm.start()
    kills = 0
    try:
        deadline = time.monotonic() + CHAOS_S
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.6, 1.6))
            fake.fail_submit(500, post_first=rng.random() < 0.5)  # the next submission fails, maybe after posting
            if rng.random() < 0.7:
                farm.kill_one(rng)
                kills += 1
        chaos_titles = len(fake.titles())

        def settled() -> bool:
            by_bot = Counter(title.split()[0] for title in fake.titles())
            return by_bot["p1"] == PLAIN and by_bot["a1"] + by_bot["a2"] == CAP and _outbox(tmp_path) == PLAIN

        done = wait_for(settled, 90)
    finally:
        farm.stop()
    out = farm.output()
    print(f"{kills} kills, {farm.started} processes started, {chaos_titles} titles posted during the kills")
    assert done, f"server: {Counter(t.split()[0] for t in fake.titles())}, outbox {_outbox(tmp_path)}\n{out}"
    server = Counter(fake.titles())
    assert [title for title, n in server.items() if n > 1] == []  # no title twice on the server
    with Ledger(ledger_url) as ledger:
        recorded = Counter(r.text for bot in FILES for r in ledger.history(bot))
        assert all(ledger.claimed(bot) is None for bot in FILES), "a claim was left unreconciled"
    assert server == Counter({t: n for t, n in recorded.items() if not t.startswith("o ")})  # every post in history, once
    assert sum(n for t, n in server.items() if t.startswith(("a1 ", "a2 "))) == CAP  # the shared cap, across processes
    assert chaos_titles > 0 and server[f"p1 title number {PLAIN - 1}"] == 1  # posting went on after the kills
    assert "Traceback" not in out, out


def _outbox(folder: Path) -> int:
    path = folder / "outbox" / "o.txt"
    if not path.exists():
        return 0
    lines = [line.split("  ", 2)[2] for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(set(lines)), "the outbox has a line twice"
    return len(lines)
