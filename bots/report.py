"""What ``botkit status`` and ``botkit history`` print: read from the ledger, never a secret.

The ledger holds no credentials at all, and error messages are redacted before they are stored,
so these reports can be pasted into a bug report as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

from botkit.bots.ledger import Ledger, show_time
from botkit.bots.spec import BotSpec
from botkit.corpus.io import encode_txt


def _one_line(text: str, width: int) -> str:
    line = encode_txt(text)
    return line if len(line) <= width else line[: width - 1] + "…"


def status(ledger: Ledger, specs: Mapping[str, BotSpec]) -> str:
    """One block per bot: target, last post, next run, queue size, last error."""
    names = list(specs) + [name for name in ledger.bots() if name not in specs]
    if not names:
        return "no bots (add some under bots: in the config)"
    blocks = []
    for name in names:
        spec = specs.get(name)
        state = ledger.state(name)
        if spec is None:
            where = "(not in this config)"
        elif spec.live:
            where = spec.target_kind
        else:
            where = f"outbox (the {spec.target_kind} target is not live)"
        claimed = ledger.claimed(name)
        lines = [
            f"{name}",
            f"  target:     {where}",
            f"  last post:  {show_time(state.last_post_at)}",
            f"  next run:   {show_time(state.not_before or state.next_run_at) if not state.disabled else 'never (disabled)'}",
            f"  queue:      {ledger.waiting(name)} waiting" + (f", candidate {claimed.id} claimed (reconciled at the next tick)" if claimed else ""),
        ]
        if state.disabled:
            lines.append(f"  disabled:   {state.disabled}")
        if state.last_error:
            lines.append(f"  last error: {show_time(state.last_error_at)} {_one_line(state.last_error, 200)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def history(ledger: Ledger, bot: str, limit: int | None) -> str:
    """The bot's posts, newest first: time, target, remote id, text."""
    records = ledger.history(bot, limit)
    if not records:
        return f"{bot}: no posts yet"
    lines = []
    for r in records:
        remote = r.remote_id if r.remote_id is not None else f"(id unknown{': ' + r.note if r.note else ''})"
        lines.append(f"{show_time(r.posted_at)}  {r.target:<8} {remote:<14} {_one_line(r.text, 100)}")
    return "\n".join(lines)
