"""One bot's tick: keep the buffer full, reconcile, claim, post, record. The same for every target.

The exactly-once rules live here and only here:

* a candidate is claimed (committed) before it is posted and marked posted after;
* a candidate left claimed (a crash, or an error after which the service may have posted it) is
  reconciled with the target before the bot posts anything else, and before each retry;
* a candidate goes back to the queue only when the service certainly did not post it (a rate
  limit, bad credentials), and is marked failed only when the service refused it for good.

A tick posts at most once. Whatever goes wrong in one bot's tick is recorded in the ledger and
returned; it never propagates into the daemon, so one bot's failure never stops the farm.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botkit.bots import TARGETS, Disabled, Limits, PostResult, RateLimited, Rejected, Target, Transient
from botkit.bots.ledger import APPROVED, QUEUED, REJECTED, Candidate, Ledger, NewCandidate, utcnow
from botkit.bots.spec import BotSpec, readiness
from botkit.bots.supply import CandidateSupplier, ModelSamples, PostsFile
from botkit.errors import BotkitError, ConfigError

if TYPE_CHECKING:
    from botkit.filters import FilterChain
    from botkit.generate import Generator

log = logging.getLogger(__name__)

DAY = timedelta(days=1)


@dataclass(frozen=True)
class TickResult:
    """What one tick did. ``retry_at``: when trying again makes sense (a rate limit, a limit)."""

    bot: str
    outcome: str  # posted | waiting | empty | failed | error | disabled
    message: str
    retry_at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.bot}: {self.outcome}: {self.message}"


class Bot:
    """A bot ready to tick: its spec, its target, its candidate supplier and filter chain."""

    def __init__(
        self,
        spec: BotSpec,
        ledger: Ledger,
        target: Target,
        supplier: Callable[[], CandidateSupplier],
        chain: FilterChain,
        *,
        stop: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.ledger = ledger
        self.target = target
        self.target_kind = spec.target_kind if spec.live else "outbox"
        #: The target's limits protect a remote service; the local outbox needs none.
        self.limits = spec.limits if spec.live else Limits()
        self._supplier = supplier
        self.chain = chain
        self.stop = stop or threading.Event()
        self._secrets = [s for s in target.secrets() if s]

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> TickResult:
        try:
            result = self._tick()
        except Exception as exc:  # noqa: BLE001 - the farm boundary: record, report, carry on
            message = self.explain(exc)
            log.error("%s: tick failed: %s", self.name, message, exc_info=log.isEnabledFor(logging.DEBUG))
            self.ledger.record_error(self.name, message)
            result = TickResult(self.name, "error", message)
        log.log(logging.WARNING if result.outcome in ("error", "failed", "disabled") else logging.INFO, "%s", result)
        return result

    def _tick(self) -> TickResult:
        state = self.ledger.state(self.name)
        if state.disabled:
            return TickResult(self.name, "disabled", state.disabled)
        now = utcnow()
        if state.not_before is not None and now < state.not_before:
            return TickResult(self.name, "waiting", "the service asked to wait", state.not_before)
        wait = self._limit(state.last_post_at, now)
        if wait is not None:
            return wait
        claimed = self.ledger.claimed(self.name)
        if claimed is not None:
            self.ledger.retry_claim(claimed)
            return self._deliver(claimed, check_first=True)
        candidate = self.ledger.claim_next(self.name)
        if candidate is None:  # only a first tick, or a bot that outran its buffer, waits on its supplier
            self.refill()
            candidate = self.ledger.claim_next(self.name)
        if candidate is None:
            waiting = "candidates wait for review (botkit review)" if self.ledger.waiting(self.name) else "no candidates left"
            return TickResult(self.name, "empty", waiting)
        result = self._deliver(candidate, check_first=False)
        self._top_up()
        return result

    def _top_up(self) -> None:
        """Refill after posting, so the next post does not wait on generation; a failure here is
        recorded but does not undo the post this tick made."""
        try:
            self.refill()
        except Exception as exc:  # noqa: BLE001 - same boundary as tick(), after the post
            message = self.explain(exc)
            log.error("%s: refilling the buffer failed: %s", self.name, message)
            self.ledger.record_error(self.name, f"refilling the buffer failed: {message}")

    def _limit(self, last_post_at: datetime | None, now: datetime) -> TickResult | None:
        """A waiting result when the minimum interval or the daily cap holds the bot back."""
        lim = self.limits
        if lim.min_interval and last_post_at is not None:
            ready = last_post_at + timedelta(seconds=lim.min_interval)
            if now < ready:
                return TickResult(self.name, "waiting", f"minimum interval {lim.min_interval:g}s since the last post", ready)
        if lim.daily_cap:
            nth = self.ledger.nth_latest_post(self.name, lim.daily_cap)
            if nth is not None and now < nth + DAY:
                return TickResult(self.name, "waiting", f"daily cap of {lim.daily_cap} posts reached", nth + DAY)
        return None

    # -- posting -----------------------------------------------------------------------------

    def _deliver(self, candidate: Candidate, *, check_first: bool) -> TickResult:
        """Post a claimed candidate, with bounded retries; reconcile first whenever it may be out there."""
        retry = self.spec.options.retry
        last: Transient | None = None
        for attempt in range(retry.attempts):
            if attempt and self.stop.wait(self._backoff(attempt)):
                break  # shutting down: the candidate stays claimed and is reconciled at the next start
            try:
                result = self.target.reconcile(candidate) if check_first or attempt else None
                if result is None:
                    result = self.target.post(candidate)
            except Transient as exc:
                last = exc
                log.warning("%s: try %d of %d: %s", self.name, attempt + 1, retry.attempts, self.redact(str(exc)))
                continue
            # After a crash or an ambiguous error the candidate may be out there: then it stays
            # claimed (reconciled again later) instead of going back to the queue as unposted.
            except RateLimited as exc:
                return self._rate_limited(candidate, exc, unsure=check_first or attempt > 0)
            except Rejected as exc:
                self.ledger.fail(candidate, self.redact(str(exc)))
                self.ledger.record_error(self.name, f"candidate {candidate.id} refused: {self.redact(str(exc))}")
                return TickResult(self.name, "failed", f"candidate {candidate.id} refused: {self.redact(str(exc))}")
            except Disabled as exc:
                return self._disable(candidate, exc, unsure=check_first or attempt > 0)
            return self._posted(candidate, result)
        message = f"candidate {candidate.id} not confirmed ({self.redact(str(last or 'stopped'))}); checked again at the next tick"
        self.ledger.record_error(self.name, message)
        return TickResult(self.name, "error", message)

    def _posted(self, candidate: Candidate, result: PostResult) -> TickResult:
        self.ledger.mark_posted(candidate, self.target_kind, result)
        where = result.url or result.remote_id or result.note or "id unknown"
        return TickResult(self.name, "posted", f"candidate {candidate.id} to {self.target_kind}: {where}")

    def _rate_limited(self, candidate: Candidate, exc: RateLimited, *, unsure: bool) -> TickResult:
        if not unsure:
            self.ledger.release(candidate)
        until = utcnow() + timedelta(seconds=exc.wait)
        self.ledger.wait_until(self.name, until)
        message = f"rate limited: {self.redact(str(exc))}"
        self.ledger.record_error(self.name, message)
        return TickResult(self.name, "waiting", message, until)

    def _disable(self, candidate: Candidate, exc: Disabled, *, unsure: bool) -> TickResult:
        if not unsure:
            self.ledger.release(candidate)
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
        """Top the buffer up when it runs low: supply, filter, store. Returns how many were taken."""
        buffer = self.spec.options.buffer
        waiting = self.ledger.waiting(self.name)
        if waiting >= max(buffer.low, 1):
            return 0
        samples = self._supplier().candidates(buffer.size - waiting)
        if not samples:
            return 0
        result = self.chain.apply(samples)
        state = QUEUED if self.spec.options.review else APPROVED
        new = [NewCandidate(s.text, state, s.label, s.score, s.temperature) for s in result.kept]
        new += [
            NewCandidate(r.sample.text, REJECTED, r.sample.label, r.sample.score, r.sample.temperature, f"{r.filter}: {r.reason}")
            for r in result.rejected
        ]
        self.ledger.add_candidates(self.name, new, supplied=len(samples))
        return len(samples)

    def explain(self, exc: Exception) -> str:
        """An unexpected exception as one redacted line; a BotkitError's message says it all already."""
        return self.redact(str(exc) if isinstance(exc, BotkitError) else f"{type(exc).__name__}: {exc}")

    def redact(self, message: str) -> str:
        """Never let a secret through, whatever a library put into its error message."""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


# -- building bots from config ---------------------------------------------------------------


def _supplier(spec: BotSpec, ledger: Ledger) -> Callable[[], CandidateSupplier]:
    """A factory, so every refill starts from the position the ledger holds (another process may have moved it)."""
    posts, model = spec.options.posts, spec.options.model
    if posts is not None:
        return lambda: PostsFile(posts, ledger.state(spec.name).supplied)

    @functools.cache
    def load() -> Generator:  # once per process, at the first refill: TensorFlow loads, the model compiles
        from botkit.generate import Generator

        return Generator.load(model)

    return lambda: ModelSamples(load, spec.options.generate, ledger.state(spec.name).supplied)


def _target(spec: BotSpec, ledger: Ledger) -> Target:
    """The configured target when live; until then the outbox, so nothing goes out by accident."""
    if spec.live:
        return spec.target_cls(spec.target, bot=spec.name, ledger=ledger)
    outbox = TARGETS.get("outbox")
    options = outbox.Options.model_validate({"signature": spec.target.signature}, context={"base_dir": spec.base_dir})
    return outbox(options, bot=spec.name, ledger=ledger)


def _chain(spec: BotSpec, ledger: Ledger, where: str) -> FilterChain:
    from botkit.filters import FilterContext, build_chain

    o = spec.options
    extra = {"posted": ledger.texts(spec.name), "max_chars": spec.target_cls.max_chars(spec.target)}
    context = FilterContext(**extra)
    if o.model is not None:  # the novelty filter needs the corpus the model learnt from, recorded in its config.json
        from botkit.model.weights import WeightsError, read_config

        try:
            context = FilterContext.for_model(o.model, read_config(o.model)[1], **extra)
        except WeightsError:
            pass  # a missing or broken model folder is reported with the bot's other problems
    return build_chain(o.filters, context, where=where, path_prefix=("bots", spec.name, "filters"), base_dir=spec.base_dir)


def build_bots(specs: Mapping[str, BotSpec], ledger: Ledger, where: str, *, stop: threading.Event | None = None) -> list[Bot]:
    """Every bot ready to tick, or a :class:`ConfigError` listing every problem of every bot."""
    problems = readiness(specs, where)
    bots = []
    for spec in specs.values():
        try:
            bots.append(Bot(spec, ledger, _target(spec, ledger), _supplier(spec, ledger), _chain(spec, ledger, where), stop=stop))
        except ConfigError as exc:
            message = str(exc)
            problems.append(message if message.startswith(f"{where}:") else f"{where}: {message}")
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return bots
