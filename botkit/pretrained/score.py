"""Negative log-likelihood of documents under a transformer, per *character*: the scale a char LSTM
is scored on, so the two families compare directly.

Each document is framed as in training (separator, label, parent), and scored on its text's tokens
and the closing separator: nats per character = the summed NLL / (characters + 1 per document, the
end marker). Tokens are counted too (the model's own unit). A document longer than :data:`CHUNK`
tokens is scored chunk by chunk, each chunk after the one before it (no context carried).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from botkit.corpus.document import Document
from botkit.model.evaluate import Score
from botkit.pretrained.text import Framing, Tokens

CHUNK = 512
_WIDTH_STEP = 32  # rows are padded to a multiple of this: few shapes, few traces


@dataclass(frozen=True)
class Framed:
    """A document as rows of ids with target weights, and the characters it scores."""

    ids: list[int]
    weights: list[int]
    chars: int


def frame(tokens: Tokens, framing: Framing, doc: Document, *, conditional: bool) -> Framed:
    parent = (doc.parent or "") if conditional else None
    ids, weights = framing.document(tokens, doc.text, doc.label, parent)
    return Framed(ids, weights, len(doc.text) + 1)


class DocumentScorer:
    """Scores documents with ``lm`` (a keras-hub causal LM) in padded batches."""

    def __init__(self, lm: Any, tokens: Tokens, framing: Framing, *, labels: Sequence[str] = (), conditional: bool = False, batch_size: int = 8) -> None:
        self.lm, self.tokens, self.framing = lm, tokens, framing
        self.labels, self.conditional, self.batch_size = set(labels), conditional, batch_size
        self._nll = tf.function(self._batch_nll, reduce_retracing=True)

    def _batch_nll(self, ids: Any, pad: Any, weights: Any) -> Any:
        logits = self.lm({"token_ids": ids[:, :-1], "padding_mask": pad[:, :-1]})
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids[:, 1:], logits=tf.cast(logits, tf.float32))
        return tf.reduce_sum(nll * weights[:, 1:]), tf.reduce_sum(weights[:, 1:])

    def framed(self, docs: Sequence[Document]) -> list[Framed]:
        """Unknown labels score as unlabelled text (the model never saw them)."""
        return [frame(self.tokens, self.framing, doc if doc.label in self.labels else Document(doc.text, parent=doc.parent), conditional=self.conditional) for doc in docs]

    def score(self, docs: Sequence[Document]) -> tuple[Score, int]:
        """The summed NLL over characters (+1 per document), and the tokens scored."""
        rows: list[tuple[list[int], list[int]]] = []
        chars = 0
        for item in self.framed(docs):
            chars += item.chars
            for start in range(0, len(item.ids) - 1, CHUNK):
                rows.append((item.ids[start : start + CHUNK + 1], item.weights[start : start + CHUNK + 1]))
        rows.sort(key=lambda r: len(r[0]))  # similar lengths together: less padding
        nats, scored = 0.0, 0
        for at in range(0, len(rows), self.batch_size):
            batch = rows[at : at + self.batch_size]
            width = -(-max(len(r[0]) for r in batch) // _WIDTH_STEP) * _WIDTH_STEP
            ids, pad, weights = (np.zeros((self.batch_size, width), dtype) for dtype in (np.int32, bool, np.float32))
            for i, (row, weight) in enumerate(batch):
                ids[i, : len(row)], pad[i, : len(row)], weights[i, : len(row)] = row, True, weight
            pad[:, 0] = True  # an empty row attending to nothing would make NaNs (weighted 0, but NaN * 0 is NaN)
            total, count = self._nll(tf.constant(ids), tf.constant(pad), tf.constant(weights))
            nats, scored = nats + float(total), scored + int(round(float(count)))
        return Score(nats, chars), scored
