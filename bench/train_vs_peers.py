"""botkit vs textgenrnn 2.0.0 vs a small nanoGPT transformer on tiny Shakespeare: same split, same budget, same machine.

    .venv/bin/python bench/train_vs_peers.py --minutes 5
    .venv/bin/python bench/train_vs_peers.py --minutes 10 --tools botkit,nanogpt --json bench/out/train_vs_peers_10min.json
    .venv/bin/python bench/train_vs_peers.py --nanogpt ~/src/nanoGPT      # your own nanoGPT clone

Split: first 90 % of the characters train, last 10 % validate (nanoGPT's own split). The tools run
one after the other in one invocation, each for the same training budget, each with its own
recipe in its own environment; the script measures the machine first, then prints one table of
validation loss (nats/char) at the budget, training targets/s, steps and the ratios against
botkit, and writes the figures to ``bench/out/train_vs_peers.json`` (``--json``).

* botkit and textgenrnn: exactly as ``train_vs_textgenrnn.py`` runs them (its functions are used
  here): ``botkit train --single-text --train-size 0.9 --minutes M`` then ``botkit eval`` of the
  last 10 % (windows of 128 overlapping by half, so each character has 64-128 characters of
  context); textgenrnn's ``train_new_model`` with its defaults, stopped at the budget, each
  held-out character scored after the 40 before it.
* nanoGPT (``nanogpt_env.py``, ``nanogpt_driver.py``): its own ``train.py`` with its README's CPU
  recipe for ``shakespeare_char`` (4 layers, 4 heads, 128 wide, block 64, batch 12, no dropout,
  AdamW 1e-3 with cosine decay), ``max_iters`` and ``lr_decay_iters`` fitted to the budget from a
  short calibration run; its data from its own ``prepare.py`` (the same 90/10 split; its
  vocabulary covers every character of the text). Each held-out character is scored after the
  64 before it (its block size), from the checkpoint nanoGPT kept (its best evaluation). Targets/s:
  block_size × batch_size = 768 per iteration, over the iterations without an evaluation.

Set-up (environments, vocabularies, data preparation, nanoGPT's calibration) and scoring are
outside every budget. The CPU may be shared: the load average is recorded before and after, and
the figures are then lower bounds; the ratios of one run are what compare.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nanogpt_env
import peer_env
from textgenrnn_env import REQUIREMENTS as TEXTGENRNN_REQUIREMENTS
from train_vs_textgenrnn import DATA, run_botkit, run_textgenrnn, split

TOOLS = ("botkit", "textgenrnn", "nanogpt")
NAMES = {"botkit": "botkit (defaults)", "textgenrnn": "textgenrnn 2.0.0", "nanogpt": "nanoGPT (CPU recipe)"}


def botkit_side(data: Path, val: Path, out: Path, minutes: float) -> dict[str, Any]:
    result = run_botkit(data, val, out, minutes)
    training = json.loads((out / "botkit_model" / "config.json").read_text())["training"]
    return {**result, "targets_per_step": training["batch_size"] * training["window"]}


def textgenrnn_side(train: Path, val: Path, out: Path, minutes: float) -> dict[str, Any]:
    return {**run_textgenrnn(train, val, out, minutes), "targets_per_step": 128}  # its batch of windows, one target each


def nanogpt_side(checkout: Path, train: Path, val: Path, work: Path, minutes: float) -> dict[str, Any]:
    trained = nanogpt_env.run_driver("train", checkout, work, minutes * 60, cwd=work)
    scored = nanogpt_env.run_driver("score", checkout, trained["checkpoint"], work, train, val, cwd=work)
    return {
        "val_loss": scored["val_loss"], "targets_per_second": trained["targets_per_second"], "steps": trained["steps"],
        "train_seconds": round(trained["seconds"], 1), "targets_per_step": trained["targets_per_step"], "max_iters": trained["max_iters"],
        "eval_interval": trained["eval_interval"], "checkpoint_iter": scored["checkpoint_iter"], "own_best_val_loss": trained["own_best_val_loss"],
        "parameters": scored["parameters"], "calibration": trained["calibration"], "command": trained["command"], "score_seconds": scored["seconds"],
        "attempts": trained["attempts"], "median_targets_per_second": trained["median_targets_per_second"], "stalls": trained["stalls"],
    }  # fmt: skip


def table(results: dict[str, dict[str, Any]]) -> str:
    """One row a tool; the last columns compare it with botkit (loss difference and ratios botkit / tool)."""
    head = f"{'tool':<22} {'val nats/char':>13} {'targets/s':>10} {'steps':>7} {'targets/step':>12} {'train s':>7}"
    lines = [head + (f" {'botkit - tool':>13} {'loss botkit/tool':>16} {'rate botkit/tool':>16}" if "botkit" in results else "")]
    b = results.get("botkit")
    for name, r in results.items():
        line = f"{NAMES[name]:<22} {r['val_loss']:>13.4f} {r['targets_per_second']:>10,.0f} {r['steps']:>7,} {r['targets_per_step']:>12,} {r['train_seconds']:>7.0f}"
        if b is not None and name != "botkit":
            line += (
                f" {b['val_loss'] - r['val_loss']:>+13.4f} {b['val_loss'] / r['val_loss']:>15.3f}× {b['targets_per_second'] / r['targets_per_second']:>15.2f}×"
            )
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of each tool (default 5)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)} (default: all)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the text (default {DATA})")
    parser.add_argument("--nanogpt", type=Path, help="your nanoGPT checkout (default: bench/out/nanoGPT, cloned on first use)")
    parser.add_argument("--out", type=Path, default=peer_env.HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--json", type=Path, help="where the figures go (default OUT/train_vs_peers.json)")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := sorted(set(tools) - set(TOOLS)):
        raise SystemExit(f"--tools: unknown {', '.join(unknown)} (choose among {', '.join(TOOLS)})")
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found; give the tiny Shakespeare text with --data")
    out = (args.out / "train_vs_peers").resolve()
    out.mkdir(parents=True, exist_ok=True)
    train, val = split(args.data, out)

    # Everything that is set-up comes first: environments, the checkout, nanoGPT's data; then the machine.
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "botkit": lambda: botkit_side(args.data, val, out, args.minutes),
        "textgenrnn": lambda: textgenrnn_side(train, val, out, args.minutes),
    }
    nanogpt: dict[str, Any] = {}
    if "nanogpt" in tools:
        checkout = nanogpt_env.checkout(args.nanogpt)
        work = out / "nanogpt"
        work.mkdir(exist_ok=True)
        nanogpt_env.python()
        nanogpt = {"checkout": str(checkout), "revision": nanogpt_env.revision(checkout), "environment": nanogpt_env.REQUIREMENTS}
        nanogpt["data"] = nanogpt_env.run_driver("prepare", checkout, args.data, work, cwd=work)
        runs["nanogpt"] = lambda: nanogpt_side(checkout, train, val, work, args.minutes)
    machine = peer_env.machine()
    print(f"{args.data.name}: {train.stat().st_size:,} characters train, {val.stat().st_size:,} validation; {args.minutes:g} min each; {', '.join(tools)}")
    print(f"machine: {peer_env.machine_line(machine)}", flush=True)

    results: dict[str, dict[str, Any]] = {}
    for name in TOOLS:
        if name in tools:
            began = time.monotonic()
            results[name] = runs[name]()
            results[name]["wall_seconds"] = round(time.monotonic() - began)
            r = results[name]
            print(
                f"{name}: {r['val_loss']:.4f} nats/char, {r['targets_per_second']:,.0f} targets/s; done in {r['wall_seconds']} s (set-up, training, scoring)",
                flush=True,
            )
    load_after = os.getloadavg()[0]
    print(
        f"\nvalidation loss at equal budget ({args.minutes:g} min of training each), tiny Shakespeare 90/10; load {machine['load_average']:.1f} before, {load_after:.1f} after"
    )
    print(f"machine: {peer_env.machine_line(machine)}")
    print(table(results))
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "minutes": args.minutes, "data": str(args.data), "machine": machine,
        "load_average_before": machine["load_average"], "load_average_after": load_after, "results": results,
    }  # fmt: skip
    if "botkit" in results:
        report["vs_botkit"] = {
            name: {"val_loss_difference": results["botkit"]["val_loss"] - r["val_loss"], "val_loss_ratio": results["botkit"]["val_loss"] / r["val_loss"],
                   "targets_per_second_ratio": results["botkit"]["targets_per_second"] / r["targets_per_second"]}
            for name, r in results.items() if name != "botkit"
        }  # fmt: skip
    if "textgenrnn" in results:
        report["textgenrnn_environment"] = TEXTGENRNN_REQUIREMENTS
    if nanogpt:
        report["nanogpt"] = nanogpt
    path = args.json or args.out / "train_vs_peers.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
