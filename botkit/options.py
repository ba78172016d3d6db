"""Plugin options: one pydantic model per plugin, used by both the CLI and config.yaml.

A plugin declares its options once, as a pydantic model. :func:`add_arguments` turns that model
into command-line flags (``min_score`` becomes ``--min-score``), and :func:`validate` checks a
mapping from either place against it, turning pydantic's errors into one-line messages that name
where the value came from (a config file and key path, or a flag).
"""

from __future__ import annotations

import argparse
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretBytes,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from botkit.errors import ConfigError
from botkit.redact import Redactor

M = TypeVar("M", bound=BaseModel)


class Options(BaseModel):
    """Base for plugin options: unknown keys are errors, so typos never pass silently.

    Every float, in every subclass and nested list, is finite: ``nan`` and ``inf`` pass Python's
    float() (``-t nan``, ``--minutes inf``, YAML's ``.nan``) but mean no setting at all. They made
    junk samples, ``NaN`` in .jsonl and ``Infinity`` in config.json (neither is JSON), or a bot that
    never generates, since every comparison with NaN is false and so no bound (``gt=0``) stops it.

    Relative paths (fields typed ``Path`` or ``list[Path]``) are resolved against the folder of the
    config file they came from, so a config works whatever the current directory is.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _resolve_paths(self, info: ValidationInfo) -> Options:
        base = (info.context or {}).get("base_dir")
        if base is None:
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Path) and not value.is_absolute():
                object.__setattr__(self, name, Path(base) / value)
            elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
                object.__setattr__(self, name, [v if v.is_absolute() else Path(base) / v for v in value])
        return self


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _help(field: FieldInfo) -> str | None:
    """The field's description, with its default when it has one worth saying and does not say it."""
    text = field.description
    default = field.default
    if text is None or "default" in text or default in (None, False, PydanticUndefined) or isinstance(default, (list, dict)):
        return text
    return f"{text} (default {default})"


def add_arguments(
    model: type[BaseModel], parser: argparse.ArgumentParser | argparse._ArgumentGroup, groups: Mapping[str, argparse._ArgumentGroup] | None = None
) -> None:
    """Add one flag per field of ``model`` (named after its alias when it has one: ``--from`` for a
    field ``base`` with alias ``from``); absent flags leave the model's default in force.

    A field's ``json_schema_extra`` may say ``{"positional": True}`` (a list field then takes
    any number of values), ``{"short": "-x"}``, ``{"metavar": "COLUMN=VALUE"}`` and
    ``{"group": NAME}`` (the flag goes into ``groups[NAME]`` of ``--help`` when given).
    """
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        annotation = _unwrap_optional(field.annotation)
        is_list = get_origin(annotation) is list
        kwargs: dict[str, Any] = {"help": _help(field), "default": argparse.SUPPRESS}
        target = groups.get(str(extra.get("group")), parser) if groups else parser
        if get_origin(annotation) is Literal:
            kwargs["choices"] = [str(c) for c in get_args(annotation)]
        if extra.get("positional"):
            target.add_argument(name, nargs="*" if is_list else None, metavar=name.upper(), **kwargs)
            continue
        flags = [f"--{(field.alias or name).replace('_', '-')}"] + ([str(extra["short"])] if "short" in extra else [])
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif is_list:
            kwargs["action"] = "append"
            kwargs["metavar"] = extra.get("metavar") or name.upper().removesuffix("S") or name.upper()
        elif "choices" not in kwargs:  # argparse shows the choices themselves otherwise
            kwargs["metavar"] = extra.get("metavar") or name.upper()
        target.add_argument(*flags, dest=name, **kwargs)


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """True when one key path lies inside the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _holds_secret(annotation: Any, seen: set[type[BaseModel]]) -> bool:
    """Whether a field's type is, or contains, a pydantic secret type (directly, in a union or list, or in a nested model)."""
    if isinstance(annotation, type) and issubclass(annotation, (SecretStr, SecretBytes)):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        seen.add(annotation)
        return any(_holds_secret(f.annotation, seen) for f in annotation.model_fields.values())
    return any(_holds_secret(arg, seen) for arg in get_args(annotation))


def _secret_fields(model: type[BaseModel]) -> set[tuple[str, ...]]:
    """Key paths (names and aliases) of the fields of ``model`` typed as secrets.

    A typo'd value at such a key is still a credential: whatever was written there, from the
    environment or literally, a message must not show it.
    """
    paths: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        if _holds_secret(field.annotation, set()):
            paths |= {(key,) for key in (name, field.alias) if key}
    return paths


def _got(value: Any) -> str:
    """How an invalid value is echoed: a scalar as written, a list only by kind, a mapping not at all.

    A mapping can hold keys that only a later check knows to be secret (a bot's ``target:`` is
    validated by its target's own model after the bot's options), and the key path already says
    where it is; so no container is ever printed.
    """
    if isinstance(value, Mapping):
        return ""
    if isinstance(value, (list, tuple, set)):
        return " (got a list)"
    return f" (got {value!r})"


def _strings(value: Any) -> list[str]:
    """Every string in a value (a mapping's values, a list's items), to hide them all; the keys are the config's own words."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, (list, tuple, set)):
        return [text for item in value for text in _strings(item)]
    return []


def _unquoted(message: str, value: Any) -> str:
    """``message`` without ``value``, whole or in pieces: a validator's own message may quote it, or a
    part of it (APScheduler names the bad field of a crontab line)."""
    texts = _strings(value)
    return Redactor.of([*texts, *(word for text in texts for word in re.findall(r"[^\W_]{3,}", text))])(message)


def key_path(path: tuple[str, ...]) -> str:
    """A key path as a message shows it, ``bots.b.target``: a key that is not printable (a newline
    in a YAML key) is quoted, so that a problem is always one line of the report."""
    return ".".join(key if key.isprintable() else repr(key) for key in path)


def describe_error(
    error: ValidationError,
    where: str,
    path_prefix: tuple[str, ...] = (),
    *,
    flags: bool = False,
    secret: set[tuple[str, ...]] | None = None,
    model: type[BaseModel] | None = None,
    shown_as: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
) -> str:
    """Render a pydantic error as lines of ``WHERE: KEY.PATH: what was expected (got VALUE)``.

    Values at paths in ``secret`` (taken from the environment) and in the secret-typed fields of
    ``model`` (the model that was validated) are not echoed. ``shown_as`` maps a key path to the
    one to print, for values merged in from elsewhere (a bot's keys that came from ``defaults:``).
    """
    typed = {path_prefix + p for p in _secret_fields(model)} if model is not None else set()
    lines = []
    for item in error.errors():
        loc = tuple(str(p) for p in item["loc"])
        if flags and loc:
            key = "--" + loc[0].replace("_", "-")
        else:
            path = path_prefix + loc
            key = key_path(shown_as(path) if shown_as else path) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        if item["type"] in ("missing", "extra_forbidden"):
            got = ""
        elif secret and any(_overlaps(path_prefix + loc, s) for s in secret):
            got = " (value from the environment not shown)"
            message = _unquoted(message, item["input"])
        elif any(_overlaps(path_prefix + loc, s) for s in typed):
            got = " (a secret: value not shown)"
            message = _unquoted(message, item["input"])
        else:
            got = _got(item["input"])
        lines.append(f"{where}: {key}: {message}{got}")
    return "\n".join(lines)


def validate(
    model: type[M],
    values: Mapping[str, Any],
    where: str,
    path_prefix: tuple[str, ...] = (),
    *,
    flags: bool = False,
    base_dir: Path | None = None,
    secret: set[tuple[str, ...]] | None = None,
    shown_as: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
) -> M:
    """Validate ``values`` against ``model`` or raise a :class:`ConfigError` naming every problem."""
    try:
        return model.model_validate(dict(values), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, where, path_prefix, flags=flags, secret=secret, model=model, shown_as=shown_as)) from None
