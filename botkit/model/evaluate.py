"""Cross-entropy of a token stream under a model: the number training's val loss and ``botkit eval`` report.

Both use :class:`Scorer`, so they agree by construction. The stream is cut into windows of the
trained length that overlap by half: the first window scores all its positions, every later one
only its second half, so each token but the first is scored exactly once and (after the first
half-window) with at least half a window of context. Nothing is carried across windows: the
model never saw more than one window of context in training, so it is scored the same way.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from botkit.corpus.io import FORMATS
from botkit.model.data import Split, encode
from botkit.model.network import ModelConfig, model_inputs


@dataclass(frozen=True)
class Score:
    """Summed negative log-likelihood (nats) of ``targets`` tokens."""

    nats: float
    targets: int

    @property
    def mean(self) -> float:
        return self.nats / self.targets if self.targets else math.nan

    @property
    def bits(self) -> float:
        return self.mean / math.log(2)


def window_plan(length: int, window: int) -> Iterator[tuple[int, int]]:
    """(start, first scored position in the window) for every window over a ``length``-token stream."""
    stride = max(window // 2, 1)
    yield 0, 0
    start = stride
    while start + window - stride < length - 1:  # targets up to length-1 not yet covered
        yield start, window - stride
        start += stride


class Scorer:
    """Scores token streams with one compiled forward pass per batch of windows."""

    def __init__(self, model, config: ModelConfig, window: int, batch_size: int = 32) -> None:  # noqa: ANN001 - keras.Model
        import tensorflow as tf

        self.config = config
        self.window = window
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def nll(inputs, targets, mask):  # noqa: ANN001, ANN202
            logits = model(inputs, training=False)["next"]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            return tf.reduce_sum(losses * mask), tf.reduce_sum(mask)

        self._nll = nll

    def score(self, split: Split) -> Score:
        tokens, labels = np.asarray(split.tokens()), split.labels()
        total, count = 0.0, 0
        batch: list[tuple[int, int]] = []
        for item in window_plan(len(tokens), self.window):
            batch.append(item)
            if len(batch) == self.batch_size:
                total, count = self._add(tokens, labels, batch, total, count)
                batch = []
        if batch:
            total, count = self._add(tokens, labels, batch, total, count)
        return Score(total, count)

    def _add(self, tokens: np.ndarray, labels: np.ndarray | None, batch: list[tuple[int, int]], total: float, count: int) -> tuple[float, int]:
        # Every batch is padded to the same (batch_size, window) shape so the function compiles once.
        shape = (self.batch_size, self.window)
        x, y, label_x = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        mask = np.zeros(shape, np.float32)
        for row, (start, first) in enumerate(batch):
            stop = min(start + self.window + 1, len(tokens))
            n = stop - start - 1
            x[row, :n] = tokens[start : stop - 1]
            y[row, :n] = tokens[start + 1 : stop]
            mask[row, first:n] = 1.0
            if labels is not None:
                label_x[row, :n] = labels[start : stop - 1]
        nats, targets = self._nll(model_inputs(self.config, x, label_x), y, mask)
        return total + float(nats), count + int(round(float(targets)))


@dataclass(frozen=True)
class EvalReport:
    weights: Path
    file: Path
    score: Score
    level: str
    unknown: int

    def summary(self) -> str:
        unit = "character" if self.level == "char" else "token"
        lines = [
            f"{self.file} under {self.weights}: {self.score.targets:,} {unit}s scored",
            f"cross-entropy: {self.score.mean:.4f} nats/{unit}, {self.score.bits:.4f} bits/{unit}",
        ]
        if self.unknown:
            lines.append(f"warning: {self.unknown:,} {unit}(s) are not in the model's vocabulary and were scored as <unk>")
        return "\n".join(lines)


def evaluate_file(weights_path: Path, file: Path, *, single_text: bool = False) -> EvalReport:
    """Score ``file`` under the model in ``weights_path`` (see the module docstring for how)."""
    from botkit.model import weights

    saved = weights.load(weights_path)
    window = int(saved.training.get("window", 256))
    as_stream = single_text or file.suffix.lower() not in FORMATS
    with tempfile.TemporaryDirectory(prefix="botkit-eval-") as tmp:
        stream = encode([file], saved.vocab, as_stream, Path(tmp))
        score = Scorer(saved.model, saved.config, window).score(Split(stream, 0, len(stream)))
    return EvalReport(weights_path, file, score, saved.vocab.level, stream.unknown)
