"""Keras callbacks of ``botkit train``: one job each, as Keras's own are, sharing one :class:`~botkit.training.TrainState`.

* :class:`ScheduleAndBudget` sets the learning rate before every step, counts steps and time, and
  stops at the ``--minutes`` budget;
* :class:`Validation` takes the epoch's figures: the train loss, the val loss (into the state and
  ``logs["val_loss"]``), the best val loss so far and the epochs since it, and the history;
* :class:`BestCheckpoint` saves the model folder when the epoch is the best so far (every
  epoch without a validation split);
* :class:`EarlyStopping` is Keras's own on ``val_loss``, continued across ``--resume``;
* :class:`ResumeState` saves the resume state;
* :class:`ShowSamples` shows preview texts drawn by :class:`~botkit.generate.Generator`;
* :class:`ProgressBar` shows the progress on a terminal.

Why their order does not matter. Keras calls a list's callbacks one after the other, so a
callback that reads what another sets at the same hook depends on coming after it. At the end of
an epoch only one callback sets what others read: :class:`Validation`, and
:class:`TrainingCallbacks` (the list ``fit`` is given) runs it before every other callback's
``on_epoch_end``, as ``fit`` evaluates its own ``validation_data``, and puts the ``val_`` metrics in
the logs, before any ``on_epoch_end``. So every callback finds the epoch's figures in the state and
the logs, and only reads them: the checkpoint and the resume state save the same files, early
stopping (and TensorBoard) see the same ``val_loss``, whatever the order of the list. What they
have to say goes into the :class:`EpochReport`, each part from one callback, and
:class:`TrainingCallbacks` prints it once every callback has run, always in the same order: the
epoch line ("epoch N: step S, train loss X, val loss Y (best, saved)", or "...; no better for P
epoch(s): stopping early"), then the previews. (Early stopping and the budget set
``model.stop_training``, which ``fit`` reads once all callbacks have run.)

The one order left is per step, and only for display: :class:`ProgressBar` shows the step and
time that :class:`ScheduleAndBudget` counts at the same hook, so it is listed after it (before, it
would show them one step late).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import keras
from tqdm import tqdm

from botkit.generate.generator import Generator
from botkit.model.data import Split
from botkit.model.evaluate import Scorer
from botkit.model.network import ModelConfig
from botkit.model.vocab import Vocabulary

if TYPE_CHECKING:
    from botkit.training import LearningRateSchedule, TrainState


def _say(line: str) -> None:
    """One line on stderr that does not break a progress bar."""
    tqdm.write(line, file=sys.stderr)


@dataclass
class EpochReport:
    """What the end of an epoch prints, part by part, each part written by one callback."""

    figures: str = ""  # Validation's: "epoch N: step S, train loss X[, val loss Y]"
    saved: str = ""  # BestCheckpoint's remark
    stopping: str = ""  # EarlyStopping's remark
    previews: list[str] = field(default_factory=list)  # ShowSamples' lines

    def lines(self) -> list[str]:
        """The epoch line, then the previews (nothing before the figures are in)."""
        return [self.figures + self.saved + self.stopping, *self.previews] if self.figures else []

    def clear(self) -> None:
        self.figures = self.saved = self.stopping = ""
        self.previews = []


class TrainingCallbacks(keras.callbacks.CallbackList):
    """The callbacks of one ``fit``: :class:`Validation` first at every epoch end, then the others
    in any order, then the :class:`EpochReport` on stderr (see the module docstring).

    ``fit`` takes a ``CallbackList`` as it is, so this one is made as ``fit`` makes its own: with
    Keras's ``History``, no Keras progress bar, and the model and the run's epochs and steps.
    """

    def __init__(self, validation: Validation, callbacks: Sequence[keras.callbacks.Callback], *, model: Any, epochs: int, steps: int) -> None:
        super().__init__(list(callbacks), add_history=True, add_progbar=False, model=model, verbose=0, epochs=epochs, steps=steps)
        self.validation, self.report = validation, validation.report

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.report.clear()
        logs = dict(logs or {})
        self.validation.on_epoch_end(epoch, logs)  # the figures every other callback reads
        super().on_epoch_end(epoch, logs)
        for line in self.report.lines():
            _say(line)


class ScheduleAndBudget(keras.callbacks.Callback):
    """Sets the learning rate before every step, counts steps and time, stops at the time budget."""

    def __init__(self, schedule: LearningRateSchedule, state: TrainState, budget_seconds: float | None, targets_per_step: int) -> None:
        super().__init__()
        self.schedule, self.state, self.budget = schedule, state, budget_seconds
        self.targets_per_step = targets_per_step
        self.session_targets = 0
        self.session_seconds = 0.0  # time inside training steps: the throughput figure

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = time.monotonic()
        self._elapsed_before = self.state.elapsed

    def _tick(self) -> float:
        self.state.elapsed = self._elapsed_before + time.monotonic() - self._start
        return self.state.elapsed

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.model.optimizer.learning_rate = self.schedule(self.state.step, self._tick())
        self._step_start = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.session_seconds += time.monotonic() - self._step_start
        self.session_targets += self.targets_per_step
        self.state.step += 1
        if self.budget is not None and self._tick() >= self.budget:
            self.model.stop_training = True


class Validation(keras.callbacks.Callback):
    """The epoch's figures, into the state, the logs and the report: the train loss, the val loss
    (without a validation split, none), whether it is the best so far (``best_val``, and
    ``bad_epochs``: the epochs since the best, 0 when this one is), and the history.

    The history is appended before any save: the weights' config.json carries the curves up to the
    epoch it holds. :class:`TrainingCallbacks` runs this before any other callback's epoch end.
    """

    def __init__(self, state: TrainState, scorer: Scorer | None, val: Split | None, report: EpochReport) -> None:
        super().__init__()
        self.state, self.scorer, self.val, self.report = state, scorer, val, report

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        state = self.state
        state.epoch = epoch + 1
        state.train_loss = float(logs.get("next_loss", logs.get("loss", math.nan)))
        figures = f"epoch {state.epoch}: step {state.step:,}, train loss {state.train_loss:.4f}"
        if self.scorer is not None and self.val is not None:
            val_loss = state.val_loss = self.scorer.score(self.val).mean
            logs["val_loss"] = val_loss
            figures += f", val loss {val_loss:.4f}"
            if state.best_val is None or val_loss < state.best_val:
                state.best_val, state.bad_epochs = val_loss, 0
            else:
                state.bad_epochs += 1
        state.history.append(
            {"epoch": state.epoch, "step": state.step, "seconds": round(state.elapsed, 1), "train_loss": state.train_loss, "val_loss": state.val_loss}
        )
        self.report.figures = figures


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model folder when :class:`Validation` found the epoch's val loss the best so far;
    without validation, every epoch."""

    def __init__(self, state: TrainState, validating: bool, save_model: Callable[[], None], report: EpochReport) -> None:
        super().__init__()
        self.state, self.validating, self.save_model, self.report = state, validating, save_model, report

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.validating:
            self.save_model()
        elif self.state.bad_epochs == 0:  # this epoch is the best
            self.save_model()
            self.report.saved = " (best, saved)"


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's early stopping on ``val_loss`` (set by :class:`Validation`), with botkit's remark.

    Keras restarts its count with every ``fit``; a resumed run continues it: the best val loss and
    the epochs since come from the :class:`~botkit.training.TrainState`. (The same rule as the
    state's own count: an epoch is better when its val loss is lower, ``patience`` epochs that are
    not stop the run; only use it with ``patience`` ≥ 1, as Keras's 0 stops at the first one.)
    """

    def __init__(self, state: TrainState, patience: int, report: EpochReport) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1 (got {patience}); 0, never stopping, is no EarlyStopping at all")
        super().__init__(monitor="val_loss", mode="min", patience=patience)
        self.state, self.report = state, report

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best, self.wait = self.state.best_val, self.state.bad_epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if epoch > 0 and self.stopped_epoch == epoch:  # Keras stops only after the first epoch
            self.report.stopping = f"; no better for {self.patience} epoch(s): stopping early"


class ResumeState(keras.callbacks.Callback):
    """Saves the resume state (the latest weights, the optimizer and the state) every epoch."""

    def __init__(self, save_resume: Callable[[], None]) -> None:
        super().__init__()
        self.save_resume = save_resume

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.save_resume()


class ProgressBar(keras.callbacks.Callback):
    """Progress on a terminal (silent when stderr is not a TTY): steps of the total, or seconds of
    the ``--minutes`` budget, with the step, the loss and targets/s. ``file`` (tests) always shows it."""

    def __init__(self, state: TrainState, total_steps: int | None, budget_seconds: float | None, targets_per_step: int, file: TextIO | None = None) -> None:
        super().__init__()
        self.state, self.total, self.budget, self.targets_per_step = state, total_steps, budget_seconds, targets_per_step
        self.file = file

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        total: float | None
        if self.budget:
            total, done, shown = self.budget, min(self.state.elapsed, self.budget), "{n:.0f}/{total:.0f} s{postfix}"
        else:
            total, done, shown = self.total, self.state.step, "{n_fmt}/{total_fmt} steps [{elapsed}<{remaining}{postfix}]"
        disable = None if self.file is None else False
        bar_format = "{desc}: {percentage:3.0f}%|{bar}| " + shown
        out = self.file or sys.stderr
        self.bar = tqdm(
            total=total, initial=done, bar_format=bar_format, desc="train", file=out, disable=disable, dynamic_ncols=True, mininterval=0.5, leave=False
        )
        self._start, self._first = time.monotonic(), self.state.step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.bar.disable:
            return
        rate = (self.state.step - self._first) * self.targets_per_step / max(time.monotonic() - self._start, 1e-9)
        loss = (logs or {}).get("next_loss", (logs or {}).get("loss", math.nan))
        where = f", step {self.state.step:,}" if self.budget else ""
        self.bar.set_postfix_str(f"{where}, loss {float(loss):.3f}, {rate:,.0f} targets/s".lstrip(", "), refresh=False)
        self.bar.update(min(self.state.elapsed, self.budget) - self.bar.n if self.budget else 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.bar.close()


class ShowSamples(keras.callbacks.Callback):
    """Every ``every`` epochs, one text per temperature, drawn by :class:`~botkit.generate.Generator`
    (what ``botkit generate`` runs) from the weights as they are: a human check of progress.

    A generator copies the weights it is built from, so each preview builds one from the model in
    training (without XLA: compiling would take longer than the few texts). ``training`` is the
    training config saved with the weights (its window is the generator's). Every text starts as a
    document does; a reply model's answers no parent, as a document without one.
    """

    def __init__(
        self,
        config: ModelConfig,
        vocab: Vocabulary,
        training: dict[str, Any],
        every: int,
        temperatures: Sequence[float],
        length: int,
        label: str | None,
        seed: int,
        report: EpochReport,
    ) -> None:
        super().__init__()
        self.config, self.vocab, self.training = config, vocab, training
        self.every, self.temperatures, self.length, self.label, self.seed = every, temperatures, length, label, seed
        self.report = report

    def texts(self, epoch: int) -> list[str]:
        """One text per temperature from the weights as they are now, seeded by the epoch."""
        generator = Generator(self.model, self.config, self.vocab, self.training, jit=False)
        parent = "" if self.vocab.conditional else None
        options = {"max_length": self.length, "label": self.label, "seed": self.seed + epoch, "parent": parent}
        return [generator.generate(1, temperature=temperature, **options)[0].text for temperature in self.temperatures]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        for temperature, text in zip(self.temperatures, self.texts(epoch)):
            self.report.previews.append(f"  sample at temperature {temperature}: {text!r}")
