"""The model page's playground: a few samples from the bot's model, each with its filter chain's verdict.

It uses what the bot itself uses, so what the playground shows is what the bot would queue:
:class:`~botkit.bots.supply.ModelSamples` with the bot's ``generate:`` settings (temperature, label
and prefix replaced by the form's), and the bot's own filter chain with its context (the texts it
posted or holds, the target's length limit, the model's corpus for novelty). A reviewer sends the
samples they pick to the bot's queue; the chain judges them again then, so the queue only ever
holds texts the bot's filters pass, whatever a form sends.

TensorFlow is imported at the first generation, never when the console starts. A loaded model is
kept per model folder until its weights file changes (loading and compiling take seconds), and
one generation runs at a time: a generator compiles and keeps its loops without a lock of its own,
and a console must not let a few clicks take every core from the daemon beside it.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.bots.bot import (
    BROKEN_TEXT,
    filter_chain,  # the daemon's own chain, context and all
)
from botkit.bots.ledger import APPROVED, QUEUED, Ledger, NewCandidate, storable
from botkit.bots.spec import BotSpec
from botkit.console.farm import enqueue
from botkit.console.fields import whole_number, whole_numbers
from botkit.errors import BotkitError
from botkit.model_folder import is_transformer, resolve
from botkit.sample import Sample

if TYPE_CHECKING:
    from botkit.filters import FilterChain
    from botkit.generate import SampleSource

#: The most samples one click generates: a page to read, not a batch job (``botkit generate`` is that).
MAX_SAMPLES = 50
DEFAULT_SAMPLES = 10
# The model folder's files (botkit/model/saving.py), named here so the page can tell a trained
# model without importing Keras.
_VOCAB, _WEIGHTS, _CONFIG, _TRAINED = "vocab.json", "model.weights.h5", "config.json", "trained.safetensors"
_GENERATING = threading.Lock()


@dataclass(frozen=True)
class Form:
    """What the playground form asks for; ``temperature`` as typed (one number, or a list cycled per token)."""

    n: int = DEFAULT_SAMPLES
    temperature: str = "1.0"
    label: str | None = None
    prefix: str = ""

    @classmethod
    def defaults(cls, spec: BotSpec) -> Form:
        """The bot's own ``generate:`` settings: the form starts from what the bot generates."""
        g = spec.options.generate
        return cls(DEFAULT_SAMPLES, ", ".join(map(str, g.temperature)), g.label[0] if g.label else None, g.prefix)

    @classmethod
    def parse(cls, form: Any) -> Form:
        """The POSTed form, checked: a bad number is one line, not a stack trace."""
        n = whole_number(form.get("n", DEFAULT_SAMPLES), "the number of samples", low=1, high=MAX_SAMPLES)
        return cls(n, str(form.get("temperature", "1.0")), str(form.get("label", "")) or None, str(form.get("prefix", "")))

    def temperatures(self) -> list[float]:
        """What the generator takes; "nan" and "inf" parse as floats but are no temperature."""
        given = self.temperature.split(",")
        values = [number for number in map(_number, given) if number is not None]
        if len(values) != len(given):
            raise BotkitError(f"temperature must be a number, or numbers separated by commas (got {self.temperature!r})")
        return values


@dataclass(frozen=True)
class Verdict:
    """A sample and what the bot's chain said: passed (``filter`` None), or rejected by ``filter`` because ``reason``."""

    sample: Sample
    filter: str | None = None
    reason: str | None = None

    @property
    def passed(self) -> bool:
        return self.filter is None

    def as_json(self) -> dict[str, Any]:
        s = self.sample
        return {
            "text": s.text, "label": s.label, "score": s.score if s.has_score else None, "temperature": s.temperature,
            "passed": self.passed, "filter": self.filter, "reason": self.reason,
        }  # fmt: skip


@dataclass(frozen=True)
class TrainedModel:
    """The playground's view of a bot's model: the labels to offer, or why it cannot generate."""

    labels: list[str]
    problem: str | None = None


def trained_model(model: Path) -> TrainedModel:
    """Whether the model folder holds a trained model, and its labels; read without TensorFlow."""
    folder = resolve(model)
    transformer = is_transformer(folder)
    missing = [name for name in ((_TRAINED,) if transformer else (_VOCAB, _WEIGHTS)) if not (folder / name).is_file()]
    if missing:
        return TrainedModel([], f"{folder} holds no trained model yet ({', '.join(missing)} missing): train it with botkit farm build or botkit train")
    labels_file = folder / (_CONFIG if transformer else _VOCAB)
    labels = _labels(labels_file, labels_file.stat().st_mtime_ns, 0 if transformer else 1)
    return TrainedModel([], labels) if isinstance(labels, str) else TrainedModel(labels)


@lru_cache(maxsize=32)
def _labels(path: Path, mtime_ns: int, first: int) -> list[str] | str:
    """The model's labels from ``first`` on (a vocabulary's first, "no label", is left out), or what is wrong with the file."""
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        labels = None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return f"{path}: not a botkit vocabulary or model config file (no list of labels); train the model again"
    return labels[first:]


def generate(spec: BotSpec, ledger: Ledger, where: str, asked: Form) -> list[Verdict]:
    """``asked.n`` fresh samples from the bot's model, each judged by the bot's filter chain."""
    from botkit.bots.supply import ModelSamples

    if spec.options.model is None:
        raise BotkitError(f"{spec.name} has no model: it posts prepared posts")
    folder = resolve(spec.options.model)
    found = trained_model(folder)
    if found.problem:
        raise BotkitError(found.problem)
    settings = spec.options.generate.model_copy(
        update={"temperature": asked.temperatures(), "label": [asked.label] if asked.label else None, "prefix": asked.prefix}
    )
    # config.json is written last by every save of either family: its time tells a retrained model.
    supplier = ModelSamples(lambda: _generator(folder, (folder / _CONFIG).stat().st_mtime_ns), settings, start=secrets.randbits(31))
    with _GENERATING:
        samples = supplier.candidates(asked.n)
    return judge(filter_chain(spec, ledger, where), samples)


@lru_cache(maxsize=4)
def _generator(folder: Path, mtime_ns: int) -> SampleSource:
    """The loaded model of ``folder`` as its weights were at ``mtime_ns``: a retrained model is loaded again."""
    from botkit.generate import load

    return load(folder)


def judge(chain: FilterChain, samples: Sequence[Sample]) -> list[Verdict]:
    """Each sample's verdict, in order. Text the ledger cannot store (a lone surrogate) is rejected
    as the bot's refill rejects it, and shown with U+FFFD, since a page cannot carry it either."""
    result = chain.apply([s for s in samples if storable(s.text) == s.text])
    verdicts = {id(r.sample): Verdict(r.sample, r.filter, r.reason) for r in result.rejected}
    verdicts.update((id(s), Verdict(s)) for s in result.kept)
    return [verdicts.get(id(s)) or Verdict(replace(s, text=storable(s.text)), "invalid Unicode", BROKEN_TEXT) for s in samples]


def picked(form: Any) -> list[Sample]:
    """The samples a send form picked: each sample comes as hidden ``text``/``label``/``score``/``temperature``
    fields, in order, and each ticked box names one by its position."""
    texts, labels, scores, temperatures = (form.getlist(key) for key in ("text", "label", "score", "temperature"))
    if not len(texts) == len(labels) == len(scores) == len(temperatures):
        raise BotkitError("the playground form is incomplete: generate the samples again")
    chosen = sorted({i for i in whole_numbers(form.getlist("pick"), "pick") if i < len(texts)})  # a pick past the list picks nothing
    return [Sample(str(texts[i]), _number(scores[i]), _number(temperatures[i]), str(labels[i]) or None) for i in chosen]


def _number(value: Any) -> float | None:
    """A finite number, or None (a form's empty or unknown score, or a typo)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def send(spec: BotSpec, ledger: Ledger, where: str, samples: Sequence[Sample]) -> tuple[int, list[Verdict]]:
    """Put the samples the bot's chain passes now into its queue; how many went, and the verdicts of those that did not.

    They enter as the bot's own candidates do: queued for review when the bot has ``review: true``,
    else approved (picking them in the playground was the review).
    """
    verdicts = judge(filter_chain(spec, ledger, where), samples)
    state = QUEUED if spec.options.review else APPROVED
    passed = [v.sample for v in verdicts if v.passed]
    enqueue(ledger, spec.name, [NewCandidate(s.text, state, s.label, s.score, s.temperature) for s in passed])
    return len(passed), [v for v in verdicts if not v.passed]
