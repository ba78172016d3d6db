"""``botkit run``: tick every bot once (``--once``), or schedule them with APScheduler until stopped.

The schedule comes from config.yaml at every start; everything else (what was posted, what is
claimed, rate-limit waits, which worker runs which bot) comes from the ledger, so a restart
carries on where the last run stopped. Several daemons (on one host or many) may run the same
farm against one ledger: each runs the bots it holds a lease on (:class:`~botkit.bots.workers.Share`)
and skips the others, and ``--once`` ticks only the bots no daemon holds. APScheduler 3.x job
stores must not be shared between processes, so the jobs live in memory in each process and the
ledger alone is the shared truth.

SIGTERM and SIGINT stop the scheduler, let the post in flight finish (its retry backoff is cut
short), look each claim this worker leaves in doubt up once (:meth:`Bot.settle_claim`: posted,
back in the queue, or left claimed for the next start when the service cannot be reached) and
exit cleanly. ``run --once`` does the same for each bot after its tick.

The scheduler runs in the background and the main thread waits for a signal, rather than
APScheduler's BlockingScheduler owning the main thread: a signal handler runs on the main thread
between two bytecodes, possibly while that thread holds a non-reentrant lock (the thread pool's
``_shutdown_lock`` during ``submit``, an ``Event``'s lock), so a handler that stops the scheduler
could deadlock. The handler here only sets a flag; the main thread does the stopping.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from botkit.bots.bot import Bot, TickResult
from botkit.bots.ledger import Ledger
from botkit.bots.workers import Share, kept_alive
from botkit.errors import BotkitError

log = logging.getLogger(__name__)

#: A tick that could not start on time (the machine slept, the pool was busy) still runs if it is
#: at most this late; later ones are dropped and the next regular tick happens as planned.
MISFIRE_GRACE_S = 300
MAX_WORKERS = 20
#: How long a stop waits for the posts in flight (longer than one post with its retries, normally).
STOP_WAIT_S = 120.0
SIGNAL_POLL_S = 0.2

Report = Callable[[TickResult], None]


def start_warnings(bots: Sequence[Bot]) -> list[str]:
    """What the owner must know before anything is posted: outbox stand-ins, lowered limits."""
    lines = []
    for bot in bots:
        spec = bot.spec
        if not spec.live:
            lines.append(bot.redact(f"{bot.name}: {spec.target_kind} target is not live: posting to {bot.target.describe()} instead (set live: true to post)"))
        loosened = spec.loosened_limits()
        if loosened:
            lines.append(f"{bot.name}: {spec.target_kind} limits lowered by the config: {', '.join(loosened)}")
    return lines


def run_once(bots: Sequence[Bot], ledger: Ledger) -> list[TickResult]:
    """One tick of every bot no daemon holds, in config order (the README demo, cron users).

    Each bot is given back right after its tick, and the worker retires at the end, so a daemon
    can take over at once whatever this run left.
    """
    try:
        ledger.enable(bot.name for bot in bots)
    except BotkitError as exc:  # the ledger is down or locked: every tick says so in turn
        log.error("%s", exc)
    results = []
    try:
        for bot in bots:
            with kept_alive(ledger, bot.worker, bot.name):
                if bot.replier is not None:
                    results.append(bot.reply_tick())
                if bot.spec.options.posts_at_all:
                    results.append(bot.tick())
                settled = bot.settle_claim()  # a claim this run leaves in doubt: looked up once more before it ends
                if settled is not None:
                    results.append(settled)
            try:
                ledger.release_bot(bot.name, bot.worker)
            except Exception as exc:  # noqa: BLE001 - the ledger is down: its lease runs out by itself
                log.error("%s: could not hand the bot back: %s", bot.name, bot.explain(exc))
    finally:
        if bots:
            _retire(ledger, bots[0].worker)
    return results


def _retire(ledger: Ledger, worker: str) -> None:
    try:
        ledger.retire(worker)
    except Exception as exc:  # noqa: BLE001 - leases run out by themselves
        log.error("could not hand the bots back on the way out (%s); their leases run out in %gs", exc, ledger.lease.total_seconds())


class Daemon:
    """One APScheduler job per bot (two for a reply bot: its posts and its listening), plus one-off
    retries when a service asks the bot to wait."""

    def __init__(self, bots: Sequence[Bot], ledger: Ledger, report: Report, stop: threading.Event) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.bots = {bot.name: bot for bot in bots}
        self.ledger = ledger
        self.worker = bots[0].worker
        self.report = report
        self.stop = stop
        # A regular tick, a listening tick and a retry of the same bot are separate jobs: this lock keeps them apart.
        self._busy = {name: threading.Lock() for name in self.bots}
        self._last: dict[tuple[str, bool], str] = {}
        self._idle = threading.Condition()
        self._running = 0
        self._signalled: int | None = None
        self.share = Share(ledger, self.worker, list(self.bots), may_release=self._may_release)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(1, min(MAX_WORKERS, len(bots))))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S},
            timezone=UTC,
        )

    def run(self, started: Callable[[], None] = lambda: None) -> None:
        """Block until SIGTERM/SIGINT, then wait for the posts in flight.

        ``started`` is called once the signal handlers are in place: a supervisor that waits for
        its message may then send SIGTERM and get a clean stop, never the default kill.
        """
        from apscheduler.triggers.interval import IntervalTrigger

        self.ledger.enable(self.bots)
        now = datetime.now(UTC)
        for name, bot in self.bots.items():
            schedule, reply = bot.spec.options.schedule, bot.spec.options.reply
            if bot.spec.options.posts_at_all:
                first = {"next_run_time": now} if schedule.every is not None else {}  # intervals start at once
                self.scheduler.add_job(self._tick, schedule.trigger(), args=[name], id=f"bot:{name}", name=name, **first)
            if reply is not None:
                every = IntervalTrigger(seconds=reply.every, timezone="UTC")
                self.scheduler.add_job(self._tick, every, args=[name, True], id=f"reply:{name}", name=f"{name} (replies)", next_run_time=now)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        beat_every = self.ledger.lease.total_seconds() / 3
        try:
            self._beat()  # take this worker's share before the first ticks run
            self.scheduler.start()
            started()
            next_beat = time.monotonic() + beat_every
            while self._signalled is None:
                time.sleep(SIGNAL_POLL_S)
                if time.monotonic() >= next_beat:  # here, not in the pool: busy ticks must not delay the leases
                    self._beat()
                    next_beat = time.monotonic() + beat_every
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.warning("%s: finishing the posts in flight, then stopping", signal.Signals(self._signalled).name)
        self.stop.set()
        self.scheduler.shutdown(wait=False)
        with self._idle:
            if not self._idle.wait_for(lambda: self._running == 0, timeout=STOP_WAIT_S):
                log.warning("stopping with posts still in flight; they are reconciled at the next start")
        for result in self._settle_claims():
            self.report(result)
        _retire(self.ledger, self.worker)

    def _settle_claims(self) -> list[TickResult]:
        """One lookup of each claim this worker leaves in doubt, all at once: a stop waits for the
        slowest lookup, not for their sum. A bot still ticking (the stop's wait ran out) is left to its tick."""
        idle = [bot for name, bot in self.bots.items() if self._busy[name].acquire(blocking=False)]
        try:
            with ThreadPoolExecutor(max(1, min(MAX_WORKERS, len(idle))), thread_name_prefix="settle") as pool:
                settled = list(pool.map(Bot.settle_claim, idle))
        finally:
            for bot in idle:
                self._busy[bot.name].release()
        return [result for result in settled if result is not None]

    def _beat(self) -> None:
        """Renew this worker's leases, take its share of free bots, and tick new ones soon."""
        try:
            gained, lost = self.share.beat()
        except Exception as exc:  # noqa: BLE001 - the ledger is down: try again at the next beat
            log.error("could not renew this worker's leases: %s", exc)
            return
        for name in sorted(lost):
            log.info("%s: now run by another worker", name)
        for name in gained:
            listening = self.scheduler.get_job(f"reply:{name}")
            if listening is not None:
                listening.modify(next_run_time=datetime.now(UTC))
            job = self.scheduler.get_job(f"bot:{name}")
            if job is None:
                continue
            # Keep the bot's rhythm: its next run as the last worker planned it; an interval bot
            # never run before starts at once, a cron bot waits for its time.
            planned, now = self.ledger.state(name).next_run_at, datetime.now(UTC)
            if planned is not None:
                job.modify(next_run_time=max(now, planned))
            elif self.bots[name].spec.options.schedule.every is not None:
                job.modify(next_run_time=now)

    def _may_release(self, name: str) -> bool:
        """Give a bot back between two of its ticks. A tick that starts anyway is safe: its claim
        checks the lease in the claim's transaction, and a claim made just before stays its own."""
        return not self._busy[name].locked()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only set a flag: anything that takes a lock could deadlock here (see the module docstring)."""
        self._signalled = signum
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal stops at once
            signal.signal(sig, signal.SIG_DFL)

    def _tick(self, name: str, replies: bool = False) -> None:
        if self.stop.is_set() or name not in self.share.held or not self._busy[name].acquire(blocking=False):
            return  # stopping, run by another worker, or ticking already
        with self._idle:
            self._running += 1
        try:
            bot = self.bots[name]
            result = bot.reply_tick() if replies else bot.tick()
            if result.outcome == "skipped":  # the lease moved on meanwhile: the other worker reports
                return
            if str(result) != self._last.get((name, replies)):  # "empty" every 10 s for hours says nothing new
                self.report(result)
            self._last[name, replies] = str(result)
            self._after(name, result)
        finally:
            self._busy[name].release()
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _after(self, name: str, result: TickResult) -> None:
        """Keep ``next run`` in the ledger for ``botkit status``; come back early when asked to wait."""
        if self.stop.is_set():
            return
        if result.outcome == "disabled":
            for kind in ("bot", "reply"):
                if self.scheduler.get_job(f"{kind}:{name}") is not None:
                    self.scheduler.remove_job(f"{kind}:{name}")
            self.ledger.set_next_run(name, None)
            return
        job = self.scheduler.get_job(f"bot:{name}") or self.scheduler.get_job(f"reply:{name}")
        if job is None:
            return
        next_run: Any = job.next_run_time
        if result.retry_at is not None:
            retry_at = result.retry_at
            if next_run is None or retry_at < next_run:
                self.scheduler.add_job(self._tick, "date", run_date=retry_at, args=[name], id=f"retry:{name}", replace_existing=True)
                next_run = retry_at
        self.ledger.set_next_run(name, None if next_run is None else next_run.astimezone(UTC))
