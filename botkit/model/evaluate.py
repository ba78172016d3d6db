"""Cross-entropy of a token stream under a model: the number training's val loss and ``botkit eval`` report.

Both use :class:`Scorer`, so they agree by construction (and the validation split is cut where
eval of the held-out text begins, see :func:`botkit.model.data.split_stream`). The stream is cut into windows of the
trained length that overlap by half: the first window scores all its positions, every later one
only its second half, so each token but the first is scored exactly once and (after the first
half-window) with at least half a window of context. Nothing is carried across windows: the
model never saw more than one window of context in training, so it is scored the same way.

A model imported from textgenrnn never saw botkit's windows: textgenrnn trained it on every
token of each document framed by its meta token, after a window of the 40 tokens before it,
left-padded with 0. :class:`TextgenrnnScorer` frames text the same way, or its number means
nothing (measured: 4.11 nats/char where textgenrnn scores the same titles at 1.75).

How a file is read (one stream, or a corpus document by document) follows how the model was
trained, as recorded in its ``config.json``; see :func:`reading`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from botkit.corpus.io import FORMATS
from botkit.model import saving
from botkit.model.data import Split, encode
from botkit.model.network import ModelConfig, model_inputs
from botkit.model.vocab import PAD_ID, SEP_ID, UNK_ID
from botkit.training import trained_window

ReadAs = Literal["stream", "documents"]


@dataclass(frozen=True)
class Score:
    """Summed negative log-likelihood (nats) of ``targets`` tokens."""

    nats: float
    targets: int
    skipped: int = 0  # <unk> targets left out, as textgenrnn leaves out tokens not in its vocabulary

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

    def __init__(self, model: keras.Model, config: ModelConfig, window: int, batch_size: int = 32) -> None:

        self.config = config
        self.window = window
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def nll(inputs: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            logits = model(inputs, training=False)["next"]
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            return tf.reduce_sum(losses * mask), tf.reduce_sum(mask)

        self._nll = nll

    def score(self, split: Split) -> Score:
        """The split's targets (a reply model's reply tokens only: its parents are context) scored once each."""
        tokens, labels, targets = np.asarray(split.tokens()), split.labels(), split.targets()
        total, count = 0.0, 0
        batch: list[tuple[int, int]] = []
        for item in window_plan(len(tokens), self.window):
            batch.append(item)
            if len(batch) == self.batch_size:
                total, count = self._add(tokens, labels, targets, batch, total, count)
                batch = []
        if batch:
            total, count = self._add(tokens, labels, targets, batch, total, count)
        return Score(total, count)

    def _add(
        self, tokens: np.ndarray, labels: np.ndarray | None, targets: np.ndarray, batch: list[tuple[int, int]], total: float, count: int
    ) -> tuple[float, int]:
        # Every batch is padded to the same (batch_size, window) shape so the function compiles once.
        shape = (self.batch_size, self.window)
        x, y, label_x = np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
        mask = np.zeros(shape, np.float32)
        for row, (start, first) in enumerate(batch):
            stop = min(start + self.window + 1, len(tokens))
            n = stop - start - 1
            x[row, :n] = tokens[start : stop - 1]
            y[row, :n] = tokens[start + 1 : stop]
            mask[row, first:n] = targets[start + 1 + first : stop]
            if labels is not None:
                label_x[row, :n] = labels[start : stop - 1]
        nats, targets = self._nll(model_inputs(self.config, x, label_x), y, mask)
        return total + float(nats), count + int(round(float(targets)))


class TextgenrnnScorer:
    """Scores token streams as textgenrnn trains (``generate_sequences_from_texts``), for imported models.

    Each document is ``<s> tokens <s>`` (``meta``; a single-text model has no meta token and reads
    the text as one sequence); every token after the first is a target unless it is ``<unk>``
    (textgenrnn skips targets outside its vocabulary), predicted from the ``window`` + 1 tokens
    before it with ``<unk>`` dropped (its tokenizer drops them), the last ``window`` of those,
    left-padded with 0. The model's output at the window's last position is textgenrnn's.
    """

    def __init__(self, model: keras.Model, config: ModelConfig, window: int, *, meta: bool, documents: bool, batch_size: int = 256) -> None:

        self.config, self.window, self.batch_size = config, window, batch_size
        self.meta, self.documents = meta, documents

        @tf.function(reduce_retracing=True)
        def nll(inputs: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
            logits = model(inputs, training=False)["next"][:, -1]
            return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits) * mask)

        self._nll = nll

    def sequences(self, tokens: np.ndarray) -> Iterator[np.ndarray]:
        """The texts textgenrnn would train on: each document with its meta tokens, or one stream."""
        if not self.documents:
            yield tokens[tokens != SEP_ID]
            return
        bounds = np.flatnonzero(tokens == SEP_ID)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            yield tokens[start : stop + 1] if self.meta else tokens[start + 1 : stop]

    def windows(self, sequence: np.ndarray, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(contexts, targets) of one sequence, at most ``chunk`` at a time."""
        positions = np.flatnonzero(sequence != UNK_ID)
        positions = positions[positions > 0]
        padded = np.concatenate([np.full(self.window + 1, PAD_ID, np.int32), sequence])
        span = np.arange(self.window + 1)
        for first in range(0, len(positions), chunk):
            targets = positions[first : first + chunk]
            rows = padded[targets[:, None] + span]  # the window + 1 tokens before each target
            order = np.argsort(rows != UNK_ID, axis=1, kind="stable")  # <unk> first, the rest in order
            rows = np.take_along_axis(rows, order, axis=1)[:, 1:]
            rows[rows == UNK_ID] = PAD_ID
            yield rows, sequence[targets]

    def score(self, split: Split) -> Score:
        tokens = np.asarray(split.tokens()).astype(np.int32)
        total, count, skipped = 0.0, 0, 0
        rows: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for sequence in self.sequences(tokens):
            skipped += int(np.count_nonzero(sequence[1:] == UNK_ID))
            for x, y in self.windows(sequence):
                rows.append(x)
                targets.append(y)
                count += len(y)
                if sum(map(len, targets)) >= 64 * self.batch_size:  # bounded memory on a long stream
                    total += self._scored(rows, targets)
                    rows, targets = [], []
        return Score(total + self._scored(rows, targets), count, skipped)

    def _scored(self, rows: list[np.ndarray], targets: list[np.ndarray]) -> float:
        if not rows:
            return 0.0
        x_all, y_all = np.concatenate(rows), np.concatenate(targets)
        return sum(self._batch(x_all[i : i + self.batch_size], y_all[i : i + self.batch_size]) for i in range(0, len(y_all), self.batch_size))

    def _batch(self, x: np.ndarray, y: np.ndarray) -> float:
        # Padded to one shape, so the function compiles once.
        n = len(y)
        x_full = np.zeros((self.batch_size, self.window), np.int32)
        y_full, mask = np.zeros(self.batch_size, np.int32), np.zeros(self.batch_size, np.float32)
        x_full[:n], y_full[:n], mask[:n] = x, y, 1.0
        return float(self._nll(model_inputs(self.config, x_full, np.zeros_like(x_full)), y_full, mask))


def reading(training: dict[str, Any], file: Path) -> tuple[ReadAs, str]:
    """How ``botkit eval`` reads ``file`` unless told, and why: the way the model was trained.

    A model trained as one stream (``--single-text``) reads a text file as one stream; a corpus
    model reads a ``.txt``/``.jsonl`` file document by document. A ``.jsonl`` file is always a
    corpus, any other file always a stream. Weights saved before the training mode was recorded
    (imports of older botkit versions) fall back on the file's suffix.
    """
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        return "documents", "a .jsonl file is a corpus"
    if suffix not in FORMATS:
        return "stream", "not a .txt/.jsonl corpus"
    stream_model = training.get("single_text")
    if stream_model is None:
        return "documents", "the model does not record how it was trained; a .txt file is read as a corpus"
    return ("stream", "as the model was trained: one stream") if stream_model else ("documents", "as the model was trained: a corpus")


@dataclass(frozen=True)
class EvalReport:
    model: Path
    file: Path
    score: Score
    level: str
    unknown: int
    read_as: ReadAs
    why: str
    documents: int
    textgenrnn: bool = False
    conditional: bool = False

    def summary(self) -> str:
        unit = "character" if self.level == "char" else "token"
        other = "stream" if self.read_as == "documents" else "documents"
        read = "as one stream" if self.read_as == "stream" else f"as {self.documents:,} document(s), one a line"
        lines = [f"{self.file}: read {read} ({self.why}; --as {other} to change)"]
        if self.textgenrnn:
            lines.append("scored as textgenrnn trains: each target after the 40 tokens before it in its document, left-padded")
        if self.conditional:
            lines.append("a reply model: only the replies are scored, each after its parent (documents without one: after an empty parent)")
        lines += [
            f"{self.file} under {self.model}: {self.score.targets:,} {unit}s scored",
            f"cross-entropy: {self.score.mean:.4f} nats/{unit}, {self.score.bits:.4f} bits/{unit}",
        ]
        if self.score.skipped:
            lines.append(f"warning: {self.score.skipped:,} {unit}(s) are not in the model's vocabulary and were not scored (as textgenrnn skips them)")
        elif self.unknown:
            lines.append(f"warning: {self.unknown:,} {unit}(s) are not in the model's vocabulary and were scored as <unk>")
        return "\n".join(lines)


def evaluate_file(model: Path, file: Path, *, read_as: ReadAs | None = None) -> EvalReport:
    """Score ``file`` under the model folder ``model``, read as ``read_as`` or as the model was trained."""
    saved = saving.load(model)
    window = trained_window(saved.training)
    how, why = (read_as, "as asked") if read_as is not None else reading(saved.training, file)
    imported = "imported_from" in saved.training
    scorer: Scorer | TextgenrnnScorer = Scorer(saved.model, saved.config, window)
    if imported:
        scorer = TextgenrnnScorer(saved.model, saved.config, window, meta=not saved.training.get("single_text"), documents=how == "documents")
    with tempfile.TemporaryDirectory(prefix="botkit-eval-") as tmp:
        stream = encode([file], saved.vocab, how == "stream", Path(tmp), purpose="evaluate")
        score = scorer.score(Split(stream, 0, len(stream)))
    return EvalReport(model, file, score, saved.vocab.level, stream.unknown, how, why, stream.documents, imported, saved.vocab.conditional)
