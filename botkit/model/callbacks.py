"""Keras callbacks of ``botkit train``; they share one :class:`~botkit.training.TrainState`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import keras
from tqdm import tqdm

from botkit.model.data import Split
from botkit.model.evaluate import Scorer
from botkit.model.previews import Sampler

if TYPE_CHECKING:
    from botkit.training import LearningRateSchedule, TrainState


def _say(line: str) -> None:
    """One line on stderr that does not break a progress bar."""
    tqdm.write(line, file=sys.stderr)


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


class EpochEnd(keras.callbacks.Callback):
    """Validation loss, best-val checkpoint, early stopping and the resume state, once an epoch."""

    def __init__(
        self,
        state: TrainState,
        scorer: Scorer | None,
        val: Split | None,
        patience: int,
        save_model: Callable[[], None],
        save_resume: Callable[[], None],
    ) -> None:
        super().__init__()
        self.state, self.scorer, self.val, self.patience = state, scorer, val, patience
        self.save_model, self.save_resume = save_model, save_resume

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        state = self.state
        state.epoch = epoch + 1
        state.train_loss = float(logs.get("next_loss", logs.get("loss", math.nan)))
        line = f"epoch {state.epoch}: step {state.step:,}, train loss {state.train_loss:.4f}"
        if self.scorer is not None and self.val is not None:
            state.val_loss = self.scorer.score(self.val).mean
            logs["val_loss"] = state.val_loss
            line += f", val loss {state.val_loss:.4f}"
        # Before any save: the weights' config.json carries the curves up to the epoch it holds.
        state.history.append(
            {"epoch": state.epoch, "step": state.step, "seconds": round(state.elapsed, 1), "train_loss": state.train_loss, "val_loss": state.val_loss}
        )
        if self.scorer is not None and self.val is not None:
            if state.best_val is None or state.val_loss < state.best_val:  # type: ignore[operator]  # val_loss was just set
                state.best_val, state.bad_epochs = state.val_loss, 0
                self.save_model()
                line += " (best, saved)"
            else:
                state.bad_epochs += 1
                if self.patience and state.bad_epochs >= self.patience:
                    self.model.stop_training = True
                    line += f"; no better for {self.patience} epoch(s): stopping early"
        else:
            self.save_model()
        self.save_resume()
        _say(line)


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
    """A few sampled texts at several temperatures every ``every`` epochs: a human check of progress."""

    def __init__(self, sampler: Sampler, every: int, temperatures: Sequence[float], length: int, label: str | None, seed: int) -> None:
        super().__init__()
        self.sampler, self.every, self.temperatures = sampler, every, temperatures
        self.length, self.label, self.seed = length, label, seed

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        texts = self.sampler.sample(self.temperatures, self.length, self.label, seed=self.seed + epoch)
        for temperature, text in zip(self.temperatures, texts):
            _say(f"  sample at temperature {temperature}: {text!r}")
