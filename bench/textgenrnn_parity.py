"""Import parity on textgenrnn's shipped model: textgenrnn's own probabilities vs ``botkit import-textgenrnn``.

    .venv/bin/python bench/textgenrnn_parity.py

textgenrnn 2.0.0 ships a pretrained char model (``textgenrnn_weights.hdf5``, ``textgenrnn_vocab.json``,
its default config) in its package folder. For a handful of windows (empty, short ones it left-pads,
full 40-character ones from tiny Shakespeare, non-ASCII ones), the next-character distribution is
computed twice:

* by textgenrnn itself: its Keras 2 model, ``model.predict`` in its own environment (see
  ``textgenrnn_env.py``);
* by botkit: ``botkit import-textgenrnn`` of the same two files, then the imported model's
  probabilities at the last position of the same window in botkit's ids.

Every textgenrnn id is mapped to its botkit id (0 = padding = ``<pad>``, ``<s>`` = ``<sep>``) and the
largest absolute difference of a probability is reported; the target is ≤ 1e-4. botkit's extra
``<unk>`` must get (almost) no probability. Figures go to ``bench/out/textgenrnn_parity.json``.

One known limit, reported per window and not counted against the target: botkit's attention
clips each position's score to ±``SCORE_CLIP`` (30) where textgenrnn subtracts the window's
maximum. Both give the same weights while the window's largest score is at most 30 (and, when some
score is below -30, the largest is above -14, so the clipped ones weigh under 1e-7). The shipped
model exceeds 30 on about 1.8 % of tiny Shakespeare's 40-character windows (measured on 2,000)
and on most windows of rare characters; there the two models differ (the exotic window below).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from textgenrnn_env import HERE, run_driver

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
TOLERANCE = 1e-4
WINDOW = 40
# Short windows (left-padded by both tools) and characters far from ASCII that the shipped vocabulary has.
FIXED_WINDOWS = ["", "T", "Hello, wor", "The quick brown fox jumps over the lazy d", "ｙå Ｈ つ <3 ы — what a day!!"]


def windows() -> list[str]:
    """The fixed windows plus six 40-character ones from tiny Shakespeare (newlines, absent from the shipped vocab, as spaces)."""
    found = list(FIXED_WINDOWS)
    if SHAKESPEARE.exists():
        text = SHAKESPEARE.read_text(encoding="utf-8").replace("\n", " ")
        found += [text[start : start + WINDOW] for start in np.linspace(0, len(text) - WINDOW, 6, dtype=int)]
    return found


def botkit_probs(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The imported model's next-token distribution after each text (left-padded to 40), its tokens,
    and whether its clipped attention scores give textgenrnn's weights on each window."""
    import keras

    from botkit.model import weights
    from botkit.model.layers import SCORE_CLIP
    from botkit.model.vocab import PAD_ID

    saved = weights.load(model_dir)
    batch = np.full((len(texts), WINDOW), PAD_ID, np.int32)
    for row, text in enumerate(texts):
        ids = saved.vocab.encode(text)[-WINDOW:]
        batch[row, WINDOW - len(ids) :] = ids
    logits = np.asarray(saved.model(batch, training=False)["next"], np.float64)[:, -1]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    skips = keras.Model(saved.model.input, saved.model.get_layer("skips").output)
    scores = (np.asarray(skips(batch)) @ np.asarray(saved.model.get_layer("attention").w))[..., 0]
    top, bottom = scores.max(axis=1), scores.min(axis=1)
    exact = (top <= SCORE_CLIP) & ((bottom >= -SCORE_CLIP) | (top >= -SCORE_CLIP + 16))
    return probs / probs.sum(axis=1, keepdims=True), list(saved.vocab.tokens), exact


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
    args = parser.parse_args()
    work = args.out / "parity"
    work.mkdir(parents=True, exist_ok=True)
    texts = windows()
    (work / "windows.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    shipped = run_driver("probs", work / "windows.json", work / "textgenrnn_probs.npy", cwd=work)
    expected = np.load(work / "textgenrnn_probs.npy")
    imported = work / "imported"
    subprocess.run([sys.executable, "-m", "botkit", "import-textgenrnn", shipped["weights"], shipped["vocab"], "-o", str(imported)], check=True)
    probs, tokens, exact = botkit_probs(imported, texts)
    tg_vocab = json.loads(Path(shipped["vocab"]).read_text(encoding="utf-8"))
    diff = np.abs(to_textgenrnn_order(probs, tokens, tg_vocab) - expected).max(axis=1)
    unk = float(probs[:, tokens.index("<unk>")].max())
    print(f"{'window':<44} {'max |Δp|':>10}  attention scores")
    for text, worst, inside in zip(texts, diff, exact):
        print(f"{text!r:<44.44} {worst:>10.2e}  {'within the ±30 clip' if inside else 'OUTSIDE the ±30 clip (known limit)'}")
    within = float(diff[exact].max())
    passed = within <= TOLERANCE
    print(f"max |Δp|, {int(exact.sum())} windows within the clip × {expected.shape[1]} classes: {within:.3e} (target ≤ {TOLERANCE:g}): {'PASS' if passed else 'FAIL'}")
    print(f"max |Δp|, all {len(texts)} windows: {diff.max():.3e}; botkit's <unk> (no textgenrnn counterpart): p ≤ {unk:.1e}")
    report = {
        "windows": texts, "classes": int(expected.shape[1]), "per_window_max_abs_diff": diff.tolist(), "within_clip": exact.tolist(),
        "max_abs_diff_within_clip": within, "max_abs_diff_all": float(diff.max()), "max_unk_probability": unk, "tolerance": TOLERANCE, "passed": passed,
    }
    (args.out / "textgenrnn_parity.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
