"""A small temperature sampler over the full-window model, for the samples shown during training.

It re-runs the window for every token (simple, compiled once, fast enough for a few hundred
tokens); the batched incremental generator with carried state is a separate, later part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from botkit.model.network import ModelConfig, model_inputs
from botkit.model.vocab import PAD_ID, SEP_ID, UNK_ID, Vocabulary


class Sampler:
    """Samples one text per temperature, all rows in one batch, starting from a document separator."""

    def __init__(self, model, config: ModelConfig, vocab: Vocabulary, window: int) -> None:  # noqa: ANN001 - keras.Model
        import tensorflow as tf

        self.config, self.vocab, self.window = config, vocab, window

        @tf.function(reduce_retracing=True)
        def logits_at(inputs, position):  # noqa: ANN001, ANN202
            return model(inputs, training=False)["next"][:, position]

        self._logits_at = logits_at

    def sample(self, temperatures: Sequence[float], length: int, label: str | None = None, seed: int = 0) -> list[str]:
        rng = np.random.default_rng(seed)
        rows = len(temperatures)
        buffer = np.zeros((rows, self.window), np.int32)
        buffer[:, 0] = SEP_ID
        labels = np.full((rows, self.window), self.vocab.label_id(label), np.int32)
        temps = np.asarray(temperatures, np.float64)[:, None]
        out: list[list[int]] = [[] for _ in range(rows)]
        done = np.zeros(rows, bool)
        position = 0
        for _ in range(length):
            logits = np.asarray(self._logits_at(model_inputs(self.config, buffer, labels), np.int32(position)), np.float64)
            logits[:, [PAD_ID, UNK_ID]] = -np.inf  # neither padding nor "unknown" is text
            scaled = logits / np.maximum(temps, 1e-6)
            probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            chosen = np.array([rng.choice(len(p), p=p) for p in probs])
            for row, token in enumerate(chosen):
                done[row] |= token == SEP_ID
                if not done[row]:
                    out[row].append(int(token))
            if done.all():
                break
            if position + 1 < self.window:
                position += 1
            else:  # window full: slide it by one token
                buffer[:, :-1] = buffer[:, 1:]
            buffer[:, position] = chosen
        return [self.vocab.decode(ids) for ids in out]
