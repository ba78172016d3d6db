"""Runs textgenrnn 2.0.0 inside its own virtual environment (see ``textgenrnn_env.py``); never imported by botkit.

textgenrnn 2.0.0 (2020) targets TF 2.1-era ``tf.keras``. Under TF 2.21 with ``TF_USE_LEGACY_KERAS=1``
(so ``tensorflow.keras`` is tf-keras 2.21) and NumPy 2 it needs three shims, applied here and not
by editing the installed package:

* ``tensorflow.keras.utils.multi_gpu_model`` was removed in TF 2.4; textgenrnn imports it but only
  calls it for ``multi_gpu=True``, which the bench never asks for. A stub that raises takes its place.
* ``keras.backend.tensorflow_backend.set_session`` (standalone Keras 2) no longer exists; textgenrnn
  only calls it for ``allow_growth``. A stub module that raises takes its place.
* NumPy 2's ``meshgrid`` returns a tuple, which ``np.block`` refuses (textgenrnn builds its window
  index with ``np.block(np.meshgrid(...))``); the shim returns NumPy 1's list.

Commands (each prints one JSON line on stdout):

* ``train TRAIN_TXT SECONDS WORKDIR``: ``train_new_model`` on one text with textgenrnn's defaults
  (2 × 128 LSTM, 40-character windows, batch 128, Adam 4e-3), stopped after SECONDS of training;
  writes ``bench_weights.hdf5``/``bench_vocab.json``/``bench_config.json`` into WORKDIR.
* ``score WORKDIR CONTEXT_TXT VAL_TXT``: loads that model and scores every character of VAL_TXT
  given the 40 before it (the first ones take their context from the end of CONTEXT_TXT).
* ``probs WINDOWS_JSON OUT_NPY``: textgenrnn's shipped model (its package's weights, vocab and
  default config), next-character probabilities after each 40-character window in the JSON list;
  also says where the package keeps those files.
* ``train-lines TRAIN_TXT WORKDIR RNN_SIZE RNN_LAYERS SECONDS``: ``train_from_file(new_model=True)``
  on a line-delimited file (no header; one text a line, as a textgenrnn user trains on titles),
  one epoch with textgenrnn's defaults apart from the LSTM size and depth, stopped after SECONDS
  of training if that comes first (0: the whole epoch); writes ``bench_weights.hdf5``/
  ``bench_vocab.json``/``bench_config.json`` into WORKDIR.
* ``doc-score WORKDIR TEXTS_TXT OUT_NPY``: loads that model and scores every text of the
  line-delimited TEXTS_TXT exactly as textgenrnn frames a text in training: ``<s>`` + characters +
  ``<s>``, every token after the first a target (the closing ``<s>`` too) unless textgenrnn's
  vocabulary lacks it, predicted from up to 41 tokens before it with unknown ones dropped by its
  tokenizer, the last 40 kept, left-padded with 0. The (x, y) pairs come from textgenrnn's own
  ``generate_sequences_from_texts`` (one batch holding every target, unshuffled); OUT_NPY gets
  each target's ln p in text order.
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import numpy as np

WINDOW = 40  # textgenrnn's max_length
BATCH = 128  # textgenrnn's default batch size
SCORE_BATCH = 1024


def _unavailable(name: str):  # noqa: ANN202 - a stub callable
    def stub(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not available under TF 2.21 (the bench never uses it)")

    return stub


def import_textgenrnn():  # noqa: ANN201 - the textgenrnn class
    """textgenrnn's class, with the compat shims of the module docstring in place."""
    import tensorflow.keras.utils as keras_utils

    meshgrid = np.meshgrid
    np.meshgrid = lambda *arrays, **kwargs: list(meshgrid(*arrays, **kwargs))

    keras_utils.multi_gpu_model = _unavailable("multi_gpu_model")
    backend = types.ModuleType("keras.backend.tensorflow_backend")
    backend.set_session = _unavailable("keras.backend.tensorflow_backend.set_session")
    sys.modules["keras.backend.tensorflow_backend"] = backend
    from textgenrnn import textgenrnn

    return textgenrnn


def budget_callback(seconds: float, record: dict[str, float]):  # noqa: ANN201 - a tf-keras Callback
    """Stops ``fit`` once ``seconds`` of training have passed and records steps and time.

    textgenrnn has no time budget and builds its own ``fit`` call, so the bench adds this callback
    to that call (see :func:`train`). The clock starts when ``fit`` starts: the vocabulary and the
    index of every window (textgenrnn's set-up) are not counted, as botkit's budget does not count
    its own set-up.
    """
    from tensorflow.keras.callbacks import Callback

    class Budget(Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.monotonic()
            record.update(steps=0, seconds=0.0)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            record["steps"] += 1
            record["seconds"] = time.monotonic() - self.started
            if record["seconds"] >= seconds:
                self.model.stop_training = True

    return Budget()


def _add_budget(seconds: float, record: dict[str, float]) -> None:
    """Slip the budget callback into every ``fit`` textgenrnn makes (``seconds`` <= 0: no limit, steps still counted)."""
    import tf_keras

    budget = budget_callback(seconds if seconds > 0 else float("inf"), record)
    fit = tf_keras.Model.fit

    def fit_with_budget(self, *args, callbacks=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return fit(self, *args, callbacks=[*(callbacks or []), budget], **kwargs)

    tf_keras.Model.fit = fit_with_budget


def train(train_txt: Path, seconds: float, workdir: Path) -> dict[str, float]:
    """textgenrnn's own ``train_new_model``, with the budget callback slipped into its ``fit``."""
    textgenrnn = import_textgenrnn()
    record: dict[str, float] = {}
    _add_budget(seconds, record)
    workdir.mkdir(parents=True, exist_ok=True)
    text = train_txt.read_text(encoding="utf-8")
    tg = textgenrnn(name=str(workdir / "bench"))
    # One epoch: textgenrnn's LR schedule is per epoch, so a run shorter than an epoch keeps 4e-3.
    tg.train_new_model([text], single_text=True, num_epochs=1, gen_epochs=0, batch_size=BATCH, train_size=1.0, validation=False, verbose=0)
    tg.save(str(workdir / "bench_weights.hdf5"))
    return {"steps": record["steps"], "seconds": record["seconds"], "targets_per_second": record["steps"] * BATCH / record["seconds"]}


def score(workdir: Path, context_txt: Path, val_txt: Path) -> dict[str, float]:
    """Mean -ln p of every character of ``val_txt`` after the 40 characters before it."""
    textgenrnn = import_textgenrnn()
    tg = textgenrnn(
        weights_path=str(workdir / "bench_weights.hdf5"), vocab_path=str(workdir / "bench_vocab.json"), config_path=str(workdir / "bench_config.json")
    )
    val = val_txt.read_text(encoding="utf-8")
    text = context_txt.read_text(encoding="utf-8")[-WINDOW:] + val
    ids = np.array([tg.vocab.get(c, 0) for c in text], np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], WINDOW)
    targets = ids[WINDOW:]
    nats, scored = 0.0, 0
    for start in range(0, len(targets), SCORE_BATCH):
        probs = tg.model.predict_on_batch(windows[start : start + SCORE_BATCH])
        t = targets[start : start + SCORE_BATCH]
        known = t > 0  # a character textgenrnn's vocabulary lacks has no probability to score
        nats -= float(np.log(np.maximum(probs[np.arange(len(t)), t][known], 1e-30)).sum())
        scored += int(known.sum())
    return {"val_loss": nats / scored, "scored": scored, "unscored": len(targets) - scored}


def train_lines(train_txt: Path, workdir: Path, rnn_size: int, rnn_layers: int, seconds: float) -> dict[str, float]:
    """textgenrnn's own ``train_from_file(new_model=True)`` on one text a line, one epoch (or ``seconds``)."""
    textgenrnn = import_textgenrnn()
    record: dict[str, float] = {}
    _add_budget(seconds, record)
    workdir.mkdir(parents=True, exist_ok=True)
    tg = textgenrnn(name=str(workdir / "bench"))
    tg.train_from_file(str(train_txt), header=False, new_model=True, num_epochs=1, gen_epochs=0, batch_size=BATCH, train_size=1.0, validation=False,
                       verbose=0, rnn_size=rnn_size, rnn_layers=rnn_layers)  # fmt: skip
    tg.save(str(workdir / "bench_weights.hdf5"))
    return {"steps": record["steps"], "seconds": record["seconds"], "windows_per_second": record["steps"] * BATCH / max(record["seconds"], 1e-9),
            "vocab": len(tg.vocab), "config": {k: v for k, v in tg.config.items() if k != "name"}}  # fmt: skip


def doc_score(workdir: Path, texts_txt: Path, out_npy: Path) -> dict[str, object]:
    """Mean -ln p of every target of every text, framed by textgenrnn's own training generator."""
    textgenrnn = import_textgenrnn()
    from textgenrnn import model_training
    from textgenrnn.utils import textgenrnn_texts_from_file

    files = {f"{kind}_path": str(workdir / f"bench_{kind}.{'hdf5' if kind == 'weights' else 'json'}") for kind in ("weights", "vocab", "config")}
    tg = textgenrnn(**files)
    if tg.config.get("single_text") or tg.config.get("word_level"):
        raise SystemExit("doc-score expects a char-level, line-delimited (single_text=False) model")
    texts = textgenrnn_texts_from_file(str(texts_txt), header=False)  # as train_from_file reads them
    # train_on_texts' index: (text, end) for end in 0..len(text); the target is framed[end + 1].
    indices = np.array([(i, end) for i, text in enumerate(texts) for end in range(len(text) + 1)], dtype=np.int64)
    meta = tg.META_TOKEN
    framed = [[meta, *text, meta] for text in texts]
    targets = [framed[i][end + 1] for i, end in indices]
    known = np.array([t in tg.vocab for t in targets])
    count = int(known.sum())
    shuffle = np.random.shuffle
    np.random.shuffle = lambda array: None  # text order (the mean does not depend on it)
    try:
        # One batch of every target textgenrnn would train on (it drops targets outside its vocabulary).
        x, y = next(model_training.generate_sequences_from_texts(texts, indices, tg, None, batch_size=count))
    finally:
        np.random.shuffle = shuffle
    x, y = np.asarray(x).reshape(count, -1), np.asarray(y).reshape(count, -1)
    expected_ids = np.array([tg.vocab[t] for t, k in zip(targets, known) if k])
    if not np.array_equal(y.argmax(axis=1), expected_ids):
        raise SystemExit("textgenrnn's generator produced targets in another order than expected")
    probs = np.asarray(tg.model.predict(x, batch_size=SCORE_BATCH, verbose=0), np.float64)
    logp = np.log(np.maximum(probs[np.arange(count), expected_ids], 1e-30))
    np.save(out_npy, logp)
    return {
        "val_loss": float(-logp.mean()), "targets": count, "unscored": int((~known).sum()), "texts": len(texts),
        "end_targets": int(sum(1 for t, k in zip(targets, known) if k and t == meta)), "window": int(x.shape[1]),
        "padded_windows": int((x[:, 0] == 0).sum()),
    }  # fmt: skip


def probs(windows_json: Path, out_npy: Path) -> dict[str, object]:
    """The shipped model's next-character distribution (over its ids, 0 = padding) after each window."""
    textgenrnn = import_textgenrnn()
    tg = textgenrnn()  # the package's textgenrnn_weights.hdf5 and textgenrnn_vocab.json
    from textgenrnn.utils import textgenrnn_encode_sequence

    windows = json.loads(windows_json.read_text(encoding="utf-8"))
    encoded = np.concatenate([textgenrnn_encode_sequence(w, tg.vocab, WINDOW) for w in windows])
    result = np.asarray(tg.model.predict(encoded, verbose=0), np.float64)
    np.save(out_npy, result)
    package = Path(sys.modules["textgenrnn"].__file__).parent
    return {"windows": len(windows), "weights": str(package / "textgenrnn_weights.hdf5"), "vocab": str(package / "textgenrnn_vocab.json")}


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "train":
        result = train(Path(args[0]), float(args[1]), Path(args[2]))
    elif command == "score":
        result = score(Path(args[0]), Path(args[1]), Path(args[2]))
    elif command == "probs":
        result = probs(Path(args[0]), Path(args[1]))
    elif command == "train-lines":
        result = train_lines(Path(args[0]), Path(args[1]), int(args[2]), int(args[3]), float(args[4]))
    elif command == "doc-score":
        result = doc_score(Path(args[0]), Path(args[1]), Path(args[2]))
    else:
        raise SystemExit(f"unknown command {command!r}: train, score, probs, train-lines or doc-score")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
