"""The shipped base model against training from scratch: short titles, same data, same budget.

    .venv/bin/python bench/base_finetune.py                       # Hacker News titles, 2 minutes each
    .venv/bin/python bench/base_finetune.py --data ../shared/data/reddit_rarepuppers_politics_2000.txt

The first ``--train-lines`` lines of ``--data`` (1,800; a first line ``title`` is a CSV-style header
and is dropped) go to ``train.txt``, the last ``--held-out`` lines (200) to ``held_out.txt``, one
title a line. Then, through the CLI of this environment, one after the other:

    botkit train train.txt --from base -o from_base --minutes 2 --sample-every 0
    botkit train train.txt -o scratch --minutes 2 --sample-every 0
    botkit eval MODEL held_out.txt           # each model
    botkit generate MODEL -n 5               # each model, default sampling and filters

(defaults otherwise: char level, 2 × 128 LSTM from scratch, the base model's shape with --from;
``--sample-every 0`` only keeps the trainer's sample printing out of the budget). The script
prints both held-out cross-entropies (nats/char), their difference and the samples, and writes
``bench/out/base_finetune.json`` (``--json``).

The base model's own training texts are listed in ``weights/base/BUILD.md`` with their sha256; the
script says when ``--data`` is one of them, since its held-out lines were then seen by the base model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import peer_env
from train_vs_textgenrnn import botkit

DATA = peer_env.HERE.parent.parent / "shared" / "data" / "hacker_news_2000.txt"  # ../shared beside the checkout
BASE_BUILD = peer_env.HERE.parent / "weights" / "base" / "BUILD.md"


def split(data: Path, out: Path, train_lines: int, held_out: int) -> tuple[Path, Path, int, int]:
    lines = data.read_text(encoding="utf-8").splitlines()
    if len(lines) < train_lines + held_out:
        raise SystemExit(f"{data}: {len(lines)} lines, fewer than --train-lines + --held-out")
    head = lines[:train_lines]
    if head and head[0].strip().lower() == "title":
        head = head[1:]
    train, test = out / "train.txt", out / "held_out.txt"
    train.write_text("\n".join(head) + "\n", encoding="utf-8")
    test.write_text("\n".join(lines[-held_out:]) + "\n", encoding="utf-8")
    return train, test, len(head), held_out


def side(name: str, train: Path, held_out: Path, out: Path, minutes: float, samples: int, base: bool) -> dict[str, Any]:
    model = out / name
    began = time.monotonic()
    summary = botkit("train", str(train), *(["--from", "base"] if base else []), "-o", str(model), "--minutes", str(minutes), "--sample-every", "0")
    wall = time.monotonic() - began
    rate = re.search(r"(\d+) epoch\(s\), ([0-9,]+) steps, .* \(([0-9,]+) targets/s\)", summary)
    evaluated = botkit("eval", str(model), str(held_out))
    scored = re.search(r"([0-9.]+) nats/character", evaluated)
    count = re.search(r"([0-9,]+) characters scored", evaluated)
    if rate is None or scored is None:
        raise SystemExit(f"unexpected botkit output:\n{summary}\n{evaluated}")
    generated = botkit("generate", str(model), "-n", str(samples)).splitlines()
    result = json.loads((model / "config.json").read_text())["training"]["result"]
    return {
        "held_out_nats_per_char": float(scored.group(1)), "characters_scored": int(count.group(1).replace(",", "")) if count else None,
        "epochs": int(rate.group(1)), "steps": int(rate.group(2).replace(",", "")), "targets_per_second": float(rate.group(3).replace(",", "")),
        "train_seconds": result["seconds"], "own_best_val_loss": result["best_val_loss"], "train_wall_seconds": round(wall),
        "summary": summary.strip(), "eval": evaluated.strip(), "samples": generated,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"titles, one a line (default {DATA})")
    parser.add_argument("--train-lines", type=int, default=1800, help="the first N lines train (default 1800; a header line among them is dropped)")
    parser.add_argument("--held-out", type=int, default=200, help="the last N lines are held out (default 200)")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget of each model (default 2)")
    parser.add_argument("-n", type=int, default=5, help="samples generated from each model (default 5)")
    parser.add_argument("--out", type=Path, default=peer_env.HERE / "out", help="work folder (default bench/out)")
    parser.add_argument("--json", type=Path, help="where the figures go (default OUT/base_finetune.json)")
    args = parser.parse_args()
    out = (args.out / "base_finetune" / args.data.stem).resolve()
    out.mkdir(parents=True, exist_ok=True)
    train, held_out, n_train, n_held = split(args.data, out, args.train_lines, args.held_out)
    machine = peer_env.machine()
    seen = BASE_BUILD.exists() and hashlib.sha256(args.data.read_bytes()).hexdigest()[:20] in BASE_BUILD.read_text(encoding="utf-8")
    print(f"{args.data.name}: {n_train:,} titles train, the last {n_held} held out; {args.minutes:g} min each")
    print(f"machine: {peer_env.machine_line(machine)}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name, base in (("from_base", True), ("scratch", False)):
        results[name] = side(name, train, held_out, out, args.minutes, args.n, base)
        r = results[name]
        print(
            f"{name}: {r['held_out_nats_per_char']:.4f} nats/char held out; {r['epochs']} epochs, {r['steps']:,} steps, {r['targets_per_second']:,.0f} targets/s",
            flush=True,
        )
    b, s = results["from_base"], results["scratch"]
    print(f"\nheld-out cross-entropy after {args.minutes:g} min of training each ({b['characters_scored']:,} characters)")
    print(f"machine: {peer_env.machine_line(machine)}")
    print(f"{'model':<30} {'held-out nats/char':>18} {'epochs':>6} {'steps':>6} {'targets/s':>10} {'own val':>8}")
    for label, r in (("botkit train --from base", b), ("botkit train (from scratch)", s)):
        print(
            f"{label:<30} {r['held_out_nats_per_char']:>18.4f} {r['epochs']:>6} {r['steps']:>6,} {r['targets_per_second']:>10,.0f} {r['own_best_val_loss']:>8.4f}"
        )
    difference = b["held_out_nats_per_char"] - s["held_out_nats_per_char"]
    print(f"difference (from base - from scratch): {difference:+.4f} nats/char")
    if seen:
        print(
            f"note: {BASE_BUILD.relative_to(peer_env.HERE.parent)} lists {args.data.name} (by its sha256) among the base model's training texts: its held-out lines were seen by the base model"
        )
    for label, r in (("from base", b), ("from scratch", s)):
        print(f"\nsamples, {label} (botkit generate -n {args.n}):")
        print("\n".join(f"  {line}" for line in r["samples"]))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "data": str(args.data), "train_titles": n_train, "held_out_titles": n_held,
        "minutes": args.minutes, "machine": machine, "held_out_seen_by_base": seen, "difference": difference, "results": results,
    }  # fmt: skip
    path = args.json or args.out / "base_finetune.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
