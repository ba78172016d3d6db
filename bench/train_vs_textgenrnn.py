"""botkit vs textgenrnn 2.0.0 on tiny Shakespeare: same split, same wall-clock budget, same machine.

    .venv/bin/python bench/train_vs_textgenrnn.py --minutes 10

Split: first 90 % of the characters train, last 10 % validate (nanoGPT's split). The two tools
run one after the other in one invocation, each for the same training budget; the script prints
a table of each tool's validation loss (nats/char) and training targets per second, and the
ratios, and writes the figures to ``bench/out/train_vs_textgenrnn.json``.

* botkit: ``botkit train tinyshakespeare.txt --single-text --train-size 0.9 --minutes M`` (the
  default model and schedule; its own validation split is the same last 10 %), then ``botkit eval``
  of ``val.txt`` (windows of the trained length, overlapping by half). Targets/s: the trainer's
  summary line (tokens trained / time inside training steps).
* textgenrnn: in its own environment under ``bench/out/`` (created on first use, see
  ``textgenrnn_env.py``; the compat shims it needs are in ``textgenrnn_driver.py``), its own
  ``train_new_model`` with its defaults (2 × 128 LSTM, 40-character windows, batch 128, Adam
  4e-3; one epoch, which at this budget it does not finish, so its per-epoch LR decay never
  starts) on ``train.txt``, stopped when the budget is spent. Its validation loss is the mean
  -ln p of every character of ``val.txt`` given the 40 before it (the context it trains and
  generates with). Targets/s: windows trained (one target each) / training time.

Training set-up (vocabulary, window index, tracing) is outside both budgets. Not a timed test:
it takes about twice the budget plus 3-4 minutes (set-up and scoring). The CPU may be shared:
the load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from textgenrnn_env import HERE, REQUIREMENTS, run_driver

DATA = Path("/work/shared/data/tinyshakespeare.txt")
TRAIN_SHARE = 0.9


def split(data: Path, out: Path) -> tuple[Path, Path]:
    """``train.txt`` (first 90 % of the characters) and ``val.txt`` (the rest) in ``out``."""
    text = data.read_text(encoding="utf-8")
    cut = int(len(text) * TRAIN_SHARE)
    train, val = out / "train.txt", out / "val.txt"
    train.write_text(text[:cut], encoding="utf-8")
    val.write_text(text[cut:], encoding="utf-8")
    return train, val


def botkit(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the botkit CLI of this environment (``env``: variables to add); its stdout (its stderr on failure)."""
    done = subprocess.run([sys.executable, "-m", "botkit", *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"botkit {args[0]} failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    return done.stdout


def run_botkit(data: Path, val: Path, out: Path, minutes: float) -> dict[str, Any]:
    model = out / "botkit_model"
    summary = botkit("train", str(data), "--single-text", "--train-size", str(TRAIN_SHARE), "--minutes", str(minutes), "--sample-every", "0", "-o", str(model))
    rate = re.search(r"\(([0-9,]+) targets/s\)", summary)
    scored = re.search(r"([0-9.]+) nats/character", botkit("eval", str(model), str(val), "--single-text"))
    if rate is None or scored is None:
        raise SystemExit(f"unexpected botkit output:\n{summary}")
    result = json.loads((model / "config.json").read_text())["training"]["result"]
    return {
        "val_loss": float(scored.group(1)),
        "targets_per_second": float(rate.group(1).replace(",", "")),
        "steps": result["step"],
        "train_seconds": result["seconds"],
        "own_best_val_loss": result["best_val_loss"],  # on its token split, windows of 128
    }


def run_textgenrnn(train: Path, val: Path, out: Path, minutes: float) -> dict[str, Any]:
    work = out / "textgenrnn_model"
    trained = run_driver("train", train, minutes * 60, work, cwd=out)
    scored = run_driver("score", work, train, val, cwd=out)
    return {
        "val_loss": scored["val_loss"],
        "targets_per_second": trained["targets_per_second"],
        "steps": trained["steps"],
        "train_seconds": round(trained["seconds"], 1),
        "unscored_chars": scored["unscored"],
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'tool':<22} {'val loss (nats/char)':>20} {'targets/s':>11} {'steps':>8} {'train s':>8}"]
    for name, r in results.items():
        lines.append(f"{name:<22} {r['val_loss']:>20.4f} {r['targets_per_second']:>11,.0f} {r['steps']:>8,} {r['train_seconds']:>8.0f}")
    if len(results) == 2:
        b, t = results["botkit"], results["textgenrnn"]
        lines.append(f"{'botkit / textgenrnn':<22} {b['val_loss'] / t['val_loss']:>19.3f}× {b['targets_per_second'] / t['targets_per_second']:>10.1f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each tool (default 10)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the text (default {DATA})")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--skip-textgenrnn", action="store_true", help="only run botkit")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found; give the tiny Shakespeare text with --data")
    out = args.out / "train_vs_textgenrnn"
    out.mkdir(parents=True, exist_ok=True)
    train, val = split(args.data, out)
    load_before = os.getloadavg()[0]
    print(
        f"{args.data.name}: {train.stat().st_size:,} bytes train, {val.stat().st_size:,} validation; {args.minutes:g} min each; "
        f"{os.cpu_count()} CPU(s), load {load_before:.1f}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for name, run in (("botkit", lambda: run_botkit(args.data, val, out, args.minutes)), ("textgenrnn", lambda: run_textgenrnn(train, val, out, args.minutes))):
        if name == "textgenrnn" and args.skip_textgenrnn:
            continue
        began = time.monotonic()
        results[name] = run()
        print(f"{name}: done in {time.monotonic() - began:.0f} s (set-up, training, scoring)", flush=True)
    print(table(results))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "minutes": args.minutes,
        "data": str(args.data),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "textgenrnn_environment": REQUIREMENTS,
        "results": results,
    }
    if len(results) == 2:
        report["ratios"] = {key: results["botkit"][key] / results["textgenrnn"][key] for key in ("val_loss", "targets_per_second")}
    path = args.out / "train_vs_textgenrnn.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
