"""What ``botkit status`` and ``botkit history`` print: read from the ledger, never a secret.

The ledger holds no credentials at all, and error messages are redacted before they are stored,
so these reports can be pasted into a bug report as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from botkit.bots.ledger import IN_DOUBT, BotState, Candidate, Ledger, show_time, utcnow
from botkit.bots.spec import BotSpec
from botkit.bots.workers import describe
from botkit.corpus.io import encode_txt


def _one_line(text: str, width: int) -> str:
    line = encode_txt(text)
    return line if len(line) <= width else line[: width - 1] + "…"


def status(ledger: Ledger, specs: Mapping[str, BotSpec]) -> str:
    """One block per bot: target, last post, next run, queue size, last error."""
    names = list(specs) + [name for name in ledger.bots() if name not in specs]
    if not names:
        return "no bots (add some under bots: in the config)"
    blocks, workers = [], ledger.workers()
    for name in names:
        state = ledger.state(name)
        last = ledger.history(name, 1)
        link = f"  {last[0].url}" if last and web_link(last[0].url) else ""
        claimed = ledger.claimed(name)
        lines = [
            f"{name}",
            f"  target:     {target_of(specs.get(name))}",
            f"  last post:  {show_time(state.last_post_at)}{link}",
            f"  next run:   {show_time(state.not_before or state.next_run_at) if not state.disabled else 'never (disabled)'}",
            f"  queue:      {ledger.waiting(name)} waiting",
            *([f"  in flight:  {in_doubt(claimed)}"] if claimed is not None else []),
            f"  run by:     {holder(state, workers)}",
        ]
        spec = specs.get(name)
        if spec is not None and spec.options.reply is not None:
            answered, skipped = ledger.heard(name)
            waiting = ledger.waiting(name, replies=True)
            lines.append(
                f"  replies:    {answered} answered, {skipped} skipped by the guards or filters, {waiting} waiting; listening every {spec.options.reply.every:g}s"
            )
        if state.disabled:
            lines.append(f"  disabled:   {state.disabled}")
        if state.last_error:
            lines.append(f"  last error: {show_time(state.last_error_at)} {_one_line(state.last_error, 200)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def target_of(spec: BotSpec | None) -> str:
    """Where a bot's posts go, in words; a target's other options (credentials among them) are never shown."""
    if spec is None:
        return "(not in this config)"
    return spec.target_kind if spec.live else f"outbox (the {spec.target_kind} target is not live)"


def web_link(url: str | None) -> str | None:
    """A post's URL when it is a web link (http or https), else None: an outbox file path is no
    link, and a ``javascript:`` URL in the ledger must never become one on the console."""
    return url if url and url.lower().startswith(("https://", "http://")) else None


def in_doubt(claimed: Candidate) -> str:
    """A claimed candidate in words: in doubt since its claim (the service may already show it), and what settles it."""
    return f"candidate {claimed.id} {IN_DOUBT} since {show_time(claimed.claimed_at)}; {settled_by(claimed)}"


def settled_by(claimed: Candidate) -> str:
    """What settles a claim: the worker posting it now (its lease runs), else a lookup at the next tick."""
    if claimed.owner is not None and claimed.lease_until is not None and claimed.lease_until > utcnow():
        return f"being posted by {describe(claimed.owner)}"
    return "looked up at the next tick"


def holder(state: BotState, workers: Mapping[str, tuple[str, int, datetime]]) -> str:
    """Which worker runs the bot: host and pid, and whether its lease is still running."""
    if state.owner is None:
        return "no worker now (a `botkit run` daemon takes it at its next beat)"
    lease = state.lease_until
    if lease is None or lease < utcnow():
        return f"{describe(state.owner)} until {show_time(lease)} (lease ran out: the next worker takes it)"
    kind = "daemon" if state.owner in workers else "botkit run --once"
    return f"{describe(state.owner)} ({kind}, lease until {show_time(lease)})"


def history(ledger: Ledger, bot: str, limit: int | None) -> str:
    """The bot's posts, newest first: time, target, the post's link (else its remote id), text.

    A claim in doubt comes first, whatever the limit: it may be a post already live on the service.
    """
    records, claimed = ledger.history(bot, limit), ledger.claimed(bot)
    if not records and claimed is None:
        return f"{bot}: no posts yet"
    lines = []
    if claimed is not None:
        doubt = f"{IN_DOUBT}  candidate {claimed.id}, {settled_by(claimed)}"
        lines.append(f"{show_time(claimed.claimed_at)}  {doubt}  {_one_line(_text(claimed.text, claimed.reply_to), 100)}")
    for r in records:
        remote = web_link(r.url) or (r.remote_id if r.remote_id is not None else f"(id unknown{': ' + r.note if r.note else ''})")
        lines.append(f"{show_time(r.posted_at)}  {r.target:<8} {remote:<14} {_one_line(_text(r.text, r.reply_to), 100)}")
    return "\n".join(lines)


def _text(text: str, reply_to: str | None) -> str:
    """A post's text as history shows it: a reply names what it answers."""
    return text if reply_to is None else f"re {reply_to}: {text}"
