"""Choosing the next token from logits: temperature, top-k, top-p, seeded; all TF ops.

The choice runs inside the compiled generation loop, so it is written with TensorFlow ops over a
whole batch. It uses the Gumbel-max trick: ``argmax(logits + T·g)`` with Gumbel noise ``g`` is a
draw from ``softmax(logits / T)``, and stays exact and finite for every temperature, including
0 (greedy) and the tiny ones of a temperature cycle. The noise comes from stateless random ops
keyed by (seed, batch number, step), so the same seed gives the same samples on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botkit.errors import ConfigError
from botkit.model.vocab import PAD_ID, UNK_ID

#: Never sampled: padding is not text, and ``<unk>`` would print as "<unk>".
BANNED_IDS = (PAD_ID, UNK_ID)
_TINY = 1e-30  # keeps log(u) finite for u = 0


@dataclass(frozen=True)
class Truncation:
    """top-k / top-p (nucleus) settings; part of the compiled function's identity, not an input."""

    top_k: int | None = None
    top_p: float | None = None

    def check(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top-k must be at least 1 (got {self.top_k})")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top-p must be in (0, 1] (got {self.top_p})")


def check_temperatures(temperatures: list[float]) -> None:
    if not temperatures or any(t < 0 for t in temperatures):
        raise ConfigError(f"temperature must be one or more numbers ≥ 0 (0 is greedy); got {temperatures}")


def ban(logits: Any, ids: tuple[int, ...]) -> Any:
    """``logits`` with ``ids`` made impossible (−∞)."""
    import tensorflow as tf

    vocab = tf.shape(logits)[-1]
    banned = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], tf.constant(ids, tf.int32)[None, :]), axis=-1)
    return tf.where(banned[None, :], tf.constant(-float("inf"), logits.dtype), logits)


#: Top-p looks for its cutoff among this many most likely tokens first (a partial sort): a
#: transformer's 49,152-token vocabulary sorted whole for every row and token was most of a
#: generation step on a CPU (0.3-0.7 s of 32 rows). Only the rows whose nucleus is wider than
#: this (a flat distribution, often a post's first token) sort their whole vocabulary, so the
#: result is the same either way. Sorting every row whenever one needed it cost 60% more time on
#: 256 titles at top-p 0.95 than no top-p at all.
NUCLEUS_CANDIDATES = 256


def truncate(logits: Any, temperature: Any, truncation: Truncation) -> Any:
    """Tempered-logit truncation: keep the top-k tokens, then the smallest set holding top-p of the mass."""
    import tensorflow as tf

    neg_inf = tf.constant(-float("inf"), logits.dtype)
    if truncation.top_k is not None and truncation.top_k < logits.shape[-1]:
        kth = tf.math.top_k(logits, truncation.top_k).values[:, -1:]
        logits = tf.where(logits < kth, neg_inf, logits)
    if truncation.top_p is not None and truncation.top_p < 1:
        tempered = logits / tf.maximum(temperature, 1e-6)
        logits = tf.where(tempered < _nucleus_cutoff(tempered, truncation.top_p), neg_inf, logits)
    return logits


def _nucleus_cutoff(tempered: Any, top_p: float) -> Any:
    """Per row, the smallest tempered logit of the nucleus: the most likely tokens holding ``top_p``."""
    import tensorflow as tf

    total = tf.reduce_logsumexp(tempered, axis=-1, keepdims=True)
    vocab = tempered.shape[-1]
    if vocab is None or vocab <= NUCLEUS_CANDIDATES:
        return _cutoff_among(tf.sort(tempered, direction="DESCENDING", axis=-1), total, top_p)[0]
    cutoff, covered = _cutoff_among(tf.math.top_k(tempered, NUCLEUS_CANDIDATES).values, total, top_p)
    wide = tf.where(covered[:, 0] < top_p)  # (rows, 1): the rows whose nucleus reaches past the candidates
    rows = tf.gather_nd(tempered, wide)
    exact = _cutoff_among(tf.sort(rows, direction="DESCENDING", axis=-1), tf.gather_nd(total, wide), top_p)[0]
    return tf.tensor_scatter_nd_update(cutoff, wide, exact)


def _cutoff_among(ordered: Any, total: Any, top_p: float) -> tuple[Any, Any]:
    """The nucleus cutoff among the descending ``ordered`` logits (``total``: the log of all tokens'
    mass), and the mass those logits hold: the cutoff is right where that mass reaches ``top_p``."""
    import tensorflow as tf

    probs = tf.exp(ordered - total)
    before = tf.cumsum(probs, axis=-1, exclusive=True)  # mass of the tokens ranked above
    kept = tf.reduce_sum(tf.cast(before < top_p, tf.int32), axis=-1, keepdims=True)
    return tf.gather(ordered, kept - 1, batch_dims=1), before[:, -1:] + probs[:, -1:]


def choose(logits: Any, temperature: Any, seed: Any) -> Any:
    """One token id per row, drawn from ``softmax(logits / temperature)`` (argmax at temperature 0).

    ``seed`` is a stateless seed (shape [2], int64): the same seed and batch shape give the same ids.
    """
    import tensorflow as tf

    uniform = tf.random.stateless_uniform(tf.shape(logits), seed, dtype=logits.dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform + _TINY) + _TINY)
    return tf.argmax(logits + temperature * gumbel, axis=-1, output_type=tf.int32)
