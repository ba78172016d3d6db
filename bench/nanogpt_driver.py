"""Runs nanoGPT inside its own virtual environment (see ``nanogpt_env.py``); never imported by botkit.

nanoGPT's own scripts do the work, unmodified, each in a child process of this environment's
Python, with the bench's work folder as their current directory (``train.py`` reads
``configurator.py`` and ``data/<dataset>/`` from there, so the work folder gets a link to the
checkout's ``configurator.py`` and its own ``data/shakespeare_char/``; the checkout is only read).

The recipe is nanoGPT's README's CPU run of ``shakespeare_char``::

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1
        --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

nanoGPT has no time budget, so ``train`` fits the recipe's iteration count to one: a short
calibration run of the same recipe (outside the budget, like the other tools' set-up) measures
the time of an iteration and of an evaluation, and the budget run sets ``max_iters`` and
``lr_decay_iters`` (the cosine decay ends with the run, as the recipe has it) to what fits, with
``eval_interval`` the recipe's 250 adjusted so that the last evaluation, and so the last chance
to save a checkpoint, falls on the last iteration. When the budget run's training time misses the
budget by more than 10 % (a shared CPU whose pace changed after the calibration), it is run once
more, planned from that run's own pace, and the run closer to the budget is the one reported. The training
time is the sum of the iteration times ``train.py`` logs (``log_interval=1``): its whole training
loop, evaluations included.

Commands (each prints one JSON line on stdout):

* ``prepare CHECKOUT TEXT WORKDIR``: nanoGPT's ``data/shakespeare_char/prepare.py`` (linked into
  ``WORKDIR/data/shakespeare_char/`` beside a copy of TEXT as its ``input.txt``): its 90/10
  character split, ``train.bin``, ``val.bin`` and ``meta.pkl``.
* ``train CHECKOUT WORKDIR SECONDS``: calibration, then the recipe run in ``WORKDIR/out`` (a
  second one in ``WORKDIR/out-2``); ``ckpt.pt`` there is the checkpoint nanoGPT kept (its best
  evaluation). Logs in ``WORKDIR``. The result names the checkpoint of the run it reports.
* ``score CHECKOUT CKPT_PT WORKDIR CONTEXT_TXT VAL_TXT``: loads that checkpoint with the
  checkout's ``model.py`` (the vocabulary from ``WORKDIR``'s ``meta.pkl``) and scores every character of VAL_TXT given the ``block_size`` before it
  (the first ones take their context from the end of CONTEXT_TXT): mean -ln p, in nats/char.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RECIPE = {
    "device": "cpu", "compile": False, "eval_iters": 20, "log_interval": 1, "block_size": 64, "batch_size": 12,
    "n_layer": 4, "n_head": 4, "n_embd": 128, "max_iters": 2000, "lr_decay_iters": 2000, "dropout": 0.0,
}  # fmt: skip
CONFIG = "config/train_shakespeare_char.py"
EVAL_INTERVAL, WARMUP_ITERS = 250, 100  # the config file's
CALIBRATION_ITERS, CALIBRATION_EVAL_INTERVAL = 100, 25
STALL = 5  # an iteration over 5 × the median: the process was descheduled (a shared CPU)
ATTEMPTS, TOLERANCE = 2, 0.1  # a budget run off by more than 10 % is run once more, planned from its own pace
SCORE_BATCH = 256  # the fastest of 128-1024 on the 2-core CPU
ITER = re.compile(r"^iter (\d+): loss ([0-9.]+), time ([0-9.]+)ms")
EVAL = re.compile(r"^step (\d+): train loss ([0-9.]+), val loss ([0-9.]+)")


def _arg(value: object) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def _run_train(checkout: Path, workdir: Path, name: str, **overrides: object) -> dict[str, object]:
    """nanoGPT's ``train.py`` with the recipe and ``overrides``; its log parsed (``WORKDIR/NAME.log``)."""
    settings = {**RECIPE, **overrides}
    command = [sys.executable, str(checkout / "train.py"), str(checkout / CONFIG), *(f"--{k}={_arg(v)}" for k, v in settings.items())]
    log = workdir / f"{name}.log"
    began = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.monotonic() - began
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"nanoGPT train.py failed (exit {done.returncode}), {log}:\n" + "\n".join(text.splitlines()[-15:]))
    iters = [(int(m[1]), float(m[2]), float(m[3]) / 1000) for m in map(ITER.match, text.splitlines()) if m]
    evals = [(int(m[1]), float(m[2]), float(m[3])) for m in map(EVAL.match, text.splitlines()) if m]
    saved, last_eval = [], None  # the evaluations after which train.py saved a checkpoint
    for line in text.splitlines():
        if (m := EVAL.match(line)) is not None:
            last_eval = int(m[1])
        elif line.startswith("saving checkpoint") and last_eval is not None:
            saved.append(last_eval)
    return {"command": " ".join(command[1:]), "iters": iters, "evals": evals, "saved_at": saved, "wall": wall, "log": str(log)}


def prepare(checkout: Path, text: Path, workdir: Path) -> dict[str, object]:
    data = workdir / "data" / "shakespeare_char"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(text, data / "input.txt")
    for link, target in (
        (data / "prepare.py", checkout / "data" / "shakespeare_char" / "prepare.py"),
        (workdir / "configurator.py", checkout / "configurator.py"),
    ):
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    done = subprocess.run([sys.executable, str(data / "prepare.py")], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nanoGPT prepare.py failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    meta = pickle.loads((data / "meta.pkl").read_bytes())
    return {"vocab_size": meta["vocab_size"], "train_tokens": (data / "train.bin").stat().st_size // 2, "val_tokens": (data / "val.bin").stat().st_size // 2}


def _rates(run: dict[str, object], typical: Callable[[list[float]], float], typical_eval: Callable[[list[float]], float]) -> tuple[float, float]:
    """Seconds of an iteration and of an evaluation (its iteration's extra time) in a parsed run."""
    evaluated = {it for it, _, _ in run["evals"]}
    step = typical([dt for it, _, dt in run["iters"] if it >= 5 and it not in evaluated])
    evaluation = typical_eval([dt for it, _, dt in run["iters"] if it in evaluated and it > 0]) - step
    return step, max(evaluation, 0.0)


def _plan(seconds: float, step: float, evaluation: float) -> tuple[int, int]:
    """``max_iters`` and ``eval_interval``: N iterations and N / interval + 1 evaluations fill the budget,
    the interval is the recipe's 250 adjusted so that the last evaluation falls on iteration N."""
    fit = max(1, int((seconds - evaluation) / (step + evaluation / EVAL_INTERVAL)))
    intervals = max(1, round(fit / EVAL_INTERVAL))
    interval = max(1, fit // intervals)
    if intervals * interval == WARMUP_ITERS:  # train.py's cosine would divide by lr_decay_iters - warmup_iters = 0
        interval -= 1
    return intervals * interval, interval


def train(checkout: Path, workdir: Path, seconds: float) -> dict[str, object]:
    # Calibration: the recipe for a few iterations, evaluating every CALIBRATION_EVAL_INTERVAL.
    calib = _run_train(checkout, workdir, "calibration", max_iters=CALIBRATION_ITERS,
                       eval_interval=CALIBRATION_EVAL_INTERVAL, out_dir=str(workdir / "calibration"))  # fmt: skip
    step, evaluation = _rates(calib, statistics.median, min)  # a stall (see STALL) in so short a run would mislead
    calibration = {"seconds_per_iter": step, "seconds_per_eval": evaluation, "wall_seconds": calib["wall"]}
    attempts: list[dict[str, object]] = []
    for attempt in range(1, ATTEMPTS + 1):
        iters, interval = _plan(seconds, step, evaluation)
        name = "train" if attempt == 1 else f"train-{attempt}"
        out_dir = workdir / ("out" if attempt == 1 else f"out-{attempt}")
        (out_dir / "ckpt.pt").unlink(missing_ok=True)
        run = _run_train(checkout, workdir, name, max_iters=iters, lr_decay_iters=iters, eval_interval=interval, out_dir=str(out_dir))
        run.update(seconds=sum(dt for _, _, dt in run["iters"]), max_iters=iters, eval_interval=interval, out_dir=out_dir,
                   planned_from={"seconds_per_iter": step, "seconds_per_eval": evaluation})  # fmt: skip
        attempts.append(run)
        if abs(run["seconds"] - seconds) <= TOLERANCE * seconds:
            break
        # The machine's pace changed since the calibration (a shared CPU): plan again from this run's own mean pace.
        step, evaluation = _rates(run, statistics.fmean, statistics.fmean)
    run = min(attempts, key=lambda a: abs(a["seconds"] - seconds))  # the run closest to the budget is the one reported
    targets_per_iter = RECIPE["block_size"] * RECIPE["batch_size"]
    evaluated = {it for it, _, _ in run["evals"]}
    train_only = [dt for it, _, dt in run["iters"] if it not in evaluated]
    last = run["evals"][-1]
    median = statistics.median(train_only)
    stalls = [dt for dt in train_only if dt > STALL * median]
    return {
        "steps": len(run["iters"]), "seconds": run["seconds"], "wall_seconds": run["wall"],
        "targets_per_second": len(train_only) * targets_per_iter / sum(train_only), "targets_per_step": targets_per_iter,
        "median_targets_per_second": targets_per_iter / median, "stalls": {"iterations": len(stalls), "seconds": round(sum(stalls), 1)},
        "max_iters": run["max_iters"], "eval_interval": run["eval_interval"], "checkpoint": str(run["out_dir"] / "ckpt.pt"),
        "checkpoint_iter": run["saved_at"][-1] if run["saved_at"] else None,
        "own_last_eval": {"iter": last[0], "train_loss": last[1], "val_loss": last[2]}, "own_best_val_loss": min(v for _, _, v in run["evals"]),
        "attempts": [{**{k: a[k] for k in ("max_iters", "eval_interval", "planned_from", "log")}, "seconds": round(a["seconds"], 1)} for a in attempts],
        "calibration": calibration, "command": run["command"], "log": run["log"],
    }  # fmt: skip


def score(checkout: Path, checkpoint_pt: Path, workdir: Path, context_txt: Path, val_txt: Path) -> dict[str, object]:
    import numpy as np
    import torch

    sys.path.insert(0, str(checkout))
    from model import GPT, GPTConfig

    checkpoint = torch.load(checkpoint_pt, map_location="cpu")
    model = GPT(GPTConfig(**checkpoint["model_args"]))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    block = model.config.block_size
    stoi = pickle.loads((workdir / "data" / "shakespeare_char" / "meta.pkl").read_bytes())["stoi"]
    val = val_txt.read_text(encoding="utf-8")
    text = context_txt.read_text(encoding="utf-8")[-block:] + val
    ids = np.array([stoi[c] for c in text], np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], block)
    targets = torch.from_numpy(ids[block:])
    nats = 0.0
    began = time.monotonic()
    with torch.inference_mode():
        for start in range(0, len(targets), SCORE_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(windows[start : start + SCORE_BATCH]))
            logits, _ = model(x)  # without targets: the logits at the last position only
            logp = torch.log_softmax(logits[:, -1, :].double(), dim=-1)
            nats -= float(logp.gather(1, targets[start : start + SCORE_BATCH, None]).sum())
    return {"val_loss": nats / len(targets), "scored": len(targets), "context": block, "checkpoint_iter": checkpoint["iter_num"],
            "parameters": model.get_num_params(), "seconds": time.monotonic() - began}  # fmt: skip


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "prepare":
        result = prepare(Path(args[0]), Path(args[1]), Path(args[2]))
    elif command == "train":
        result = train(Path(args[0]), Path(args[1]), float(args[2]))
    elif command == "score":
        result = score(Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]), Path(args[4]))
    else:
        raise SystemExit(f"unknown command {command!r}: prepare, train or score")
    if isinstance(result.get("seconds"), float):
        result["seconds"] = round(result["seconds"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
