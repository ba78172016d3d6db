"""``botkit eval`` of an imported textgenrnn model vs textgenrnn's own cross-entropy, on a model textgenrnn trained.

    .venv/bin/python bench/textgenrnn_eval_parity.py [--rnn-size 128] [--rnn-layers 2] [--seconds 0]

Issue 9: a model textgenrnn 2.0.0 trained on 1,800 Reddit titles (line-delimited, ``new_model=True``)
and brought in with ``botkit import-textgenrnn`` scored 4.11 nats/char under ``botkit eval`` where
textgenrnn scores the same held-out titles at 1.75. ``textgenrnn_parity.py`` only checks the
shipped model's probabilities on single windows; this bench checks the whole number on a model a
user trained:

1. titles: ``botkit/data/reddit_titles.csv``'s ``title`` column (or ``--titles`` a text file, one
   a line); the first ``--train`` (1,800) go to ``train.txt``, the next ``--held-out`` (200) to
   ``held_out.txt``, one a line.
2. textgenrnn, in its own environment (``textgenrnn_env.py``), ``train_from_file(train.txt,
   header=False, new_model=True)`` for one epoch with its defaults (2 × 128 LSTM, 40-token
   windows, 100-d embedding, batch 128, Adam 4e-3; ``--rnn-size``/``--rnn-layers`` to change the
   LSTM, ``--seconds`` to cut the epoch short); it saves its weights, vocab and config. On 2
   shared cores the epoch (about 700 steps on 1,800 Reddit titles) takes a minute or two.
3. textgenrnn's own number: the driver's ``doc-score`` builds every (window, target) pair of
   ``held_out.txt`` with textgenrnn's training generator (``<s>`` title ``<s>``; every token after
   the first a target, the closing ``<s>`` included, targets outside its vocabulary skipped; the
   41 tokens before it, unknown ones dropped by its tokenizer, the last 40 kept, left-padded
   with 0) and averages -ln p from its Keras model.
4. botkit's number: ``botkit import-textgenrnn`` of the three files, then ``botkit eval MODEL
   held_out.txt``, both through the real CLI (``.venv/bin/botkit``), its output parsed.

Passes when the two means agree to within 1e-3 nats/char and count the same targets. Figures
go to ``bench/out/textgenrnn_eval_parity.json``. Takes one textgenrnn epoch plus about a minute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import time
from pathlib import Path

from textgenrnn_env import HERE, REQUIREMENTS, run_driver

ROOT = HERE.parent
TITLES = ROOT / "botkit" / "data" / "reddit_titles.csv"
BOTKIT = ROOT / ".venv" / "bin" / "botkit"
TOLERANCE = 1e-3


def read_titles(path: Path) -> list[str]:
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return [row["title"] for row in csv.DictReader(f)]
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[1:] if lines and lines[0].strip().lower() == "title" else lines  # a one-word header line


def botkit(*args: str) -> str:
    """The real CLI, as a user runs it; its stdout (stderr too on failure)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(BOTKIT), *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"botkit {args[0]} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def in_process(imported: Path, held_out: Path) -> dict[str, float]:
    """The same evaluation in this process, at full precision (``botkit eval`` prints 4 decimals), and
    for contrast botkit's own framing (:class:`Scorer`: overlapping windows of the document stream,
    no left padding), which is what ``botkit eval`` did to imported models before ``TextgenrnnScorer``."""
    import tempfile

    from botkit.model import saving
    from botkit.model.data import Split, encode
    from botkit.model.evaluate import Scorer, evaluate_file

    report = evaluate_file(imported, held_out)
    saved = saving.load(imported)
    with tempfile.TemporaryDirectory(prefix="eval-parity-") as tmp:
        stream = encode([held_out], saved.vocab, False, Path(tmp), purpose="evaluate")
        native = Scorer(saved.model, saved.config, int(saved.training["window"])).score(Split(stream, 0, len(stream)))
    return {"val_loss": report.score.mean, "targets": report.score.targets, "skipped": report.score.skipped,
            "botkit_framing_val_loss": native.mean, "botkit_framing_targets": native.targets}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--titles", type=Path, default=TITLES, help=f"a .csv with a title column, or a text file one title a line (default {TITLES.relative_to(ROOT)})"
    )
    parser.add_argument("--train", type=int, default=1800, help="titles textgenrnn trains on (default 1800)")
    parser.add_argument("--held-out", type=int, default=200, help="the titles after those, scored (default 200)")
    parser.add_argument("--rnn-size", type=int, default=128, help="textgenrnn's rnn_size (default 128, its own default)")
    parser.add_argument("--rnn-layers", type=int, default=2, help="textgenrnn's rnn_layers (default 2)")
    parser.add_argument("--seconds", type=float, default=0, help="stop textgenrnn's epoch after this many seconds of training (default 0: the whole epoch)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work folder (default bench/out)")
    args = parser.parse_args()
    args.out, args.titles = args.out.resolve(), args.titles.resolve()  # the drivers run in another folder
    work = args.out / "eval_parity"
    work.mkdir(parents=True, exist_ok=True)

    titles = [t for t in read_titles(args.titles) if t.strip()]
    train, held_out = titles[: args.train], titles[args.train : args.train + args.held_out]
    if "\\" in "".join(held_out) or any("\n" in t or "\r" in t for t in held_out):
        print("note: a held-out title holds a backslash or newline, which a .txt corpus escapes; botkit reads such lines differently", flush=True)
    (work / "train.txt").write_text("".join(t + "\n" for t in train), encoding="utf-8")
    (work / "held_out.txt").write_text("".join(t + "\n" for t in held_out), encoding="utf-8")
    print(f"{args.titles.name}: {len(train):,} titles train, {len(held_out):,} held out ({sum(map(len, held_out)):,} characters); "
          f"textgenrnn {args.rnn_layers} × {args.rnn_size} LSTM, 1 epoch{f' (at most {args.seconds:g} s)' if args.seconds else ''}; "
          f"{os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip

    began = time.monotonic()
    model = work / "textgenrnn_model"
    trained = run_driver("train-lines", work / "train.txt", model, args.rnn_size, args.rnn_layers, args.seconds, cwd=work)
    print(f"textgenrnn trained: {trained['steps']:,} steps of 128 windows in {trained['seconds']:.0f} s ({trained['windows_per_second']:,.0f} windows/s), "
          f"vocabulary {trained['vocab']} tokens ({time.monotonic() - began:.0f} s with set-up)", flush=True)  # fmt: skip
    theirs = run_driver("doc-score", model, work / "held_out.txt", work / "textgenrnn_logp.npy", cwd=work)
    print(f"textgenrnn's own score: {theirs['val_loss']:.6f} nats/char over {theirs['targets']:,} targets "
          f"({theirs['end_targets']} of them the closing <s>; {theirs['unscored']} targets outside its vocabulary skipped; "
          f"{theirs['padded_windows']:,} windows left-padded)", flush=True)  # fmt: skip

    imported = work / "imported"
    print(
        botkit(
            "import-textgenrnn", str(model / "bench_weights.hdf5"), str(model / "bench_vocab.json"), str(model / "bench_config.json"), "-o", str(imported)
        ).strip()
    )
    output = botkit("eval", str(imported), str(work / "held_out.txt"))
    print("botkit eval:\n  " + output.strip().replace("\n", "\n  "), flush=True)
    scored = re.search(r"([0-9,]+) characters scored", output)
    mean = re.search(r"cross-entropy: ([0-9.]+) nats/character", output)
    skipped = re.search(r"warning: ([0-9,]+) character\(s\) are not in the model's vocabulary and were not scored", output)
    if scored is None or mean is None:
        raise SystemExit("could not read botkit eval's output")
    ours = {
        "val_loss": float(mean.group(1)),
        "targets": int(scored.group(1).replace(",", "")),
        "skipped": int(skipped.group(1).replace(",", "")) if skipped else 0,
    }

    exact = in_process(imported, work / "held_out.txt")
    print(f"the same in-process (botkit.model.evaluate.evaluate_file): {exact['val_loss']:.6f} nats/char over {exact['targets']:,} targets; "
          f"botkit's own stream framing (Scorer, no left padding: eval before TextgenrnnScorer) would say {exact['botkit_framing_val_loss']:.4f} "
          f"over {exact['botkit_framing_targets']:,}", flush=True)  # fmt: skip

    diff = ours["val_loss"] - theirs["val_loss"]
    exact_diff = exact["val_loss"] - theirs["val_loss"]
    same_targets = ours["targets"] == theirs["targets"]
    passed = abs(diff) <= TOLERANCE and abs(exact_diff) <= TOLERANCE and same_targets
    print(f"\n{'':<26} {'nats/char':>10} {'targets':>8} {'skipped':>8}")
    print(f"{'textgenrnn (own framing)':<26} {theirs['val_loss']:>10.4f} {theirs['targets']:>8,} {theirs['unscored']:>8,}")
    print(f"{'botkit eval (imported)':<26} {ours['val_loss']:>10.4f} {ours['targets']:>8,} {ours['skipped']:>8,}")
    print(f"{'botkit, in-process':<26} {exact['val_loss']:>10.6f} {exact['targets']:>8,} {exact['skipped']:>8,}")
    print(f"difference (botkit - textgenrnn): {diff:+.4f} nats/char as botkit eval prints it (4 decimals), {exact_diff:+.2e} in-process; "
          f"targets {ours['targets'] - theirs['targets']:+,}; "
          f"target |Δ| ≤ {TOLERANCE:g} and equal counts: {'PASS' if passed else 'FAIL'}")  # fmt: skip
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "titles": str(args.titles), "train_titles": len(train), "held_out_titles": len(held_out),
        "textgenrnn_environment": REQUIREMENTS, "textgenrnn_training": trained, "textgenrnn": theirs, "botkit_eval": ours, "botkit_in_process": exact,
        "difference": diff, "difference_in_process": exact_diff, "tolerance": TOLERANCE, "passed": passed,
    }  # fmt: skip
    (args.out / "textgenrnn_eval_parity.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
