"""A farm's processes for the tests that kill them: daemons and a ``botkit run --once`` loop from
"cron", each killable with SIGKILL and restarted at once, as systemd would."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).parent


class Farm:
    """The processes of the farm: daemons and a --once loop, each killable and restartable."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = {**os.environ, "PYTHONPATH": str(TESTS), **env}
        self.daemons: list[subprocess.Popen[bytes]] = []
        self.once: subprocess.Popen[bytes] | None = None
        self.cron_stop = threading.Event()
        self.cron = threading.Thread(target=self._cron, daemon=True)
        self.logs = config.parent / "logs"
        self.logs.mkdir()
        self.started = 0

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.started += 1
        log = open(self.logs / f"{self.started:03d}-{'-'.join(args)}.log", "wb")
        return subprocess.Popen(
            [sys.executable, "-m", "botkit", *args, str(self.config)], cwd=self.config.parent, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def _cron(self) -> None:
        while not self.cron_stop.is_set():
            self.once = self.spawn("run", "--once")
            self.once.wait()
            self.cron_stop.wait(0.3)

    def start(self) -> None:
        self.daemons = [self.spawn("run"), self.spawn("run")]
        self.cron.start()

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random process of the farm; a daemon is restarted at once (as systemd would)."""
        victim = rng.randrange(3)
        if victim == 2:
            once = self.once
            if once is not None and once.poll() is None:
                once.kill()
            return
        self.daemons[victim].kill()
        self.daemons[victim].wait()
        self.daemons[victim] = self.spawn("run")

    def stop(self) -> None:
        self.cron_stop.set()
        self.cron.join(timeout=60)
        for proc in self.daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in self.daemons:
            proc.wait(timeout=60)

    def output(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.iterdir()))


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
