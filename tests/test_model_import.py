"""Importing textgenrnn models: a small textgenrnn-shaped model written in Keras 2's HDF5 layout,
its probabilities computed by a NumPy re-implementation of textgenrnn's forward pass."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from botkit.cli import main
from botkit.model import saving
from botkit.model.layers import SCORE_CLIP
from botkit.model.network import build_model
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


def textgenrnn_forward(layers: dict[str, list[np.ndarray]], window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """textgenrnn's model.predict for one 40-id window (its AttentionWeightedAverage, max trick and
    epsilon), and the window's attention scores."""
    seq = [layers["embedding"][0][window]]
    for i in range(1, LAYERS + 1):
        seq.append(lstm(seq[-1], *layers[f"rnn_{i}"]))
    x = np.concatenate(seq, axis=1)
    scores = (x @ layers["attention"][0])[:, 0]
    a = np.exp(scores - scores.max())
    a = a / (a.sum() + 1e-7)
    z = (a[:, None] * x).sum(axis=0) @ layers["output"][0] + layers["output"][1]
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum(), scores


def cudnn_layout(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """An LSTM's weights as textgenrnn saves them from a GPU's CuDNNLSTM (Keras 2's LSTM → CuDNNLSTM conversion).

    Per gate, the input kernel in cuDNN's layout and the recurrent kernel transposed; the bias
    split into an input and a recurrent half that sum to the LSTM bias.
    """

    def per_gate(k: np.ndarray, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return np.hstack([change(g) for g in np.hsplit(k, 4)])

    half = rng.normal(0, 0.2, bias.shape)
    return [per_gate(kernel, lambda g: g.T.reshape(g.shape, order="C")), per_gate(recurrent, lambda g: g.T), np.concatenate([bias - half, half])]


def write_textgenrnn(tmp_path: Path, cudnn: bool, attention_scale: float = 1.0) -> tuple[dict[str, list[np.ndarray]], Path, Path, Path]:
    """A textgenrnn model file; returns its weights in (CPU) LSTM layout, the one the reference computes with.

    ``attention_scale`` multiplies the attention vector: large, it drives the scores past ±30.
    """
    rng = np.random.default_rng(7)
    n = len(TG_VOCAB) + 1
    dims = EMB + LAYERS * UNITS
    layers = {
        "embedding": [rng.normal(0, 0.5, (n, EMB))],
        "rnn_1": [rng.normal(0, 0.4, (EMB, 4 * UNITS)), rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.2, 4 * UNITS)],
        "rnn_2": [rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.4, (UNITS, 4 * UNITS)), rng.normal(0, 0.2, 4 * UNITS)],
        "attention": [rng.normal(0, attention_scale, (dims, 1))],
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
    config.write_text(
        json.dumps(
            {
                "rnn_layers": LAYERS,
                "rnn_size": UNITS,
                "rnn_bidirectional": False,
                "max_length": 40,
                "dim_embeddings": EMB,
                "word_level": False,
                "single_text": False,
            }
        )
    )
    return layers, path, vocab, config


def textgenrnn_windows() -> list[np.ndarray]:
    """textgenrnn-id windows as it builds them: left-padded with 0 to 40 ids."""
    rng = np.random.default_rng(1)
    return [np.concatenate([np.zeros(40 - k, int), rng.integers(1, 7, size=k)]) for k in (3, 17, 40, 40)]


def botkit_ids(tokens: list[str]) -> np.ndarray:
    """The imported model's id of each textgenrnn id (0: padding = ``<pad>``, 6: ``<s>`` = ``<sep>``)."""
    by_tg_id = {0: 0, 6: 1, **{tg: tokens.index(t) for t, tg in TG_VOCAB.items() if t != "<s>"}}
    return np.array([by_tg_id[i] for i in range(len(by_tg_id))])


def probs_in_textgenrnn_ids(model: keras.Model, tokens: list[str], tg_windows: list[np.ndarray]) -> np.ndarray:
    """A botkit model's next-token probabilities after each window, columns in textgenrnn's ids
    (checking on the way that botkit's ``<unk>``, which textgenrnn lacks, gets none)."""
    ids = botkit_ids(tokens)
    logits = np.asarray(model(ids[np.array(tg_windows)].astype(np.int32))["next"])[:, -1].astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert (probs[:, 2] < 1e-10).all()  # <unk> has no textgenrnn counterpart
    return probs[:, ids]


@pytest.mark.parametrize("cudnn", [False, True])
def test_imported_model_matches_textgenrnn_on_its_windows(tmp_path: Path, cudnn: bool) -> None:
    layers, path, vocab, config = write_textgenrnn(tmp_path, cudnn)
    saved = import_textgenrnn(path, vocab, config, tmp_path / "imported")
    assert saved.config.head == "attention" and saved.vocab.tokens[3:] == ["e", "t", " ", "a", "\n"]
    tg_windows = textgenrnn_windows()
    got = probs_in_textgenrnn_ids(saved.model, saved.vocab.tokens, tg_windows)
    np.testing.assert_allclose(got, [textgenrnn_forward(layers, w)[0] for w in tg_windows], atol=1e-5)


def test_import_matches_textgenrnn_where_scores_pass_the_clip(tmp_path: Path) -> None:
    """With attention scores far beyond ±30 (as textgenrnn's shipped model has on windows of rare
    characters), the imported "max" attention still is textgenrnn's softmax; clipping is not."""
    layers, path, vocab, config = write_textgenrnn(tmp_path, cudnn=False, attention_scale=40.0)
    saved = import_textgenrnn(path, vocab, config, tmp_path / "imported")
    assert saved.config.attention_stabilizer == "max"
    assert saving.load(tmp_path / "imported").config.attention_stabilizer == "max"  # saved with the model
    tg_windows = textgenrnn_windows()
    expected, scores = zip(*(textgenrnn_forward(layers, w) for w in tg_windows))
    assert sum(s.max() > 1.5 * SCORE_CLIP for s in scores) >= 2  # a clip would change those windows' averages
    np.testing.assert_allclose(probs_in_textgenrnn_ids(saved.model, saved.vocab.tokens, tg_windows), expected, atol=1e-5)
    clipped = build_model(replace(saved.config, attention_stabilizer="clip"))
    clipped.set_weights(saved.model.get_weights())
    assert np.abs(probs_in_textgenrnn_ids(clipped, saved.vocab.tokens, tg_windows) - expected).max() > 1e-2


def test_incremental_step_of_an_imported_model_is_textgenrnn_where_scores_pass_the_clip(tmp_path: Path) -> None:
    """Generation's step carries the running maximum (online softmax): fed a window token by
    token, it gives the full model's distribution at every position and textgenrnn's at the last."""
    import tensorflow as tf

    from botkit.generate.step import StepNetwork

    layers, path, vocab, config = write_textgenrnn(tmp_path, cudnn=False, attention_scale=40.0)
    saved = import_textgenrnn(path, vocab, config, tmp_path / "imported")
    tg_windows = textgenrnn_windows()
    ids = botkit_ids(saved.vocab.tokens)
    batch = ids[np.array(tg_windows)].astype(np.int32)
    full = tf.nn.softmax(saved.model(batch)["next"]).numpy()
    network = StepNetwork(saved.model, saved.config)
    step = tf.function(lambda tokens, state: network.step(tokens, tokens, state), autograph=False)
    state, worst = network.initial_state(len(batch)), 0.0
    for t in range(WINDOW):
        logits, state = step(tf.constant(batch[:, t]), state)
        probs = tf.nn.softmax(logits).numpy()
        worst = max(worst, float(np.abs(probs - full[:, t]).max()))
    assert float(np.max(state[-1])) > 1.5 * SCORE_CLIP  # the running maximum score: past the clip
    assert worst < 1e-5
    expected = [textgenrnn_forward(layers, w)[0] for w in tg_windows]
    np.testing.assert_allclose(probs[:, ids], expected, atol=1e-5)


def test_import_cli_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path, vocab, config = write_textgenrnn(tmp_path, cudnn=False)
    out = tmp_path / "weights" / "tg"
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 0
    assert "imported" in capsys.readouterr().out and saving.load(out).config.rnn_size == UNITS
    path.write_bytes(path.read_bytes()[:300])
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 1
    assert "tg_weights.hdf5: truncated or not a textgenrnn weights file" in capsys.readouterr().err
    config.write_text(json.dumps({"rnn_bidirectional": True}))
    assert main(["import-textgenrnn", str(path), str(vocab), str(config), "-o", str(out)]) == 1
    assert "bidirectional textgenrnn models cannot be imported" in capsys.readouterr().err


BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.skipif(
    not (BENCH / "out" / "textgenrnn-venv" / ".bench-requirements.json").exists(),
    reason="textgenrnn's bench environment is not set up (run bench/textgenrnn_parity.py once)",
)
def test_shipped_textgenrnn_model_parity(tmp_path: Path) -> None:
    """textgenrnn 2.0.0 itself (its real Keras 2 model, in its own environment) against the import of its shipped weights, on every window."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(BENCH / "textgenrnn_parity.py"), "--out", str(tmp_path)], capture_output=True, text=True, cwd=BENCH, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    report = json.loads((tmp_path / "textgenrnn_parity.json").read_text())
    assert report["max_abs_diff_all"] <= 1e-4 and len(report["windows"]) >= 13
    assert report["windows_beyond_clip"] >= 1  # the hard case (scores past ±30) is among them
    assert report["max_unk_probability"] < 1e-6


def textgenrnn_nll(layers: dict[str, list[np.ndarray]], texts: list[str]) -> tuple[float, int]:
    """Mean -ln p of every target as textgenrnn 2.0.0 frames it (``generate_sequences_from_texts``):
    ``<s>`` + text + ``<s>``, targets outside the vocab skipped, context tokens outside it dropped by
    the tokenizer, the 41 tokens before a target cut to the last 40 and left-padded with 0."""
    nats, count = 0.0, 0
    for text in texts:
        framed = ["<s>", *text, "<s>"]
        for end in range(len(text) + 1):
            x, y = framed[max(0, end - WINDOW) : end + 1], framed[end + 1]
            if y not in TG_VOCAB:
                continue
            ids = [TG_VOCAB[c] for c in x if c in TG_VOCAB][-WINDOW:]
            probs, _ = textgenrnn_forward(layers, np.array([0] * (WINDOW - len(ids)) + ids))
            nats -= np.log(probs[TG_VOCAB[y]])
            count += 1
    return nats / count, count


def test_eval_of_an_imported_model_scores_short_texts_as_textgenrnn_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Line-delimited short texts (titles) under a textgenrnn-trained model: botkit eval's number is
    textgenrnn's own (framing, padding, the end token as a target), long texts and unknown characters included."""
    import re

    layers, path, vocab, config = write_textgenrnn(tmp_path, cudnn=False)
    out = tmp_path / "imported"
    import_textgenrnn(path, vocab, config, out)
    rng = np.random.default_rng(3)
    texts = ["t" + "".join(rng.choice(list("eta "), size=n)) for n in (0, 5, 12, 38, 39, 40, 60)] + ["tea x eat", "xx ate tax"]
    titles = tmp_path / "titles.txt"
    titles.write_text("\n".join(texts) + "\n", encoding="utf-8")
    expected, count = textgenrnn_nll(layers, texts)
    assert main(["eval", str(out), str(titles)]) == 0
    said = capsys.readouterr().out
    assert f"read as {len(texts)} document(s)" in said and "scored as textgenrnn trains" in said
    assert f"{count:,} characters scored" in said and "4 character(s) are not in the model's vocabulary and were not scored" in said
    assert float(re.search(r"([0-9.]+) nats/character", said).group(1)) == pytest.approx(expected, abs=1e-4)
    from botkit.model.evaluate import evaluate_file

    assert evaluate_file(out, titles).score.mean == pytest.approx(expected, rel=1e-5)
