"""One token through a Llama-family model with a key/value cache, for sampling: keras-hub's own
layers and weights, but an attention that suits one query a row.

keras-hub's ``call_with_cache`` is written for every use of the cache (a prompt's prefill, XLA on
accelerators): each block repeats its key/value heads to the query heads' count (SmolLM2: 3 to 9)
over the whole preallocated cache and attends over all of it at every step, and the blocks'
caches are sliced out of one tensor and stacked back into it. On a 2-core CPU that copying was
most of a step (a block took 54 ms where its matmuls take 11). Here each block keeps its own
keys and values, the queries are grouped by the key/value head they share (no repeat), and a
step attends over the positions filled so far only. Every other part (norms, rotary position,
projections, the gated feed-forward, the tied output) is the model's own layer, called as
keras-hub calls it; ``tests/test_pretrained.py`` checks the logits against ``call_with_cache``.

Only the plain Llama blocks take this path (:func:`decoder_for`); GPT-2 and other families keep
keras-hub's ``call_with_cache`` (:class:`KerasHubDecoder`, the same two methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf


@dataclass(frozen=True)
class LlamaDecoder:
    """The cached one-token forward pass of a keras-hub ``LlamaCausalLM``."""

    lm: Any

    def empty_cache(self, rows: int, length: int) -> tuple[tuple[Any, Any], ...]:
        """Keys and values of every block: (rows, length, key/value heads, head width) each."""
        backbone = self.lm.backbone
        width = backbone.hidden_dim // backbone.num_query_heads
        shape = [rows, length, backbone.num_key_value_heads, width]
        return tuple((tf.zeros(shape, self.lm.compute_dtype), tf.zeros(shape, self.lm.compute_dtype)) for _ in backbone.transformer_layers)

    def step(self, token: Any, cache: tuple[tuple[Any, Any], ...], index: Any) -> tuple[Any, tuple[tuple[Any, Any], ...]]:
        """Logits (rows, 1, vocabulary) for ``token`` (rows, 1) at position ``index``, and the updated cache."""
        backbone = self.lm.backbone
        x = backbone.token_embedding(token)
        rows = tf.range(tf.shape(token)[0])
        at = tf.stack([rows, tf.fill(tf.shape(rows), tf.cast(index, tf.int32))], axis=1)  # position ``index`` of every row, for every block
        updated = []
        for block, (keys, values) in zip(backbone.transformer_layers, cache):
            x, keys, values = _block(block, x, keys, values, index, at)
            updated.append((keys, values))
        logits = backbone.token_embedding(backbone.layer_norm(x), reverse=True)
        return logits, tuple(updated)


@dataclass(frozen=True)
class KerasHubDecoder:
    """keras-hub's own cached forward pass (``call_with_cache``), for the families without a faster one."""

    lm: Any

    def empty_cache(self, rows: int, length: int) -> Any:
        """keras-hub's cache: (rows, blocks, 2 (keys, values), length, key/value heads, head width)."""
        backbone = self.lm.backbone
        if hasattr(backbone, "num_key_value_heads"):  # Mistral, Qwen...: grouped key/value heads
            heads, width = backbone.num_key_value_heads, backbone.hidden_dim // backbone.num_query_heads
        else:  # GPT-2
            heads, width = backbone.num_heads, backbone.hidden_dim // backbone.num_heads
        return tf.zeros([rows, backbone.num_layers, 2, length, heads, width], self.lm.compute_dtype)

    def step(self, token: Any, cache: Any, index: Any) -> tuple[Any, Any]:
        logits, _, cache = self.lm.call_with_cache(token, cache, index)
        return logits, cache


def decoder_for(lm: Any) -> LlamaDecoder | KerasHubDecoder:
    """The fast decoder for a plain keras-hub Llama or Llama 3 (SmolLM2 loads as the latter), keras-hub's own for every other model."""
    from keras_hub.models import Llama3Backbone, LlamaBackbone
    from keras_hub.src.models.llama.llama_decoder import LlamaTransformerDecoder

    backbone = lm.backbone
    if type(backbone) in (LlamaBackbone, Llama3Backbone) and all(type(b) is LlamaTransformerDecoder for b in backbone.transformer_layers):
        return LlamaDecoder(lm)
    return KerasHubDecoder(lm)


def _block(block: Any, x: Any, keys: Any, values: Any, index: Any, at: Any) -> tuple[Any, Any, Any]:
    """One decoder block for one position (``at``: its scatter indices in the cache), as ``LlamaTransformerDecoder.call`` computes it."""
    attention = block._self_attention_layer
    normed = block._self_attention_layernorm(x)
    query = attention.rotary_embedding_layer(attention._query_dense(normed), start_index=index)
    key = attention.rotary_embedding_layer(attention._key_dense(normed), start_index=index)
    keys = tf.tensor_scatter_nd_update(keys, at, key[:, 0])
    values = tf.tensor_scatter_nd_update(values, at, attention._value_dense(normed)[:, 0])
    x = x + attention._output_dense(_grouped_attention(query, keys[:, : index + 1], values[:, : index + 1], attention._inv_norm_factor))
    normed = block._feedforward_layernorm(x)
    gate = tf.cast(block.activation(tf.cast(block._feedforward_gate_dense(normed), tf.float32)), x.dtype)  # in float32, as keras-hub (and torch's silu) do
    return x + block._feedforward_output_dense(block._feedforward_intermediate_dense(normed) * gate), keys, values


def _grouped_attention(query: Any, keys: Any, values: Any, scale: float) -> Any:
    """Attention of one query a row over ``keys``/``values`` (rows, positions, kv heads, width), each
    key/value head shared by a group of query heads (query head ``j`` uses key/value head ``j // group``,
    keras-hub's ``repeat`` order): (rows, 1, query heads, width)."""
    rows, heads, width = tf.shape(query)[0], query.shape[2], query.shape[3]
    kv_heads = keys.shape[2]
    grouped = tf.reshape(query, [rows, kv_heads, heads // kv_heads, width])
    scores = tf.einsum("bkgh,btkh->bkgt", tf.cast(grouped, tf.float32), tf.cast(keys, tf.float32)) * scale
    mixed = tf.einsum("bkgt,btkh->bkgh", tf.nn.softmax(scores, axis=-1), tf.cast(values, tf.float32))
    return tf.cast(tf.reshape(mixed, [rows, 1, heads, width]), query.dtype)
