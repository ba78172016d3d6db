"""Failover of a farm shared by several daemons: SIGKILL one at random, time how fast its bots move.

``--daemons`` real ``botkit run`` processes share one farm of ``--bots`` bots (each its own Reddit
account, posting lines of a prepared file every ``--every`` seconds, no limits) through one ledger:
a throwaway PostgreSQL server (``tests/pgserver.py``) by default, a SQLite file with ``--sqlite``.
The fake Reddit runs in this process, in a thread, as in the tests. Every few seconds (a seeded
random interval) a random daemon is SIGKILLed and restarted at once, as systemd would.

Every daemon runs under ``unshare --uts`` with a host name of its own (a new one at each start),
so no daemon can see that another's pid is gone: its bots move only when their leases run out,
as across hosts. ``--same-host`` runs them all under this host's name instead, where a daemon
that finds the holder's pid gone takes its bots at once (the same-host fast path).

Measured: posts/s while the kills go on; titles posted twice on the server (must be 0); titles on
the server missing from the ledger's history, and history the server never got (both must be 0);
for every kill, per bot the killed daemon held, the time until another worker holds the bot
(``bot_state.owner``, polled every 50 ms) and until the bot's next post (the first post whose
claim was made after the kill). Daemon logs go to ``bench/out/farm_failover/logs/``.

    .venv/bin/python bench/farm_failover.py                            # 3 daemons, 6 bots, 60 s, PostgreSQL
    .venv/bin/python bench/farm_failover.py --sqlite --same-host       # one host, one SQLite file

Exits 1 on a duplicate, a lost or phantom post, a bot never taken over, a daemon that exited by
itself or not cleanly on SIGTERM, or a traceback in a daemon log.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "farm_failover"
sys.path.insert(0, str(ROOT / "tests"))

import peer_env  # noqa: E402
from farm_config import FarmConfig  # noqa: E402

from botkit.bots.ledger import Ledger  # noqa: E402 - tests/ must be on sys.path first

from fakes.reddit import FakeReddit  # noqa: E402
from pgserver import PostgresServer  # noqa: E402

SUB = "SubredditNN"
POLL_S = 0.05
STOP_WAIT_S = 30.0
#: Log lines that a kill or a clean stop explains; anything else is counted as a complaint.
EXPECTED = ("finishing the posts in flight", "botkit: running", "botkit: stopped")
#: APScheduler's note that a bot's tick outlasted its interval (a busy CPU, a first login): counted apart.
OVERRUN = "skipped: maximum number of running instances reached"


def machine() -> str:
    """What the figures depend on: cores, CPU model, its vector extensions, a matrix-product rate, and the date."""
    return f"{peer_env.machine_line(peer_env.machine())}; Python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M}Z"


def can_unshare() -> bool:
    """``unshare --uts`` needs root (CAP_SYS_ADMIN); check that setting a host name in it works here."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--uts", "sh", "-c", "hostname bench-probe && hostname"], capture_output=True, text=True, check=False)
    return probe.returncode == 0 and probe.stdout.strip() == "bench-probe"


def write_farm(folder: Path, bots: int, lines: int, reddit: FakeReddit, every: float, lease: float) -> Path:
    """Each bot its own praw site and account, so the only thing the bots share is the ledger."""
    farm = FarmConfig(folder, [f"lease: {lease:g}s", f"defaults: {{filters: none, schedule: {{every: {every:g}s}}}}"])
    for name in (f"bot{n:02d}" for n in range(bots)):
        farm.add(name, [f"{name} post {i}" for i in range(lines)], farm.reddit(name, reddit, SUB))
    return farm.write()


class Resets:
    """Counts the fake's connections reset mid-request instead of letting socketserver print each.

    A SIGKILLed daemon's keep-alive connections to the fake Reddit are reset by the kernel; the
    fake's server thread then prints a ConnectionResetError traceback, which is no fault of
    botkit's (every other error of the fake is still printed).
    """

    def __init__(self, reddit: FakeReddit) -> None:
        self.count = 0
        self.server = reddit._server  # the fake's ThreadingHTTPServer: a bench may reach into a test helper
        assert self.server is not None, "start the fake first"
        self.default = self.server.handle_error
        self.server.handle_error = self.handle_error  # type: ignore[method-assign]

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            self.count += 1
        else:
            self.default(request, client_address)


def pid_of(worker: str | None) -> int | None:
    """The pid in a worker id ``host/boot:pid:token``."""
    parts = (worker or "").split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@dataclass
class Kill:
    """One SIGKILL: which daemon, the bots it held, and when each was held again and posted again."""

    at: float  # monotonic
    wall: float  # time.time(), to compare with the ledger's times
    slot: int
    pid: int
    bots: list[str]
    taken: dict[str, float] = field(default_factory=dict)  # bot -> seconds after the kill
    by: dict[str, str] = field(default_factory=dict)  # bot -> the daemon that took it
    posted: dict[str, float] = field(default_factory=dict)


@dataclass
class Window:
    """The kills, and the posts the server got while they went on (from the farm's first post)."""

    kills: list[Kill]
    started: float  # monotonic
    posts: int
    seconds: float
    crashed: list[str] = field(default_factory=list)  # daemons that exited by themselves


class Daemons:
    """The farm's ``botkit run`` processes, one per slot, each killable and restarted at once."""

    def __init__(self, config: Path, env: dict[str, str], *, isolate: bool) -> None:
        self.config = config
        self.env = env
        self.isolate = isolate
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.names: dict[int, str] = {}  # pid -> "w<slot>-<start>", for the report
        self.started = 0
        (config.parent / "logs").mkdir()

    def spawn(self, slot: int) -> None:
        self.started += 1
        host = f"bench-w{slot}-{self.started:03d}"
        command = [sys.executable, "-m", "botkit", "run", str(self.config)]
        if self.isolate:  # unshare execs (no fork), and so does sh: the Popen pid is the daemon's
            command = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *command]
        with open(self.config.parent / "logs" / f"{self.started:03d}-{host}.log", "wb") as log:
            self.procs[slot] = subprocess.Popen(command, cwd=self.config.parent, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.names[self.procs[slot].pid] = host.removeprefix("bench-")

    def kill(self, slot: int) -> int:
        proc = self.procs[slot]
        proc.kill()
        proc.wait()
        return proc.pid

    def stop(self) -> list[int]:
        """SIGTERM every daemon (posts in flight finish), SIGKILL those still there after STOP_WAIT_S."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        codes = []
        for proc in live:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def crashed(self) -> list[str]:
        """Daemons that exited by themselves (not killed here): a config or ledger failure."""
        return [f"slot {slot} exit {p.returncode}" for slot, p in self.procs.items() if p.poll() is not None]


def owners(ledger: Ledger) -> dict[str, str | None]:
    from sqlalchemy import select

    s = ledger.t["bot_state"]
    with ledger.engine.connect() as conn:
        return {bot: owner for bot, owner in conn.execute(select(s.c.bot, s.c.owner))}


def posts_by_bot(ledger: Ledger) -> dict[str, list[tuple[float, float]]]:
    """Each bot's posts as (claimed at, posted at) in epoch seconds, by post time."""
    from sqlalchemy import select

    p, c = ledger.t["posts"], ledger.t["candidates"]
    query = select(p.c.bot, c.c.claimed_at, p.c.posted_at).join(c, c.c.id == p.c.candidate_id).order_by(p.c.posted_at)
    found: dict[str, list[tuple[float, float]]] = {}
    with ledger.engine.connect() as conn:
        for bot, claimed, posted in conn.execute(query):
            found.setdefault(bot, []).append((claimed.timestamp() if claimed else 0.0, posted.timestamp()))
    return found


def next_posts(kills: list[Kill], ledger: Ledger) -> None:
    """The first post of each bot whose claim came after the kill: not the one the dead daemon had in flight."""
    found = posts_by_bot(ledger)
    for kill in kills:
        for bot in kill.bots:
            after = [posted for claimed, posted in found.get(bot, []) if claimed > kill.wall]
            if after:
                kill.posted[bot] = min(after) - kill.wall


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):.2f} s   median {statistics.median(values):.2f} s   max {max(values):.2f} s   (n = {len(values)})"


def log_complaints(logs: Path) -> tuple[list[str], int, int]:
    """Warning, error and traceback lines of every daemon log; how many tracebacks and tick overruns."""
    lines, tracebacks, overruns = [], 0, 0
    for path in sorted(logs.iterdir()):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            tracebacks += line.startswith("Traceback")
            if OVERRUN in line:
                overruns += 1
            elif re.search(r"Traceback|WARNING|ERROR|Error|: (error|failed|waiting|disabled):", line) and not any(e in line for e in EXPECTED):
                lines.append(f"{path.name}: {line}")
    return lines, tracebacks, overruns


def run(args: argparse.Namespace) -> bool:
    rng = random.Random(args.seed)
    isolate = not args.same_host and can_unshare()
    takeover = "across hosts (unshare --uts, a host name per start: leases must run out)" if isolate else "same host (a dead pid frees its bots at once)"
    if not args.same_host and not isolate:
        print("unshare --uts does not work here (needs root): the takeover measured is the same-host fast path")
    print(f"== {args.daemons} daemons x {args.bots} bots every {args.every:g}s, lease {args.lease:g}s, {args.seconds:g}s of kills "
          f"every {args.kill_min:g}-{args.kill_max:g}s; ledger {'SQLite' if args.sqlite else 'PostgreSQL'}; takeover {takeover}")  # fmt: skip
    print(f"machine: {machine()}")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    settle_s = max(30.0, 10 * args.lease)
    lines = int((args.seconds + settle_s + 60) / args.every) + 50  # more than any bot can post
    pg = None if args.sqlite else PostgresServer().start()
    daemons: Daemons | None = None
    try:
        url = f"sqlite:///{OUT / 'ledger.db'}" if pg is None else pg.create_database("farm")
        with FakeReddit(clients={"farm": "farm-secret"}) as reddit, Ledger(url, lease=args.lease) as ledger:
            reddit.add_posts(SUB, [])
            resets = Resets(reddit)
            config = write_farm(OUT, args.bots, lines, reddit, args.every, args.lease)
            env = {**os.environ, "XDG_CONFIG_HOME": str(OUT / "xdg"), "BOTKIT_DB": url}
            daemons = Daemons(config, env, isolate=isolate)
            for slot in range(args.daemons):
                daemons.spawn(slot)
            window = chaos(daemons, ledger, reddit, rng, args, settle_s)
            if window is None:
                return False
            window.crashed = daemons.crashed()
            codes = daemons.stop()
            next_posts(window.kills, ledger)
            return report(args, window, reddit, ledger, daemons, codes, resets.count)
    finally:
        if daemons is not None:
            daemons.stop()
        if pg is not None:
            pg.stop()


def chaos(daemons: Daemons, ledger: Ledger, reddit: FakeReddit, rng: random.Random, args: argparse.Namespace, settle_s: float) -> Window | None:
    """Kill and restart daemons while polling the owners; then wait (bounded) until every bot a
    killed daemon held is held and has posted again. None when the farm never started posting."""
    deadline = time.monotonic() + 120
    while not reddit.submissions:
        if time.monotonic() > deadline or daemons.crashed():
            print(f"FAILED: no post within 120 s ({', '.join(daemons.crashed()) or 'no daemon exited'}); see {OUT / 'logs'}")
            return None
        time.sleep(POLL_S)
    started, started_wall, first = time.monotonic(), time.time(), len(reddit.submissions)
    end = started + args.seconds
    next_kill = started + rng.uniform(args.kill_min, args.kill_max)
    kills: list[Kill] = []
    window: Window | None = None
    while True:
        now = time.monotonic()
        held = owners(ledger)
        for kill in kills:
            for bot in kill.bots:
                if bot not in kill.taken and held.get(bot) is not None and pid_of(held[bot]) != kill.pid:
                    kill.taken[bot] = now - kill.at
                    kill.by[bot] = daemons.names.get(pid_of(held[bot]) or 0, "?")
        if now < end and now >= next_kill:
            slot = rng.randrange(args.daemons)
            pid = daemons.procs[slot].pid
            at, wall = time.monotonic(), time.time()
            daemons.kill(slot)
            daemons.spawn(slot)
            # Read after the kill: the dead daemon can no longer take or give back a bot.
            mine = sorted(bot for bot, owner in owners(ledger).items() if pid_of(owner) == pid)
            kills.append(Kill(at, wall, slot, pid, mine))
            next_kill = now + rng.uniform(args.kill_min, args.kill_max)
        if now >= end:
            if window is None:
                posted = [s for s in reddit.submissions[first:] if s.post.created_utc <= started_wall + args.seconds]
                window = Window(kills, started, len(posted), args.seconds)
            next_posts(kills, ledger)
            if all(b in k.taken and b in k.posted for k in kills for b in k.bots) or now - end > settle_s:
                return window
        time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))


def report(args: argparse.Namespace, window: Window, reddit: FakeReddit, ledger: Ledger, daemons: Daemons, codes: list[int], resets: int) -> bool:
    kills, posted, nan = window.kills, window.posts, float("nan")
    titles = Counter(reddit.titles())
    dupes = {t: n for t, n in titles.items() if n > 1}
    history = Counter(r.text for bot in ledger.bots() for r in ledger.history(bot))
    lost = sorted(set(titles) - set(history))
    phantom = sorted(set(history) - set(titles))
    twice = sorted(t for t, n in history.items() if n > 1)
    claimed = [bot for bot in ledger.bots() if ledger.claimed(bot) is not None]
    taken = [s for k in kills for s in k.taken.values()]
    after = [s for k in kills for s in k.posted.values()]
    stuck = [f"{b} (kill at {k.at - kills[0].at:.1f}s)" for k in kills for b in k.bots if b not in k.taken]
    complaints, tracebacks, overruns = log_complaints(OUT / "logs")
    print(f"\n{'kill':>4} {'at s':>6} {'daemon':>7} {'bots':>4}  per bot: held again after s / posted again after s, by daemon")
    for n, k in enumerate(kills, 1):
        per_bot = ", ".join(f"{b} {k.taken.get(b, nan):.2f}/{k.posted.get(b, nan):.2f} by {k.by.get(b, '-')}" for b in k.bots)
        print(f"{n:>4} {k.at - window.started:>6.1f} {daemons.names.get(k.pid, '?'):>7} {len(k.bots):>4}  {per_bot or '-'}")
    print(f"\nposts:             {posted:,} in {window.seconds:g} s of kills = {posted / window.seconds:.1f} posts/s (ideal {args.bots / args.every:.1f}/s); "
          f"{len(reddit.submissions):,} on the server in all; {resets} connections reset by the kills")  # fmt: skip
    print(f"kills:             {len(kills)} ({sum(len(k.bots) for k in kills)} bot moves), {args.daemons + len(kills)} daemons started")
    print(f"takeover:          {spread(taken)}")
    print(f"next post:         {spread(after)}")
    print(f"duplicates:        {len(dupes)} titles twice on the server" + (f", e.g. {next(iter(dupes))!r}" if dupes else ""))
    print(f"lost:              {len(lost)} titles on the server missing from the ledger's history" + (f", e.g. {lost[0]!r}" if lost else ""))
    print(f"phantom:           {len(phantom)} in the history, never on the server; {len(twice)} twice in the history")
    print(f"left claimed:      {len(claimed)} bots with a claim unreconciled at the end" + (f": {', '.join(claimed)}" if claimed else ""))
    print(f"never taken over:  {len(stuck)}" + (f": {', '.join(stuck)}" if stuck else ""))
    print(f"clean stops:       {codes.count(0)} of {len(codes)} daemons exited 0 on SIGTERM; "
          f"{len(window.crashed)} exited by themselves before" + (f" ({', '.join(window.crashed)})" if window.crashed else ""))  # fmt: skip
    print(f"daemon logs:       {tracebacks} tracebacks, {len(complaints)} warning/error lines, {overruns} ticks skipped by APScheduler "
          f"(the bot's previous tick still ran) ({OUT / 'logs'})")  # fmt: skip
    for line in complaints[:12]:
        print(f"  {line[:300]}")
    return not (dupes or lost or phantom or twice or stuck or tracebacks or window.crashed) and all(c == 0 for c in codes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemons", type=int, default=3, help="botkit run processes (default 3)")
    parser.add_argument("--bots", type=int, default=6, help="bots in the farm, shared by the daemons (default 6)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the kills go on (default 60)")
    parser.add_argument("--every", type=float, default=0.2, help="each bot's schedule, in seconds (default 0.2)")
    parser.add_argument("--lease", type=float, default=2.0, help="the config's lease:, in seconds (default 2)")
    parser.add_argument("--kill-min", type=float, default=3.0, help="shortest time between two kills (default 3 s)")
    parser.add_argument("--kill-max", type=float, default=8.0, help="longest time between two kills (default 8 s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite ledger file instead of PostgreSQL")
    parser.add_argument("--same-host", action="store_true", help="no unshare: every daemon on this host name (the dead-pid fast path)")
    args = parser.parse_args()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does: the finally blocks stop the daemons and the server

    signal.signal(signal.SIGTERM, interrupted)
    try:
        ok = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; daemons and the PostgreSQL server stopped")
        return 130
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
