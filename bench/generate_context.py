"""Does a model score text the way generation conditions on it? Loss by position, state carried.

Generation carries the LSTM states and attention sums from the document separator to the last
token, so a 300-character sample conditions its last characters on up to 300 characters of
context, while training (``botkit train``) and ``botkit eval`` see at most ``window`` tokens.
This script scores long stretches of validation text with the generation loop itself
(:meth:`Generator.score`, teacher-forced) in both context modes and prints the mean
cross-entropy per band of positions, within the trained window and beyond it:

* ``carry``: the state is carried from the first token to the last;
* ``window`` (generation's default): from W tokens on, the state is rebuilt from the last W/2
  tokens every W/2 tokens, so every prediction has W/2..W tokens of context, as in training and
  in ``botkit eval`` (whose figure on the same text is the reference).

    python bench/generate_context.py weights/NAME [--text FILE] [--length 1024] [--rows 64]

With no ``--text`` it uses the last 10 % of tiny Shakespeare (the standard validation split).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from botkit.generate import Generator

SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
VALIDATION_START = 1_003_854  # the standard 90/10 split of tiny Shakespeare


def bands(window: int, length: int) -> list[tuple[int, int]]:
    """Position bands: the first half window, the second half, then doubling spans beyond the window."""
    edges = [0, window // 2, window]
    while edges[-1] < length:
        edges.append(min(edges[-1] * 2, length))
    return list(zip(edges, edges[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--text", type=Path, help="validation text (default: the last 10%% of tiny Shakespeare)")
    parser.add_argument("--length", type=int, default=1024, help="positions per row")
    parser.add_argument("--rows", type=int, default=64, help="stretches of text, evenly spaced")
    args = parser.parse_args()
    text = args.text.read_text(encoding="utf-8") if args.text else SHAKESPEARE.read_text(encoding="utf-8")[VALIDATION_START:]
    generator = Generator.load(args.weights, jit=False)
    ids = generator.vocab.encode(text).astype(np.int32)
    starts = np.linspace(0, len(ids) - args.length - 1, args.rows).astype(int)
    rows = np.stack([ids[s : s + args.length] for s in starts])
    window = generator.window
    began = time.perf_counter()
    losses = {context: -generator.score(rows, context=context) for context in ("carry", "window")}
    print(f"{args.weights}: trained window {window}; {args.rows} stretches of {args.length} tokens ({time.perf_counter() - began:.0f} s)")
    print("nats/token by position (± standard error over the stretches); 'window' restarts the state from the last W/2 tokens")
    print(f"{'positions':>12}  {'carry':>15}  {'window':>15}  {'carry - window':>15}")
    for lo, hi in bands(window, args.length):
        carry, kept = (losses[c][:, lo:hi].mean(axis=1) for c in ("carry", "window"))
        print(f"{f'{lo}-{hi - 1}':>12}  {_mean(carry):>15}  {_mean(kept):>15}  {_mean(carry - kept):>15}")


def _mean(values: np.ndarray) -> str:
    return f"{values.mean():.4f} ± {values.std(ddof=1) / math.sqrt(len(values)):.4f}"


if __name__ == "__main__":
    main()
