"""``botkit farm build``: for every model bot, fetch its corpora and train its model, skipping what
is up to date.

A bot names the corpora it learns from (``corpus:``, entries of ``corpora:``) and how to train
(``train:``, the keys of ``botkit train``). After a training run the model folder gets a stamp,
``farm.json``: a hash of the corpus files and the training settings. When a later build finds the
same stamp (nothing new was fetched, the config did not change) it skips that bot's training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from botkit.bots.spec import BotSpec
from botkit.errors import ConfigError, SettingError

STAMP = "farm.json"


def _stamp(corpora: list[Path], train: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(train, sort_keys=True, default=str).encode())
    for path in corpora:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _up_to_date(model: Path, stamp: str) -> bool:
    try:
        return json.loads((model / STAMP).read_text(encoding="utf-8")).get("stamp") == stamp
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def build_problems(bots: Mapping[str, BotSpec], corpora: Mapping[str, Any], where: str) -> list[str]:
    """What stops the model bots from being built: no corpus, or one not under ``corpora:``."""
    problems = []
    for name, spec in bots.items():
        if spec.options.model is None:
            continue
        names = _corpus_names(spec)
        if not names:
            problems.append(f"{where}: bots.{name}.corpus: required to build a model (the corpora: entries it learns from)")
        problems += [f"{where}: bots.{name}.corpus: no corpus named {n} under corpora:" for n in names if n not in corpora]
    return problems


def _corpus_names(spec: BotSpec) -> list[str]:
    corpus = spec.options.corpus
    return [corpus] if isinstance(corpus, str) else list(corpus or [])


def _plan(config: Any) -> list[tuple[BotSpec, list[str]]]:
    """Model bots with the corpora they train on, or every problem at once."""
    problems = build_problems(config.bots, config.corpora, str(config.path))
    if problems:
        raise ConfigError("\n".join(problems))
    return [(spec, _corpus_names(spec)) for spec in config.bots.values() if spec.options.model is not None]


def build(config: Any, *, dry_run: bool = False) -> Iterator[str]:
    """Fetch, then train what changed; yields one line per step for the CLI to print."""
    from botkit.corpus import make_folder
    from botkit.fetch import fetch

    plan = _plan(config)
    if not plan:
        yield f"{config.path}: no bot has a model: to build (prepared-posts bots need no training)"
        return
    fetched: set[str] = set()
    for spec, names in plan:
        for name in names:
            if name in fetched:
                continue
            fetched.add(name)
            corpus = config.corpora[name]
            if dry_run:
                yield f"would fetch corpus {name} into {corpus.output}"
                continue
            make_folder(corpus.output)
            yield fetch(corpus.source, corpus.output, corpus.normalization, name=name).summary()
        yield from _train(spec, [config.corpora[n].output for n in names], dry_run, str(config.path))


def _base_model(spec: BotSpec) -> Path | str | None:
    """``train: {from: ...}``: the model to fine-tune from, relative to the config like every path.

    The bare name ``base`` stays as it is (the weights loader finds the model shipped with botkit),
    and so does a pretrained model's name or preset (``smollm2``, ``hf://...``) that is no file here.
    """
    from botkit.model_folder import BASE
    from botkit.pretrained.sources import is_pretrained

    base = spec.options.train.base
    if base is None:
        return None
    path = Path(str(base))
    if str(base) == BASE or path.is_absolute():
        return path
    if is_pretrained(str(base)) and not (spec.base_dir / path).exists():
        return str(base)
    return spec.base_dir / path


def _train(spec: BotSpec, corpora: list[Path], dry_run: bool, where: str) -> Iterator[str]:
    from botkit.model.train import train
    from botkit.training import ShapeOptions, TrainConfig

    model = spec.options.model
    assert model is not None
    block = spec.options.train
    settings = block.given()
    stamp = _stamp(corpora, settings) if all(p.exists() for p in corpora) else None
    if stamp is not None and _up_to_date(model, stamp):
        yield f"{spec.name}: {model} is up to date (corpus and training settings unchanged); skipped"
        return
    if dry_run:
        yield f"would train {spec.name} into {model} on {', '.join(str(p) for p in corpora)}"
        return
    config = TrainConfig.model_validate(block.model_dump(include=set(TrainConfig.model_fields)))
    shape = ShapeOptions.model_validate(block.model_dump(include=set(ShapeOptions.model_fields)))
    try:
        yield train(corpora, model, config, shape.given(), base=_base_model(spec)).summary()
    except SettingError as exc:  # named as the config says it, not as the flag of botkit train
        raise ConfigError(f"{where}: {exc.spelled(lambda key: f'bots.{spec.name}.train.{key}')}") from None
    (model / STAMP).write_text(json.dumps({"stamp": _stamp(corpora, settings)}), encoding="utf-8")
