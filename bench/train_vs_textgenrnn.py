"""botkit vs textgenrnn 2.0.0 on tiny Shakespeare: same split, same wall-clock budget, same machine.

    .venv/bin/python bench/train_vs_textgenrnn.py --minutes 10

Split: first 90 % of the characters train, last 10 % validate (nanoGPT's split). Prints each
tool's validation loss (nats/char) and training targets per second, and the ratios.

* botkit: ``botkit train --single-text --train-size 0.9 --minutes M`` (default config), then
  ``botkit eval`` on the held-out 10 %.
* textgenrnn: installed on first use into its own virtual environment under ``bench/out/``
  (textgenrnn 2.0.0 + tf-keras, run with ``TF_USE_LEGACY_KERAS=1``), trained with its defaults
  (2 × 128, 40-character windows, batch 128) on the first 90 %, stopped at the budget; its
  validation loss is the mean -log p of every held-out character given the 40 before it, the
  context textgenrnn trains and generates with.

Not a timed test: it takes twice the budget plus set-up. Status: skeleton; the textgenrnn half
has not been run in this repository yet (see the trainer report).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
TEXTGENRNN_REQUIREMENTS = ["textgenrnn==2.0.0", "tf-keras", "tensorflow", "h5py", "scikit-learn", "tqdm"]

# Runs inside the textgenrnn environment; prints one JSON line.
TEXTGENRNN_RUN = textwrap.dedent(
    """
    import json, sys, threading, time
    import numpy as np
    from textgenrnn import textgenrnn
    train_path, val_path, seconds, workdir = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    import os; os.chdir(workdir)
    train_text = open(train_path, encoding="utf-8").read()
    val_text = open(val_path, encoding="utf-8").read()
    tg = textgenrnn(name="bench")
    started = time.monotonic()
    windows = train_text.__len__() - 40
    def stop():  # textgenrnn has no time budget: stop its Keras fit from outside
        tg.model.stop_training = True
    timer = threading.Timer(seconds, stop); timer.start()
    tg.train_new_model([train_text], single_text=True, num_epochs=1, gen_epochs=0, batch_size=128, train_size=1.0, validation=False, verbose=0)
    elapsed = time.monotonic() - started
    timer.cancel()
    steps = int(tg.model.optimizer.iterations.numpy())
    index = tg.vocab
    context = train_text[-40:] + val_text
    ids = np.array([index.get(c, 0) for c in context], np.int32)
    windows_x = np.lib.stride_tricks.sliding_window_view(ids[:-1], 40)
    targets = ids[40:]
    nll, n = 0.0, 0
    for start in range(0, len(targets), 2048):
        probs = tg.model.predict(windows_x[start:start + 2048], verbose=0)
        t = targets[start:start + 2048]
        known = t > 0
        nll -= float(np.log(np.maximum(probs[np.arange(len(t)), t][known], 1e-12)).sum())
        n += int(known.sum())
    print(json.dumps({"val_loss": nll / n, "targets_per_second": steps * 128 / elapsed, "seconds": elapsed, "scored": n}))
    """
)


def split(out: Path) -> tuple[Path, Path]:
    text = DATA.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    train, val = out / "train.txt", out / "val.txt"
    train.write_text(text[:cut], encoding="utf-8")
    val.write_text(text[cut:], encoding="utf-8")
    return train, val


def run_botkit(out: Path, minutes: float, val: Path) -> dict[str, float]:
    model = out / "botkit_model"
    botkit = [sys.executable, "-m", "botkit"]
    trained = subprocess.run([*botkit, "train", str(DATA), "--single-text", "--train-size", "0.9", "--minutes", str(minutes), "--sample-every", "0", "-o", str(model)], capture_output=True, text=True, check=True)
    rate = float(re.search(r"\(([0-9,]+) targets/s\)", trained.stdout).group(1).replace(",", ""))
    scored = subprocess.run([*botkit, "eval", str(model), str(val), "--single-text"], capture_output=True, text=True, check=True)
    nats = float(re.search(r"([0-9.]+) nats/character", scored.stdout).group(1))
    return {"val_loss": nats, "targets_per_second": rate}


def textgenrnn_python(out: Path) -> Path:
    venv = out / "textgenrnn-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *TEXTGENRNN_REQUIREMENTS], check=True)
    return python


def run_textgenrnn(out: Path, minutes: float, train: Path, val: Path) -> dict[str, float]:
    python = textgenrnn_python(out)
    env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(python), "-c", TEXTGENRNN_RUN, str(train), str(val), str(minutes * 60), str(out)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each tool (default 10)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--skip-textgenrnn", action="store_true", help="only run botkit")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train, val = split(args.out)
    results = {"botkit": run_botkit(args.out, args.minutes, val)}
    if not args.skip_textgenrnn:
        results["textgenrnn"] = run_textgenrnn(args.out, args.minutes, train, val)
    for name, r in results.items():
        print(f"{name:<11} val loss {r['val_loss']:.4f} nats/char   {r['targets_per_second']:>10,.0f} targets/s")
    if "textgenrnn" in results:
        b, t = results["botkit"], results["textgenrnn"]
        print(f"ratios      val loss {b['val_loss'] / t['val_loss']:.3f}×   targets/s {b['targets_per_second'] / t['targets_per_second']:.1f}×")


if __name__ == "__main__":
    main()
