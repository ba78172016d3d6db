"""Sample filters: throw away the generated samples a bot should not post.

A filter is a class with an ``Options`` model (its config keys, declared once, as for sources) and a
:meth:`Filter.check` method that judges a whole batch at once, because generation produces
thousands of samples a second and per-sample Python overhead adds up. Filters register by name in
the ``botkit.filters`` entry-point group::

    [project.entry-points."botkit.filters"]
    myfilter = "mypackage.module:MyFilter"

A chain comes from config.yaml (``filters: [length, dedupe, {novelty: {words: 6}}]``) or from the
command line (``--filters default|none|a,b,c``) through :func:`build_chain`. The chain records
every rejection with the name of the filter that made it, and keeps a :class:`FilterReport`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import botkit.options
from botkit.errors import BotkitError, ConfigError, PluginError
from botkit.options import key_path, validate
from botkit.plugins import Registry
from botkit.sample import Sample

#: What ``default`` stands for. Cheap filters first, so the costly ones see fewer samples; a filter
#: the context cannot serve (novelty without a corpus or a saved index) is left out.
DEFAULT_FILTERS = ("length", "charset", "repetition", "dedupe", "novelty")


@dataclass(frozen=True)
class FilterContext:
    """What filters need from outside the samples: the training data, the history, the target.

    ``corpus_paths`` and ``single_text`` say what the model was trained on and how it read it
    (``--single-text``: each file one plain text). ``posted`` is every text the bot has posted
    before (the caller provides it; dedupe reads it once). ``max_chars`` is the posting target's
    limit (280 for X, 300 for a Reddit title).
    """

    corpus_paths: tuple[Path, ...] = ()
    single_text: bool = False
    weights_dir: Path | None = None
    posted: Iterable[str] = ()
    max_chars: int | None = None

    @classmethod
    def for_model(cls, weights_dir: Path | None, training: Mapping[str, Any], **extra: Any) -> FilterContext:
        """The context of a trained model: its folder and the corpus its config.json records."""
        corpus = tuple(Path(p) for p in training.get("corpus") or ())
        return cls(corpus_paths=corpus, single_text=bool(training.get("single_text")), weights_dir=weights_dir, **extra)


class Filter(ABC):
    """Base class of every filter plugin."""

    #: One line for listings.
    summary: ClassVar[str] = ""
    #: The filter's options; subclasses replace it with their own model.
    Options: ClassVar[type[botkit.options.Options]] = botkit.options.Options

    def __init__(self, options: botkit.options.Options, context: FilterContext) -> None:
        """Raise :class:`ConfigError` (without a key path; the chain adds it) for unusable options."""
        self.options = options
        self.context = context

    @classmethod
    def available(cls, context: FilterContext) -> bool:
        """Whether ``default`` may include this filter in ``context`` (novelty needs a corpus)."""
        return True

    @abstractmethod
    def check(self, samples: Sequence[Sample]) -> Sequence[str | None]:
        """One verdict per sample, in order: None keeps it, a string rejects it and says why."""

    def commit(self, kept: Sequence[Sample]) -> None:
        """Hear, after each batch, which samples the whole chain kept.

        A filter with memory (dedupe) remembers only those: a sample thrown out by a later filter
        must not block its better twin in a later batch.
        """


class SampleFilter(Filter):
    """A filter that judges each sample on its own: implement :meth:`reject`."""

    def check(self, samples: Sequence[Sample]) -> list[str | None]:
        return [self.reject(sample) for sample in samples]

    @abstractmethod
    def reject(self, sample: Sample) -> str | None:
        """None to keep ``sample``, else the reason it is rejected."""


FILTERS: Registry[type[Filter]] = Registry("filter", "botkit.filters")


@dataclass(frozen=True, slots=True)
class Rejection:
    sample: Sample
    filter: str
    reason: str


@dataclass
class FilterResult:
    """What one batch became."""

    kept: list[Sample]
    rejected: list[Rejection]


@dataclass
class FilterReport:
    """Counts over every batch a chain has seen: each sample is counted once, kept or by the filter that rejected it."""

    rejected: dict[str, int]
    total: int = 0
    kept: int = 0

    def format(self) -> str:
        """A small table for ``botkit generate --report``."""
        rows = [*self.rejected.items(), ("kept", self.kept), ("total", self.total)]
        width = max(len(name) for name, _ in rows)

        def share(count: int) -> str:
            return f"{100 * count / self.total:5.1f}%" if self.total else "    -"

        lines = [f"{'filter':<{width}}  {'samples':>9}  {'share':>6}"]
        lines += [f"{name:<{width}}  {count:>9,}  {share(count):>6}" for name, count in rows]
        return "\n".join(lines)


class FilterChain:
    """Filters applied in order; each sees only the samples the ones before it kept."""

    def __init__(self, filters: Sequence[tuple[str, Filter]]) -> None:
        self.filters = list(filters)
        self.report = FilterReport({name: 0 for name, _ in self.filters})

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.filters]

    def apply(self, samples: Iterable[Sample]) -> FilterResult:
        """Filter one batch, add it to :attr:`report`, and let stateful filters remember what was kept."""
        alive = list(samples)
        self.report.total += len(alive)
        rejected: list[Rejection] = []
        for name, filt in self.filters:
            if not alive:
                break
            verdicts = filt.check(alive)
            if len(verdicts) != len(alive):
                raise PluginError(f"filter {name!r} returned {len(verdicts)} verdicts for {len(alive)} samples")
            survivors = []
            for sample, reason in zip(alive, verdicts):
                if reason is None:
                    survivors.append(sample)
                else:
                    rejected.append(Rejection(sample, name, reason))
            self.report.rejected[name] += len(alive) - len(survivors)
            alive = survivors
        for _, filt in self.filters:
            filt.commit(alive)
        self.report.kept += len(alive)
        return FilterResult(alive, rejected)


FilterSpec = str | Mapping[str, Any]
_Entry = tuple[tuple[str, ...], str, Mapping[str, Any], bool]  # key path, name, options, from "default"


def _at(where: str, path: tuple[str, ...]) -> str:
    """The start of an error message: ``config.yaml: filters.2: `` or ``--filters: ``."""
    return f"{where}: {key_path(path)}: " if path else f"{where}: "


def _entries(spec: str | Sequence[FilterSpec] | None, where: str, prefix: tuple[str, ...]) -> list[_Entry]:
    """One entry for each filter a spec names, ``default`` and ``none`` expanded."""
    if spec is None:
        spec = "default"
    from_text = isinstance(spec, str)
    items: Sequence[Any] = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else spec
    if not isinstance(items, Sequence):
        raise ConfigError(f"{_at(where, prefix)}expected a list of filters, 'default' or 'none' (got {spec!r})")
    if "none" in items:
        if len(items) > 1:
            raise ConfigError(f"{_at(where, prefix)}'none' cannot be combined with other filters")
        return []
    entries: list[_Entry] = []
    for index, item in enumerate(items):
        path = prefix if from_text else (*prefix, str(index))
        if isinstance(item, Mapping) and len(item) == 1:
            ((name, options),) = item.items()
            options = {} if options is None else options
            if not isinstance(options, Mapping):
                raise ConfigError(f"{_at(where, (*path, str(name)))}expected a mapping of options (got {options!r})")
        elif isinstance(item, str):
            name, options = item, {}
        else:
            raise ConfigError(f"{_at(where, path)}expected a filter name or {{name: {{options}}}} (got {item!r})")
        if name == "default":
            entries += [(path, n, {}, True) for n in DEFAULT_FILTERS]
        else:
            entries.append((path, str(name), options, False))
    return entries


def chain_problems(spec: Any, where: str, path_prefix: tuple[str, ...] = (), *, base_dir: Path | None = None) -> list[str]:
    """What is wrong with a filter spec on its face, one line each: its shape, unknown filter names
    and their options. Needs no context (no model, no ledger), so a config's check lists these with
    the bot's other problems; what a filter says once built (:func:`build_chain`) comes at start."""
    try:
        entries = _entries(spec, where, path_prefix)
    except ConfigError as exc:
        return [str(exc)]
    problems: list[str] = []
    for path, name, values, _ in entries:
        try:
            cls = FILTERS.get(name)
        except BotkitError as exc:
            problems.append(f"{_at(where, path)}{exc}")
            continue
        try:
            validate(cls.Options, values, where, (*path, name), base_dir=base_dir)
        except ConfigError as exc:
            problems += str(exc).splitlines()
    return problems


def build_chain(
    spec: str | Sequence[FilterSpec] | None,
    context: FilterContext,
    *,
    where: str = "--filters",
    path_prefix: tuple[str, ...] = (),
    base_dir: Path | None = None,
) -> FilterChain:
    """Build a chain from ``--filters`` text (``default``, ``none``, ``a,b,c``) or a config list.

    A config list holds names and ``{name: {options}}`` mappings, and may include ``default``.
    Errors name ``where`` and the key path (``config.yaml: filters.2.novelty.words: ...``).
    ``default`` leaves out the filters the context cannot serve (see :meth:`Filter.available`).
    """
    filters: list[tuple[str, Filter]] = []
    for path, name, values, from_default in _entries(spec, where, path_prefix):
        try:
            cls = FILTERS.get(name)
        except BotkitError as exc:
            raise ConfigError(f"{_at(where, path)}{exc}") from None
        if from_default and not cls.available(context):
            continue
        key = (*path, name)
        options = validate(cls.Options, values, where, key, base_dir=base_dir)
        try:
            filt = cls(options, context)
        except ConfigError as exc:
            raise ConfigError(f"{_at(where, key)}{exc}") from None
        label, n = name, 2
        while label in (existing for existing, _ in filters):
            label, n = f"{name}#{n}", n + 1
        filters.append((label, filt))
    return FilterChain(filters)


__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "Filter",
    "FilterChain",
    "FilterContext",
    "FilterReport",
    "FilterResult",
    "Rejection",
    "SampleFilter",
    "build_chain",
    "chain_problems",
]
