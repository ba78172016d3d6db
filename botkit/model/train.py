"""``botkit train``: corpus → vocabulary → token file → windows → Keras ``fit`` → ``weights/NAME/``.

The schedule is textgenrnn's linear decay to zero over the run (optional linear warmup). With
``--epochs`` the position in the schedule is the step; with ``--minutes`` it is the elapsed
training time, so the learning rate reaches zero exactly when the budget ends whatever the step
time turns out to be (a time-based schedule needs no step-time estimate that a busy machine
would make wrong). Resuming continues from the saved step and elapsed time; ``--minutes`` given
with ``--resume`` is more time (the schedule decays to zero at the new end), ``--epochs`` the total.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import math
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from botkit.atomic import OutputError
from botkit.errors import ConfigError, SettingError
from botkit.model import data, saving
from botkit.model.callbacks import (
    BestCheckpoint,
    EarlyStopping,
    EpochReport,
    ProgressBar,
    ResumeState,
    ScheduleAndBudget,
    ShowSamples,
    TrainingCallbacks,
    Validation,
)
from botkit.model.evaluate import Scorer
from botkit.model.network import ModelConfig, build_model
from botkit.model.vocab import Vocabulary
from botkit.model_folder import is_transformer
from botkit.pretrained.sources import is_pretrained
from botkit.training import DEFAULT_EPOCHS, LearningRateSchedule, TrainConfig, TrainState, default_dropout

log = logging.getLogger(__name__)

SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0)
DISTRIBUTE = ("mirrored", "multi-worker")
# Settings that shape the token stream and the window order: a resumed run keeps the first run's.
RESUME_KEEPS = ("level", "single_text", "max_words", "window", "train_size", "batch_size", "seed")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised once the state is saved; says where, so the CLI can add how to resume."""


@dataclass(frozen=True)
class TrainReport:
    output: Path
    state: TrainState
    tokens_per_second: float
    tokens_trained: int
    unit: str = "token"  # a fine-tuned transformer's losses are per character, as botkit eval scores it

    def summary(self) -> str:
        s = self.state
        val = "n/a (no validation split)" if s.val_loss is None else f"{s.val_loss:.4f} (best {s.best_val:.4f})"
        return (
            f"{self.output}: {s.epoch} epoch(s), {s.step:,} steps, {self.tokens_trained:,} targets in {s.elapsed:.0f} s "
            f"({self.tokens_per_second:,.0f} targets/s); train loss {s.train_loss:.4f}, val loss {val} nats/{self.unit}"
        )


@dataclass
class Plan:
    """What the run is made of, once the inputs and any base model are read."""

    model_config: ModelConfig
    vocab: Vocabulary
    train: data.Split
    val: data.Split | None
    base: saving.Saved | None = None
    corpus: tuple[Path, ...] = ()  # recorded with the weights: the novelty filter checks samples against it


def train(
    corpus: Sequence[Path],
    output: Path,
    config: TrainConfig,
    model_overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    base: Path | str | None = None,
) -> TrainReport:
    """Train a model on ``corpus`` into the folder ``output``; see :mod:`botkit.model.train`.

    A pretrained transformer as ``base`` (a known name, a .gguf file, a Hugging Face or keras-hub
    folder or preset), or ``resume`` of a fine-tuned one, is fine-tuned by :mod:`botkit.pretrained.train`.
    """

    if not corpus:
        raise ConfigError("give at least one corpus file to train on")
    if resume and base is not None:
        raise ConfigError("give either --resume (continue this model) or --from (start from another), not both")
    if (base is not None and is_pretrained(base)) or (resume and is_transformer(output)):
        from botkit.pretrained.train import fine_tune  # that module builds on this one

        if model_overrides:
            raise ConfigError(f"the model shape comes from the pretrained model; drop {', '.join(_flag(k, v) for k, v in model_overrides.items())}")
        return fine_tune(corpus, output, config, base_spec=None if base is None else str(base), resume=resume)
    base = None if base is None else Path(base)
    strategy = _strategy(config.distribute)  # first: multi-worker must exist before any other TF op
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        _enable_mixed_precision()
    previous = _previous_training(output) if resume else None
    extra_minutes = config.minutes if resume else None  # on --resume, --minutes is time to add
    if previous is not None:
        config = _merge_resumed(previous, config)
    saved_base = saving.load(base) if base is not None else None
    config = _resolve_level(config, saved_base)
    with _cache_removed_on_failure(output):
        plan = _plan(corpus, output, config, model_overrides or {}, resume=resume, base=saved_base)
        return _build_and_fit(plan, config, output, strategy, resume=resume, extra_minutes=extra_minutes)


@contextlib.contextmanager
def _cache_removed_on_failure(output: Path) -> Iterator[None]:
    """On an error, remove the token files this run added to ``output/cache`` (and the folders, if
    that leaves them empty): a failed run leaves no megabytes behind. Ctrl-C keeps them for --resume."""
    cache = output / "cache"
    existed = output.exists()
    before = set(cache.iterdir()) if cache.is_dir() else set()
    try:
        yield
    except Exception:
        if cache.is_dir():
            for path in set(cache.iterdir()) - before:
                path.unlink(missing_ok=True)
            for folder in (cache, *(() if existed else (output,))):
                with contextlib.suppress(OSError):  # not empty: other files are not this run's to remove
                    folder.rmdir()
        raise


def _build_and_fit(plan: Plan, config: TrainConfig, output: Path, strategy: Any, *, resume: bool, extra_minutes: float | None) -> TrainReport:
    """The model and optimizer (fresh, resumed, or extended from the base), then :func:`_fit`."""

    with strategy.scope():  # variables (model and optimizer) are created mirrored on every replica
        model = build_model(plan.model_config)
        optimizer = keras.optimizers.Adam(learning_rate=config.lr, clipnorm=config.clipnorm)
        _compile(model, optimizer, plan.model_config)
        state = TrainState()
        if resume:
            optimizer.build(model.trainable_variables)
            state = TrainState(**saving.load_resume(output, model, optimizer))
        elif plan.base is not None:
            saving.extend_into(plan.base.model, model)
    if extra_minutes is not None:  # the budget is kept as the total: a later --resume alone ends where this one does
        config = config.model_copy(update={"minutes": state.elapsed / 60 + extra_minutes})
    _say_device()
    return _fit(model, optimizer, plan, config, output, state)


def _strategy(name: str | None) -> Any:
    """The ``tf.distribute`` strategy of ``--distribute`` (TensorFlow's default one without it).

    ``mirrored`` copies the model onto every visible GPU (the CPU when there is none) and splits
    each batch between them; ``--batch-size`` stays the global batch, so the schedule and the data
    order are the same whatever the number of replicas. ``multi-worker`` reads its cluster from the
    ``TF_CONFIG`` environment variable, but a cluster of more than one worker is refused: Keras
    3.15's ``fit`` fails before its first step there (``strategy.reduce`` of the first int32 batch
    in ``TensorFlowTrainer._maybe_symbolic_build``; measured with two workers on 127.0.0.1).
    """

    if name is None:
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except (ValueError, RuntimeError) as exc:
            why = str(exc).splitlines()[0][:160]
            raise SettingError(lambda name: f"{name('distribute')} multi-worker: TF_CONFIG is not a usable cluster spec ({why})") from None
        cluster = strategy.cluster_resolver.cluster_spec().as_dict()
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        if workers > 1:
            raise SettingError(
                lambda name: f"{name('distribute')} multi-worker: TF_CONFIG names {workers} workers, and Keras {keras.__version__} cannot train on more than one yet; "
                f"use {name('distribute')} mirrored on one machine's GPUs"
            )
        return strategy
    raise SettingError(lambda setting: f"{setting('distribute')} must be one of {', '.join(DISTRIBUTE)} (got {name!r})")


@functools.cache  # once a process: farm build trains one model after another
def _say_device() -> None:
    """One line when training runs on a CPU (TensorFlow's own start-up notices are silenced); ``-v`` says more."""

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        log.info("training on %d GPU(s): %s", len(gpus), ", ".join(gpu.name for gpu in gpus))
        return
    print("botkit: no GPU, training on CPU", file=sys.stderr)
    threading = tf.config.threading
    intra, inter = threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()
    log.info("%d CPU core(s); TensorFlow threads: %s intra-op, %s inter-op (0: one per core)", os.cpu_count() or 1, intra, inter)


def _enable_mixed_precision() -> None:

    if not tf.config.list_physical_devices("GPU"):
        raise SettingError(lambda name: f"{name('mixed_precision')} needs a GPU (on a CPU it is slower, not faster)")
    keras.mixed_precision.set_global_policy("mixed_float16")


def _previous_training(output: Path) -> dict[str, Any]:
    _, training = saving.read_config(output)
    return training


def _merge_resumed(previous: dict[str, Any], config: TrainConfig) -> TrainConfig:
    """On ``--resume`` the data settings come from the first run; budgets given now win.

    A data setting given now that differs from the first run's is ignored, and said so: the
    token stream, the split and the window order must stay those the saved state continues.
    (A flag given with its default value cannot be told from no flag, so only a value that
    differs from both the default and the first run's is reported.)
    """
    kept = {k: previous[k] for k in RESUME_KEEPS if k in previous}
    defaults = TrainConfig()
    for key, value in kept.items():
        given = getattr(config, key)
        if given != value and given != getattr(defaults, key):
            log.warning("--resume: ignoring %s, the first run's %s is kept", _flag(key, given), _flag(key, value))
    if config.epochs is None and config.minutes is None:
        kept.update(epochs=previous.get("epochs"), minutes=previous.get("minutes"))
    return config.model_copy(update=kept)


def _flag_parts(key: str, value: Any) -> list[str]:
    """A setting as command-line arguments: ``["--window", "64"]``, ``["--word"]``, ``["--single-text"]``."""
    if key == "level":
        return [f"--{value}"]
    flag = "--" + key.replace("_", "-")
    return [flag] if value is True else [flag, str(value)]


def _flag(key: str, value: Any) -> str:
    """How a setting reads in a message: ``--window 64``, ``--word``, ``no --single-text``."""
    return f"no --{key.replace('_', '-')}" if value is False else " ".join(_flag_parts(key, value))


def resume_command(corpus: Sequence[Path], output: Path, given: dict[str, Any]) -> str:
    """The command that continues a run started with the settings ``given``.

    ``--minutes`` is left out: with --resume it would add that much time, while without it the
    first run's budget is kept, which is what an interrupted run wants.
    """
    parts = ["botkit", "train", *map(str, corpus), "-o", str(output), "--resume"]
    for key, value in given.items():
        if key != "minutes":
            parts += _flag_parts(key, value)
    return shlex.join(parts)


def _resolve_level(config: TrainConfig, base: saving.Saved | None) -> TrainConfig:
    if base is None:
        return config if config.level else config.model_copy(update={"level": "char"})
    if config.level and config.level != base.vocab.level:
        level = base.vocab.level
        raise SettingError(lambda name: f"{base.path}: is a {level}-level model; set {name('level')} to {level} to fine-tune it, or leave it unset")
    return config.model_copy(update={"level": base.vocab.level})


def _plan(corpus: Sequence[Path], output: Path, config: TrainConfig, overrides: dict[str, Any], *, resume: bool, base: saving.Saved | None) -> Plan:
    if resume:
        model_config, _ = saving.read_config(output)
        vocab = saving.read_vocab(output)
        for key, value in overrides.items():
            if getattr(model_config, key) != value:
                log.warning("--resume: ignoring %s, the model keeps its %s", _flag(key, value), _flag(key, getattr(model_config, key)))
    else:
        assert config.level is not None  # _resolve_level settled it
        builder = data.count_vocabulary(corpus, config.level, config.single_text, config.max_words)
        if base is not None:
            fresh = builder.build()
            vocab = base.vocab.extended(fresh.tokens, fresh.labels)
            model_config = replace(base.config, vocab_size=len(vocab), num_labels=len(vocab.labels), **_dropout_only(overrides, base.path))
            if len(vocab) > len(base.vocab):
                log.info("vocabulary extended by %d new token(s)", len(vocab) - len(base.vocab))
        else:
            vocab = builder.build()
            model_config = ModelConfig(vocab_size=len(vocab), num_labels=len(vocab.labels), **overrides)
    stream = data.encode(corpus, vocab, config.single_text, output / "cache")
    if not resume and "dropout" not in overrides:
        model_config = replace(model_config, dropout=default_dropout(len(stream)))
        log.info("dropout %g (%s tokens; --dropout to change)", model_config.dropout, f"{len(stream):,}")
    model_config.check()
    if stream.unknown:  # expected under a --max-words cap; a surprise when resuming on changed text
        (log.warning if resume else log.info)("%d token(s) not in the vocabulary were read as <unk>", stream.unknown)
    train_split, val_split = data.split_stream(stream, config.train_size)
    if len(train_split) < 3 or val_split is not None and len(val_split) < 2:
        names = ", ".join(str(p) for p in corpus)
        raise SettingError(lambda name: f"{names}: too little text ({len(stream)} tokens) for a training and a validation split; add text or raise {name('train_size')}")
    return Plan(model_config, vocab, train_split, val_split, base, tuple(Path(p).resolve() for p in corpus))


def _dropout_only(overrides: dict[str, Any], base: Path) -> dict[str, Any]:
    """A fine-tuned model keeps its base's shape; only dropout may change (a training choice, not
    something the base learned: unset, it is the default for the new corpus, not the base's)."""
    shape = {k: v for k, v in overrides.items() if k != "dropout"}
    if shape:
        raise SettingError(lambda name: f"{name('from')} {base}: the model shape comes from the base model; drop {', '.join(name(k) for k in shape)}")
    return {k: v for k, v in overrides.items() if k == "dropout"}


def _compile(model: Any, optimizer: Any, config: ModelConfig) -> None:

    # A reply model weights its targets (0 on the parents): the mean is over the weighted targets, so
    # its train loss is nats per reply token, as its val loss is; without weights it is the plain mean.
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    if config.labelled:
        # textgenrnn's context mode: 0.8 on the labelled output, 0.2 on the label-free one.
        model.compile(optimizer, loss={"next": loss, "aux": loss}, loss_weights={"next": 1 - config.aux_loss_weight, "aux": config.aux_loss_weight})
    else:
        model.compile(optimizer, loss={"next": loss})


def _fit(model: Any, optimizer: Any, plan: Plan, config: TrainConfig, output: Path, state: TrainState) -> TrainReport:

    window = min(config.window, len(plan.train) - 1)
    if window < config.window:
        log.warning("training text is short: window reduced from %d to %d tokens", config.window, window)
        config = config.model_copy(update={"window": window})
    steps_per_epoch = max(1, math.ceil(len(plan.train) / (config.batch_size * window)))
    epochs = config.epochs if config.epochs is not None else (10**9 if config.minutes else DEFAULT_EPOCHS)
    total_steps = epochs * steps_per_epoch if epochs < 10**9 else None
    budget = config.minutes * 60 if config.minutes else None
    schedule = LearningRateSchedule(config.lr, config.warmup_steps, total_steps, budget)
    training_json = {
        **config.model_dump(),
        "epochs": config.epochs if config.epochs is not None or config.minutes else DEFAULT_EPOCHS,
        "corpus": [str(p) for p in plan.corpus],
        "conditional": plan.vocab.conditional,  # for readers of config.json; the vocabulary's <reply> token decides
    }
    targets_per_step = config.batch_size * window

    def save_model() -> None:
        # The history (train and val loss per epoch) travels with the weights: the console and
        # `botkit report` draw every model's curves from it.
        saving.save(output, model, plan.model_config, plan.vocab, {**training_json, "result": _result(state, targets_per_step), "history": state.history})

    scorer = Scorer(model, plan.model_config, window) if plan.val is not None else None
    ticker = ScheduleAndBudget(schedule, state, budget, targets_per_step)
    report = EpochReport()
    # In any order (see botkit.model.callbacks), but the progress bar shows what the ticker counts.
    callbacks = [
        ticker,
        ProgressBar(state, total_steps, budget, targets_per_step),
        BestCheckpoint(state, plan.val is not None, save_model, report),
        ResumeState(lambda: saving.save_resume(output, model, optimizer, asdict(state))),
    ]
    if plan.val is not None and config.patience:
        callbacks.append(EarlyStopping(state, config.patience, report))
    if config.sample_every:
        label = plan.vocab.labels[1] if plan.vocab.labelled else None
        previews = ShowSamples(
            plan.model_config, plan.vocab, training_json, config.sample_every, SAMPLE_TEMPERATURES, config.sample_length, label, config.seed, report
        )
        callbacks.append(previews)
    if config.tensorboard:
        if importlib.util.find_spec("tensorboard") is None:
            raise SettingError(lambda name: f"{name('tensorboard')} needs the tensorboard package (pip install tensorboard)")
        callbacks.append(keras.callbacks.TensorBoard(config.tensorboard))
    dataset = data.training_dataset(plan.train, window, config.batch_size, config.seed, state.step, plan.model_config.labelled)
    write_failed = False
    try:
        if state.epoch >= epochs or budget and state.elapsed >= budget:
            done = f"{state.epoch} epoch(s), {state.elapsed:.0f} s already done"
            log.warning("%s: nothing left to train (%s; --epochs is the total, --minutes X with --resume trains X more minutes)", output, done)
        else:
            listed = TrainingCallbacks(Validation(state, scorer, plan.val, report), callbacks, model=model, epochs=epochs, steps=steps_per_epoch)
            model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs, initial_epoch=state.epoch, callbacks=listed, verbose=0, shuffle=False)
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"at step {state.step:,}; the training state is saved in {output / saving.RESUME}") from None  # after the save below
    except OutputError:
        # A save failed (disk full, read-only folder): the files it wrote before are whole, and
        # saving again would only fail again, with an error about another file hiding this one.
        write_failed = True
        raise
    finally:  # Ctrl-C included: keep what was trained, resumable
        if not write_failed:
            if state.step and (plan.val is None or state.best_val is None):
                save_model()
            elif state.history and (output / saving.CONFIG).exists():
                saving.record_history(output, state.history)
            saving.save_resume(output, model, optimizer, asdict(state))
    if not (output / saving.WEIGHTS).exists():
        save_model()
    rate = ticker.session_targets / ticker.session_seconds if ticker.session_seconds else 0.0
    return TrainReport(output, state, rate, state.step * targets_per_step)


def _result(state: TrainState, targets_per_step: int) -> dict[str, Any]:
    return {
        "epoch": state.epoch,
        "step": state.step,
        "seconds": round(state.elapsed, 1),
        "targets": state.step * targets_per_step,
        "train_loss": state.train_loss,
        "val_loss": state.val_loss,
        "best_val_loss": state.best_val,
    }
