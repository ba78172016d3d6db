"""Importing textgenrnn models: a small textgenrnn-shaped model written in Keras 2's HDF5 layout,
its probabilities computed by a NumPy re-implementation of textgenrnn's forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from botkit.cli import main
from botkit.model import weights
from botkit.model.textgenrnn_import import import_textgenrnn

TG_VOCAB = {"e": 1, "t": 2, " ": 3, "a": 4, "\n": 5, "<s>": 6}
EMB, UNITS, LAYERS, WINDOW = 6, 5, 2, 40


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def lstm(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    h = c = np.zeros(UNITS)
    out = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.array(out)


def textgenrnn_probs(layers: dict[str, list[np.ndarray]], window: np.ndarray) -> np.ndarray:
    """textgenrnn's model.predict for one 40-id window (its AttentionWeightedAverage, max trick and epsilon)."""
    seq = [layers["embedding"][0][window]]
    for i in range(1, LAYERS + 1):
        seq.append(lstm(seq[-1], *layers[f"rnn_{i}"]))
    x = np.concatenate(seq, axis=1)
    logits = (x @ layers["attention"][0])[:, 0]
    a = np.exp(logits - logits.max())
    a = a / (a.sum() + 1e-7)
    z = (a[:, None] * x).sum(axis=0) @ layers["output"][0] + layers["output"][1]
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum()


def cudnn_layout(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """An LSTM's weights as textgenrnn saves them from a GPU's CuDNNLSTM (Keras 2's LSTM → CuDNNLSTM conversion).

    Per gate, the input kernel in cuDNN's layout and the recurrent kernel transposed; the bias
    split into an input and a recurrent half that sum to the LSTM bias.
    """
    per_gate = lambda k, change: np.hstack([change(g) for g in np.hsplit(k, 4)])  # noqa: E731
    half = rng.normal(0, 0.2, bias.shape)
    return [per_gate(kernel, lambda g: g.T.reshape(g.shape, order="C")), per_gate(recurrent, lambda g: g.T), np.concatenate([bias - half, half])]


def write_textgenrnn(tmp_path: Path, cudnn: bool) -> tuple[dict[str, list[np.ndarray]], Path, Path, Path]:
    """A textgenrnn model file; returns its weights in (CPU) LSTM layout, the one the reference computes with."""
    rng = np.random.default_rng(7)
    n = len(TG_VOCAB) + 1
    dims = EMB + LAYERS * UNITS
    layers = {
        "embedding": [rng.normal(0, 0.5, (n, EMB))],
        "rnn_1": [rng.normal(0, 0.4, (EMB, 4 * UNITS)), rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.2, 4 * UNITS)],
        "rnn_2": [rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.2, 4 * UNITS)],
        "attention": [rng.normal(0, 1.0, (dims, 1))],
        "output": [rng.normal(0, 1.0, (dims, n)), rng.normal(0, 0.5, n)],
    }
    layers = {k: [a.astype("float32").astype(np.float64) for a in v] for k, v in layers.items()}
    stored = {**layers, **({f"rnn_{i}": cudnn_layout(*layers[f"rnn_{i}"], rng) for i in (1, 2)} if cudnn else {})}
    names = {"embedding": ["embeddings"], "attention": ["attention_W"], "output": ["kernel", "bias"]}
    path = tmp_path / "tg_weights.hdf5"
    with h5py.File(path, "w") as h5:  # Keras 2 save_weights layout
        order = ["input", "embedding", "rnn_1", "rnn_2", "rnn_concat", "attention", "output"]
        h5.attrs["layer_names"] = [name.encode() for name in order]
        for name in order:
            group = h5.create_group(name)
            arrays = stored.get(name, [])
            weight_names = [f"{name}/{w}:0" for w in names.get(name, ["kernel", "recurrent_kernel", "bias"])][: len(arrays)]
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            for weight_name, array in zip(weight_names, arrays):
                group.create_dataset(weight_name, data=array.astype("float32"))
    vocab, config = tmp_path / "tg_vocab.json", tmp_path / "tg_config.json"
    vocab.write_text(json.dumps(TG_VOCAB))
    config.write_text(json.dumps({"rnn_layers": LAYERS, "rnn_size": UNITS, "rnn_bidirectional": False, "max_length": 40, "dim_embeddings": EMB, "word_level": False, "single_text": False}))
    return layers, path, vocab, config


@pytest.mark.parametrize("cudnn", [False, True])
def test_imported_model_matches_textgenrnn_on_its_windows(tmp_path: Path, cudnn: bool) -> None:
    layers, path, vocab, config = write_textgenrnn(tmp_path, cudnn)
    saved = import_textgenrnn(path, vocab, config, tmp_path / "imported")
    assert saved.config.head == "attention" and saved.vocab.tokens[3:] == ["e", "t", " ", "a", "\n"]
    rng = np.random.default_rng(1)
    tg_windows = [np.concatenate([np.zeros(40 - k, int), rng.integers(1, 7, size=k)]) for k in (3, 17, 40, 40)]
    to_botkit = {0: 0, 6: 1, **{tg: saved.vocab.tokens.index(t) for t, tg in TG_VOCAB.items() if t != "<s>"}}
    batch = np.array([[to_botkit[i] for i in w] for w in tg_windows], np.int32)
    logits = np.asarray(saved.model(batch)["next"])[:, -1].astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    for window, row in zip(tg_windows, probs):
        expected = textgenrnn_probs(layers, window)
        got = np.zeros(len(expected))
        for tg_id, botkit_id in to_botkit.items():
            got[tg_id] = row[botkit_id]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert row[2] < 1e-10  # <unk> has no textgenrnn counterpart


def test_import_cli_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path, vocab, config = write_textgenrnn(tmp_path, cudnn=False)
    out = tmp_path / "weights" / "tg"
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 0
    assert "imported" in capsys.readouterr().out and weights.load(out).config.rnn_size == UNITS
    path.write_bytes(path.read_bytes()[:300])
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 1
    assert "tg_weights.hdf5: truncated or not a textgenrnn weights file" in capsys.readouterr().err
    config.write_text(json.dumps({"rnn_bidirectional": True}))
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 1
    assert "bidirectional textgenrnn models cannot be imported" in capsys.readouterr().err


BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.skipif(not (BENCH / "out" / "textgenrnn-venv" / ".bench-requirements.json").exists(), reason="textgenrnn's bench environment is not set up (run bench/textgenrnn_parity.py once)")
def test_shipped_textgenrnn_model_parity(tmp_path: Path) -> None:
    """textgenrnn 2.0.0 itself (its real Keras 2 model, in its own environment) against the import of its shipped weights."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(BENCH / "textgenrnn_parity.py"), "--out", str(tmp_path)], capture_output=True, text=True, cwd=BENCH)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    report = json.loads((tmp_path / "textgenrnn_parity.json").read_text())
    assert report["max_abs_diff_within_clip"] <= 1e-4 and sum(report["within_clip"]) >= 10
    assert report["max_unk_probability"] < 1e-6
