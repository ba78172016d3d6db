"""A farm of 100 bots against the fake Reddit and X servers, and the ledger at 1,000,000 rows.

Part 1 runs the real daemon (``botkit run``, a child process) with ``--bots`` bots on a short
interval for ``--seconds``: a third post to the fake Reddit (each its own account), a third to the
fake X (each its own token), a third to the outbox. It reports posts/s, the daemon's CPU and
memory (from /proc and ``os.wait4``), and checks that no service received anything twice.

Part 2 fills a ledger with ``--rows`` candidates (half of them posted) over the same bots and
times the queries a tick and ``botkit status`` make, which must stay in the milliseconds.

    .venv/bin/python bench/farm_scale.py                           # 100 bots, 120 s, 1,000,000 rows
    .venv/bin/python bench/farm_scale.py --seconds 30 --rows 100000  # a quick look

Exits 1 on a duplicate, a lost post or a slow query.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from farm_config import FarmConfig  # noqa: E402

from fakes.reddit import FakeReddit  # noqa: E402
from fakes.twitter import FakeX  # noqa: E402

SLOW_QUERY_MS = 50.0
CLOCK = os.sysconf("SC_CLK_TCK")


def write_farm(folder: Path, bots: int, posts: int, reddit: FakeReddit, x: FakeX, interval: float) -> Path:
    """A third of the bots post to the fake Reddit, a third to the fake X, a third to the outbox."""
    farm = FarmConfig(folder, [f"defaults: {{filters: none, schedule: {{every: {interval}s}}, buffer: {{size: 20, low: 5}}}}"])
    for n in range(bots):
        name = f"bot{n:03d}"
        kind = n % 3
        target = farm.reddit(name, reddit) if kind == 0 else farm.twitter(name, x) if kind == 1 else "kind: outbox"
        farm.add(name, [f"{name} says hello, post {i}" for i in range(posts)], target)
    return farm.write()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def posted_count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def farm(bots: int, seconds: float, interval: float) -> bool:
    print(f"== farm: {bots} bots every {interval:g}s for {seconds:g}s (reddit / X / outbox in thirds)")
    posts = int(seconds / interval) + 20  # more than any bot can post in the run
    with tempfile.TemporaryDirectory() as tmp, FakeReddit(clients={"farm": "farm-secret"}) as reddit, FakeX() as x:
        folder = Path(tmp)
        reddit.add_posts("SubredditNN", [])
        config = write_farm(folder, bots, posts, reddit, x, interval)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "XDG_CONFIG_HOME": str(folder / "xdg")}
        started = time.monotonic()
        log = open(folder / "daemon.log", "w+", encoding="utf-8")  # a file, not a pipe: a full pipe would block the daemon
        proc = subprocess.Popen(
            [sys.executable, "-m", "fakes.twitter", x.url, "--", "run", str(config)],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        samples: list[tuple[float, float, float]] = []  # (wall, cpu, rss)
        while time.monotonic() - started < seconds and proc.poll() is None:
            time.sleep(1.0)
            samples.append((time.monotonic() - started, cpu_seconds(proc.pid), rss_mib(proc.pid)))
        first_post_wall = next((w for w, _, _ in samples), 0.0)
        count = posted_count(folder / "botkit.db")
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        log.seek(0)
        stderr = log.read()
        log.close()
        warnings = [line for line in stderr.splitlines() if line.startswith("botkit: WARNING") and "finishing the posts" not in line]
        wall = time.monotonic() - started
        final = posted_count(folder / "botkit.db")
        reddit_dupes = sum(n - 1 for n in Counter(reddit.titles()).values() if n > 1)
        x_dupes = sum(n - 1 for n in Counter((t.access_token, t.text) for t in x.tweets).values() if n > 1)
        outbox = [p for p in (folder / "outbox").glob("*.txt")] if (folder / "outbox").exists() else []
        outbox_lines = [line.split("  ", 2)[2] for p in outbox for line in p.read_text(encoding="utf-8").splitlines()]
        outbox_dupes = len(outbox_lines) - len(set(outbox_lines))
        at_services = len(reddit.submissions) + len(x.tweets) + len(outbox_lines)
        steady = [s for s in samples if s[0] >= 10.0] or samples
        cpu_pct = 100 * (steady[-1][1] - steady[0][1]) / max(steady[-1][0] - steady[0][0], 1e-9) if len(steady) > 1 else 0.0
        print(f"posts:            {final:,} in {wall:.0f} s = {final / wall:.1f} posts/s "
              f"(ideal {bots / interval:.1f}/s; {count:,} at {seconds:g}s, first sample at {first_post_wall:.0f}s)")  # fmt: skip
        print(f"at the services:  reddit {len(reddit.submissions):,}, X {len(x.tweets):,}, outbox {len(outbox_lines):,}")
        print(f"duplicates:       reddit {reddit_dupes}, X {x_dupes}, outbox {outbox_dupes}")
        print(f"daemon warnings:  {len(warnings)}" + (f", e.g. {warnings[0][:300]}" if warnings else ""))
        print(f"daemon CPU:       {cpu_pct:.0f}% of one core (after the first 10 s); peak RSS {usage.ru_maxrss / 1024:.0f} MiB, "
              f"median RSS {statistics.median(s[2] for s in samples):.0f} MiB")  # fmt: skip
        ok = os.waitstatus_to_exitcode(status) == 0 and reddit_dupes == x_dupes == outbox_dupes == 0 and at_services == final
        if not ok:
            print(f"FAILED: exit {os.waitstatus_to_exitcode(status)}, {at_services} posts at the services vs {final} in the ledger\n{stderr[-2000:]}")
        return ok


def ledger(bots: int, rows: int) -> bool:
    from botkit.bots.ledger import APPROVED, POSTED, Ledger, utcnow
    from botkit.bots.targets import Limits, PostResult

    print(f"\n== ledger: {rows:,} candidates over {bots} bots, half posted")
    with tempfile.TemporaryDirectory() as tmp, Ledger(f"sqlite:///{tmp}/ledger.db") as led:
        started = time.perf_counter()
        now = utcnow()
        c, p = led.t["candidates"], led.t["posts"]
        chunk = 50_000
        with led.engine.begin() as conn:
            for start in range(0, rows, chunk):
                batch = range(start, min(start + chunk, rows))
                conn.execute(c.insert(), [
                    {"id": i + 1, "bot": f"bot{i % bots:03d}", "text": f"candidate {i}", "state": POSTED if i < rows // 2 else APPROVED,
                     "attempts": 1, "created_at": now, "updated_at": now}
                    for i in batch
                ])  # fmt: skip
                posted = [i for i in batch if i < rows // 2]
                if posted:
                    conn.execute(p.insert(), [
                        {"bot": f"bot{i % bots:03d}", "target": "outbox", "remote_id": f"#{i + 1}", "candidate_id": i + 1,
                         "posted_at": now - timedelta(seconds=rows - i), "account": f"bot{i % bots:03d}"}
                        for i in posted
                    ])  # fmt: skip
        print(f"filled in {time.perf_counter() - started:.1f} s")
        from botkit.bots.report import status

        limits = Limits(min_interval=0.0, daily_cap=10**6)  # checked on the 24 h of posts, never binding

        def claim_and_post(bot: str) -> None:
            led.acquire(bot, "bench")
            led.mark_posted(led.claim_next(bot, "bench", account=bot, limits=limits, render=lambda c: c.text), "outbox", PostResult("x"))

        queries = {
            "waiting(bot)": lambda b: led.waiting(b),
            "claimed(bot)": lambda b: led.claimed(b),
            "acquire + claim_next (limits) + mark_posted": claim_and_post,
            "history(bot, 50)": lambda b: led.history(b, 50),
            "state(bot)": lambda b: led.state(b),
        }
        ok = True
        for name, query in queries.items():
            times = []
            for n in range(50):
                bot = f"bot{n % bots:03d}"
                t0 = time.perf_counter()
                query(bot)
                times.append(1000 * (time.perf_counter() - t0))
            median, worst = statistics.median(times), max(times)
            ok &= median < SLOW_QUERY_MS
            print(f"{name:<44} median {median:7.2f} ms   max {worst:7.2f} ms")
        t0 = time.perf_counter()
        status(led, {})
        whole = time.perf_counter() - t0
        print(f"{'botkit status (all bots)':<26} {1000 * whole:7.0f} ms for {bots} bots")
        texts = time.perf_counter()
        led.texts("bot000")
        print(f"{'texts(bot) (filter start)':<26} {1000 * (time.perf_counter() - texts):7.0f} ms for {rows // bots:,} rows of one bot")
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the farm runs (default 120)")
    parser.add_argument("--interval", type=float, default=2.0, help="each bot's schedule, in seconds (default 2)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="candidates in the ledger part (default 1,000,000)")
    parser.add_argument("--skip-farm", action="store_true")
    parser.add_argument("--skip-ledger", action="store_true")
    args = parser.parse_args()
    ok = True
    if not args.skip_farm:
        ok &= farm(args.bots, args.seconds, args.interval)
    if not args.skip_ledger:
        ok &= ledger(args.bots, args.rows)
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
