"""Import parity on textgenrnn's shipped model: textgenrnn's own probabilities vs ``botkit import-textgenrnn``.

    .venv/bin/python bench/textgenrnn_parity.py [--shakespeare 6] [--random 8]

textgenrnn 2.0.0 ships a pretrained char model (``textgenrnn_weights.hdf5``, ``textgenrnn_vocab.json``,
its default config) in its package folder. For a set of windows (empty, short ones it left-pads,
non-ASCII ones, 40-character ones from tiny Shakespeare, and 40 characters drawn at random from
the shipped vocabulary), the next-character distribution is computed twice:

* by textgenrnn itself: its Keras 2 model, ``model.predict`` in its own environment (see
  ``textgenrnn_env.py``);
* by botkit: ``botkit import-textgenrnn`` of the same two files, then the imported model's
  probabilities at the last position of the same window in botkit's ids.

Every textgenrnn id is mapped to its botkit id (0 = padding = ``<pad>``, ``<s>`` = ``<sep>``) and the
largest absolute difference of a probability is reported; the target is ≤ 1e-4 on every window.
botkit's extra ``<unk>`` must get (almost) no probability. Figures go to ``bench/out/textgenrnn_parity.json``.

The random windows are the hard case: their largest attention score (``x·w``) is above 30 on
most of them, where a botkit-trained model's attention would clip it (``"clip"``, see
:class:`botkit.model.layers.CausalAttentionAverage`) and differ from textgenrnn by up to 0.44.
The importer gives its models the ``"max"`` attention, textgenrnn's softmax on every window; the
report lists each window's largest score and how many windows pass 30.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from textgenrnn_env import HERE, VENV, python, run_driver

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
TOLERANCE = 1e-4
WINDOW = 40
# Short windows (left-padded by both tools) and characters far from ASCII that the shipped vocabulary has.
FIXED_WINDOWS = ["", "T", "Hello, wor", "The quick brown fox jumps over the lazy d", "ｙå Ｈ つ <3 ы — what a day!!"]


def shipped_characters() -> list[str]:
    """The single characters of textgenrnn's shipped vocabulary (in its installed package)."""
    python()  # installs textgenrnn's environment on first use
    (vocab,) = VENV.glob("lib/python*/site-packages/textgenrnn/textgenrnn_vocab.json")
    return sorted(token for token in json.loads(vocab.read_text(encoding="utf-8")) if len(token) == 1)


def windows(shakespeare: int, random: int) -> list[str]:
    """The fixed windows, ``shakespeare`` 40-character ones spread over tiny Shakespeare (newlines,
    absent from the shipped vocab, as spaces) and ``random`` ones of random shipped characters."""
    found = list(FIXED_WINDOWS)
    if SHAKESPEARE.exists() and shakespeare:
        text = SHAKESPEARE.read_text(encoding="utf-8").replace("\n", " ")
        found += [text[start : start + WINDOW] for start in np.linspace(0, len(text) - WINDOW, shakespeare, dtype=int)]
    characters = shipped_characters()
    rng = np.random.default_rng(40)
    found += ["".join(rng.choice(characters, WINDOW)) for _ in range(random)]
    return found


def botkit_probs(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The imported model's next-token distribution after each text (left-padded to 40), its tokens,
    and each window's largest attention score (above ±30, clipping would change the average)."""
    import keras

    from botkit.model import saving
    from botkit.model.vocab import PAD_ID

    saved = saving.load(model_dir)
    batch = np.full((len(texts), WINDOW), PAD_ID, np.int32)
    for row, text in enumerate(texts):
        ids = saved.vocab.encode(text)[-WINDOW:]
        batch[row, WINDOW - len(ids) :] = ids
    logits = np.asarray(saved.model.predict(batch, batch_size=256, verbose=0)["next"][:, -1], np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    skips = keras.Model(saved.model.input, saved.model.get_layer("skips").output)
    scores = (skips.predict(batch, batch_size=256, verbose=0) @ np.asarray(saved.model.get_layer("attention").w))[..., 0]
    return probs / probs.sum(axis=1, keepdims=True), list(saved.vocab.tokens), scores.max(axis=1)


def to_textgenrnn_order(probs: np.ndarray, tokens: list[str], tg_vocab: dict[str, int]) -> np.ndarray:
    """botkit's columns rearranged into textgenrnn's ids (0: padding, which botkit calls ``<pad>``)."""
    from botkit.model.vocab import PAD, SEP

    column = {token: i for i, token in enumerate(tokens)}
    order = np.zeros(len(tg_vocab) + 1, int)
    order[0] = column[PAD]
    for token, tg_id in tg_vocab.items():
        order[tg_id] = column[SEP if token == "<s>" else token]
    return probs[:, order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--shakespeare", type=int, default=6, help="windows from tiny Shakespeare (default 6)")
    parser.add_argument("--random", type=int, default=8, help="windows of random shipped characters (default 8)")
    parser.add_argument("--show", type=int, default=30, help="windows listed one per line (default 30; all are measured)")
    args = parser.parse_args()
    work = args.out / "parity"
    work.mkdir(parents=True, exist_ok=True)
    texts = windows(args.shakespeare, args.random)
    (work / "windows.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    shipped = run_driver("probs", work / "windows.json", work / "textgenrnn_probs.npy", cwd=work)
    expected = np.load(work / "textgenrnn_probs.npy")
    imported = work / "imported"
    subprocess.run([sys.executable, "-m", "botkit", "import-textgenrnn", shipped["weights"], shipped["vocab"], "-o", str(imported)], check=True)
    probs, tokens, top_score = botkit_probs(imported, texts)
    tg_vocab = json.loads(Path(shipped["vocab"]).read_text(encoding="utf-8"))
    diff = np.abs(to_textgenrnn_order(probs, tokens, tg_vocab) - expected).max(axis=1)
    unk = float(probs[:, tokens.index("<unk>")].max())
    beyond = top_score > 30
    print(f"{'window':<44} {'max |Δp|':>10}  largest attention score")
    for text, worst, top in list(zip(texts, diff, top_score))[: args.show]:
        print(f"{text!r:<44.44} {worst:>10.2e}  {top:7.1f}{'  (beyond a ±30 clip)' if top > 30 else ''}")
    passed = bool(diff.max() <= TOLERANCE)
    print(f"max |Δp|, all {len(texts)} windows × {expected.shape[1]} classes: {diff.max():.3e} (target ≤ {TOLERANCE:g}): {'PASS' if passed else 'FAIL'}")
    if beyond.any():
        print(f"on the {int(beyond.sum())} windows with a score beyond 30 (where clipping would differ): max |Δp| {diff[beyond].max():.3e}")
    print(f"botkit's <unk> (no textgenrnn counterpart): p ≤ {unk:.1e}")
    report = {
        "windows": texts,
        "classes": int(expected.shape[1]),
        "per_window_max_abs_diff": diff.tolist(),
        "largest_attention_score": top_score.tolist(),
        "windows_beyond_clip": int(beyond.sum()),
        "max_abs_diff_all": float(diff.max()),
        "max_unk_probability": unk,
        "tolerance": TOLERANCE,
        "passed": passed,
    }
    (args.out / "textgenrnn_parity.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
