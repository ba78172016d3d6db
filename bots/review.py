"""``botkit review BOT``: approve or reject a bot's queued candidates from the terminal.

The questions and answers go through two callables (``input`` and ``print`` in the CLI), so the
loop is the same whether a person types at a terminal or a test feeds stdin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botkit.bots.ledger import Ledger

PROMPT = "[a]pprove, [r]eject, [s]kip, [q]uit? "
_CHOICES = {"a": "approve", "r": "reject", "s": "skip", "q": "quit"}


@dataclass
class ReviewReport:
    approved: int = 0
    rejected: int = 0
    skipped: int = 0

    def summary(self, bot: str) -> str:
        return f"{bot}: {self.approved} approved, {self.rejected} rejected, {self.skipped} left in the queue"


def review(ledger: Ledger, bot: str, ask: Callable[[str], str], show: Callable[[str], None]) -> ReviewReport:
    """Walk the queue oldest first; end of input (EOF) stops like ``q``."""
    report = ReviewReport()
    queue = ledger.queued(bot)
    parents = ledger.parents_of(bot, (c.id for c in queue if c.reply_to is not None))
    for number, candidate in enumerate(queue, 1):
        show(f"\n[{number}/{len(queue)}] candidate {candidate.id}" + (f" (label {candidate.label})" if candidate.label else ""))
        if candidate.id in parents:
            show(f"in reply to: {parents[candidate.id][0]}")
        show(candidate.text)
        choice = _ask(ask)
        if choice == "quit":
            report.skipped += len(queue) - number + 1
            break
        if choice == "skip":
            report.skipped += 1
            continue
        ledger.review(candidate, approve=choice == "approve")
        if choice == "approve":
            report.approved += 1
        else:
            report.rejected += 1
    return report


def _ask(ask: Callable[[str], str]) -> str:
    while True:
        try:
            answer = ask(PROMPT).strip().lower()[:1]
        except EOFError:
            return "quit"
        if answer in _CHOICES:
            return _CHOICES[answer]
