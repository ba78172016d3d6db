"""Custom Keras layers of the botkit network; each one serialisable (config in, ``get_config`` out)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

SCORE_CLIP = 30.0  # exp(±30) stays finite in float32; see :class:`CausalAttentionAverage`


@keras.saving.register_keras_serializable(package="botkit")
class CausalAttentionAverage(keras.layers.Layer):
    """At every position t, the attention-weighted average of the inputs at positions ≤ t.

    textgenrnn averages a whole window with softmax weights ``exp(x·w)``; made causal, position t
    gets ``Σ_{s≤t} exp(x_s·w) x_s / Σ_{s≤t} exp(x_s·w)``, so one pass trains every position and the
    last position is exactly textgenrnn's average over the window. The scores are clipped to
    ±30 instead of having the maximum subtracted: a global maximum taken over the whole window makes
    early prefixes underflow to 0/0 (NaN within a few hundred steps, measured), a bounded score
    cannot. The running sums (numerator vector, denominator) are all the state an incremental
    generator needs to carry from token to token.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = False

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.w = self.add_weight(name="w", shape=(input_shape[-1], 1), initializer="glorot_uniform", dtype="float32")

    def call(self, x: Any) -> Any:
        x = ops.cast(x, "float32")  # the running sums must stay float32 under mixed precision
        weights = ops.exp(ops.clip(ops.matmul(x, self.w), -SCORE_CLIP, SCORE_CLIP))
        # Prefix sums as one product with a lower-triangular matrix of ones: on CPU a (T×T) matmul
        # runs several times faster than cumsum over (batch, T, features), forward and backward.
        steps = ops.shape(x)[1]
        lower = ops.tril(ops.ones((steps, steps), dtype="float32"))
        sums = ops.matmul(lower, ops.concatenate([weights * x, weights], axis=-1))
        return sums[..., :-1] / sums[..., -1:]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


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
