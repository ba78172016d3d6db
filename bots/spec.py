"""The ``bots:`` and ``defaults:`` sections of config.yaml, validated into :class:`BotSpec` objects.

Two stages, because they fail for different reasons:

* :func:`parse_bots` (run by every ``load_config``) checks the *shape*: bot names, unknown keys,
  types, the target kind, cron syntax, filter names and their options. A config with a typo is
  wrong whatever command reads it.
* :func:`readiness` (run by ``botkit run`` before it starts) checks what must exist *now*: the
  model folder or posts file, a live target's credentials. ``botkit fetch`` and ``farm build``
  must not fail on weights that they are about to create.

Both collect every problem, each as ``FILE: bots.NAME.key: what is wrong``, and raise them at once.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from botkit import model_folder
from botkit.bots.durations import Duration
from botkit.bots.targets import TARGETS, Limits, Target, TargetOptions
from botkit.errors import BotkitError, ConfigError
from botkit.generation import GenerateSettings
from botkit.options import Options, validate
from botkit.redact import Redactor
from botkit.training import ShapeOptions, StartFrom, TrainConfig


class Schedule(Options):
    """When a bot ticks: a fixed interval or a crontab line, optionally with random jitter."""

    every: Duration | None = Field(None, gt=0, description="tick every so often: 10s, 30m, 3h")
    cron: str | None = Field(None, description="tick on a crontab line, e.g. '0 */3 * * *' (minute hour day month weekday)")
    jitter: Duration | None = Field(None, description="shift each tick by up to this much, at random")

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every: (an interval) or cron: (a crontab line)")
        if self.cron is not None:
            self.trigger()  # a bad crontab line is a config error now, not a crash at start
        return self

    def trigger(self) -> Any:
        """The APScheduler trigger (imported here: the CLI must start fast)."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        jitter = max(int(self.jitter), 1) if self.jitter else None  # APScheduler wants whole seconds
        if self.cron is None:
            return IntervalTrigger(seconds=self.every, jitter=jitter, timezone="UTC")
        fields = self.cron.split()
        if len(fields) != 5:
            raise ValueError(f"crontab line {self.cron!r} has {len(fields)} fields, expected 5 (minute hour day month weekday)")
        minute, hour, day, month, weekday = fields
        try:
            return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday), jitter=jitter, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a valid crontab line {self.cron!r} ({exc})") from None


_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _weekdays(field: str) -> str:
    """A crontab weekday field in APScheduler 3's terms.

    Crontab counts 0 (and 7) as Sunday; APScheduler 3.x counts 0 as Monday. Numbers are turned
    into day names so ``* * * * 1`` means Monday, as every crontab user expects.
    """
    parts = []
    for part in field.split(","):
        span, _, step = part.partition("/")
        if not span.replace("-", "").isdigit():
            parts.append(part)  # *, */2, names: the same in both
            continue
        first, _, last = span.partition("-")
        days = range(int(first), int(last or first) + 1, int(step or 1))
        parts.extend(_DAYS[d] if d < len(_DAYS) else str(d) for d in days)
    return ",".join(parts)


class TrainBlock(TrainConfig, ShapeOptions, StartFrom):
    """A model bot's ``train:`` block: every setting of ``botkit train`` (its flags, as keys), and ``from``."""

    def given(self) -> dict[str, Any]:
        """The keys the config set, as written (the farm's stamp of the training settings)."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class Buffer(Options):
    """Candidates kept ready in the ledger, so a post never waits on generation."""

    size: int = Field(20, ge=1, description="candidates to hold ready after a refill")
    low: int = Field(5, ge=0, description="refill when fewer than this many are ready")


class Retry(Options):
    """Retries of one post within a tick, after 5xx answers, timeouts and dropped connections."""

    attempts: int = Field(3, ge=1, description="tries per tick, the first included")
    backoff: Duration = Field(2.0, description="wait before the first retry; doubles each time, with jitter")
    max_backoff: Duration = Field(60.0, description="longest wait between two tries")


class ReplyOptions(Options):
    """A bot's ``reply:`` block: what it listens to, how it answers, and the guards against reply storms.

    Every guard is on by default. A reply is a candidate like a post: it passes the bot's filters,
    waits for ``botkit review`` when ``review: true``, and counts against the target's limits.
    """

    model: Path | None = Field(
        None, description="a reply model (trained on a pair corpus) to answer with; default: the bot's own model, which must then be one"
    )
    every: Duration = Field(120.0, gt=0, description="look for new mentions and comments this often")
    watch: list[str] = Field(
        default_factory=list, description="places to watch besides what is addressed to the bot: subreddits on reddit (new posts and comments there)"
    )
    bots: list[str] = Field(
        default_factory=list,
        description="other bots it may answer (their names in this config, or account names); anyone the service flags as a bot, or any bot of this config, is ignored otherwise",
    )
    max_depth: int = Field(4, ge=1, description="the deepest reply it writes (a top-level post is depth 0, a comment on it 1)")
    max_per_thread: int = Field(3, ge=1, description="most replies of this bot in one thread")
    decay: float = Field(
        0.7,
        gt=0,
        le=1,
        description="the chance of answering something at depth d is decay^(d-1): a mention or a comment on its post always (1), deeper ones less and less",
    )
    cooldown: Duration = Field(600.0, description="least time between two replies of this bot to one author")
    samples: int = Field(5, ge=1, le=100, description="replies generated per parent; the first that passes the filters is kept")
    max_age: Duration = Field(
        86400.0, gt=0, description="ignore what is older than this when first seen (a bot started after a week off does not answer last week)"
    )


class BotOptions(Options):
    """One bot, as written under ``bots.NAME`` (after ``defaults:`` are merged in)."""

    model: Path | None = Field(None, description="model folder to generate from, e.g. weights/apple")
    posts: Path | None = Field(None, description="a .txt or .jsonl file of prepared posts, taken in order, each once")
    corpus: str | list[str] | None = Field(None, description="corpora (names under corpora:) its model learns from, for botkit farm build")
    train: TrainBlock = Field(
        default_factory=TrainBlock, description="training settings for botkit farm build: the flags of botkit train as keys (epochs, minutes...), and from"
    )
    generate: GenerateSettings = Field(
        default_factory=GenerateSettings, description="generation settings for a model bot: the flags of botkit generate as keys"
    )
    filters: str | list[str | dict[str, Any]] = Field("default", description="filters every candidate must pass: a list, 'default' or 'none'")
    target: dict[str, Any] = Field(default_factory=lambda: {"kind": "outbox"}, description="where posts go: {kind: outbox|reddit|twitter, ...}")
    schedule: Schedule = Field(default_factory=lambda: Schedule(every=3 * 3600.0), description="when the bot posts")
    review: bool = Field(False, description="hold candidates until approved with `botkit review NAME`")
    buffer: Buffer = Field(default_factory=Buffer, description="candidates kept ready")
    retry: Retry = Field(default_factory=Retry, description="retries after server errors")
    reply: ReplyOptions | None = Field(None, description="answer mentions and comments: where to listen, and the guards against reply storms")

    @model_validator(mode="after")
    def _one_supply(self) -> BotOptions:
        if self.model is not None and self.posts is not None:
            raise ValueError("give one of model: (a model folder) or posts: (a file of prepared posts), not both")
        if self.model is None and self.posts is None:
            if self.reply is None:
                raise ValueError("give one of model: (a model folder) or posts: (a file of prepared posts), or a reply: block")
            if self.reply.model is None:
                raise ValueError("a bot that only replies needs reply.model: (a reply model)")
        return self

    @property
    def posts_at_all(self) -> bool:
        """Whether the bot writes top-level posts on its schedule (a reply-only bot does not)."""
        return self.model is not None or self.posts is not None

    @property
    def reply_model(self) -> Path | None:
        """The model that writes its replies: ``reply.model``, else its own model."""
        return None if self.reply is None else self.reply.model or self.model


@dataclass(frozen=True)
class BotSpec:
    """A validated bot: its options, its target class and options, and the limits in force."""

    name: str
    options: BotOptions
    target_kind: str
    target_cls: type[Target]
    target: TargetOptions
    limits: Limits
    base_dir: Path  # the config file's folder: relative paths and the default outbox live there
    #: Hides the config's values from the environment (and any URL's credentials) in what the bot says or stores.
    redact: Redactor = Redactor()

    @property
    def live(self) -> bool:
        """Whether posts really go to the target: the local outbox always does."""
        return self.target.live or self.target_kind == "outbox"

    def loosened_limits(self) -> list[str]:
        """The default limits this config lowered, for the warning at start."""
        return self.limits.looser_than(self.target_cls.default_limits) if self.live else []


#: A name of a bot or corpus: it becomes a file or folder name (the outbox file, a corpus, a weights
#: folder, ledger rows a path is made from), so nothing that leaves that folder (``../x``, ``a/b``),
#: hides the file (``.x``) or is longer than a file name may be.
_NAME = re.compile(r"[\w-][\w.-]{0,99}")


def name_problem(name: str, where: str, section: str) -> str | None:
    """The problem line for an unusable ``section.NAME`` (see :data:`_NAME`), or None when it is fine."""
    if _NAME.fullmatch(name):
        return None
    shown = name if name.isprintable() else repr(name)
    return f"{where}: {section}.{shown}: not a usable name (it names files: letters, digits, -, _ and . only, not . first, at most 100)"


def _merge(base: Mapping[str, Any], over: Mapping[str, Any], inherited: set[tuple[str, ...]], at: tuple[str, ...] = ()) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key; the key paths taken from ``base``
    as they were are added to ``inherited`` (a mistake there is reported at ``defaults.KEY``).

    Two exceptions, where a merge would make nonsense: a ``schedule`` replaces the default one
    whole (``every`` and ``cron`` exclude each other), and so does a ``target`` of another kind
    (keys of a Reddit default mean nothing to an X target).
    """
    merged = copy.deepcopy(dict(base))
    inherited |= {(*at, str(key)) for key in base if key not in over}
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping) and key != "schedule":
            same_kind = key != "target" or value.get("kind", old.get("kind")) == old.get("kind")
            merged[key] = _merge(old, value, inherited, (*at, str(key))) if same_kind else copy.deepcopy(dict(value))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _secret_paths(secret: set[tuple[str, ...]], name: str) -> set[tuple[str, ...]]:
    """Secret key paths as seen from ``bots.NAME`` (values from ``defaults:`` included)."""
    paths = set(secret)
    paths |= {("bots", name) + path[1:] for path in secret if path[:1] == ("defaults",)}
    return paths


def _bot_spec(
    name: str, defaults: Mapping[str, Any], own: Mapping[str, Any], where: str, base_dir: Path, secret: set[tuple[str, ...]], redact: Redactor
) -> BotSpec:
    """One bot's spec, or a ConfigError naming every problem of its options and of its target."""
    prefix = ("bots", name)
    secret = _secret_paths(secret, name)
    inherited: set[tuple[str, ...]] = set()
    raw = _merge(defaults, own, inherited)

    def shown_as(path: tuple[str, ...]) -> tuple[str, ...]:
        """``defaults.KEY`` for a value the bot inherited: a mistake there is reported once, at its own key."""
        keys = path[2:]  # after ("bots", name)
        return ("defaults", *keys) if any(keys[:n] in inherited for n in range(1, len(keys) + 1)) else path

    problems: list[str] = []
    try:
        options = validate(BotOptions, raw, where, prefix, base_dir=base_dir, secret=secret, shown_as=shown_as)
    except ConfigError as exc:
        problems.append(str(exc))
    # The filters' names and options are checked even when other keys are wrong, as the target below.
    filters = raw.get("filters", "default")
    try:
        _filters_shape().validate_python(filters)
    except ValidationError:
        pass  # its shape is wrong: the options' own check said so
    else:
        from botkit.filters import chain_problems

        problems += chain_problems(filters, where, shown_as(prefix + ("filters",)), base_dir=base_dir)
    # The target is checked even when other keys are wrong, so one run shows all of a bot's problems
    # (a target that is not a mapping at all was reported by the options above).
    raw_target = raw.get("target", {"kind": "outbox"})
    target_values = dict(raw_target) if isinstance(raw_target, Mapping) else {"kind": "outbox"}
    kind = target_values.pop("kind", None)
    try:
        if not isinstance(kind, str):
            raise ConfigError(f"{where}: bots.{name}.target.kind: required key is missing (a target: {', '.join(TARGETS.names())})")
        try:
            target_cls = TARGETS.get(kind)
        except BotkitError as exc:
            raise ConfigError(f"{where}: bots.{name}.target.kind: {exc}") from None
        target = validate(target_cls.Options, target_values, where, prefix + ("target",), base_dir=base_dir, secret=secret, shown_as=shown_as)
    except ConfigError as exc:
        problems.append(str(exc))
    if not problems:
        problems += _reply_problems(options, kind, target_cls, f"{where}: bots.{name}.reply")
        problems += [
            f"{where}: bots.{name}.target.{key}: required for a bot that posts (only a bot that just replies may leave it out)"
            for key in target_cls.needed_to_post
            if options.posts_at_all and getattr(target, key) is None
        ]
    if problems:
        raise ConfigError("\n".join(problems))
    limits = target.limits.applied_to(target_cls.default_limits)
    return BotSpec(name, options, kind, target_cls, target, limits, base_dir, redact)


@functools.cache
def _filters_shape() -> TypeAdapter[Any]:
    """What ``filters:`` may be, checked alone: its names are looked at only when its shape is right."""
    return TypeAdapter(cast(Any, BotOptions.model_fields["filters"].annotation))


def _reply_problems(options: BotOptions, kind: str, target_cls: type[Target], at: str) -> list[str]:
    """What a ``reply:`` block asks of its target that the target cannot do."""
    if options.reply is None:
        return []
    if not target_cls.listens:
        return [f"{at}: the {kind} target cannot listen for things to answer"]
    if options.reply.watch and target_cls.watches is None:
        return [f"{at}.watch: the {kind} target has no places to watch (it answers what is addressed to the bot)"]
    return []


def parse_bots(
    defaults: Mapping[str, Any], bots: Mapping[str, Any], where: str, base_dir: Path, secret: set[tuple[str, ...]], redact: Redactor = Redactor()
) -> tuple[dict[str, BotSpec], list[str]]:
    """Validate every bot; return the good ones and one line per problem (all of them).

    ``redact``: the config's values from the environment, which each spec keeps to hide them at run time.
    """
    specs: dict[str, BotSpec] = {}
    problems: list[str] = []
    for name, raw in bots.items():
        if (bad_name := name_problem(str(name), where, "bots")) is not None:
            problems.append(bad_name)
            continue
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: bots.{name}: expected a mapping of keys (model, target, schedule...)")
            continue
        try:
            specs[name] = _bot_spec(str(name), defaults, raw, where, base_dir, secret, redact)
        except ConfigError as exc:
            problems += [line for line in str(exc).splitlines() if line not in problems]  # a defaults: mistake once, not per bot
    return specs, problems


def _trained_without_parents(model: Path) -> bool:
    """Whether the model's config.json says it is no reply model (a missing or broken model is
    reported as such where it is loaded)."""
    return model_folder.training(model).get("conditional") is False


def readiness(specs: Mapping[str, BotSpec], where: str) -> list[str]:
    """What stops these bots from running now, one ``FILE: bots.NAME.key: why`` line each (a path
    or value that came from the environment hidden)."""
    problems = []
    for name, spec in specs.items():
        o = spec.options
        mine = []
        if o.model is not None and not o.model.is_dir():
            mine.append(f"{where}: bots.{name}.model: no model folder {o.model} (train it first: botkit farm build)")
        if o.posts is not None and not o.posts.is_file():
            mine.append(f"{where}: bots.{name}.posts: no such file {o.posts}")
        if o.reply is not None and o.reply.model is not None and not o.reply.model.is_dir():
            mine.append(f"{where}: bots.{name}.reply.model: no model folder {o.reply.model} (train it on a pair corpus first)")
        elif o.reply_model is not None and _trained_without_parents(o.reply_model):
            key = "reply.model" if o.reply is not None and o.reply.model is not None else "model"
            mine.append(f"{where}: bots.{name}.{key}: {o.reply_model} is not a reply model (its corpus had no parents); a reply: block needs one")
        if spec.live:
            mine += [f"{where}: bots.{name}.target.{line}" for line in spec.target_cls.missing(spec.target)]
        problems += [spec.redact(line) for line in mine]
    return problems
