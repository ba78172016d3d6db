"""What the bots' tests do by hand that a daemon's tick does: hold a bot and claim its next
candidate, or leave a claim behind as a killed daemon would."""

from __future__ import annotations

import subprocess

from botkit.bots.bot import Bot
from botkit.bots.ledger import Candidate
from botkit.bots.workers import this_host


def dead_worker() -> str:
    """The worker id of a process that has exited, as a killed daemon leaves it in the ledger."""
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{this_host()}:{child.pid}:dead"


def claim(bot: Bot) -> Candidate:
    """What a tick does before posting: hold the bot, refill, claim the next candidate."""
    assert bot.ledger.acquire(bot.name, bot.worker) is None
    bot.refill()
    candidate = bot.claim_next()
    assert isinstance(candidate, Candidate)
    return candidate
