"""``botkit import-textgenrnn``: a textgenrnn model (weights .hdf5, vocab .json, config .json) → ``weights/NAME/``.

textgenrnn's network is botkit's with the ``"attention"`` head: the same embedding, stacked LSTMs
(sigmoid recurrent activation) and attention-weighted average over [embedding, every LSTM]. At the
last position of a 40-token window the causal average *is* textgenrnn's average over the window,
so the imported model gives textgenrnn's next-token probabilities on textgenrnn's windows
(left-padded with id 0, which both embed like any other token). For that on every window, the
imported attention subtracts the maximum score as textgenrnn's softmax does (``"max"``), instead of
clipping scores to ±30 as botkit-trained models do: the shipped model's scores pass 30 on most
windows of rare characters, and there clipping changed probabilities by up to 0.44 (measured).

Only the ids differ: textgenrnn numbers tokens from 1 in its vocab file (0 is padding) and uses
``<s>`` as the document separator; botkit wants ``<pad>, <sep>, <unk>`` first. The embedding rows
and output columns are permuted accordingly; ``<unk>`` (and ``<sep>`` for single-text models,
which have no ``<s>``) gets a zero embedding and an output bias of -30, so its probability is
about 1e-13 and every other probability is unchanged to within float32 rounding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from botkit.model import saving
from botkit.model.network import ModelConfig, build_model
from botkit.model.vocab import PAD, SEP, SPECIALS, Level, Vocabulary

TEXTGENRNN_SEPARATOR = "<s>"
TEXTGENRNN_WINDOW = 40
_ABSENT_BIAS = -30.0
# textgenrnn's defaults, for models saved without a config file (its shipped model among them)
_DEFAULT_CONFIG = {"rnn_layers": 2, "rnn_size": 128, "rnn_bidirectional": False, "max_length": 40, "dim_embeddings": 100, "word_level": False}


class TextgenrnnImportError(saving.ModelFolderError):
    """A textgenrnn file is missing, malformed or of a kind botkit cannot import."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TextgenrnnImportError(f"{path}: textgenrnn {what} file not found") from None
    except (ValueError, UnicodeDecodeError):
        raise TextgenrnnImportError(f"{path}: not a textgenrnn {what} file (not valid JSON)") from None


def read_textgenrnn_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name → weight arrays, from a Keras 2 ``save_weights`` HDF5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            layers = {}
            for name in root.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else name
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
                layers[name] = [np.asarray(group[n]) for n in names]
            return layers
    except FileNotFoundError:
        raise TextgenrnnImportError(f"{path}: textgenrnn weights file not found") from None
    except (OSError, KeyError):
        raise TextgenrnnImportError(f"{path}: truncated or not a textgenrnn weights file (Keras HDF5 with layer_names)") from None


def _botkit_vocab(tg_vocab: dict[str, int], word_level: bool) -> tuple[Vocabulary, np.ndarray]:
    """botkit's vocabulary and, per botkit id, the textgenrnn id it comes from (-1: none)."""
    level: Level = "word" if word_level else "char"
    specials = SPECIALS[level]
    ordered = sorted(tg_vocab.items(), key=lambda item: item[1])
    tokens = [*specials, *(t for t, _ in ordered if t != TEXTGENRNN_SEPARATOR and t not in specials)]
    source = np.full(len(tokens), -1)
    source[specials.index(PAD)] = 0
    if TEXTGENRNN_SEPARATOR in tg_vocab:
        source[specials.index(SEP)] = tg_vocab[TEXTGENRNN_SEPARATOR]
    position = {t: i for i, t in enumerate(tokens)}
    for token, tg_id in ordered:
        if token != TEXTGENRNN_SEPARATOR and token not in specials:
            source[position[token]] = tg_id
    return Vocabulary(level, tokens), source


def _take(rows: np.ndarray, source: np.ndarray, axis: int, fill: float) -> np.ndarray:
    """``rows`` re-indexed along ``axis`` by ``source``; -1 entries become ``fill``."""
    taken = np.take(rows, np.maximum(source, 0), axis=axis)
    missing: list[Any] = [slice(None)] * rows.ndim
    missing[axis] = source < 0
    taken[tuple(missing)] = fill
    return taken


def _per_gate(kernel: np.ndarray, change: Any) -> np.ndarray:
    return np.hstack([change(gate) for gate in np.hsplit(kernel, 4)])


def _from_cudnn(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    """A ``CuDNNLSTM``'s weights as an ``LSTM``'s, converted as Keras converts them on loading.

    textgenrnn trained on a GPU saves CuDNNLSTM weights (its shipped model among them); on a CPU
    Keras loads them into an LSTM after this conversion. cuDNN lays each gate's input kernel out
    in Fortran order and its recurrent kernel transposed, and keeps the input and recurrent biases
    apart (their sum is the LSTM bias). Without the conversion the imported model's probabilities
    are nowhere near textgenrnn's (measured on the shipped model: max |Δp| 0.9999).
    """
    kernel = _per_gate(kernel, lambda gate: gate.T.reshape(gate.shape, order="F"))
    recurrent = _per_gate(recurrent, lambda gate: gate.T)
    return [kernel, recurrent, bias[: len(bias) // 2] + bias[len(bias) // 2 :]]


def _lstm_weights(arrays: list[np.ndarray], units: int, where: str) -> list[np.ndarray]:
    kernel, recurrent, bias = arrays
    if bias.shape == (8 * units,) and kernel.shape[1] == recurrent.shape[1] == 4 * units:
        kernel, recurrent, bias = _from_cudnn(kernel, recurrent, bias)
    if kernel.shape[1] != 4 * units or bias.shape != (4 * units,):
        raise TextgenrnnImportError(f"{where}: LSTM weights of unexpected shape {kernel.shape}/{bias.shape} for rnn_size {units}")
    return [kernel, recurrent, bias]


def import_textgenrnn(weights_path: Path, vocab_path: Path, config_path: Path | None, output: Path) -> saving.Saved:
    """Convert a textgenrnn model into a botkit model folder and return it loaded."""
    tg_config = {**_DEFAULT_CONFIG, **(_read_json(config_path, "config") if config_path else {})}
    if tg_config.get("rnn_bidirectional"):
        raise TextgenrnnImportError(f"{config_path}: bidirectional textgenrnn models cannot be imported (botkit models read left to right only)")
    tg_vocab = _read_json(vocab_path, "vocab")
    if not isinstance(tg_vocab, dict) or not all(isinstance(v, int) for v in tg_vocab.values()):
        raise TextgenrnnImportError(f"{vocab_path}: not a textgenrnn vocab file (expected {{token: id}})")
    layers = read_textgenrnn_weights(weights_path)
    vocab, source = _botkit_vocab(tg_vocab, bool(tg_config.get("word_level")))
    units, depth = int(tg_config["rnn_size"]), int(tg_config["rnn_layers"])
    config = ModelConfig(
        vocab_size=len(vocab), embedding_size=int(tg_config["dim_embeddings"]), rnn_layers=depth, rnn_size=units, head="attention", attention_stabilizer="max"
    )
    model = build_model(config)
    try:
        (embeddings,) = layers["embedding"]
        (attention,) = layers["attention"]
        kernel, bias = layers["output"]
        model.get_layer("embedding").set_weights([_take(embeddings, source, 0, 0.0)])
        for i in range(1, depth + 1):
            model.get_layer(f"lstm_{i}").set_weights(_lstm_weights(layers[f"rnn_{i}"], units, f"{weights_path}: rnn_{i}"))
        model.get_layer("attention").set_weights([attention])
        model.get_layer("next").set_weights([_take(kernel, source, 1, 0.0), _take(bias, source, 0, _ABSENT_BIAS)])
    except (KeyError, ValueError) as exc:
        raise TextgenrnnImportError(
            f"{weights_path}: does not match {config_path or 'textgenrnn default config'} ({exc.__class__.__name__}: {str(exc).splitlines()[0][:120]})"
        ) from None
    saving.save(
        output,
        model,
        config,
        vocab,
        {"level": vocab.level, "window": TEXTGENRNN_WINDOW, "single_text": bool(tg_config.get("single_text")), "imported_from": str(weights_path)},
    )
    return saving.load(output)
