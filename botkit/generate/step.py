"""The trained network as a one-token step: state in, next-token logits and state out.

The full model (:func:`botkit.model.network.build_model`) computes every position of a window at
once; generation needs one position at a time, for many sequences in parallel. :class:`StepNetwork`
reads the trained layers' weights by their fixed names and evaluates the same function with plain
TensorFlow ops, carrying what each position needs from the ones before it:

* every LSTM layer's ``(h, c)``, updated with Keras's gate order i, f, c, o
  (sigmoid gates, tanh cell), exactly as ``keras.layers.LSTM`` does;
* the causal attention average's running sums, as an online softmax: the numerator vector
  ``Σ exp(s − m) x``, the denominator ``Σ exp(s − m)`` and the running maximum score ``m``, with
  ``s = x·w`` (clipped to ±30 for a "clip" model; see
  :class:`botkit.model.layers.CausalAttentionAverage`). A score above ``m`` rescales both sums by
  ``exp(m_old − m_new)``, so the exponentials never overflow whatever the scores; the ratio, the
  average, is the full model's either way.

A step costs the same at position 300 as at position 1, where re-running the window costs 300×.
``tests/test_generate.py`` checks that the step's distribution equals the full model's at
every position of a sequence, ``tests/test_model_import.py`` that it does for an imported ("max")
model whose scores pass ±30, where it also equals textgenrnn's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from botkit.model.layers import SCORE_CLIP
from botkit.model.network import ModelConfig

#: Which output layer gives the logits: "next" (with the label, the model's main output) or "aux"
#: (the label-free output of a labelled model, which textgenrnn generates from); "both" computes
#: both and picks per row (a batch that mixes labelled and unlabelled rows).
Output = Literal["next", "aux", "both"]
NO_LABEL_ROW = -1  # a row label that asks for the label-free output

State = tuple[Any, ...]  # (h_1, c_1, ..., h_L, c_L, numerator, denominator, maximum), all float32 tensors


@dataclass(frozen=True)
class _Dense:
    kernel: Any
    bias: Any


class StepNetwork:
    """The weights of a trained model as constants, and :meth:`step` over them (TF ops, no Keras)."""

    def __init__(self, model: Any, config: ModelConfig) -> None:  # model: keras.Model
        import tensorflow as tf

        def array(layer: str, index: int = 0) -> np.ndarray:
            return np.asarray(model.get_layer(layer).weights[index], np.float32)

        self.config = config
        embedding = array("embedding")
        lstm = [tuple(array(f"lstm_{i}", k) for k in range(3)) for i in range(1, config.rnn_layers + 1)]
        attention = array("attention")[:, 0]
        # Work that depends only on the token is done once per vocabulary entry, not once per step:
        # the first LSTM's input projection (with its bias) and the embedding's attention score
        # become table lookups. Deeper layers multiply [input, h] by the stacked kernels in one matmul.
        kernel, recurrent, bias = lstm[0]
        self.embedding = tf.constant(embedding)
        self.first_input = tf.constant(embedding @ kernel + bias)
        self.first_recurrent = tf.constant(recurrent)
        self.deeper = [(tf.constant(np.concatenate([k, r])), tf.constant(b)) for k, r, b in lstm[1:]]
        width = config.embedding_size
        self.embedding_score = tf.constant(embedding @ attention[:width])
        self.hidden_score = tf.constant(attention[width:])
        self.next = _Dense(tf.constant(array("next")), tf.constant(array("next", 1)))
        self.aux = _Dense(tf.constant(array("aux")), tf.constant(array("aux", 1))) if config.labelled else None
        self.features = config.embedding_size + config.rnn_layers * config.rnn_size

    def initial_state(self, batch: Any) -> State:
        """The state before the first token: zeros, as the full model starts every window (and no score yet: maximum −inf)."""
        import tensorflow as tf

        zeros = tf.zeros((batch, self.config.rnn_size), tf.float32)
        sums = (tf.zeros((batch, self.features), tf.float32), tf.zeros((batch, 1), tf.float32), tf.fill((batch, 1), -float("inf")))
        return (*([zeros] * (2 * self.config.rnn_layers)), *sums)

    def step(self, tokens: Any, labels: Any, state: State, output: Output = "next") -> tuple[Any, State]:
        """Logits over the next token after ``tokens`` (batch,), and the state that includes them.

        ``labels`` (batch,) are label ids for a labelled model's "next" output; rows with
        :data:`NO_LABEL_ROW` take the "aux" output when ``output`` is "both". Unlabelled models
        ignore them.
        """
        state = self.advance(tokens, state)
        return self.logits(state, labels, output), state

    def advance(self, tokens: Any, state: State) -> State:
        """The state after ``tokens``, without the output layer (replaying a context needs no logits)."""
        import tensorflow as tf

        h, c = state[0], state[1]
        gates = tf.gather(self.first_input, tokens) + tf.matmul(h, self.first_recurrent)
        hidden = [_lstm_update(gates, c)]
        for layer, (kernel, bias) in enumerate(self.deeper, 1):
            h, c = state[2 * layer], state[2 * layer + 1]
            gates = tf.matmul(tf.concat([hidden[-1][0], h], axis=-1), kernel) + bias
            hidden.append(_lstm_update(gates, c))
        outputs = tf.concat([h for h, _ in hidden], axis=-1)
        score = (tf.gather(self.embedding_score, tokens) + tf.linalg.matvec(outputs, self.hidden_score))[:, None]
        if self.config.attention_stabilizer == "clip":
            score = tf.clip_by_value(score, -SCORE_CLIP, SCORE_CLIP)
        features = tf.concat([tf.gather(self.embedding, tokens), outputs], axis=-1)
        return (*(t for pair in hidden for t in pair), *_attend(state[-3:], score, features))

    def logits(self, state: State, labels: Any, output: Output = "next") -> Any:
        """Next-token logits from a state: the attention average (and the last LSTM output) through the head."""
        import tensorflow as tf

        average = state[-3] / state[-2]
        last_output = state[2 * self.config.rnn_layers - 2]  # h of the last LSTM
        head = average if self.config.head == "attention" else tf.concat([average, last_output], axis=-1)
        return self._logits(head, labels, output)

    def _logits(self, head: Any, labels: Any, output: Output) -> Any:
        import tensorflow as tf

        if self.aux is None:  # an unlabelled model has one output
            return tf.matmul(head, self.next.kernel) + self.next.bias
        if output == "aux":
            return tf.matmul(head, self.aux.kernel) + self.aux.bias
        # concat(head, one_hot(label)) @ W == head @ W[:head] + W[head + label]: a gather, not a matmul.
        width = head.shape[-1]
        labelled = tf.matmul(head, self.next.kernel[:width]) + tf.gather(self.next.kernel[width:], tf.maximum(labels, 0)) + self.next.bias
        if output == "next":
            return labelled
        free = tf.matmul(head, self.aux.kernel) + self.aux.bias
        return tf.where((labels == NO_LABEL_ROW)[:, None], free, labelled)


def _attend(sums: State, score: Any, features: Any) -> State:
    """The attention's (numerator, denominator, maximum) after one more position (online softmax)."""
    import tensorflow as tf

    numerator, denominator, maximum = sums
    new_maximum = tf.maximum(maximum, score)
    rescale = tf.exp(maximum - new_maximum)  # 1 while the maximum stands; exp(−inf) = 0 at the first token
    weight = tf.exp(score - new_maximum)
    return numerator * rescale + weight * features, denominator * rescale + weight, new_maximum


def _lstm_update(gates: Any, c: Any) -> tuple[Any, Any]:
    """Keras's LSTM cell from its pre-activations (gate order i, f, c, o): the new (h, c)."""
    import tensorflow as tf

    i, f, g, o = tf.split(gates, 4, axis=-1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c
