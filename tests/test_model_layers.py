"""The custom layers: causal, equal to textgenrnn's attention average at the last position, serialisable."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from botkit.errors import ConfigError
from botkit.model.layers import SCORE_CLIP, CausalAttentionAverage, OneHot
from botkit.model.network import ModelConfig, build_model


def full_attention_average(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """textgenrnn's AttentionWeightedAverage over a whole window (softmax of x·w over time)."""
    scores = (x @ w)[..., 0]
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights[..., None] * x).sum(axis=1)


def every_prefix_error(layer: CausalAttentionAverage, x: np.ndarray) -> float:
    """The largest difference between the layer's output at each position t and textgenrnn's average of x[:, :t+1]."""
    out, w = np.asarray(layer(x)), np.asarray(layer.w)
    return max(float(np.abs(out[:, t] - full_attention_average(x[:, : t + 1], w)).max()) for t in range(x.shape[1]))


@pytest.mark.parametrize("stabilizer", ["clip", "max"])
def test_causal_average_is_textgenrnns_average_of_every_prefix(stabilizer: str) -> None:
    x = np.random.default_rng(0).normal(size=(3, 12, 5)).astype("float32")
    assert every_prefix_error(CausalAttentionAverage(stabilizer), x) < 1e-5


def test_max_stabilizer_is_exact_where_scores_pass_the_clip() -> None:
    """Scores up to ±300: the prefix maximum keeps textgenrnn's softmax; clipping at ±30 does not."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 16, 5)).astype("float32")
    w = (rng.normal(size=(5, 1)) * 60).astype("float32")
    assert np.abs(x @ w).max() > 5 * SCORE_CLIP
    errors = {}
    for stabilizer in ("clip", "max"):
        layer = CausalAttentionAverage(stabilizer)
        layer.build(x.shape)
        layer.w.assign(w)
        errors[stabilizer] = every_prefix_error(layer, x)
    assert errors["max"] < 1e-5 and errors["clip"] > 0.1


@pytest.mark.parametrize("stabilizer", ["clip", "max"])
def test_causal_average_and_its_gradient_stay_finite_with_extreme_scores(stabilizer: str) -> None:
    layer = CausalAttentionAverage(stabilizer)
    layer.build((None, None, 2))
    layer.w.assign(np.array([[200.0], [0.0]], "float32"))
    x = tf.constant([[[-1.0, 1.0], [1.0, 2.0], [-1.0, 3.0], [2.0, 0.0]]])  # scores -200, 200, -200, 400
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x)
        loss = tf.reduce_sum(out * tf.constant([1.0, -2.0]))
    grads = tape.gradient(loss, [x, layer.w])
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(out[0, 0], [-1.0, 1.0])  # a lone, very unlikely position is still its own average
    np.testing.assert_allclose(out[0, 1], [1.0, 2.0], atol=1e-6)  # …and one outweighs the rest by e^400


def test_layers_round_trip_through_keras_serialisation() -> None:
    for layer in (CausalAttentionAverage(name="attention"), CausalAttentionAverage("max"), OneHot(4, name="label_one_hot")):
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert keras.layers.deserialize(keras.layers.serialize(CausalAttentionAverage("max"))).stabilizer == "max"
    np.testing.assert_array_equal(np.asarray(OneHot(3)(np.array([[0, 2]]))), [[[1, 0, 0], [0, 0, 1]]])


def test_model_config_chooses_the_stabilizer_and_old_configs_load_as_clip() -> None:
    old = ModelConfig(vocab_size=5, embedding_size=3, rnn_layers=1, rnn_size=4).to_json()
    del old["attention_stabilizer"]  # saved before the option existed
    assert ModelConfig.from_json(old, "config.json").attention_stabilizer == "clip"
    config = ModelConfig.from_json({**old, "attention_stabilizer": "max"}, "config.json")
    assert build_model(config).get_layer("attention").stabilizer == "max"
    with pytest.raises(ConfigError, match="attention stabilizer must be one of clip, max"):
        ModelConfig.from_json({**old, "attention_stabilizer": "softmax"}, "config.json")
