"""Reply bots: what a bot heard, what it answers, and the guards that keep bots from talking forever.

A reply bot's listening tick (:meth:`botkit.bots.bot.Bot.reply_tick`) asks its target for what
was addressed to it (:meth:`~botkit.bots.Target.incoming`), and :class:`Replier` decides, once
per parent and for good, whether to answer it:

* never itself; another bot (one of this config, or one the service flags) only when
  ``reply.bots`` names it;
* nothing deeper than ``max_depth`` allows, and deeper threads with falling chance
  (``decay ** (depth - 1)``, drawn once per parent from a hash, so a restart decides the same);
* at most ``max_per_thread`` replies per thread and one per author per ``cooldown`` (checked
  again inside the ledger transaction that claims the parent);
* nothing older than ``max_age`` when first seen.

A parent that passes is answered by ``samples`` generated replies; the first that passes the bot's
filters becomes a reply candidate (queued for review with ``review: true``), claimed and posted
like a post, under the same limits. The decision, answered or skipped and why, is stored with the
parent's id in the ledger's ``parents`` table, so nothing is ever answered twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from botkit.bots.ledger import APPROVED, QUEUED, REJECTED, Answered, Ledger, NewCandidate, show_time
from botkit.bots.targets import Incoming

if TYPE_CHECKING:
    from botkit.bots.spec import BotSpec, ReplyOptions
    from botkit.filters import FilterChain
    from botkit.generate import SampleSource

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


#: Ancestors looked up to place something in its thread (one request per level, for every new item at
#: once); anything deeper counts as DEPTH_WALK + 1 deep, far past any sensible ``reply.max_depth``.
DEPTH_WALK = 10


def thread_depths(parents: Mapping[K, K | None], known: Mapping[K, K | None], look_up: Callable[[set[K]], Mapping[K, K | None]]) -> dict[K, int]:
    """How deep each item of ``parents`` (an item: what it answers, None for a thread's root) sits
    in its thread: a root 0, an answer to it 1, and so on.

    ``known`` holds what else is known of who answers whom (the listing's other items, roots as
    None); the ancestors still missing are asked for level by level, all items' at once, with
    ``look_up`` (what it does not return is gone). An item whose ancestry ends in something gone,
    or runs past :data:`DEPTH_WALK`, counts one level deeper than was seen.
    """
    up: dict[K, K | None] = {**known, **parents}
    gone: set[K] = set()

    def climb(item: K) -> tuple[int, K | None]:
        """Steps up to the root (and None), or to the first item whose parent is not known (and it)."""
        hops = 0
        while item in up and hops <= DEPTH_WALK:
            parent = up[item]
            if parent is None:
                return hops, None
            item, hops = parent, hops + 1
        return hops, item

    for _ in range(DEPTH_WALK):
        missing = {end for hops, end in map(climb, parents) if end is not None and end not in up and end not in gone and hops <= DEPTH_WALK}
        if not missing:
            break
        found = look_up(missing)
        up.update(found)
        gone |= missing - set(found)
    return {item: hops + (end is not None) for item in parents for hops, end in [climb(item)]}


def chance(bot: str, parent: Incoming, decay: float) -> tuple[float, float]:
    """The chance of answering ``parent`` at its depth, and this parent's fixed draw in [0, 1)."""
    draw = int.from_bytes(hashlib.sha256(f"{bot}\0{parent.id}".encode()).digest()[:8], "big") / 2**64
    return decay ** max(parent.depth - 1, 0), draw


@dataclass(frozen=True)
class Guards:
    """The thread cap and the author's cooldown: their policy, stated once. The replier asks before it
    generates (counting the replies its tick is about to write, too), and the ledger asks again
    inside the transaction that stores a reply, so the guards hold when two workers decide at once."""

    per_thread: int
    cooldown: float

    def __call__(self, parent: Incoming, in_thread: Answered, to_author: Answered, now: datetime) -> str | None:
        """Why ``parent`` must not be answered now, given what was answered in its thread and to its author; or None."""
        return self.thread(in_thread.count) or self.author(parent.author, to_author.last_at, now)

    def thread(self, replies: int) -> str | None:
        """Why a thread with ``replies`` of the bot's replies takes no more, or None."""
        return f"max_per_thread: {replies} replies in this thread already" if replies >= self.per_thread else None

    def author(self, author: str, last_at: datetime | None, now: datetime) -> str | None:
        """Why ``author``, last answered at ``last_at``, is still in the cooldown, or None."""
        if last_at is not None and now < last_at + timedelta(seconds=self.cooldown):
            return f"cooldown: answered {author} at {show_time(last_at)}"
        return None


class Replier:
    """Turns what a bot's target heard into reply candidates (or recorded skips) in the ledger.

    ``load`` gives the reply model's generator; ``peers`` the other bots of the config, and
    ``accounts(names)`` the names those bots go by on the service (their bot names, which the local
    outbox uses, and their accounts), so they are known as bots and ``reply.bots`` can name them.
    """

    def __init__(
        self,
        spec: BotSpec,
        ledger: Ledger,
        chain: FilterChain,
        load: Callable[[], SampleSource],
        *,
        peers: set[str],
        accounts: Callable[[Iterable[str]], set[str]],
    ) -> None:
        assert spec.options.reply is not None  # only reply bots get a replier
        self.name = spec.name
        self.options: ReplyOptions = spec.options.reply
        self.guards = Guards(self.options.max_per_thread, self.options.cooldown)
        self.settings = spec.options.generate
        self.review = spec.options.review
        self.ledger = ledger
        self.chain = chain
        self.load = load
        self.peers = peers - {spec.name}
        self.accounts = accounts

    def take(self, heard: Sequence[Incoming], me: str, now: datetime | None = None) -> tuple[int, int]:
        """Decide about everything new in ``heard`` (``me``: the bot's own account there): returns
        (replies stored, parents skipped)."""
        now = now or datetime.now(UTC)
        fresh = self.ledger.unseen(self.name, (item.id for item in heard))
        todo, seen = [], set()
        for item in heard:
            if item.id not in fresh or item.id in seen or item.author == me:
                continue  # decided before, twice in one answer, or the bot's own: never answered, never stored
            seen.add(item.id)
            todo.append(item)
        answer: list[Incoming] = []
        skipped = 0
        for item in todo:
            why = self.why_not(item, now) or self._crowded(item, answer)
            if why is None:
                answer.append(item)
            elif self.ledger.add_reply(self.name, item, None, why, guard=self.guards) != "seen":
                skipped += 1
                log.info("%s: not answering %s: %s", self.name, item.id, why)
        stored = 0
        for item, reply in zip(answer, self.write(answer)):
            outcome = self.ledger.add_reply(self.name, item, reply, None, guard=self.guards)
            if outcome is None:
                stored += 1
            elif outcome != "seen":
                skipped += 1
                log.info("%s: not answering %s: %s", self.name, item.id, outcome)
        return stored, skipped

    def why_not(self, item: Incoming, now: datetime) -> str | None:
        """The guard that keeps the bot from answering ``item`` (the ledger's thread and author
        guards included, read here so no reply is generated in vain), or None."""
        o = self.options
        if item.author_is_bot or item.author in self.accounts(self.peers):
            allowed = set(o.bots) | self.accounts(self.peers & set(o.bots))
            if item.author not in allowed:
                return f"{item.author} is a bot not named in reply.bots"
        if item.depth + 1 > o.max_depth:
            return f"max_depth: a reply would be at depth {item.depth + 1} (most {o.max_depth})"
        if item.created_at is not None and now - item.created_at > timedelta(seconds=o.max_age):
            return f"max_age: posted at {item.created_at.astimezone(UTC):%Y-%m-%d %H:%M}Z"
        odds, draw = chance(self.name, item, o.decay)
        if draw >= odds:
            return f"decay: chance {odds:.2f} at depth {item.depth}"
        return self.ledger.reply_guard(self.name, item, self.guards)

    def _crowded(self, item: Incoming, answering: Sequence[Incoming]) -> str | None:
        """The thread and author guards counting the replies this same listening tick is about to
        write (the ledger knows only the ones stored), so none is generated only to be skipped."""
        o = self.options
        if o.cooldown > 0 and any(other.author == item.author for other in answering):
            return f"cooldown: answering {item.author} already"
        return self.guards.thread(self.ledger.answered(self.name, thread=item.thread).count + sum(other.thread == item.thread for other in answering))

    def write(self, parents: Sequence[Incoming]) -> list[NewCandidate]:
        """One reply candidate per parent: the first of ``samples`` generated replies the filters keep,
        else a rejected one carrying the first filter's reason."""
        if not parents:
            return []
        n = self.options.samples
        seed = int.from_bytes(hashlib.sha256(f"{self.name}\0{parents[0].id}".encode()).digest()[:4], "big")
        samples = self.load().generate(n, **self.settings.given(), parent=[p.text for p in parents], seed=seed)
        state = QUEUED if self.review else APPROVED
        replies = []
        for j in range(len(parents)):
            result = self.chain.apply(samples[j * n : (j + 1) * n])
            if result.kept:
                s = result.kept[0]
                replies.append(NewCandidate(s.text, state, s.label, s.score, s.temperature))
            else:
                first = result.rejected[0]
                s = first.sample
                replies.append(NewCandidate(s.text, REJECTED, s.label, s.score, s.temperature, f"{first.filter}: {first.reason}"))
        return replies
