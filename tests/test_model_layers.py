"""The custom layers: causal, equal to textgenrnn's attention average at the last position, serialisable."""

from __future__ import annotations

import keras
import numpy as np

from botkit.model.layers import CausalAttentionAverage, OneHot


def full_attention_average(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """textgenrnn's AttentionWeightedAverage over a whole window (softmax of x·w over time)."""
    scores = (x @ w)[..., 0]
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[..., None] * x).sum(axis=1)


def test_causal_average_is_textgenrnns_average_of_every_prefix() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 5)).astype("float32")
    layer = CausalAttentionAverage()
    out = np.asarray(layer(x))
    w = np.asarray(layer.w)
    for t in range(12):
        np.testing.assert_allclose(out[:, t], full_attention_average(x[:, : t + 1], w), rtol=1e-5, atol=1e-6)


def test_causal_average_stays_finite_with_extreme_scores() -> None:
    layer = CausalAttentionAverage()
    layer.build((None, None, 2))
    layer.w.assign(np.array([[200.0], [0.0]], "float32"))
    x = np.array([[[-1.0, 1.0], [1.0, 2.0], [-1.0, 3.0]]], "float32")  # scores -200, 200, -200
    out = np.asarray(layer(x))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], [-1.0, 1.0])  # a lone, very unlikely position is still its own average


def test_layers_round_trip_through_keras_serialisation() -> None:
    for layer in (CausalAttentionAverage(name="attention"), OneHot(4, name="label_one_hot")):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(np.asarray(OneHot(3)(np.array([[0, 2]]))), [[[1, 0, 0], [0, 0, 1]]])
