"""What the console shows and the reviewer's decisions, read from and written to the ledger.

Everything here is plain data (dataclasses, lists, numbers): the pages, ``/api/status`` and
``botkit report`` share it, and none of it holds a target's options, so no credential can reach a
page. Decisions are single conditional updates (``WHERE state = 'queued'``): two reviewers (two
tabs, or the console and ``botkit review``) can never both decide one candidate; the second is told
what the first decided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from botkit import model_folder
from botkit.bots.ledger import QUEUED, REJECTED, REVIEWED, Candidate, Ledger, NewCandidate, PostRecord, utcnow
from botkit.bots.report import holder, in_doubt, target_of
from botkit.bots.spec import BotSpec
from botkit.corpus import CorpusStats, corpus_stats
from botkit.errors import BotkitError

#: Days of the farm page's posts-per-day chart.
CHART_DAYS = 14
#: The funnel counts the bot's most recent candidates: its recent refills, not its whole life.
FUNNEL_CANDIDATES = 1000
# The model folder layout (botkit/model/saving.py); read as JSON here, so the console starts
# without importing Keras.


@dataclass(frozen=True)
class BotView:
    """One bot as the farm page and ``/api/status`` show it."""

    name: str
    target: str
    state: str  # running, waiting, disabled, idle
    why: str | None  # the disabled reason or the limit waited for
    last_post: PostRecord | None
    next_run: datetime | None
    queue: int
    to_review: int
    holder: str
    last_error: str | None
    last_error_at: datetime | None
    per_day: list[tuple[date, int]]
    in_config: bool = True
    replies: tuple[int, int] | None = None  # a reply bot's parents answered and skipped, ever
    claimed: Candidate | None = None  # a post in doubt: claimed, not confirmed (it may be live already)

    def as_json(self) -> dict[str, Any]:
        post = self.last_post
        return {
            "name": self.name, "target": self.target, "state": self.state, "why": self.why, "queue": self.queue,
            "to_review": self.to_review, "next_run": _iso(self.next_run), "run_by": self.holder,
            "last_post": None if post is None else {"at": _iso(post.posted_at), "target": post.target, "url": post.url, "text": post.text},
            "last_error": self.last_error, "last_error_at": _iso(self.last_error_at), "in_config": self.in_config,
            "replies": None if self.replies is None else {"answered": self.replies[0], "skipped": self.replies[1]},
            "in_doubt": None if self.claimed is None else {
                "candidate": self.claimed.id, "since": _iso(self.claimed.claimed_at), "text": self.claimed.text, "state": in_doubt(self.claimed),
            },
        }  # fmt: skip


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def bot_names(ledger: Ledger, specs: Mapping[str, BotSpec]) -> list[str]:
    """The config's bots in its order, then bots only the ledger knows (removed from the config since)."""
    return list(specs) + [name for name in ledger.bots() if name not in specs]


def farm(ledger: Ledger, specs: Mapping[str, BotSpec]) -> list[BotView]:
    """Every bot with its state, last post, next run, queue and worker."""
    workers, now = ledger.workers(), utcnow()
    views = []
    for name in bot_names(ledger, specs):
        state = ledger.state(name)
        if state.disabled:
            kind, why = "disabled", state.disabled
        elif state.not_before is not None and state.not_before > now:
            kind, why = "waiting", f"until {state.not_before:%Y-%m-%d %H:%M:%SZ} (a limit of the service)"
        elif state.owner is not None and state.lease_until is not None and state.lease_until > now:
            kind, why = "running", None
        else:
            kind, why = "idle", None  # "run by" says that no worker holds it
        history = ledger.history(name, 1)
        spec = specs.get(name)
        views.append(
            BotView(
                name=name, target=target_of(specs.get(name)), state=kind, why=why, last_post=history[0] if history else None,
                next_run=None if state.disabled else state.not_before or state.next_run_at, queue=ledger.waiting(name),
                to_review=ledger.waiting(name, (QUEUED,)), holder=holder(state, workers), last_error=state.last_error,
                last_error_at=state.last_error_at, per_day=posts_per_day(ledger, name), in_config=name in specs,
                replies=ledger.heard(name) if spec is not None and spec.options.reply is not None else None, claimed=ledger.claimed(name),
            )
        )  # fmt: skip
    return views


def posts_per_day(ledger: Ledger, bot: str, days: int = CHART_DAYS) -> list[tuple[date, int]]:
    """Posts of each of the last ``days`` UTC days, oldest first, today included."""
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    counts = Counter(when.date() for when in ledger.post_times(bot, datetime(first.year, first.month, first.day, tzinfo=UTC)))
    return [(first + timedelta(days=i), counts[first + timedelta(days=i)]) for i in range(days)]


@dataclass(frozen=True)
class RejectedCandidate:
    """A candidate thrown away, with the filter (or reviewer) that did it, as the ledger records it."""

    id: int
    text: str
    label: str | None
    by: str
    why: str
    created_at: datetime


def rejected(ledger: Ledger, bot: str, limit: int = 50) -> list[RejectedCandidate]:
    """The bot's latest rejected candidates, newest first."""
    return [RejectedCandidate(c.id, c.text, c.label, *_split_reason(c.reason), c.created_at) for c in ledger.latest(bot, limit, (REJECTED,))]


def _split_reason(reason: str | None) -> tuple[str, str]:
    """``"length: too short"`` → ``("length", "too short")``: the filter and what it said."""
    by, _, why = (reason or "unknown").partition(":")
    return by.strip(), why.strip()


@dataclass(frozen=True)
class Funnel:
    """The bot's recent candidates: how many were generated, each filter's rejections, what passed."""

    generated: int = 0
    by_filter: dict[str, int] = field(default_factory=dict)  # most rejections first
    passed: int = 0
    by_review: int = 0  # of those that passed, rejected by a reviewer

    def stages(self) -> list[tuple[str, int]]:
        """Generated, each filter's rejections, passed: the bars of the funnel chart."""
        return [("generated", self.generated), *((f"rejected by {name}", n) for name, n in self.by_filter.items()), ("passed the filters", self.passed)]


def funnel(ledger: Ledger, bot: str, limit: int = FUNNEL_CANDIDATES) -> Funnel:
    """The filter funnel of the bot's latest ``limit`` candidates (the ledger keeps each rejection's filter)."""
    latest = ledger.latest(bot, limit)
    filters = Counter(_split_reason(c.reason)[0] for c in latest if c.state == REJECTED and c.reason != REVIEWED)
    by_review = sum(1 for c in latest if c.state == REJECTED and c.reason == REVIEWED)
    return Funnel(len(latest), dict(filters.most_common()), len(latest) - sum(filters.values()), by_review)


# -- decisions -------------------------------------------------------------------------------


class AlreadyDecided(BotkitError):
    """Someone else decided the candidate first (another tab, another reviewer, ``botkit review``)."""


APPROVE, REJECT, EDIT = "approve", "reject", "edit"
#: What each decision did, in words.
PAST = {APPROVE: "approved", REJECT: "rejected", EDIT: "edited and approved"}


def decide(ledger: Ledger, bot: str, candidate_id: int, action: str, text: str | None = None) -> str:
    """Approve, reject, or edit-then-approve one queued candidate; what happened, in words.

    Raises :class:`AlreadyDecided` (saying what it is now) when the candidate is not queued any
    more: the update is conditional on ``state = 'queued'``, so of two reviewers only one wins.
    """
    found = ledger.candidate(bot, candidate_id)
    if found is None:
        raise AlreadyDecided(f"{bot} has no candidate {candidate_id}")
    if action == EDIT:
        if not (text or "").strip():
            raise BotkitError(f"candidate {candidate_id}: the edited text is empty; reject it instead")
        done = ledger.review(found, approve=True, text=text)
    elif action in (APPROVE, REJECT):
        done = ledger.review(found, approve=action == APPROVE)
    else:
        raise BotkitError(f"unknown decision {action!r} (approve, reject or edit)")
    if not done:
        now = ledger.candidate(bot, candidate_id)
        raise AlreadyDecided(f"candidate {candidate_id} was already decided: it is {now.state if now else 'gone'} now")
    return f"candidate {candidate_id} {PAST[action]}"


def enqueue(ledger: Ledger, bot: str, new: Sequence[NewCandidate]) -> None:
    """Add candidates that did not come from the bot's supplier (the playground's picks); the
    supplier's position, and so the bot's next refill, stays as it was."""
    ledger.add_candidates(bot, new, None)


# -- models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelView:
    """A model folder as the model page and ``botkit report`` show it.

    ``history``: one ``{"epoch", "train_loss", "val_loss", ...}`` per epoch, from the model's
    ``config.json`` (``training.history``) or else from its ``resume/state.json`` (``history``).
    """

    folder: Path
    model: dict[str, Any]
    training: dict[str, Any]
    result: dict[str, Any]
    history: list[dict[str, Any]]
    corpora: list[CorpusStats]
    problems: list[str]

    @property
    def unit(self) -> str:
        """What the losses are per: a token, or a character for a fine-tuned transformer (whose tokens are not the LSTM's)."""
        return str(self.training.get("unit") or "token")


def model_view(folder: Path, corpora: Iterable[Path] | None = None) -> ModelView:
    """What a model folder records: settings, final and per-epoch losses, and its corpora's statistics.

    ``corpora``: the corpus files (a bot's, from the config); else those the training config names.
    Raises :class:`BotkitError` when the folder has no readable ``config.json``.
    """
    folder = model_folder.resolve(folder)
    data = model_folder.described(folder)
    if data is None:
        raise BotkitError(f"{folder}: not a trained model folder (no readable {model_folder.CONFIG}; train it with botkit train or botkit farm build)")
    training = dict(data.get("training") or {})
    result = training.pop("result", None) or {}
    history = training.pop("history", None) or (model_folder.read_json(folder / model_folder.RESUME_STATE) or {}).get("history") or []
    named = training.pop("corpus", None) or []
    paths = list(corpora) if corpora is not None else [Path(p) for p in (named if isinstance(named, list) else [named])]
    stats, problems = [], []
    for path in paths:
        try:
            stats.append(_stats(path.resolve(), path.stat().st_mtime_ns))
        except (OSError, BotkitError) as exc:
            problems.append(f"corpus {path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
    epochs = [entry for entry in history if isinstance(entry, dict) and "epoch" in entry]
    return ModelView(folder, dict(data.get("model") or {}), training, result, epochs, stats, problems)


@lru_cache(maxsize=32)
def _stats(path: Path, mtime_ns: int) -> CorpusStats:
    """Corpus statistics, kept until the file changes: a page view must not re-read a big corpus."""
    return corpus_stats(path)


def bot_corpora(spec: BotSpec, corpora: Mapping[str, Any]) -> list[Path] | None:
    """The corpus files a model bot learns from (``corpus:`` names in the config); None: not named."""
    names = spec.options.corpus
    if names is None:
        return None
    return [corpora[name].output for name in ([names] if isinstance(names, str) else names) if name in corpora]
