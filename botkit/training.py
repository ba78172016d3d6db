"""How to train and what shape the network has: declared once, read by ``botkit train``, a bot's
``train:`` block in config.yaml, the trainer and the model folder alike; and the two things a
run keeps besides weights (where it is, and its learning-rate schedule).

Each field's type, default, bounds and description make the command-line flag (``max_words``
becomes ``--max-words``, its help from the description), the config key and the error message that
names one or the other (:mod:`botkit.options`). It lives outside :mod:`botkit.model` because that
package starts TensorFlow and nothing here needs it: the CLI and the config check read these
without the seconds TensorFlow takes to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field
from pydantic.json_schema import JsonDict

from botkit.options import Options

DEFAULT_EPOCHS = 10
#: Tokens per training window: ``--window``'s default, and the context assumed for a model whose
#: training config does not say its window (:func:`trained_window`, which readers of a saved model
#: use), so that fallback cannot drift from training's default.
DEFAULT_WINDOW = 128
#: Below this many tokens a corpus trains with dropout unless ``--dropout`` says otherwise: in a
#: budget of minutes such a corpus is seen many times over and overfits. Measured side by side
#: (2026-12-05, 2-core CPU): 1,800 Hacker News titles (100,000 characters), 2 minutes, held-out
#: titles 2.129 → 2.034 nats/char from scratch and 1.942 → 1.916 from the base model; tiny
#: Shakespeare (1,000,000 characters, 24 epochs in 10 minutes) 1.505 → 1.497. A larger corpus is seen
#: only a few times in a usual budget, where dropout slows learning and has little to prevent (not
#: measured here), so it gets none.
SMALL_CORPUS_TOKENS = 5_000_000
SMALL_CORPUS_DROPOUT = 0.2
#: What ``botkit train`` and ``train:`` mean by each group of settings, for ``--help``.
GROUPS = {
    "data": "data",
    "budget": "budget and schedule",
    "shape": "model shape (ignored by --resume; fixed by the base model with --from)",
    "monitoring": "monitoring",
}


def _in(group: str, **extra: str) -> JsonDict:
    """A field's extras: its group in ``--help`` (and e.g. ``short``, ``metavar``)."""
    return {"group": group, **extra}


class TrainConfig(Options):
    """How to train (saved beside the weights; ``window`` is also the context eval uses)."""

    level: Literal["char", "word"] | None = Field(
        None, description="char (default) or word level (punctuation and casing are tokens); a base model's level with --from", json_schema_extra=_in("data")
    )
    single_text: bool = Field(False, description="read each input as one plain-text stream (tiny Shakespeare, a novel)", json_schema_extra=_in("data"))
    max_words: int | None = Field(10_000, ge=1, description="word level: vocabulary size cap; rarer words become <unk>", json_schema_extra=_in("data"))
    epochs: int | None = Field(
        None, ge=1, description=f"passes over the training tokens (default {DEFAULT_EPOCHS} unless --minutes)", json_schema_extra=_in("budget")
    )
    minutes: float | None = Field(
        None,
        gt=0,
        description="wall-clock training budget; the learning rate decays to 0 at its end (with --resume: more minutes)",
        json_schema_extra=_in("budget"),
    )
    # Measured on tiny Shakespeare, 3-minute budget, 2-core CPU: 32 × 128-token windows at peak
    # LR 8e-3 reached 1.667 nats/char; 64 × 64 at 2e-3: 1.858, at 4e-3: 1.766; 32 × 128 at 4e-3:
    # 1.773; 32 × 256 at 2e-3: 2.199. Small steps and a high, decaying rate win at a CPU budget.
    batch_size: int = Field(32, ge=1, description="windows per step", json_schema_extra=_in("budget"))
    window: int = Field(DEFAULT_WINDOW, ge=2, description="tokens per training window, also the context eval uses", json_schema_extra=_in("budget"))
    train_size: float = Field(
        0.9, gt=0, le=1, description="share of the token stream to train on; the rest (the end) is validation", json_schema_extra=_in("budget")
    )
    lr: float = Field(8e-3, gt=0, description="peak learning rate of Adam, decayed linearly to 0", json_schema_extra=_in("budget"))
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps", json_schema_extra=_in("budget", short="--warmup"))
    clipnorm: float = Field(1.0, gt=0, description="clip each gradient to this norm", json_schema_extra=_in("budget"))
    patience: int = Field(5, ge=0, description="stop after this many epochs without a better val loss; 0 never stops", json_schema_extra=_in("budget"))
    seed: int = Field(0, description="random seed of initialisation and window order", json_schema_extra=_in("budget"))
    sample_every: int = Field(10, ge=0, description="print sample texts every N epochs; 0 turns them off", json_schema_extra=_in("monitoring"))
    sample_length: int = Field(200, ge=1, description="length of those samples, in tokens", json_schema_extra=_in("monitoring"))
    tensorboard: str | None = Field(None, description="write TensorBoard logs to this folder", json_schema_extra=_in("monitoring", metavar="DIR"))
    mixed_precision: bool = Field(
        False, description="float16 compute on a GPU (softmax stays float32); transformers: bfloat16, on a GPU or a CPU with bf16 units", json_schema_extra=_in("monitoring")
    )
    train_layers: int | None = Field(
        None, ge=0, description="transformers (--from a pretrained model): train only the top N blocks (default: the top fifth); 0 trains every layer",
        json_schema_extra=_in("shape"),
    )
    distribute: Literal["mirrored", "multi-worker"] | None = Field(
        None,
        description="tf.distribute: mirrored over this machine's GPUs, or multi-worker across the machines in TF_CONFIG (--batch-size is the global batch)",
        json_schema_extra=_in("monitoring"),
    )


class ShapeOptions(Options):
    """The network's sizes a user may choose (unset: the model's defaults, or the base model's)."""

    rnn_layers: int | None = Field(None, ge=1, description="stacked LSTM layers (default 2)", json_schema_extra=_in("shape"))
    rnn_size: int | None = Field(None, ge=1, description="units per LSTM layer (default 128)", json_schema_extra=_in("shape"))
    embedding_size: int | None = Field(None, ge=1, description="token embedding size (default 100)", json_schema_extra=_in("shape"))
    dropout: float | None = Field(None, ge=0, lt=1, description=f"dropout after the embedding and each LSTM (default {SMALL_CORPUS_DROPOUT} on a corpus under {SMALL_CORPUS_TOKENS:,} tokens, else 0; with --from too)", json_schema_extra=_in("shape"))
    head: Literal["attention", "attention+last"] | None = Field(
        None,
        description="output head: textgenrnn's attention average, or that plus the last LSTM output (default)",
        json_schema_extra=_in("shape"),
    )

    def given(self) -> dict[str, object]:
        """The sizes set explicitly, for the network (the rest keep its defaults)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class StartFrom(Options):
    """Where a fine-tune starts: ``--from`` of ``botkit train``, ``from:`` of a bot's ``train:`` block."""

    base: str | None = Field(
        None,
        alias="from",
        description="fine-tune from another model folder (new tokens extend its vocabulary; base: the shipped one; in a bot's train: block, "
        "relative to the config), or from a pretrained transformer: smollm2 (after botkit pull smollm2), a .gguf file, "
        "a Hugging Face or keras-hub model folder, hf://ORG/NAME or a keras-hub preset",
        json_schema_extra={"metavar": "MODEL"},
    )


def default_dropout(tokens: int) -> float:
    """The dropout of a model trained on ``tokens`` tokens when ``--dropout`` is not given."""
    return SMALL_CORPUS_DROPOUT if tokens < SMALL_CORPUS_TOKENS else 0.0


def trained_window(training: Mapping[str, Any]) -> int:
    """The context length (tokens) a model was trained on, from the ``training`` part of its
    config.json: the window it records, else :data:`DEFAULT_WINDOW` (``botkit train`` always
    records it; a hand-made folder or a bare ``Generator`` may not)."""
    return int(training.get("window", DEFAULT_WINDOW))


@dataclass
class TrainState:
    """Where a run is: saved every epoch so ``--resume`` continues the schedule and the data order.

    In training, :class:`~botkit.model.callbacks.ScheduleAndBudget` counts ``step`` and
    ``elapsed``, and :class:`~botkit.model.callbacks.Validation` sets the epoch's figures (``epoch``,
    the losses, ``best_val``, ``bad_epochs``, ``history``) before any other callback's epoch end:
    the checkpoint, early stopping and the resume state read them, in any order.
    """

    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0
    best_val: float | None = None
    bad_epochs: int = 0
    train_loss: float | None = None
    val_loss: float | None = None
    history: list[dict[str, float | None]] = field(default_factory=list)


class LearningRateSchedule:
    """Linear warmup, then linear decay to zero at the end of the run (in steps or in seconds)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int | None, budget_seconds: float | None) -> None:
        self.peak, self.warmup_steps = peak, warmup_steps
        self.total_steps, self.budget_seconds = total_steps, budget_seconds

    def __call__(self, step: int, elapsed: float) -> float:
        done = elapsed / self.budget_seconds if self.budget_seconds else step / self.total_steps  # type: ignore[operator]
        if self.budget_seconds and self.total_steps:
            done = max(done, step / self.total_steps)
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return self.peak * warm * max(0.0, 1.0 - done)
