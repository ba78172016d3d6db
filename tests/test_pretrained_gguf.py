"""GGUF → Hugging Face folder (botkit.pretrained.gguf), on tiny GGUF files built here from known matrices.

No real model and no network: a 2-layer Llama and a 2-layer GPT-2 with a byte-level BPE that
``tokenizers`` trains on a few sentences, written with llama.cpp's own ``gguf.GGUFWriter`` in
llama.cpp's layout (permuted q/k rows, transposed GPT-2 matrices, quantized blocks). The converted
folders are loaded by keras-hub and their logits compared with a plain numpy forward pass of the
known matrices, which checks every layout change at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import TokenType
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import botkit.pretrained.gguf as gguf_module
from botkit.errors import BotkitError
from botkit.pretrained.gguf import GGUFError, convert_gguf, unpermute_rope_rows

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "In 2024 there were 365 days, and 12 months; 7 of them had 31 days.",
    "Bots write titles: the new phone costs $999 and ships on 3/14.",
    "Four score and seven years ago our fathers brought forth a new nation.",
    "the the the quick quick brown brown fox fox over over lazy dog dog",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 64, 4, 2, 128, 2
HEAD_DIM = HIDDEN // HEADS
IDS = [5, 17, 200, 42, 99, 3, 250, 7]


def train_tokenizer(pre: pre_tokenizers.PreTokenizer) -> Tokenizer:
    """A byte-level BPE of about 300 tokens: the 3 specials (ids 0-2), 256 bytes and some merges."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    return tokenizer


def vocabulary(tokenizer: Tokenizer) -> tuple[list[str], list[str]]:
    """Tokens in id order and merges as llama.cpp stores them ("a b")."""
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return tokens, [m if isinstance(m, str) else " ".join(m) for m in merges]


def llama_cpp_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to q_proj/k_proj rows (its ``permute``), written out here."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def roundtrip(array: np.ndarray, qtype: Q) -> np.ndarray:
    """The array as a GGUF of ``qtype`` holds it: what the converter must give back."""
    return gguf.quants.dequantize(gguf.quants.quantize(array, qtype), qtype).reshape(array.shape).astype(np.float32)


@dataclass
class Tiny:
    """A tiny model's GGUF file and what converting it must give: Hugging Face-layout float32 matrices."""

    path: Path
    tokenizer: Tokenizer
    expected: dict[str, np.ndarray] = field(default_factory=dict)  # HF name → array after quantization
    original: dict[str, np.ndarray] = field(default_factory=dict)  # HF name → array before quantization
    qtypes: dict[str, Q] = field(default_factory=dict)


def add(writer: gguf.GGUFWriter, tiny: Tiny, gguf_name: str, hf_name: str, array: np.ndarray, qtype: Q, to_gguf: Callable[[np.ndarray], np.ndarray]) -> None:
    """Write ``to_gguf(array)`` as ``gguf_name`` in ``qtype``; remember the HF array the converter must return."""
    array = array.astype(np.float32)
    stored = to_gguf(array)
    if qtype == Q.F32:
        writer.add_tensor(gguf_name, stored)
    elif qtype == Q.F16:
        writer.add_tensor(gguf_name, stored.astype(np.float16))
    else:
        writer.add_tensor(gguf_name, gguf.quants.quantize(stored, qtype), raw_dtype=qtype)
    tiny.original[hf_name] = array
    tiny.qtypes[hf_name] = qtype
    # Quantization runs along GGUF rows; permuting or transposing the stored array moves whole rows/blocks,
    # so the expected HF array is the original with each stored row rounded as the file holds it.
    tiny.expected[hf_name] = roundtrip_like(array, stored, qtype, to_gguf)


def roundtrip_like(array: np.ndarray, stored: np.ndarray, qtype: Q, to_gguf: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    rounded = roundtrip(stored, qtype)
    # Invert to_gguf on the rounded array by tracking positions: apply to_gguf to an index array.
    index = to_gguf(np.arange(array.size, dtype=np.float64).reshape(array.shape)).astype(np.int64)
    back = np.empty(array.size, dtype=np.float32)
    back[index.ravel()] = rounded.ravel()
    return back.reshape(array.shape)


def tokenizer_metadata(writer: gguf.GGUFWriter, tokenizer: Tokenizer, pre: str | None, bos: int, eos: int) -> None:
    tokens, merges = vocabulary(tokenizer)
    writer.add_tokenizer_model("gpt2")
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([TokenType.CONTROL if t in SPECIALS else TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)


def finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_llama(path: Path, *, arch: str = "llama", pre: str | None = "smollm", embed_type: Q = Q.Q8_0, seed: int = 0) -> Tiny:
    """A 2-layer Llama (hidden 64, 4 heads, 2 KV heads) with Q8_0 embeddings, Q4_1 matrices and tied output."""
    rng = np.random.default_rng(seed)
    tokenizer = train_tokenizer(pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]))
    vocab = tokenizer.get_vocab_size()
    tiny = Tiny(path, tokenizer)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-6)  # keras-hub's Llama always uses 1e-6, so numpy and Keras agree exactly
    writer.add_vocab_size(vocab)
    tokenizer_metadata(writer, tokenizer, pre, bos=1, eos=2)

    def same(a: np.ndarray) -> np.ndarray:
        return a

    add(writer, tiny, "token_embd.weight", "model.embed_tokens.weight", rng.normal(0, 1, (vocab, HIDDEN)), embed_type, same)
    add(writer, tiny, "output_norm.weight", "model.norm.weight", 1 + 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
    for i in range(LAYERS):
        layer = f"model.layers.{i}."
        add(writer, tiny, f"blk.{i}.attn_norm.weight", layer + "input_layernorm.weight", 1 + 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
        add(writer, tiny, f"blk.{i}.ffn_norm.weight", layer + "post_attention_layernorm.weight", 1 + 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
        add(writer, tiny, f"blk.{i}.attn_q.weight", layer + "self_attn.q_proj.weight", rng.normal(0, 0.3, (HIDDEN, HIDDEN)), Q.Q4_1,
            lambda a: llama_cpp_permute(a, HEADS))  # fmt: skip
        add(writer, tiny, f"blk.{i}.attn_k.weight", layer + "self_attn.k_proj.weight", rng.normal(0, 0.3, (KV_HEADS * HEAD_DIM, HIDDEN)), Q.Q4_1,
            lambda a: llama_cpp_permute(a, KV_HEADS))  # fmt: skip
        add(writer, tiny, f"blk.{i}.attn_v.weight", layer + "self_attn.v_proj.weight", rng.normal(0, 0.2, (KV_HEADS * HEAD_DIM, HIDDEN)), Q.Q4_1, same)
        add(writer, tiny, f"blk.{i}.attn_output.weight", layer + "self_attn.o_proj.weight", rng.normal(0, 0.1, (HIDDEN, HIDDEN)), Q.Q8_0, same)
        add(writer, tiny, f"blk.{i}.ffn_gate.weight", layer + "mlp.gate_proj.weight", rng.normal(0, 0.2, (FFN, HIDDEN)), Q.Q4_1, same)
        add(writer, tiny, f"blk.{i}.ffn_up.weight", layer + "mlp.up_proj.weight", rng.normal(0, 0.2, (FFN, HIDDEN)), Q.Q4_1, same)
        add(writer, tiny, f"blk.{i}.ffn_down.weight", layer + "mlp.down_proj.weight", rng.normal(0, 0.1, (HIDDEN, FFN)), Q.Q4_1, same)
    finish(writer)
    return tiny


def write_gpt2(path: Path, seed: int = 1) -> Tiny:
    """A 2-layer GPT-2 (hidden 64, 4 heads, 32 positions) mixing F16, F32, Q8_0, Q4_0, Q5_0, Q5_1 and BF16 tensors."""
    rng = np.random.default_rng(seed)
    tokenizer = train_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False))
    vocab, positions = tokenizer.get_vocab_size(), 32
    tiny = Tiny(path, tokenizer)
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(LAYERS)
    writer.add_context_length(positions)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(4 * HIDDEN)
    writer.add_head_count(HEADS)
    writer.add_layer_norm_eps(1e-5)
    tokenizer_metadata(writer, tokenizer, "gpt2", bos=0, eos=0)

    def same(a: np.ndarray) -> np.ndarray:
        return a

    def transposed(a: np.ndarray) -> np.ndarray:  # HF Conv1D (in, out) → llama.cpp (out, in)
        return np.ascontiguousarray(a.T)

    wte = rng.normal(0, 1, (vocab, HIDDEN))
    add(writer, tiny, "token_embd.weight", "wte.weight", wte, Q.F16, same)
    # llama.cpp writes GPT-2's tied head as a copy, here at another precision: it must be accepted and dropped.
    writer.add_tensor("output.weight", gguf.quants.quantize(wte.astype(np.float32), Q.Q8_0), raw_dtype=Q.Q8_0)
    add(writer, tiny, "position_embd.weight", "wpe.weight", rng.normal(0, 0.3, (positions, HIDDEN)), Q.F32, same)
    add(writer, tiny, "output_norm.weight", "ln_f.weight", 1 + 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
    add(writer, tiny, "output_norm.bias", "ln_f.bias", 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
    kinds = {"attn_qkv": Q.Q4_0, "attn_output": Q.Q5_0, "ffn_up": Q.Q5_1, "ffn_down": Q.BF16}
    for i in range(LAYERS):
        for gguf_kind, hf_kind, shape in (
            ("attn_norm", "ln_1", None),
            ("ffn_norm", "ln_2", None),
            ("attn_qkv", "attn.c_attn", (HIDDEN, 3 * HIDDEN)),
            ("attn_output", "attn.c_proj", (HIDDEN, HIDDEN)),
            ("ffn_up", "mlp.c_fc", (HIDDEN, 4 * HIDDEN)),
            ("ffn_down", "mlp.c_proj", (4 * HIDDEN, HIDDEN)),
        ):
            g, h = f"blk.{i}.{gguf_kind}", f"h.{i}.{hf_kind}"
            if shape is None:  # a layer norm
                add(writer, tiny, g + ".weight", h + ".weight", 1 + 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
                add(writer, tiny, g + ".bias", h + ".bias", 0.1 * rng.normal(size=HIDDEN), Q.F32, same)
            else:
                add(writer, tiny, g + ".weight", h + ".weight", rng.normal(0, 0.15, shape), kinds[gguf_kind], transposed)
                add(writer, tiny, g + ".bias", h + ".bias", 0.05 * rng.normal(size=shape[1]), Q.F32, same)
    finish(writer)
    return tiny


# ---------------------------------------------------------------------------------------------
# numpy forward passes of the known (quantization-rounded) matrices, in Hugging Face conventions


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal attention over (tokens, heads, head_dim), key/value heads shared by groups of query heads."""
    n, heads, dim = q.shape
    k, v = np.repeat(k, heads // k.shape[1], axis=1), np.repeat(v, heads // v.shape[1], axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(dim) + np.triu(np.full((n, n), -np.inf), 1)
    return np.einsum("hqk,khd->qhd", softmax(scores), v).reshape(n, heads * dim)


def llama_logits(w: dict[str, np.ndarray], ids: list[int], eps: float = 1e-6, theta: float = 10000.0) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    n = len(ids)
    angles = np.arange(n)[:, None] * theta ** (-np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    cos, sin = np.cos(np.concatenate([angles, angles], -1))[:, None], np.sin(np.concatenate([angles, angles], -1))[:, None]

    def rope(x: np.ndarray) -> np.ndarray:  # Hugging Face's rotate_half convention
        half = HEAD_DIM // 2
        return x * cos + np.concatenate([-x[..., half:], x[..., :half]], -1) * sin

    def norm(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * scale

    x = w["model.embed_tokens.weight"][ids]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        h = norm(x, w[p + "input_layernorm.weight"])
        q = rope((h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, HEADS, HEAD_DIM))
        k = rope((h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, KV_HEADS, HEAD_DIM))
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, KV_HEADS, HEAD_DIM)
        x = x + attention(q, k, v) @ w[p + "self_attn.o_proj.weight"].T
        h = norm(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    return norm(x, w["model.norm.weight"]) @ w["model.embed_tokens.weight"].T


def gpt2_logits(w: dict[str, np.ndarray], ids: list[int], eps: float = 1e-5) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    n = len(ids)

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x: np.ndarray, name: str) -> np.ndarray:  # Conv1D: x @ (in, out) + b
        return x @ w[name + ".weight"] + w[name + ".bias"]

    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    for i in range(LAYERS):
        q, k, v = np.split(dense(norm(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn"), 3, axis=-1)
        x = x + dense(attention(*(a.reshape(n, HEADS, HEAD_DIM) for a in (q, k, v))), f"h.{i}.attn.c_proj")
        h = dense(norm(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))  # gelu_new
        x = x + dense(h, f"h.{i}.mlp.c_proj")
    return norm(x, "ln_f") @ w["wte.weight"].T


def keras_logits(causal_lm: Any, ids: list[int]) -> np.ndarray:
    import keras

    backbone = causal_lm.backbone
    x = np.array([ids], dtype="int32")
    hidden = backbone({"token_ids": x, "padding_mask": np.ones_like(x)})
    return np.asarray(keras.ops.convert_to_numpy(backbone.token_embedding(hidden, reverse=True)))[0]


# ---------------------------------------------------------------------------------------------
# fixtures: each tiny model is written and converted once per module


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tiny, Path]:
    root = tmp_path_factory.mktemp("llama")
    tiny = write_llama(root / "tiny-llama.gguf")
    convert_gguf(tiny.path, root / "converted")
    return tiny, root / "converted"


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tiny, Path]:
    root = tmp_path_factory.mktemp("gpt2")
    tiny = write_gpt2(root / "tiny-gpt2.gguf")
    convert_gguf(tiny.path, root / "converted")
    return tiny, root / "converted"


def leftovers(folder: Path) -> list[str]:
    """Hidden work folders the converter may have left beside ``folder``."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# ---------------------------------------------------------------------------------------------
# weights


def test_llama_folder_has_the_files_keras_hub_reads(llama: tuple[Tiny, Path]) -> None:
    tiny, folder = llama
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert leftovers(folder) == []
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    vocab = tiny.tokenizer.get_vocab_size()
    assert {k: config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")} == {
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "intermediate_size": FFN,
    }
    assert config["rope_theta"] == 10000.0 and config["rms_norm_eps"] == 1e-6 and config["max_position_embeddings"] == 128
    assert config["tie_word_embeddings"] is True and (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"], tokenizer_config["add_bos_token"]) == ("<|im_start|>", "<|im_end|>", False)


def test_llama_weights_are_dequantized_within_tolerance_and_unpermuted(llama: tuple[Tiny, Path]) -> None:
    tiny, folder = llama
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == set(tiny.expected)  # tied: no lm_head.weight
    for name, expected in tiny.expected.items():
        got = weights[name]
        assert got.dtype == np.float32 and got.shape == expected.shape, name
        # Each stored block of 32 may move by at most one quantization step from the original.
        original = tiny.original[name]
        blocks = original.reshape(-1, 32) if original.ndim == 2 else original.reshape(1, -1)
        span = blocks.max(-1, keepdims=True) - blocks.min(-1, keepdims=True)
        step = {Q.F32: 0 * span, Q.Q8_0: np.abs(blocks).max(-1, keepdims=True) / 127, Q.Q4_1: span / 15}[tiny.qtypes[name]]
        assert np.all(np.abs(got.reshape(blocks.shape) - blocks) <= step * 1.01 + 1e-6), name
    for i in range(LAYERS):
        for proj in ("q_proj", "k_proj"):
            name = f"model.layers.{i}.self_attn.{proj}.weight"
            # Rows are exactly the original's (rounded as the file holds them), not llama.cpp's order.
            np.testing.assert_array_equal(weights[name], tiny.expected[name])
            assert not np.array_equal(weights[name], llama_cpp_permute(tiny.expected[name], HEADS if proj == "q_proj" else KV_HEADS))


@given(heads=st.integers(1, 6), half=st.integers(1, 5), cols=st.integers(1, 4))
def test_unpermute_inverts_llama_cpp_permute(heads: int, half: int, cols: int) -> None:
    weight = np.arange(heads * 2 * half * cols, dtype=np.float32).reshape(heads * 2 * half, cols)
    np.testing.assert_array_equal(unpermute_rope_rows(llama_cpp_permute(weight, heads), heads), weight)


def test_llama_loads_in_keras_hub_and_computes_the_numpy_forward_pass(llama: tuple[Tiny, Path]) -> None:
    import keras_hub

    tiny, folder = llama
    causal_lm = keras_hub.models.CausalLM.from_preset(str(folder))
    assert type(causal_lm).__name__ == "Llama3CausalLM"
    backbone = causal_lm.backbone
    np.testing.assert_array_equal(np.asarray(backbone.token_embedding.embeddings), tiny.expected["model.embed_tokens.weight"])
    q_kernel = np.asarray(backbone.transformer_layers[0]._self_attention_layer._query_dense.kernel)
    np.testing.assert_array_equal(q_kernel, tiny.expected["model.layers.0.self_attn.q_proj.weight"].T.reshape(HIDDEN, HEADS, HEAD_DIM))
    expected = llama_logits(tiny.expected, IDS)
    np.testing.assert_allclose(keras_logits(causal_lm, IDS), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # Still in llama.cpp's row order the logits would differ: the comparison above can see it.
    permuted = dict(tiny.expected)
    for i in range(LAYERS):
        for proj, heads in (("q_proj", HEADS), ("k_proj", KV_HEADS)):
            name = f"model.layers.{i}.self_attn.{proj}.weight"
            permuted[name] = llama_cpp_permute(permuted[name], heads)
    assert np.abs(llama_logits(permuted, IDS) - expected).max() > 1e-2 * np.abs(expected).max()
    # keras-hub's own tokenizer (built from tokenizer.json's vocabulary and merges) agrees on plain text.
    text = "The quick brown fox jumps over the lazy dog."
    assert [int(i) for i in np.asarray(causal_lm.preprocessor.tokenizer(text))] == tiny.tokenizer.encode(text).ids


def test_gpt2_weights_transposed_to_conv1d_and_dequantized(gpt2: tuple[Tiny, Path]) -> None:
    tiny, folder = gpt2
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["n_embd"], config["n_layer"], config["n_head"], config["n_positions"]) == ("gpt2", HIDDEN, LAYERS, HEADS, 32)
    assert config["vocab_size"] == tiny.tokenizer.get_vocab_size() and config["layer_norm_epsilon"] == 1e-5
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == set(tiny.expected)  # output.weight, a copy of wte, is dropped
    for name, expected in tiny.expected.items():
        np.testing.assert_array_equal(weights[name], expected, err_msg=name)
        scale = np.abs(tiny.original[name]).max()
        tolerance = {Q.F32: 0, Q.F16: 1e-3, Q.BF16: 1e-2, Q.Q8_0: 1 / 127, Q.Q5_0: 1 / 16, Q.Q5_1: 1 / 31, Q.Q4_0: 1 / 8}[tiny.qtypes[name]]
        assert np.abs(weights[name] - tiny.original[name]).max() <= tolerance * scale * 1.01, name


def test_gpt2_loads_in_keras_hub_and_computes_the_numpy_forward_pass(gpt2: tuple[Tiny, Path]) -> None:
    import keras_hub

    tiny, folder = gpt2
    causal_lm = keras_hub.models.CausalLM.from_preset(str(folder))
    assert type(causal_lm).__name__ == "GPT2CausalLM"
    expected = gpt2_logits(tiny.expected, IDS)
    np.testing.assert_allclose(keras_logits(causal_lm, IDS), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # keras-hub's GPT-2 tokenizer reads vocab.json and merges.txt, and must agree with the trained one.
    text = "The quick brown fox jumps over the lazy dog."
    assert [int(i) for i in np.asarray(causal_lm.preprocessor.tokenizer(text))] == tiny.tokenizer.encode(text).ids


# ---------------------------------------------------------------------------------------------
# tokenizer


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_tokenizer_matches_the_trained_one_and_round_trips(family: str, request: pytest.FixtureRequest) -> None:
    tiny, folder = request.getfixturevalue(family)
    converted = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in [*SENTENCES, "Call 555-0123 at 10:30, 2nd floor: 1234567890!", "  spaced  out\ttext\nnew line é ü 日本 😀"]:
        ids = converted.encode(text).ids
        assert ids == tiny.tokenizer.encode(text).ids, text
        assert converted.decode(ids) == text
    if family == "llama":  # smollm splits digits one by one
        assert converted.encode("2024").tokens == ["2", "0", "2", "4"]
    # Control tokens are whole special tokens, never split by the BPE, and skipped when decoding.
    ids = converted.encode("<|im_start|>the dog<|im_end|>").ids
    assert ids[0] == 1 and ids[-1] == 2
    assert converted.decode(ids) == "the dog"


# ---------------------------------------------------------------------------------------------
# errors: one line naming the file, and nothing left behind


def assert_error(source: Path, folder: Path, *words: str) -> GGUFError:
    with pytest.raises(GGUFError) as info:
        convert_gguf(source, folder)
    message = str(info.value)
    assert isinstance(info.value, BotkitError) and "\n" not in message and str(source) in message, message
    for word in words:
        assert word in message, message
    assert not folder.exists() and leftovers(folder) == []
    return info.value


@pytest.mark.parametrize("keep", [0.005, 0.3, 0.999])
def test_truncated_file_is_a_one_line_error(tmp_path: Path, keep: float) -> None:
    tiny = write_llama(tmp_path / "tiny.gguf")
    data = tiny.path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_error(cut, tmp_path / "out", "truncated")


def test_unsupported_architecture_names_it(tmp_path: Path) -> None:
    tiny = write_llama(tmp_path / "mamba.gguf", arch="mamba")
    assert_error(tiny.path, tmp_path / "out", "unsupported architecture 'mamba'")


def test_unsupported_pre_tokenizer_names_it(tmp_path: Path) -> None:
    tiny = write_llama(tmp_path / "qwen.gguf", pre="qwen2")
    assert_error(tiny.path, tmp_path / "out", "pre-tokenizer 'qwen2'")


def test_missing_pre_tokenizer_is_gpt2(tmp_path: Path) -> None:
    tiny = write_llama(tmp_path / "old.gguf", pre=None)
    convert_gguf(tiny.path, tmp_path / "out")
    converted = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    assert json.loads(converted.to_str())["pre_tokenizer"]["type"] == "ByteLevel"  # files older than the key: GPT-2's rule
    assert converted.decode(converted.encode("2024 dogs").ids) == "2024 dogs"


def test_unsupported_tensor_type_names_tensor_and_type(tmp_path: Path) -> None:
    path = tmp_path / "int.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(0)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    tokenizer_metadata(writer, train_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False)), "gpt2", 1, 2)
    writer.add_tensor("token_embd.weight", np.zeros((300, HIDDEN), dtype=np.int32))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    finish(writer)
    assert_error(path, tmp_path / "out", "token_embd.weight", "I32")


def test_not_gguf_missing_and_folder_sources(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("not a model at all\n")
    assert_error(text, tmp_path / "out", "not a GGUF file")
    assert_error(tmp_path / "absent.gguf", tmp_path / "out", "no such GGUF file")
    (tmp_path / "dir.gguf").mkdir()
    assert_error(tmp_path / "dir.gguf", tmp_path / "out", "is a folder")
    (tmp_path / "empty.gguf").write_bytes(b"")
    assert_error(tmp_path / "empty.gguf", tmp_path / "out", "not a GGUF file")


def test_interrupted_conversion_leaves_no_half_folder_and_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = write_llama(tmp_path / "tiny.gguf")
    folder = tmp_path / "cache" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_module, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(tiny.path, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"] and leftovers(folder) == []
    monkeypatch.undo()
    convert_gguf(tiny.path, folder)  # a complete conversion replaces the old folder
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    assert (folder / "model.safetensors").is_file() and leftovers(folder) == []


def test_unwritable_folder_is_a_one_line_error(tmp_path: Path) -> None:
    tiny = write_llama(tmp_path / "tiny.gguf")
    (tmp_path / "file").write_text("")
    with pytest.raises(GGUFError, match="cannot write") as info:
        convert_gguf(tiny.path, tmp_path / "file" / "model")
    assert "\n" not in str(info.value) and str(tmp_path / "file" / "model") in str(info.value)
