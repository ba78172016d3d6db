"""The textgenrnn-class network, built from a :class:`ModelConfig`.

tokens → Embedding → ``rnn_layers`` × LSTM → causal attention average over [embedding, every LSTM
output] (the skip connections) → head → logits over the vocabulary at every position.

Heads: ``"attention"`` is textgenrnn's (the average alone); ``"attention+last"`` also feeds the
last LSTM output to the output layer (measured better on tiny Shakespeare: 1.551 vs 1.635
nats/char at 240 s). With labels, a one-hot label is concatenated after the head, as in
textgenrnn's context mode, and an auxiliary output predicts from the label-free head.

Layer names are fixed ("embedding", "lstm_1", ..., "attention", "next", "aux"): fine-tuning and
a later incremental generator find the weights by name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import keras

from botkit.errors import ConfigError
from botkit.model.layers import STABILIZERS, CausalAttentionAverage, OneHot, Stabilizer

Head = Literal["attention", "attention+last"]


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the network; saved as JSON beside the weights."""

    vocab_size: int
    num_labels: int = 1  # 1 = unlabelled (label 0 means "no label")
    embedding_size: int = 100
    rnn_layers: int = 2
    rnn_size: int = 128
    dropout: float = 0.0
    head: Head = "attention+last"
    aux_loss_weight: float = 0.2  # textgenrnn's weight for the label-free output
    # "max" is textgenrnn's softmax exactly (imported models); see CausalAttentionAverage. Configs
    # saved before the option existed have no key and load as "clip", the only attention they had.
    attention_stabilizer: Stabilizer = "clip"

    @property
    def labelled(self) -> bool:
        return self.num_labels > 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> ModelConfig:
        """The config saved in a model folder's ``config.json`` (``where``), or a :class:`ConfigError`
        listing every problem, one ``FILE: model.KEY: why`` line each.

        The file may be hand-edited or damaged, so each value's type is checked before any bound is
        compared (``"rnn_size": "abc"`` used to end in Python's ``'<' not supported`` without a file).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: model: not a botkit model config (expected a mapping of sizes)")
        kinds = {f.name: f.type for f in fields(cls)}
        problems = [f"{where}: model.{key}: unknown key" for key in data if key not in kinds]
        if "vocab_size" not in data:
            problems.append(f"{where}: model.vocab_size: required key is missing")
        for key, value in data.items():
            expected = _EXPECTED.get(str(kinds.get(key)), str)
            if key in kinds and not _is(value, expected):
                problems.append(f"{where}: model.{key}: expected {_NAMES[expected]} (got {value!r})")
        if not problems:
            config = cls(**data)
            problems = [f"{where}: model: {problem}" for problem in config.problems()]
        if problems:
            raise ConfigError("\n".join(problems))
        return config

    def problems(self) -> list[str]:
        """What is out of bounds in this config, one message each (all of them)."""
        found = []
        if self.head not in ("attention", "attention+last"):
            found.append(f"model head must be 'attention' or 'attention+last' (got {self.head!r})")
        if min(self.vocab_size, self.num_labels) < 1:
            found.append(f"vocabulary size and label count must be at least 1 (got {self.vocab_size} and {self.num_labels})")
        if min(self.embedding_size, self.rnn_layers, self.rnn_size) < 1:
            found.append("embedding size, RNN layers and RNN size must all be at least 1")
        if not 0 <= self.dropout < 1:
            found.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if not 0 <= self.aux_loss_weight < math.inf:
            found.append(f"the auxiliary loss weight must be a finite number, at least 0 (got {self.aux_loss_weight})")
        if self.attention_stabilizer not in STABILIZERS:
            found.append(f"attention stabilizer must be one of {', '.join(STABILIZERS)} (got {self.attention_stabilizer!r})")
        return found

    def check(self) -> None:
        """Raise a :class:`ConfigError` naming every out-of-bounds size (a network is built only from a sane config)."""
        if found := self.problems():
            raise ConfigError("; ".join(found))


#: The Python type each annotation of :class:`ModelConfig` holds in JSON (the rest are strings).
_EXPECTED: dict[str, type] = {"int": int, "float": float}
_NAMES = {int: "a whole number", float: "a number", str: "a string"}


def _is(value: Any, expected: type) -> bool:
    """Whether a JSON value is of the expected kind: a bool is no number, and a float is finite
    (Python's json reads ``NaN`` and ``Infinity``, which no size means)."""
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, expected)


def build_model(config: ModelConfig) -> keras.Model:
    """The training/scoring model: logits at every position of a (batch, time) token window."""
    config.check()
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(config.vocab_size, config.embedding_size, name="embedding")(tokens)
    skips = [embedded]
    x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(embedded)
    for i in range(1, config.rnn_layers + 1):
        x = keras.layers.LSTM(config.rnn_size, return_sequences=True, name=f"lstm_{i}")(x)
        skips.append(x)
        x = keras.layers.Dropout(config.dropout, name=f"lstm_{i}_dropout")(x)
    average = CausalAttentionAverage(config.attention_stabilizer, name="attention")(keras.layers.Concatenate(name="skips")(skips))
    head = average if config.head == "attention" else keras.layers.Concatenate(name="head")([average, skips[-1]])
    if not config.labelled:
        logits = keras.layers.Dense(config.vocab_size, dtype="float32", name="next")(head)
        return keras.Model(tokens, {"next": logits}, name="botkit")
    labels = keras.Input(shape=(None,), dtype="int32", name="labels")
    merged = keras.layers.Concatenate(name="with_label")([head, OneHot(config.num_labels, name="label_one_hot")(labels)])
    logits = keras.layers.Dense(config.vocab_size, dtype="float32", name="next")(merged)
    aux = keras.layers.Dense(config.vocab_size, dtype="float32", name="aux")(head)
    return keras.Model({"tokens": tokens, "labels": labels}, {"next": logits, "aux": aux}, name="botkit")


def model_inputs(config: ModelConfig, tokens: Any, labels: Any) -> Any:
    """The input structure :func:`build_model`'s model takes, from token and label windows."""
    return {"tokens": tokens, "labels": labels} if config.labelled else tokens
