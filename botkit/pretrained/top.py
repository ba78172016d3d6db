"""Training only the top of a pretrained transformer, with its frozen bottom run once.

When the top k blocks train, the blocks below them compute the same hidden states for a training
window every epoch. :class:`TopOnly` runs that frozen bottom once per window, keeps its output,
and trains a small model made of the same top layers (the blocks, the final norm and the tied
output embedding) on it. Per token that saves the bottom's forward pass every epoch after the
first, and the training step's graph covers only the top layers, so it builds in a fraction of
the time (figures in the README). The layers are the causal LM's own: what the top learns is in
the model that generates afterwards.

The bottom runs for a window when a batch first needs it (:class:`TopBatches`), not over the
whole corpus before the first step: under ``--minutes`` a pass over every window first took most
of a short budget (1,799 titles: 377 windows, about 100 s of a 2-core CPU), and a budget that ends
within the first epoch never pays for the windows it does not reach.

Above :data:`MAX_CACHED_BYTES` of hidden states (a corpus of millions of tokens) the whole model
runs every step instead, its bottom frozen all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from botkit.pretrained.model import blocks
from botkit.pretrained.score import compiled

MAX_CACHED_BYTES = 3 << 30
_BATCH = 8


class TopOnly:
    """The trained top of ``lm`` as its own Keras model, and the bottom's outputs for given windows."""

    def __init__(self, lm: Any, trained: Sequence[str]) -> None:
        stack, names = blocks(lm), set(trained)
        backbone = lm.backbone
        self.first = next(i for i, layer in enumerate(stack) if layer.name in names)
        self.bottom = keras.Model(backbone.inputs, stack[self.first - 1].output) if self.first else None
        hidden = keras.Input((None, backbone.hidden_dim), name="hidden")
        mask = keras.Input((None,), dtype="bool", name="padding_mask")
        x = hidden
        for layer in stack[self.first :]:
            x = layer(x, decoder_padding_mask=mask)
        logits = backbone.token_embedding(backbone.layer_norm(x), reverse=True)
        self.model = keras.Model([hidden, mask], logits, name="trained_top")
        bottom = self.bottom
        self._bottom = compiled(lambda ids, pad: bottom({"token_ids": ids, "padding_mask": pad})) if bottom is not None else None
        self.logits = compiled(lambda hidden, pad: self.model([hidden, pad]))

    @staticmethod
    def fits(windows: int, width: int, hidden_dim: int) -> bool:
        return windows * width * hidden_dim * 4 <= MAX_CACHED_BYTES

    def hidden(self, ids: np.ndarray, pad: np.ndarray) -> np.ndarray:
        """The frozen bottom's output for every row of ``ids`` (rows, width), in whole batches (the last
        one padded), compiled with XLA once per width: 2.5 times as fast as eager on a 2-core CPU."""
        assert self._bottom is not None, "no frozen blocks below the trained ones"
        out = []
        for at in range(0, len(ids), _BATCH):
            part_ids, part_pad = ids[at : at + _BATCH], pad[at : at + _BATCH]
            rows = len(part_ids)
            if rows < _BATCH:
                part_ids = np.concatenate([part_ids, np.zeros((_BATCH - rows, ids.shape[1]), ids.dtype)])
                part_pad = np.concatenate([part_pad, np.ones((_BATCH - rows, ids.shape[1]), bool)])
            out.append(np.asarray(self._bottom(part_ids, part_pad), np.float32)[:rows])
        return np.concatenate(out) if out else np.zeros((0, ids.shape[1], self.model.inputs[0].shape[-1]), np.float32)


class TopBatches(keras.utils.PyDataset):
    """The top's training batches, endless: the windows in a new seeded order every epoch (a corpus
    smaller than a batch repeated to fill it), each window's frozen-bottom output computed the first
    time a batch takes it and kept for every later epoch."""

    def __init__(self, top: TopOnly, x: np.ndarray, w: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0) -> None:
        super().__init__()
        self.top, self.x, self.w, self.batch_size, self.seed = top, x, w, batch_size, seed
        self.per_epoch = -(-len(x) // batch_size)
        self.first_epoch = first_epoch
        self.mask = np.ones((batch_size, x.shape[1] - 1), bool)
        self.hidden = np.empty((len(x), x.shape[1] - 1, top.model.inputs[0].shape[-1]), np.float32)
        self.known = np.zeros(len(x), bool)
        self._orders: dict[int, np.ndarray] = {}

    @property
    def num_batches(self) -> None:
        return None  # endless: fit counts the epochs by steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """The windows of ``epoch`` in their order, whole batches (the permutation repeated where short)."""
        if epoch not in self._orders:
            self._orders = {epoch: np.resize(np.random.default_rng([self.seed, epoch]).permutation(len(self.x)), self.per_epoch * self.batch_size)}
        return self._orders[epoch]

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
        epoch, at = divmod(index, self.per_epoch)
        rows = self.order(self.first_epoch + epoch)[at * self.batch_size : (at + 1) * self.batch_size]
        missing = np.unique(rows[~self.known[rows]])
        if len(missing):
            self.hidden[missing] = self.top.hidden(self.x[missing, :-1], self.mask[: len(missing)])
            self.known[missing] = True
        return (self.hidden[rows], self.mask), self.x[rows, 1:], self.w[rows, 1:]
