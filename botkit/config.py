"""config.yaml: load, interpolate ``${ENV_VARS}``, validate, and hand out ready-made parts.

Every problem is reported as ``FILE: key.path: what was expected (got VALUE)``, all at once, so a
user fixes a config in one go. Values interpolated from the environment are never echoed back,
since they are usually secrets: not in the config's own messages, and not later either (the
config's :attr:`Config.redact`, which each bot spec keeps too, hides them; see :mod:`botkit.redact`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from botkit.bots.durations import Duration
from botkit.bots.ledger import DEFAULT_LEASE_S
from botkit.bots.spec import BotSpec, name_problem, parse_bots
from botkit.corpus import Normalization
from botkit.errors import BotkitError, ConfigError
from botkit.options import describe_error, key_path, validate
from botkit.redact import Redactor
from botkit.sources import SOURCES, Source

_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # `? [a, b]` or `{[x]: 1}`: YAML allows it, a config never means it
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a key must be a name, not a list or mapping")
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def get_single_node(self) -> yaml.Node | None:
        """The document's node graph, refused when its aliases expand it past :data:`MAX_VALUES`
        or make it a cycle, before anything walks it value by value."""
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


#: The most values (scalars, lists, mappings) a config may hold once its aliases are expanded.
#: A real config has hundreds; nine levels of nine aliases each ("billion laughs") are a few lines
#: of YAML that expand to 387 million, which interpolation and validation would copy one by one.
MAX_VALUES = 100_000


def _check_expansion(root: yaml.Node) -> None:
    """Count the values ``root`` stands for with every alias expanded, without expanding them.

    An alias is the very node its anchor made, so the YAML is a graph of shared nodes: each node's
    size is counted once (iteratively: a deep document must not exhaust Python's stack here), and a
    node that contains itself (``&a [*a]``) is refused, as nothing could walk it to its end.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_VALUES:
                raise ConfigError(
                    f"line {node.start_mark.line + 1}: more than {MAX_VALUES:,} values once its aliases are expanded "
                    "(an alias bomb?); write a shared part once, e.g. under defaults:"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConfigError(f"line {node.start_mark.line + 1}: an alias refers to a list or mapping that contains it (a cycle)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly inside ``node``: a list's items, a mapping's keys and values."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def interpolate(
    value: Any,
    where: str,
    path: tuple[str, ...] = (),
    secret: set[tuple[str, ...]] | None = None,
    taken: set[str] | None = None,
    unset: list[tuple[tuple[str, ...], str]] | None = None,
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    Paths of values that took something from the environment are added to ``secret`` (a message
    about them does not echo them), and what was taken to ``taken`` (hidden wherever it shows later).
    A variable that is not set raises a :class:`ConfigError`; given ``unset``, the path and message
    of each go there instead and the reference stays as written, so that every unset variable of a
    config is named in one run, not only the first.
    """
    if isinstance(value, Mapping):
        return {k: interpolate(v, where, path + (str(k),), secret, taken, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, where, path + (str(i),), secret, taken, unset) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            if secret is not None:
                secret.add(path)
            if taken is not None:
                taken.add(os.environ[name])
            return os.environ[name]
        if default is not None:
            return default
        message = f"{where}: {key_path(path)}: environment variable {name} is not set"
        if unset is None:
            raise ConfigError(message)
        unset.append((path, message))
        return match.group(0)

    return _ENV.sub(replace, value)


class _TopLevel(BaseModel):
    # Finite numbers only, as for every plugin's options (see botkit.options.Options).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    store: str = Field("botkit.db", description="SQLite file (or SQLAlchemy URL, e.g. ${BOTKIT_DB}) of the bots' ledger")
    lease: Duration = Field(DEFAULT_LEASE_S, gt=0, description="how long a worker's hold on a bot lasts unrenewed: a dead worker's bots move on after this")
    corpora: dict[str, dict[str, Any]] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)  # keys every bot gets unless it gives its own
    bots: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class CorpusSpec:
    """One entry of ``corpora:``: where its text comes from and where the corpus goes."""

    name: str
    source: Source
    output: Path
    normalization: Normalization


@dataclass(frozen=True)
class Config:
    path: Path
    store: str
    corpora: dict[str, CorpusSpec]
    bots: dict[str, BotSpec] = field(default_factory=dict)
    lease: float = DEFAULT_LEASE_S
    #: Hides the values the config took from the environment (and any URL's credentials) in a message.
    redact: Redactor = Redactor()

    @property
    def base_dir(self) -> Path:
        return self.path.resolve().parent


def _corpus_spec(name: str, raw: dict[str, Any], where: str, base_dir: Path, secret: set[tuple[str, ...]]) -> CorpusSpec:
    prefix = ("corpora", name)
    values = dict(raw)
    source_name = values.pop("source", None)
    if not isinstance(source_name, str):
        raise ConfigError(f"{where}: corpora.{name}.source: required key is missing (a source name: {', '.join(SOURCES.names())})")
    output = values.pop("output", f"corpora/{name}.jsonl")
    normalization = validate(Normalization, values.pop("normalize", None) or {}, where, prefix + ("normalize",))
    try:
        source_cls = SOURCES.get(source_name)
    except BotkitError as exc:
        raise ConfigError(f"{where}: corpora.{name}.source: {exc}") from None
    source = source_cls.from_mapping(values, where, prefix, base_dir=base_dir, secret=secret)
    out = Path(str(output))
    return CorpusSpec(name, source, out if out.is_absolute() else base_dir / out, normalization)


def _valid_sections(raw: Mapping[Any, Any], error: ValidationError) -> _TopLevel:
    """The top level with only its sections that passed, so that a bad key (``stor:``, a
    ``lease:`` typo) does not hide the problems of ``corpora:`` and ``bots:``: those are read too."""
    bad = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
    try:
        return _TopLevel.model_validate({key: value for key, value in raw.items() if key in _TopLevel.model_fields and key not in bad})
    except ValidationError:  # not expected: each section passed on its own above
        return _TopLevel()


def _about(line: str, where: str, path: tuple[str, ...]) -> bool:
    """Whether a problem line is about the key at ``path`` or a key inside it."""
    key = key_path(path)
    return line.startswith((f"{where}: {key}:", f"{where}: {key}."))


#: A command's own checks of the bots and corpora that passed validation, as ``FILE: key: why`` lines.
Checks = Callable[[Mapping[str, BotSpec], Mapping[str, "CorpusSpec"], str], list[str]]


def load_config(path: str | Path, *, also: Checks | None = None) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem.

    ``also`` is the command's own checks (``botkit run``: what stops the bots from running now;
    ``farm build``: the corpora each model bot learns from). When the config has problems of its
    own, the error lists theirs too, so one run shows everything to fix.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: cannot read config file ({exc})") from None
    except OSError as exc:  # a folder, no read permission, an I/O error: the user's to fix, not a crash
        raise ConfigError(f"{where}: cannot read config file ({exc.strerror or exc})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{where}: {at}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except RecursionError:  # PyYAML composes nested lists and mappings recursively
        raise ConfigError(f"{where}: lists or mappings nested too deeply to read") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys (store, corpora, ...)")
    secret: set[tuple[str, ...]] = set()
    taken: set[str] = set()
    unset: list[tuple[tuple[str, ...], str]] = []
    raw = interpolate(raw, where, secret=secret, taken=taken, unset=unset)
    # Every message from here on passes through it: a plugin's own check may quote a value it was given.
    redact = Redactor.of(taken, url_paths=True)
    problems: list[str] = []
    try:
        top = _TopLevel.model_validate(raw)
    except ValidationError as exc:
        problems += describe_error(exc, where, secret=secret).splitlines()
        top = _valid_sections(raw, exc)
    base_dir = path.resolve().parent
    corpora: dict[str, CorpusSpec] = {}
    for name, entry in top.corpora.items():
        try:
            if (bad_name := name_problem(name, where, "corpora")) is not None:
                raise ConfigError(bad_name)
            corpora[name] = _corpus_spec(name, entry, where, base_dir, secret)
        except ConfigError as exc:
            problems.append(str(exc))
    bots, bot_problems = parse_bots(top.defaults, top.bots, where, base_dir, secret, redact)
    problems += bot_problems
    if unset:  # the value still reads ${VAR}: what a check says of it would only repeat that VAR is unset
        problems = [message for _, message in unset] + [line for line in problems if not any(_about(line, where, at) for at, _ in unset)]
    if also is not None and problems:  # otherwise the command runs its checks itself, on the whole config
        problems += also(bots, corpora, where)
    if problems:
        raise ConfigError(redact("\n".join(problems)))
    return Config(path, top.store, corpora, bots, top.lease, redact)
