"""One bot's tick: keep the buffer full, reconcile, claim, post, record. The same for every target.

The exactly-once rules live here and only here:

* a candidate is claimed (committed) before it is posted and marked posted after;
* a candidate left claimed (a crash, or an error after which the service may have posted it) is
  reconciled with the target before the bot posts anything else, and before each retry;
* a candidate goes back to the queue only when the service certainly did not post it (a rate
  limit, bad credentials), and is marked failed only when the service refused it for good;
* a tick runs only while this worker holds the bot's lease, a claim left by another worker is
  touched only once that worker's lease on it ran out, and the claim is renewed before every try
  (a worker that lost it stops without posting). The ledger makes each of these one transaction;
* a worker that stops cleanly looks its claim left in doubt up once before it goes
  (:meth:`Bot.settle_claim`), so the ledger agrees with the service without waiting for a restart.

A tick posts at most once. Whatever goes wrong in one bot's tick is recorded in the ledger and
returned; it never propagates into the daemon, so one bot's failure never stops the farm.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.bots.ledger import APPROVED, EVERY_STATE, IN_DOUBT, QUEUED, REJECTED, Busy, Candidate, Ledger, NewCandidate, Wait, storable, utcnow
from botkit.bots.replies import Replier
from botkit.bots.spec import BotSpec, readiness
from botkit.bots.supply import CandidateSupplier, ModelSamples, NoPosts, PostsFile
from botkit.bots.targets import TARGETS, Disabled, Limits, PostResult, RateLimited, Rejected, Target, TargetError, Transient
from botkit.bots.workers import dead_here, describe, new_worker_id
from botkit.errors import BotkitError, ConfigError
from botkit.redact import Redactor

if TYPE_CHECKING:
    from botkit.filters import FilterChain
    from botkit.generate import SampleSource

log = logging.getLogger(__name__)

#: Why a candidate with a lone surrogate (invalid Unicode, e.g. a bad JSON escape) was never posted.
BROKEN_TEXT = "invalid Unicode: a lone surrogate (replaced by U+FFFD here); fix the line in the source"


#: The outcomes of a tick that failed; waiting, empty and skipped are a bot doing its job.
WENT_WRONG = frozenset({"error", "failed", "disabled"})


@dataclass(frozen=True)
class TickResult:
    """What one tick did. ``retry_at``: when trying again makes sense (a rate limit, a limit)."""

    bot: str
    outcome: str  # posted | waiting | empty | skipped | failed | error | disabled
    message: str
    retry_at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.bot}: {self.outcome}: {self.message}"

    @property
    def went_wrong(self) -> bool:
        """The tick failed (an error, a post the service refused, a disabled bot): what makes ``run --once`` exit 1."""
        return self.outcome in WENT_WRONG


class Bot:
    """A bot ready to tick: its spec, its target, its candidate supplier and filter chain.

    ``worker`` is the process's worker id (see :mod:`botkit.bots.workers`): the bot ticks only
    while this worker holds its lease, and every claim it makes is owned by that worker.
    """

    def __init__(
        self,
        spec: BotSpec,
        ledger: Ledger,
        target: Target,
        supplier: Callable[[int], CandidateSupplier],
        chain: FilterChain,
        *,
        worker: str,
        stop: threading.Event | None = None,
        replier: Replier | None = None,
    ) -> None:
        self.spec = spec
        self.replier = replier
        self.name = spec.name
        self.ledger = ledger
        self.target = target
        self.target_kind = spec.target_kind if spec.live else "outbox"
        #: The target's limits protect a remote service; the local outbox needs none.
        self.limits = spec.limits if spec.live else Limits()
        self._supplier = supplier
        self.chain = chain
        self.worker = worker
        self.stop = stop or threading.Event()
        #: Every secret this bot may meet: the config's values from the environment, its target's
        #: credentials, the ledger URL's password (and, by shape, any URL's credentials).
        self._redact = spec.redact | ledger.redact | Redactor.of(target.secrets())

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Post once, on the bot's schedule (a claim left by a crash is settled first)."""
        return self._guarded(self._tick)

    def reply_tick(self) -> TickResult:
        """Listen, turn what is new into reply candidates, and post one reply: every ``reply.every``."""
        return self._guarded(self._reply_tick)

    def _guarded(self, tick: Callable[[], TickResult]) -> TickResult:
        """The tick's result, an exception included as an ``error`` result.

        The result is not logged (but at debug level, with the traceback): whoever ticks reports
        it (``run --once`` prints it, the daemon reports what is new), and logging it as well
        printed every failure two or three times.
        """
        try:
            result = tick()
        except Exception as exc:
            message = self.explain(exc)
            log.debug("%s: tick failed: %s", self.name, message, exc_info=True)
            self._record_error(message)
            result = TickResult(self.name, "error", message)
        log.debug("%s", result)
        return result

    def _record_error(self, message: str) -> None:
        """Keep the error in the ledger for botkit status; when the ledger itself fails, the log has it."""
        try:
            self.ledger.record_error(self.name, message)
        except Exception as exc:  # noqa: BLE001 - the ledger is down: nothing more to do in this tick
            log.error("%s: could not record the error in the ledger either: %s", self.name, self.explain(exc))

    def _settle(self) -> TickResult | None:
        """Hold the bot, and settle a claim left in flight or by a crash before anything else: the
        tick's result when that (or a wait, a disabled bot) is all this tick may do, else None."""
        holder = self.ledger.acquire(self.name, self.worker, dead=dead_here)
        if holder is not None:
            return TickResult(self.name, "skipped", f"run by {describe(holder)}")
        state = self.ledger.state(self.name)
        if state.disabled:
            return TickResult(self.name, "disabled", state.disabled)
        if state.not_before is not None and utcnow() < state.not_before:
            return TickResult(self.name, "waiting", "the service asked to wait", state.not_before)
        claimed = self.ledger.claimed(self.name)
        if claimed is not None:
            held = self.ledger.take_over(claimed, self.worker, dead=dead_here)
            if isinstance(held, Busy):
                return TickResult(self.name, "waiting", f"candidate {claimed.id} is being posted by {describe(held.owner)}", claimed.lease_until)
            return self._deliver(held, check_first=True)
        return None

    def _tick(self) -> TickResult:
        settled = self._settle()
        if settled is not None:
            return settled
        got = self.claim_next()
        if got is None:  # only a first tick, or a bot that outran its buffer, waits on its supplier
            self.refill()
            got = self.claim_next()
        if isinstance(got, Wait):
            return TickResult(self.name, "waiting", got.reason, got.until)
        if isinstance(got, Busy):
            return TickResult(self.name, "skipped", f"run by {describe(got.owner)}")
        if got is None:
            waiting = "candidates wait for review (botkit review)" if self.ledger.waiting(self.name, replies=False) else "no candidates left"
            return TickResult(self.name, "empty", waiting)
        result = self._deliver(got, check_first=False)
        self._top_up()
        return result

    def claim_next(self, *, replies: bool = False) -> Candidate | Wait | Busy | None:
        """Claim the next approved post (or reply) within the account's limits (see :meth:`Ledger.claim_next`)."""
        return self.ledger.claim_next(self.name, self.worker, account=self.target.account(), limits=self.limits, render=self.target.render, replies=replies)

    def _reply_tick(self) -> TickResult:
        settled = self._settle()
        if settled is not None:
            return settled
        assert self.replier is not None  # reply ticks are scheduled for reply bots only
        try:
            heard = self.target.incoming(self.replier.options.watch)
        except RateLimited as exc:
            until = utcnow() + timedelta(seconds=exc.wait)
            self.ledger.wait_until(self.name, until)
            return TickResult(self.name, "waiting", f"rate limited while listening: {self.redact(str(exc))}", until)
        except Disabled as exc:
            self.ledger.disable(self.name, self.redact(str(exc)))
            return TickResult(self.name, "disabled", self.redact(str(exc)))
        except (Transient, Rejected) as exc:
            message = f"listening failed: {self.redact(str(exc))}"
            self._record_error(message)
            return TickResult(self.name, "error", message)
        stored, skipped = self.replier.take(heard, self.target.me())
        late = self.ledger.expire_replies(self.name, self.replier.options.max_age)
        if late:
            log.warning("%s: %d repl(ies) waited longer than reply.max_age and were dropped", self.name, late)
        heard_line = f"heard {len(heard)}, {stored} new repl{'y' if stored == 1 else 'ies'}, {skipped} skipped"
        got = self.claim_next(replies=True)
        if isinstance(got, Wait):
            return TickResult(self.name, "waiting", f"{heard_line}; {got.reason}", got.until)
        if isinstance(got, Busy):
            return TickResult(self.name, "skipped", f"run by {describe(got.owner)}")
        if got is None:
            waiting = self.ledger.waiting(self.name, (QUEUED,), replies=True)
            return TickResult(self.name, "empty", heard_line + (f"; {waiting} repl(ies) wait for review" if waiting else ""))
        return self._deliver(got, check_first=False)

    def _top_up(self) -> None:
        """Refill after posting, so the next post does not wait on generation; a failure here is
        recorded but does not undo the post this tick made."""
        try:
            self.refill()
        except Exception as exc:  # noqa: BLE001 - same boundary as tick(), after the post
            message = self.explain(exc)
            log.error("%s: refilling the buffer failed: %s", self.name, message)
            self._record_error(f"refilling the buffer failed: {message}")

    # -- posting -----------------------------------------------------------------------------

    def _deliver(self, candidate: Candidate, *, check_first: bool) -> TickResult:
        """Post a claimed candidate, with bounded retries; reconcile first whenever it may be out there."""
        retry = self.spec.options.retry
        last: Transient | None = None
        for attempt in range(retry.attempts):
            if attempt and self.stop.wait(self._backoff(attempt)):
                break  # shutting down: the candidate stays claimed and is reconciled at the next start
            if not self.ledger.renew_claim(candidate, self.worker):  # our lease ran out and another worker took it
                return TickResult(self.name, "skipped", f"candidate {candidate.id} was taken over by another worker; not posting it")
            try:
                result = self.target.reconcile(candidate) if check_first or attempt else None
                if result is None and (check_first or attempt) and not self.ledger.renew_claim(candidate, self.worker):
                    return TickResult(self.name, "skipped", f"candidate {candidate.id} was taken over during its lookup; not posting it")
                if result is None:
                    result = self.target.post(candidate)
            except Transient as exc:
                last = exc
                if attempt + 1 < retry.attempts:  # the last try's failure is the tick's result: said once, there
                    log.warning("%s: try %d of %d: %s", self.name, attempt + 1, retry.attempts, self.redact(str(exc)))
                continue
            # After a crash or an ambiguous error the candidate may be out there: then it stays
            # claimed (reconciled again later) instead of going back to the queue as unposted.
            except RateLimited as exc:
                return self._rate_limited(candidate, exc, unsure=check_first or attempt > 0)
            except Rejected as exc:
                self.ledger.fail(candidate, self.worker, self.redact(str(exc)))
                self._record_error(f"candidate {candidate.id} refused: {self.redact(str(exc))}")
                return TickResult(self.name, "failed", f"candidate {candidate.id} refused: {self.redact(str(exc))}")
            except Disabled as exc:
                return self._disable(candidate, exc, unsure=check_first or attempt > 0)
            return self._posted(candidate, result)
        message = f"candidate {candidate.id} not confirmed ({self.redact(str(last or 'stopped'))}); looked up again when the worker stops or at the next tick"
        self._record_error(message)
        return TickResult(self.name, "error", message)

    def settle_claim(self) -> TickResult | None:
        """On the way out (a clean stop, the end of ``run --once``): one lookup of the claim this
        worker leaves in doubt, so the ledger agrees with the service without waiting for a later
        start. None when the bot has no claim of ours.

        One request, never a retry loop: a stop stays as prompt as the target's request timeout.
        Found: posted. Certainly not there: back in the queue (what a tick does with a post the
        service refused for now). The lookup failed, or proves nothing: the claim stays, and the
        result says so, in one line.
        """
        try:
            claimed = self.ledger.claimed(self.name)
            if claimed is None or claimed.owner != self.worker:
                return None
            return self._look_up_once(claimed)
        except Exception as exc:  # noqa: BLE001 - the ledger is down: whatever is claimed stays, for the next start
            return TickResult(self.name, "error", f"could not settle its claim on the way out: {self.explain(exc)}")

    def _look_up_once(self, candidate: Candidate) -> TickResult:
        left = f"candidate {candidate.id} left {IN_DOUBT}"
        try:
            found = self.target.reconcile(candidate)
        except TargetError as exc:
            return TickResult(self.name, "error", f"{left}: its lookup on the way out failed ({self.redact(str(exc))}); looked up again at the next start")
        if found is not None:
            posted = self._posted(candidate, found)
            return replace(posted, message=f"{posted.message} (found by its lookup on the way out)")
        if not self.target.lookup_proves_absence:
            return TickResult(self.name, "error", f"{left}: {self.target_kind} does not show it yet, which proves nothing; looked up again at the next start")
        self.ledger.release(candidate, self.worker)
        return TickResult(self.name, "waiting", f"candidate {candidate.id} is not on {self.target_kind} (looked up on the way out): back in the queue")

    def _posted(self, candidate: Candidate, result: PostResult) -> TickResult:
        self.ledger.mark_posted(candidate, self.target_kind, result)
        where = result.url or result.remote_id or result.note or "id unknown"
        return TickResult(self.name, "posted", f"candidate {candidate.id} to {self.target_kind}: {where}")

    def _rate_limited(self, candidate: Candidate, exc: RateLimited, *, unsure: bool) -> TickResult:
        if not unsure:
            self.ledger.release(candidate, self.worker)
        until = utcnow() + timedelta(seconds=exc.wait)
        self.ledger.wait_until(self.name, until)
        message = f"rate limited: {self.redact(str(exc))}"
        self._record_error(message)
        return TickResult(self.name, "waiting", message, until)

    def _disable(self, candidate: Candidate, exc: Disabled, *, unsure: bool) -> TickResult:
        if not unsure:
            self.ledger.release(candidate, self.worker)
        message = self.redact(str(exc))
        self.ledger.disable(self.name, message)
        return TickResult(self.name, "disabled", message)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the step fixed, half random, capped."""
        retry = self.spec.options.retry
        step = min(retry.max_backoff, retry.backoff * 2 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)

    # -- the buffer --------------------------------------------------------------------------

    def refill(self) -> int:
        """Top the buffer up when it runs low: supply, filter, store. Returns how many were taken.

        The supplier's position moves by compare-and-set: if another worker refilled meanwhile,
        this batch is dropped rather than stored twice.
        """
        buffer = self.spec.options.buffer
        waiting = self.ledger.waiting(self.name, replies=False)
        if waiting >= max(buffer.low, 1):
            return 0
        start = self.ledger.state(self.name).supplied
        samples = self._supplier(start).candidates(buffer.size - waiting)
        if not samples:
            return 0
        broken = [s for s in samples if storable(s.text) != s.text]
        result = self.chain.apply([s for s in samples if storable(s.text) == s.text])
        state = QUEUED if self.spec.options.review else APPROVED
        new = [NewCandidate(s.text, state, s.label, s.score, s.temperature) for s in result.kept]
        new += [NewCandidate(r.sample.text, REJECTED, r.sample.label, r.sample.score, r.sample.temperature, f"{r.filter}: {r.reason}") for r in result.rejected]
        new += [NewCandidate(storable(s.text), REJECTED, s.label, s.score, s.temperature, BROKEN_TEXT) for s in broken]
        for s in broken:
            log.warning("%s: skipped a candidate with a lone surrogate (invalid Unicode): %r", self.name, storable(s.text)[:80])
        if not self.ledger.add_candidates(self.name, new, start, len(samples)):
            log.info("%s: another worker refilled the buffer meanwhile; this batch is dropped", self.name)
            return 0
        return len(samples)

    def explain(self, exc: Exception) -> str:
        """An unexpected exception as one redacted line; a BotkitError's message says it all already."""
        return self.redact(str(exc) if isinstance(exc, BotkitError) else f"{type(exc).__name__}: {exc}")

    def redact(self, message: str) -> str:
        """Never let a secret through, whatever a library put into its error message."""
        return self._redact(message)


# -- building bots from config ---------------------------------------------------------------


class _Models:
    """Each model's generator, loaded at its first use (TensorFlow loads, the model compiles) and
    shared by every bot of one build that writes with it, posts and replies alike."""

    def __init__(self) -> None:
        self._loaded: dict[Path, SampleSource] = {}
        self._lock = threading.Lock()

    def loader(self, model: Path) -> Callable[[], SampleSource]:
        return functools.partial(self.load, model)

    def load(self, model: Path) -> SampleSource:
        from botkit.generate import load

        with self._lock:
            if model not in self._loaded:
                self._loaded[model] = load(model)
            return self._loaded[model]


def _supplier(spec: BotSpec, ledger: Ledger, models: _Models) -> Callable[[int], CandidateSupplier]:
    """A factory of suppliers that start from the position the ledger holds (another process may have moved it)."""
    posts, model = spec.options.posts, spec.options.model
    if posts is not None:  # which lines were taken is known by their content, whatever the position
        return lambda start: PostsFile(posts, ledger.texts(spec.name, EVERY_STATE))
    if model is None:  # a bot that only replies: nothing to supply
        return lambda start: NoPosts()
    return lambda start: ModelSamples(models.loader(model), spec.options.generate, start, salt=spec.name)


class _Accounts:
    """The names a build's bots go by on their services: each bot's name (the outbox's authors) and
    its account there (:meth:`Target.me`, asked once, at the first reply bot's need). An account
    that cannot be asked now (the service is down) is asked again next time."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, names: Iterable[str]) -> set[str]:
        found = set()
        for name in names:
            found.add(name)
            account = self._account(name)
            if account is not None:
                found.add(account)
        return found

    def _account(self, name: str) -> str | None:
        with self._lock:
            if name not in self._known and name in self.targets:
                try:
                    self._known[name] = self.targets[name].me()
                except Exception as exc:  # noqa: BLE001 - any failure of a remote service: the bot name still counts
                    log.info("%s: its account name is not known yet (%s)", name, type(exc).__name__)
            return self._known.get(name)


def _replier(spec: BotSpec, ledger: Ledger, chain: FilterChain, models: _Models, peers: set[str], accounts: _Accounts) -> Replier | None:
    model = spec.options.reply_model
    if model is None:
        return None
    return Replier(spec, ledger, chain, models.loader(model), peers=peers, accounts=accounts)


def _target(spec: BotSpec, ledger: Ledger) -> Target:
    """The configured target when live; until then the outbox, so nothing goes out by accident."""
    if spec.live:
        return spec.target_cls(spec.target, bot=spec.name, ledger=ledger)
    outbox = TARGETS.get("outbox")
    options = outbox.Options.model_validate({"signature": spec.target.signature}, context={"base_dir": spec.base_dir})
    return outbox(options, bot=spec.name, ledger=ledger)


def filter_chain(spec: BotSpec, ledger: Ledger, where: str) -> FilterChain:
    """The bot's filter chain with its context (what it posted or holds, the target's length limit, the
    model's corpus): what its refills judge candidates by, and what the console's playground shows."""
    from botkit.filters import FilterContext, build_chain

    o = spec.options
    extra: dict[str, Any] = {"posted": ledger.texts(spec.name), "max_chars": spec.target_cls.max_chars(spec.target)}
    context = FilterContext(**extra)
    if o.model is not None:  # the novelty filter needs the corpus the model learnt from, recorded in its config.json
        from botkit.model.saving import ModelFolderError, read_training

        try:
            context = FilterContext.for_model(o.model, read_training(o.model), **extra)
        except ModelFolderError:
            pass  # a missing or broken model folder is reported with the bot's other problems
    return build_chain(o.filters, context, where=where, path_prefix=("bots", spec.name, "filters"), base_dir=spec.base_dir)


def build_bots(specs: Mapping[str, BotSpec], ledger: Ledger, where: str, *, worker: str | None = None, stop: threading.Event | None = None) -> list[Bot]:
    """Every bot ready to tick as ``worker`` (a new id by default), or a :class:`ConfigError` listing every problem of every bot."""
    worker = worker or new_worker_id()
    problems = readiness(specs, where)
    bots, models, accounts = [], _Models(), _Accounts()
    for spec in specs.values():
        try:
            target, chain = _target(spec, ledger), filter_chain(spec, ledger, where)
            accounts.targets[spec.name] = target
            replier = _replier(spec, ledger, chain, models, set(specs), accounts)
            bots.append(Bot(spec, ledger, target, _supplier(spec, ledger, models), chain, worker=worker, stop=stop, replier=replier))
        except ConfigError as exc:
            message = spec.redact(str(exc))
            problems.append(message if message.startswith(f"{where}:") else f"{where}: {message}")
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return bots
