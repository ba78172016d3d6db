"""One token through a Llama-family model with a key/value cache, for sampling: keras-hub's own
layers and weights, but an attention that suits one query a row.

keras-hub's ``call_with_cache`` is written for every use of the cache (a prompt's prefill, XLA on
accelerators): each block repeats its key/value heads to the query heads' count (SmolLM2: 3 to 9)
over the whole preallocated cache and attends over all of it at every step, and the blocks'
caches are sliced out of one tensor and stacked back into it. On a 2-core CPU that copying was
most of a step (a block took 54 ms where its matmuls take 11). Here each block keeps its own
keys and values, the queries are grouped by the key/value head they share (no repeat), and a
step attends over the positions filled so far only. Each row has its own position, so a row
whose sample ended can start the next one while the others go on (the generator refills it):
a row attends to its own positions up to its own, whatever other rows left further on. Every other part (norms, rotary position,
projections, the gated feed-forward, the tied output) is the model's own layer, called as
keras-hub calls it; ``tests/test_pretrained.py`` checks the logits against ``call_with_cache``.

Only the plain Llama blocks take this path (:func:`decoder_for`); GPT-2 and other families keep
keras-hub's ``call_with_cache`` (:class:`KerasHubDecoder`, the same methods), where all rows
share one position (``per_row_positions`` is False: the generator does not refill rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf


@dataclass(frozen=True)
class LlamaDecoder:
    """The cached one-token forward pass of a keras-hub ``LlamaCausalLM``."""

    lm: Any
    per_row_positions = True

    def _shape(self, rows: int | None, length: int | None) -> list[int | None]:
        backbone = self.lm.backbone
        return [rows, length, backbone.num_key_value_heads, backbone.hidden_dim // backbone.num_query_heads]

    def empty_cache(self, rows: int, length: int) -> tuple[tuple[Any, Any], ...]:
        """Keys and values of every block: (rows, length, key/value heads, head width) each."""
        shape = self._shape(rows, length)
        return tuple((tf.zeros(shape, self.lm.compute_dtype), tf.zeros(shape, self.lm.compute_dtype)) for _ in self.lm.backbone.transformer_layers)

    def cache_spec(self) -> Any:
        """The cache's type with any row count and length (one compiled step serves every batch)."""
        spec = tf.TensorSpec(self._shape(None, None), self.lm.compute_dtype)
        return tuple((spec, spec) for _ in self.lm.backbone.transformer_layers)

    def step(self, token: Any, cache: tuple[tuple[Any, Any], ...], positions: Any) -> tuple[Any, tuple[tuple[Any, Any], ...]]:
        """Logits (rows, 1, vocabulary) for ``token`` (rows, 1), each row at its own position
        (``positions``: rows), and the updated cache."""
        backbone = self.lm.backbone
        positions = tf.cast(positions, tf.int32)
        x = backbone.token_embedding(token)
        at = tf.stack([tf.range(tf.shape(token)[0]), positions], axis=1)  # each row's position, for every block
        filled = tf.reduce_max(positions) + 1
        hidden = tf.range(filled)[None, :] > positions[:, None]  # (rows, filled): another sample's leftovers or not yet written
        updated = []
        for block, (keys, values) in zip(backbone.transformer_layers, cache):
            x, keys, values = _block(block, x, keys, values, positions, at, filled, hidden)
            updated.append((keys, values))
        logits = backbone.token_embedding(backbone.layer_norm(x), reverse=True)
        return logits, tuple(updated)


@dataclass(frozen=True)
class KerasHubDecoder:
    """keras-hub's own cached forward pass (``call_with_cache``), for the families without a faster one."""

    lm: Any
    per_row_positions = False

    def _shape(self, rows: int | None, length: int | None) -> list[int | None]:
        backbone = self.lm.backbone
        if hasattr(backbone, "num_key_value_heads"):  # Mistral, Qwen...: grouped key/value heads
            heads, width = backbone.num_key_value_heads, backbone.hidden_dim // backbone.num_query_heads
        else:  # GPT-2
            heads, width = backbone.num_heads, backbone.hidden_dim // backbone.num_heads
        return [rows, backbone.num_layers, 2, length, heads, width]

    def empty_cache(self, rows: int, length: int) -> Any:
        """keras-hub's cache: (rows, blocks, 2 (keys, values), length, key/value heads, head width)."""
        return tf.zeros(self._shape(rows, length), self.lm.compute_dtype)

    def cache_spec(self) -> Any:
        return tf.TensorSpec(self._shape(None, None), self.lm.compute_dtype)

    def step(self, token: Any, cache: Any, positions: Any) -> tuple[Any, Any]:
        """As :meth:`LlamaDecoder.step`, but every row must be at the same position (the first row's is used)."""
        logits, _, cache = self.lm.call_with_cache(token, cache, positions[0])
        return logits, cache


def decoder_for(lm: Any) -> LlamaDecoder | KerasHubDecoder:
    """The fast decoder for a plain keras-hub Llama or Llama 3 (SmolLM2 loads as the latter), keras-hub's own for every other model."""
    from keras_hub.models import Llama3Backbone, LlamaBackbone
    from keras_hub.src.models.llama.llama_decoder import LlamaTransformerDecoder

    backbone = lm.backbone
    if type(backbone) in (LlamaBackbone, Llama3Backbone) and all(type(b) is LlamaTransformerDecoder for b in backbone.transformer_layers):
        return LlamaDecoder(lm)
    return KerasHubDecoder(lm)


def _block(block: Any, x: Any, keys: Any, values: Any, positions: Any, at: Any, filled: Any, hidden: Any) -> tuple[Any, Any, Any]:
    """One decoder block for one position a row (``at``: their scatter indices in the cache; the
    first ``filled`` positions attended, less the ``hidden`` ones), as ``LlamaTransformerDecoder.call`` computes it."""
    attention = block._self_attention_layer
    normed = block._self_attention_layernorm(x)
    where = positions[:, None]
    query = attention.rotary_embedding_layer(attention._query_dense(normed), positions=where)
    key = attention.rotary_embedding_layer(attention._key_dense(normed), positions=where)
    keys = tf.tensor_scatter_nd_update(keys, at, key[:, 0])
    values = tf.tensor_scatter_nd_update(values, at, attention._value_dense(normed)[:, 0])
    mixed = _grouped_attention(query, keys[:, :filled], values[:, :filled], hidden, attention._inv_norm_factor)
    x = x + attention._output_dense(mixed)
    normed = block._feedforward_layernorm(x)
    gate = tf.cast(block.activation(tf.cast(block._feedforward_gate_dense(normed), tf.float32)), x.dtype)  # in float32, as keras-hub (and torch's silu) do
    return x + block._feedforward_output_dense(block._feedforward_intermediate_dense(normed) * gate), keys, values


def _grouped_attention(query: Any, keys: Any, values: Any, hidden: Any, scale: float) -> Any:
    """Attention of one query a row over ``keys``/``values`` (rows, positions, kv heads, width) but
    the ``hidden`` positions (rows, positions), each key/value head shared by a group of query heads
    (query head ``j`` uses key/value head ``j // group``, keras-hub's ``repeat`` order): (rows, 1, query heads, width)."""
    rows, heads, width = tf.shape(query)[0], query.shape[2], query.shape[3]
    kv_heads = keys.shape[2]
    grouped = tf.reshape(query, [rows, kv_heads, heads // kv_heads, width])
    scores = tf.einsum("bkgh,btkh->bkgt", tf.cast(grouped, tf.float32), tf.cast(keys, tf.float32)) * scale
    scores = tf.where(hidden[:, None, None, :], -float("inf"), scores)
    mixed = tf.einsum("bkgt,btkh->bkgh", tf.nn.softmax(scores, axis=-1), tf.cast(values, tf.float32))
    return tf.cast(tf.reshape(mixed, [rows, 1, heads, width]), query.dtype)
