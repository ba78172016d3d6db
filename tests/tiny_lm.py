"""Tiny pretrained-transformer checkpoints in Hugging Face format, built by the tests themselves (no
network): a byte-level BPE tokenizer trained by ``tokenizers`` on a few sentences, random weights of
a 2-layer Llama or GPT-2 written with ``safetensors``. They load through the same keras-hub path as a
real model; what they write is noise until a test trains them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A new phone was released today with a bigger screen.",
    "Why is my laptop battery draining so fast?",
    "Show HN: a tiny tool for writing bots in Python 3.11",
    "Good morning, what a lovely day it is 2026!",
] * 20
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(vocab_size: int = 300) -> Tokenizer:
    """A byte-level BPE like SmolLM2's (digits split singly), special tokens at ids 0-2."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(TEXT, trainer)
    return tokenizer


def _weights(seed: int) -> Callable[..., np.ndarray]:
    """Seeded small random weights of any shape (a checkpoint's noise before a test trains it)."""
    rng = np.random.default_rng(seed)
    return lambda *shape: (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _tokenizer_files(folder: Path, tokenizer: Tokenizer) -> None:
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False}))


def llama_folder(folder: Path, *, layers: int = 2, hidden: int = 32, heads: int = 4, kv_heads: int = 2, seed: int = 0) -> Path:
    """A tiny Llama-family checkpoint (SmolLM2's shape, scaled down: tied embeddings, grouped KV heads)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    vocab, ffn, head_dim = tokenizer.get_vocab_size(), hidden * 2, hidden // heads
    w = _weights(seed)

    tensors = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": np.ones(hidden, np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors |= {
            p + "input_layernorm.weight": np.ones(hidden, np.float32),
            p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
            p + "self_attn.q_proj.weight": w(heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
            p + "self_attn.o_proj.weight": w(hidden, heads * head_dim),
            p + "mlp.gate_proj.weight": w(ffn, hidden),
            p + "mlp.up_proj.weight": w(ffn, hidden),
            p + "mlp.down_proj.weight": w(hidden, ffn),
        }
    save_file(tensors, str(folder / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads, "intermediate_size": ffn,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer_files(folder, tokenizer)
    # keras-hub's GPT-2 tokenizer reads the older pair of files, as GPT-2's own checkpoints have them.
    bpe = json.loads(tokenizer.to_str())["model"]
    (folder / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def gpt2_folder(folder: Path, *, layers: int = 2, hidden: int = 32, heads: int = 4, seed: int = 0) -> Path:
    """A tiny GPT-2-family checkpoint (learned positions, LayerNorm with biases, Conv1D weight layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    vocab = tokenizer.get_vocab_size()
    w = _weights(seed)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, np.float32)

    tensors = {"wte.weight": w(vocab, hidden), "wpe.weight": w(512, hidden), "ln_f.weight": np.ones(hidden, np.float32), "ln_f.bias": zeros(hidden)}
    for i in range(layers):
        p = f"h.{i}."
        tensors |= {
            p + "ln_1.weight": np.ones(hidden, np.float32), p + "ln_1.bias": zeros(hidden),
            p + "ln_2.weight": np.ones(hidden, np.float32), p + "ln_2.bias": zeros(hidden),
            p + "attn.c_attn.weight": w(hidden, 3 * hidden), p + "attn.c_attn.bias": zeros(3 * hidden),
            p + "attn.c_proj.weight": w(hidden, hidden), p + "attn.c_proj.bias": zeros(hidden),
            p + "mlp.c_fc.weight": w(hidden, 4 * hidden), p + "mlp.c_fc.bias": zeros(4 * hidden),
            p + "mlp.c_proj.weight": w(4 * hidden, hidden), p + "mlp.c_proj.bias": zeros(hidden),
        }  # fmt: skip
    save_file(tensors, str(folder / "model.safetensors"))
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab, "n_embd": hidden, "n_layer": layers, "n_head": heads,
        "n_positions": 512, "n_ctx": 512, "resid_pdrop": 0.0, "layer_norm_epsilon": 1e-5, "bos_token_id": 0, "eos_token_id": 0,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer_files(folder, tokenizer)
    # keras-hub's GPT-2 tokenizer reads the older pair of files, as GPT-2's own checkpoints have them.
    bpe = json.loads(tokenizer.to_str())["model"]
    (folder / "vocab.json").write_text(json.dumps(bpe["vocab"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder
