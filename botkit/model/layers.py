"""Custom Keras layers of the botkit network; each one serialisable (config in, ``get_config`` out)."""

from __future__ import annotations

from typing import Any, Literal

import keras
from keras import ops

SCORE_CLIP = 30.0  # exp(±30) stays finite in float32; see :class:`CausalAttentionAverage`

#: How the attention keeps exp(score) finite: "clip" bounds each score to ±SCORE_CLIP (botkit's
#: training default); "max" subtracts the largest score of each prefix (textgenrnn's softmax, exactly).
Stabilizer = Literal["clip", "max"]
STABILIZERS: tuple[Stabilizer, ...] = ("clip", "max")


@keras.saving.register_keras_serializable(package="botkit")
class CausalAttentionAverage(keras.layers.Layer):
    """At every position t, the attention-weighted average of the inputs at positions ≤ t.

    textgenrnn averages a whole window with softmax weights ``exp(x·w)``; made causal, position t
    gets ``Σ_{s≤t} exp(x_s·w) x_s / Σ_{s≤t} exp(x_s·w)``, so one pass trains every position and the
    last position is exactly textgenrnn's average over the window. The running sums (numerator
    vector, denominator, and with "max" the running maximum) are all the state an incremental
    generator needs to carry from token to token.

    ``exp`` must not overflow, and a maximum taken over the whole window makes early prefixes
    underflow to 0/0 (NaN within a few hundred training steps, measured). Two ways avoid both:

    * ``"clip"``: each score clipped to ±30 (botkit's default). Equal to textgenrnn while no
      score leaves ±30, which textgenrnn's shipped model breaks on 1.8 % of tiny Shakespeare
      windows and on most windows of rare characters.
    * ``"max"``: position t's weights are ``exp(s_s − M_t)`` with ``M_t = max_{s'≤t} s_{s'}``, the
      maximum of its own prefix: textgenrnn's softmax at every prefix, for any score. Imported
      textgenrnn models use it. Its (batch, T, T) weights cost no more than "clip"'s prefix-sum
      matmul (measured at T=128, batch 32 on CPU: 23 vs 31 ms forward and backward).
    """

    def __init__(self, stabilizer: Stabilizer = "clip", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stabilizer not in STABILIZERS:
            raise ValueError(f"attention stabilizer must be one of {STABILIZERS} (got {stabilizer!r})")
        self.stabilizer = stabilizer
        self.supports_masking = False

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.w = self.add_weight(name="w", shape=(input_shape[-1], 1), initializer="glorot_uniform", dtype="float32")

    def call(self, x: Any) -> Any:
        x = ops.cast(x, "float32")  # the running sums must stay float32 under mixed precision
        steps = ops.shape(x)[1]
        lower = ops.tril(ops.ones((steps, steps), dtype="bool"))
        scores = ops.matmul(x, self.w)  # (batch, T, 1)
        if self.stabilizer == "max":
            return _prefix_softmax_average(x, scores[..., 0], lower)
        # Prefix sums as one product with a lower-triangular matrix of ones: on CPU a (T×T) matmul
        # runs several times faster than cumsum over (batch, T, features), forward and backward.
        weights = ops.exp(ops.clip(scores, -SCORE_CLIP, SCORE_CLIP))
        sums = ops.matmul(ops.cast(lower, "float32"), ops.concatenate([weights * x, weights], axis=-1))
        return sums[..., :-1] / sums[..., -1:]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stabilizer": self.stabilizer}


def _prefix_softmax_average(x: Any, scores: Any, lower: Any) -> Any:
    """Σ_{s≤t} exp(s_s − M_t) x_s / Σ_{s≤t} exp(s_s − M_t) for every t, as (batch, T, T) weights.

    Future positions get score −inf before the exponential (weight exactly 0, gradient exactly 0;
    zeroing after it would multiply an overflowed inf by 0 in the backward pass). ``M_t`` only
    keeps the exponentials finite, the average does not depend on it, so no gradient flows through it.
    """
    masked = ops.where(lower[None], scores[:, None, :], float("-inf"))  # [b, t, s] = scores[b, s] for s ≤ t
    weights = ops.exp(masked - ops.stop_gradient(ops.max(masked, axis=-1, keepdims=True)))
    return ops.matmul(weights, x) / ops.sum(weights, axis=-1)[..., None]


@keras.saving.register_keras_serializable(package="botkit")
class OneHot(keras.layers.Layer):
    """Integer labels → one-hot rows, as textgenrnn feeds its context labels (importable as is)."""

    def __init__(self, depth: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth = depth

    def call(self, labels: Any) -> Any:
        return ops.one_hot(ops.cast(labels, "int32"), self.depth, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape, self.depth)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth": self.depth}
