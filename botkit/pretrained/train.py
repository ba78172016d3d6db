"""``botkit train --from smollm2``: fine-tune a pretrained transformer on a corpus, as ``botkit
train`` trains an LSTM: the same corpus formats, budget (``--epochs``, ``--minutes``), schedule
(linear decay to 0), validation split, early stopping, best checkpoint, ``--resume`` and curves;
the same callbacks (:mod:`botkit.model.callbacks`).

Documents are framed by :class:`~botkit.pretrained.text.Framing` and packed one after the other
into windows of ``--window`` tokens (one shape: the training step is traced once); the loss is on
the texts and their end markers only. The validation split is the last documents, scored in nats
per *character* (:mod:`botkit.pretrained.score`), the number ``botkit eval`` gives.

Defaults for a CPU, where each differs from the LSTM's (unless given): AdamW at 1e-3, 8 windows
of 128 tokens a step, only the top fifth of the blocks trained (``--train-layers``; 0 trains all).
``--minutes`` is wall-clock time from the moment the model is loaded: framing, the frozen blocks'
pass (window by window, as batches first need them) and validation count, as the graph building
of the first step does for the LSTM.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from botkit.atomic import ensure_folder
from botkit.corpus.document import Document
from botkit.errors import ConfigError, SettingError
from botkit.model.callbacks import (
    BestCheckpoint,
    EarlyStopping,
    EpochReport,
    ProgressBar,
    ResumeState,
    ScheduleAndBudget,
    TrainingCallbacks,
    Validation,
)
from botkit.model.evaluate import Score
from botkit.model.saving import ModelFolderError, read_resume_state, restore_optimizer, write_resume_state
from botkit.model.train import SAMPLE_TEMPERATURES, TrainingInterrupted, TrainReport
from botkit.pretrained import model as folder
from botkit.pretrained.generator import TransformerGenerator
from botkit.pretrained.score import DocumentScorer, compiled, read_documents, score_batches
from botkit.pretrained.sources import resolve
from botkit.pretrained.text import Framing, Tokens
from botkit.pretrained.top import TopBatches, TopOnly
from botkit.training import DEFAULT_EPOCHS, LearningRateSchedule, TrainConfig, TrainState

log = logging.getLogger(__name__)

#: What a fine-tune uses where the user set nothing (the LSTM's defaults suit a small network).
#: The rate: SmolLM2's top six blocks, two epochs (38 steps) of 1,619 Hacker News titles, held out
#: 200: 1.2897 nats/char at 2e-4, 1.2480 at 1e-3, 1.2748 at 3e-3 (2026-12-07): a budget of minutes
#: on a CPU is a few dozen steps, and the top blocks alone take a higher rate than a full fine-tune.
DEFAULTS = {"lr": 1e-3, "batch_size": 8, "window": 128}
#: The longest preview (``--sample-every``), in tokens: a few sentences, not the LSTM's 200 characters.
PREVIEW_TOKENS = 48
#: The top fraction of the blocks trained by default (at least one).
TOP_FRACTION = 0.2


def default_top(num_blocks: int) -> int:
    return max(1, round(num_blocks * TOP_FRACTION))


def with_defaults(config: TrainConfig) -> TrainConfig:
    """The transformer's defaults for every setting the user left unset."""
    return config.model_copy(update={k: v for k, v in DEFAULTS.items() if k not in config.model_fields_set})


def pack(tokens: Tokens, framing: Framing, docs: Sequence[Document], window: int, conditional: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every document framed and laid end to end, cut into rows of ``window + 1`` ids (inputs and
    the targets one to the right) with target weights; the last row is padded with weight 0."""
    ids: list[int] = []
    weights: list[int] = []
    for doc in docs:
        row, weight = framing.document(tokens, doc.text, doc.label, (doc.parent or "") if conditional else None)
        ids += row
        weights += weight
    rows = max(1, math.ceil((len(ids) - 1) / window))
    size = rows * window + 1
    ids_arr, w_arr = np.full(size, framing.sep, np.int32), np.zeros(size, np.float32)
    ids_arr[: len(ids)], w_arr[: len(ids)] = ids, weights
    starts = np.arange(rows) * window
    take = starts[:, None] + np.arange(window + 1)[None, :]
    return ids_arr[take], w_arr[take]


def windows_dataset(inputs: Any, x: np.ndarray, w: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """The windows in a new order every epoch (seeded), whole batches only (one shape: one trace),
    repeated: ``fit`` counts the epochs by ``steps_per_epoch``."""
    data = tf.data.Dataset.from_tensor_slices((inputs, x[:, 1:], w[:, 1:]))
    data = data.repeat(-(-batch_size // len(x))) if len(x) < batch_size else data  # a corpus smaller than one batch still fills it
    return data.shuffle(len(x) * max(1, -(-batch_size // len(x))), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)


class PerCharacter(Validation):
    """:class:`~botkit.model.callbacks.Validation` with the epoch's train loss (Keras's mean per
    target token) turned into nats per character, the unit of the val loss and of ``botkit eval``."""

    def __init__(self, *args: Any, tokens_per_char: float) -> None:
        super().__init__(*args)
        self.tokens_per_char = tokens_per_char

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and "loss" in logs:
            logs["loss"] = float(logs["loss"]) * self.tokens_per_char
        super().on_epoch_end(epoch, logs)


class Previews(keras.callbacks.Callback):
    """Every ``every`` epochs, one text per temperature from the model as it is now, drawn by the
    generator ``botkit generate`` uses (it shares the model's layers, so it sees what they learnt)."""

    def __init__(self, generator: Any, every: int, length: int, label: str | None, seed: int, report: EpochReport) -> None:
        super().__init__()
        self.generator, self.every, self.length, self.label, self.seed, self.report = generator, every, length, label, seed, report

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        parent = "" if self.generator.conditional else None
        for temperature in SAMPLE_TEMPERATURES:
            text = self.generator.generate(1, temperature=temperature, max_length=self.length, label=self.label, parent=parent, seed=self.seed + epoch)[0].text
            self.report.previews.append(f"  sample at temperature {temperature}: {text!r}")


class _Validation:
    """What :class:`~botkit.model.callbacks.Validation` asks of a scorer: the val documents' score,
    framed once; with a frozen bottom, its hidden states computed once too."""

    def __init__(self, scorer: DocumentScorer, docs: Sequence[Document], top: TopOnly | None) -> None:
        self.prepared, self.top = scorer.prepare(docs), top
        self.lm = scorer.lm
        self.hidden = [top.hidden(b.ids[:, :-1], b.pad[:, :-1]) for b in self.prepared.batches] if top is not None else None

    def score(self, docs: Sequence[Document]) -> Score:
        if self.top is None or self.hidden is None:
            forward = compiled(lambda ids, pad: self.lm({"token_ids": ids, "padding_mask": pad}))
            return score_batches(self.prepared, lambda b: forward(b.ids[:, :-1], b.pad[:, :-1]))[0]
        hidden, logits = iter(self.hidden), self.top.logits
        return score_batches(self.prepared, lambda b: logits(next(hidden), b.pad[:, :-1]))[0]


def fine_tune(corpus: Sequence[Path], output: Path, config: TrainConfig, *, base_spec: str | None, resume: bool) -> TrainReport:
    """Fine-tune the base ``base_spec`` (or, with ``resume``, continue ``output``) on ``corpus``."""
    if not corpus:
        raise ConfigError("give at least one corpus file to train on")
    if config.distribute:
        raise SettingError(lambda name: f"{name('distribute')} is for LSTM models; a transformer fine-tune runs on one device (a GPU when there is one)")
    previous = folder.FineTune.read(output) if resume else None
    extra_minutes = config.minutes if resume else None
    if previous is not None:
        kept = {k: previous.training[k] for k in ("single_text", "window", "train_size", "batch_size", "seed", "lr") if k in previous.training}
        config = config.model_copy(update=kept | ({} if config.minutes or config.epochs else {"epochs": previous.training.get("epochs")}))
    config = with_defaults(config)
    keras.utils.set_random_seed(config.seed)
    folder.keras_dtype_policy(config.mixed_precision)
    base = folder.find_base(previous.base, output) if previous is not None else resolve(str(base_spec))
    began = time.monotonic()
    lm = folder.load_causal_lm(base)
    tokens = Tokens(base)
    log.info("%s: loaded in %.1f s", base.spec, time.monotonic() - began)
    began = time.monotonic()  # --minutes counts from here: framing, the frozen blocks' pass and validation are training time
    docs = read_documents(corpus, config.single_text)
    conditional = any(doc.parent is not None for doc in docs)
    labels = sorted({doc.label for doc in docs if doc.label is not None})
    if previous is not None:
        layers = previous.layers
    else:
        top = config.train_layers
        layers = folder.trained_layers(lm, default_top(len(folder.blocks(lm))) if top is None else top)
    tune = folder.FineTune(folder.base_record(base, lm), Framing(tokens.end), labels, conditional, layers)
    if previous is not None:
        folder.set_layer_weights(lm, folder.read_weights(output / folder.RESUME / folder.TRAINED), output / folder.RESUME)
    folder.freeze_except(lm, layers)
    cut = len(docs) if config.train_size >= 1 or config.single_text else max(1, min(len(docs) - 1, round(len(docs) * config.train_size)))
    train_docs, val_docs = docs[:cut], docs[cut:]
    x, w = pack(tokens, tune.framing, train_docs, config.window, conditional)
    log.info("%s: %d training windows of %d tokens, %d validation documents; training %d of %d layers", base.spec, len(x), config.window, len(val_docs), len(layers), len(lm.backbone.layers))
    tune.training = {"corpus": [str(p) for p in corpus]}  # the novelty filter checks samples against it
    tokens_per_char = float(w.sum()) / sum(len(doc.text) + 1 for doc in train_docs)
    return _fit(lm, tune, tokens, x, w, val_docs, config, output, previous, extra_minutes, tokens_per_char, began)


def _fit(
    lm: Any, tune: folder.FineTune, tokens: Tokens, x: np.ndarray, w: np.ndarray, val_docs: list[Document],
    config: TrainConfig, output: Path, previous: folder.FineTune | None, extra_minutes: float | None, tokens_per_char: float, began: float,
) -> TrainReport:  # fmt: skip
    ones = np.ones_like(x[:, :-1], bool)
    top = TopOnly(lm, tune.layers) if len(tune.layers) < len(folder.blocks(lm)) else None
    if top is not None and not TopOnly.fits(len(x), x.shape[1], lm.backbone.hidden_dim):
        log.info("%d windows: too many to keep the frozen layers' output; the whole model runs every step", len(x))
        top = None
    model = top.model if top is not None else lm
    optimizer = keras.optimizers.AdamW(learning_rate=config.lr, weight_decay=0.0, clipnorm=config.clipnorm)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    # XLA: the top's training step runs 15 % faster on a 2-core CPU (3.3 s against 3.9 s for 8 × 128 tokens of SmolLM2's top six blocks).
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=[], jit_compile=top is not None)
    steps_per_epoch = max(1, math.ceil(len(x) / config.batch_size))
    epochs = config.epochs if config.epochs is not None else (10**9 if config.minutes else DEFAULT_EPOCHS)
    total_steps = epochs * steps_per_epoch if epochs < 10**9 else None
    state = TrainState()
    if previous is not None:
        state = _resume_state(output, model, optimizer)
        if extra_minutes:
            config = config.model_copy(update={"minutes": state.elapsed / 60 + extra_minutes})
    budget = config.minutes * 60 if config.minutes else None
    schedule = LearningRateSchedule(config.lr, config.warmup_steps, total_steps, budget)
    targets_per_step = config.batch_size * config.window
    tune.training = {**config.model_dump(), "epochs": epochs if epochs < 10**9 else None, "corpus": tune.training.get("corpus", []), "conditional": tune.conditional}
    tune.training["unit"] = "character"  # train and val losses in nats per character, the LSTM's scale

    def save_model() -> None:
        tune.training |= {"result": _result(state), "history": state.history}
        folder.save(output, lm, tune)

    def save_resume() -> None:
        where = output / folder.RESUME
        ensure_folder(where, "resume folder")
        folder.write_weights(where / folder.TRAINED, folder.layer_weights(lm, tune.layers))
        write_resume_state(where, optimizer, asdict(state))

    scorer = _Validation(DocumentScorer(lm, tokens, tune.framing, labels=tune.labels, conditional=tune.conditional), val_docs, top) if val_docs else None
    ticker = ScheduleAndBudget(schedule, state, budget, targets_per_step)
    report = EpochReport()
    callbacks: list[keras.callbacks.Callback] = [
        ticker,
        ProgressBar(state, total_steps, budget, targets_per_step),
        BestCheckpoint(state, bool(val_docs), save_model, report),
        ResumeState(save_resume),
    ]
    if val_docs and config.patience:
        callbacks.append(EarlyStopping(state, config.patience, report))
    if config.sample_every:
        generator = TransformerGenerator(folder.Loaded(output, lm, tokens, tune))
        callbacks.append(Previews(generator, config.sample_every, min(config.sample_length, PREVIEW_TOKENS), tune.labels[0] if tune.labels else None, config.seed, report))
    if top is not None:
        dataset: Any = TopBatches(top, x, w, config.batch_size, config.seed, first_epoch=state.epoch)
    else:
        dataset = windows_dataset({"token_ids": x[:, :-1], "padding_mask": ones}, x, w, config.batch_size, config.seed)
    state.elapsed += time.monotonic() - began  # the preparation since the model loaded is part of the budget
    try:
        validation = PerCharacter(state, scorer, val_docs, report, tokens_per_char=tokens_per_char)
        listed = TrainingCallbacks(validation, callbacks, model=model, epochs=epochs, steps=steps_per_epoch)
        model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs, initial_epoch=state.epoch, callbacks=listed, verbose=0, shuffle=False)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"at step {state.step:,}; the training state is saved in {output / folder.RESUME}") from None
    finally:
        if state.step and (not val_docs or state.best_val is None):
            save_model()
        if state.step:
            save_resume()
    if not (output / folder.CONFIG).exists():
        save_model()
    rate = ticker.session_targets / ticker.session_seconds if ticker.session_seconds else 0.0
    return TrainReport(output, state, rate, state.step * targets_per_step, unit="character")


def _resume_state(output: Path, model: Any, optimizer: Any) -> TrainState:
    """The saved state and optimizer variables of ``output/resume`` (the trained weights are already in)."""
    saved = read_resume_state(output)
    try:
        state = TrainState(**saved)
    except TypeError:
        raise ModelFolderError(f"{output / folder.RESUME / 'state.json'}: not a botkit resume state of a transformer fine-tune") from None
    optimizer.build(model.trainable_variables)
    restore_optimizer(output / folder.RESUME, optimizer)
    return state


def _result(state: TrainState) -> dict[str, Any]:
    return {"epoch": state.epoch, "step": state.step, "seconds": round(state.elapsed, 1), "train_loss": state.train_loss, "val_loss": state.val_loss, "best_val_loss": state.best_val}
