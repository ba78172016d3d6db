"""Workers: the ``botkit run`` processes that share one farm through its ledger.

Each process is a worker with an id that names its host and pid (``host:pid:token``). A daemon
registers itself in the ledger and renews a lease on each bot it runs; the bots are shared out so
that each live worker runs about as many as the others (:class:`Share`). A worker that stops
cleanly hands its bots back at once; one that dies (SIGKILL, host down) stops renewing, and its
bots move to the others when its leases run out. A worker whose pid is gone on this very host is
known to be dead without waiting for its leases.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from botkit.bots.ledger import Ledger

log = logging.getLogger(__name__)

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def this_host() -> str:
    """The host name, plus the boot id where Linux has one: two hosts (or boots) never share it."""
    host = socket.gethostname() or "localhost"
    try:
        return f"{host}/{_BOOT_ID.read_text(encoding='ascii').strip()[:8]}"
    except OSError:
        return host


def new_worker_id() -> str:
    return f"{this_host()}:{os.getpid()}:{secrets.token_hex(3)}"


def describe(worker: str) -> str:
    """``host pid N`` for people (status, log lines)."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    return f"{host.partition('/')[0]} pid {pid}" if pid else worker


def dead_here(worker: str) -> bool:
    """True when ``worker`` ran on this host and its process is gone (so its leases need no waiting)."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != this_host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, as another user
        return False
    return False


@dataclass
class Share:
    """The bots one daemon runs: acquired, renewed and given back so each live worker runs its part."""

    ledger: Ledger
    worker: str
    bots: Sequence[str]
    #: Asked before a bot is given back; False (the bot is ticking now) keeps it until the next beat.
    may_release: Callable[[str], bool] = lambda name: True
    held: set[str] = field(default_factory=set)

    def beat(self) -> tuple[set[str], set[str]]:
        """Renew, take or give back leases; returns the bots (gained, lost) since the last beat."""
        live = max(1, self.ledger.heartbeat(self.worker, self.worker.partition(":")[0], os.getpid()))
        held = self.ledger.renew(self.worker, self.held)
        lost = self.held - held
        share = math.ceil(len(self.bots) / live)
        gained: set[str] = set()
        # Every worker starts its search at a different bot, so two new workers rarely race for one.
        start = zlib.crc32(self.worker.encode()) % max(len(self.bots), 1)
        for name in [*self.bots[start:], *self.bots[:start]]:
            if len(held) >= share:
                break
            if name not in held and self.ledger.acquire(name, self.worker, dead=dead_here) is None:
                held.add(name)
                gained.add(name)
        for name in sorted(held)[share:] if len(held) > share else []:
            if self.may_release(name):
                self.ledger.release_bot(name, self.worker)
                held.discard(name)
                lost.add(name)
        self.held = held
        for name in sorted(gained):
            log.info("%s: now run by this worker (%s)", name, describe(self.worker))
        return gained, lost


@contextmanager
def kept_alive(ledger: Ledger, worker: str, bot: str) -> Iterator[None]:
    """Renew ``worker``'s lease on ``bot`` and its claim from a side thread while the body runs.

    What a daemon's beat does for its bots, for ``botkit run --once``: a slow lookup or post does
    not lose its claim to another worker while this process is alive.
    """
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ledger.lease.total_seconds() / 3):
            try:
                ledger.renew(worker, [bot])
            except Exception as exc:  # noqa: BLE001 - the ledger is down: the tick itself will say so
                log.warning("%s: could not renew its lease: %s", bot, exc)

    thread = threading.Thread(target=renew, name=f"lease:{bot}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
