"""What decides botkit's training rate on a small CPU: threads, input pipeline, callbacks, XLA, shape.

    .venv/bin/python bench/train_rate.py                  # about 10 minutes on 2 cores
    .venv/bin/python bench/train_rate.py --seconds 30     # shorter runs, rougher figures

Each row trains the default char model on tiny Shakespeare (first 90 %) for ``--seconds`` and
reports training targets per second (targets: every position of every window is one), one after
the other in one invocation, so the rows are comparable with each other (the load average is
printed before and after; other work on the machine lowers all of them).

* ``botkit train`` rows: the CLI as a user runs it, with one thing changed per row (a TensorFlow
  thread count through ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS``, the batch and window
  shape, the LSTM width). The rate is the trainer's own (targets / seconds inside training steps).
* Probes in this process: the input pipeline alone (botkit's ``tf.data`` windows, no model: the
  ceiling it puts on the rate); the same network under a plain ``keras.Model.fit`` with no
  callbacks at all (what botkit's callbacks and validation cost); and that fit with
  ``jit_compile=True`` (XLA; Keras leaves it off on a machine with only CPUs).

Figures go to ``bench/out/train_rate.json``. Not a timed test.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import peer_env
from train_vs_textgenrnn import botkit

DATA = peer_env.HERE.parent / "botkit" / "data" / "tinyshakespeare.txt"
BATCH, WINDOW = 32, 128  # botkit's defaults

#: (row name, extra ``botkit train`` flags, extra environment)
CLI_ROWS: list[tuple[str, list[str], dict[str, str]]] = [
    ("defaults: batch 32 x window 128, 2 x 128 LSTM", [], {}),
    ("1 intra-op thread (TF_NUM_INTRAOP_THREADS=1)", [], {"TF_NUM_INTRAOP_THREADS": "1"}),
    ("1 inter-op thread (TF_NUM_INTEROP_THREADS=1)", [], {"TF_NUM_INTEROP_THREADS": "1"}),
    ("batch 64 x window 64", ["--batch-size", "64", "--window", "64"], {}),
    ("batch 64 x window 128", ["--batch-size", "64"], {}),
    ("batch 16 x window 256", ["--batch-size", "16", "--window", "256"], {}),
    ("2 x 256 LSTM", ["--rnn-size", "256"], {}),
]


def cli_row(data: Path, model: Path, seconds: float, flags: list[str], env: dict[str, str]) -> float:
    """Targets/s that ``botkit train`` reports for a run of ``seconds``, the model written to ``model``."""
    args = ["train", str(data), "--single-text", "--train-size", "0.9", "--minutes", f"{seconds / 60:.4f}", "--sample-every", "0", "-o", str(model), *flags]
    summary = botkit(*args, env=env)
    rate = re.search(r"\(([0-9,]+) targets/s\)", summary)
    if rate is None:
        raise SystemExit(f"unexpected botkit output:\n{summary}")
    return float(rate.group(1).replace(",", ""))


def probes(data: Path, work: Path, seconds: float) -> dict[str, float]:
    """The in-process rows: input pipeline alone, plain fit, plain fit with XLA (targets/s each)."""
    importlib.import_module("botkit.model")  # before keras: botkit.model starts TensorFlow without its start-up notices
    import keras

    from botkit.model import data as model_data
    from botkit.model.network import ModelConfig, build_model
    from botkit.training import default_dropout

    vocab = model_data.count_vocabulary([data], "char", True, None).build()
    train, _ = model_data.split_stream(model_data.encode([data], vocab, True, work / "cache"), 0.9)
    targets_per_step = BATCH * WINDOW

    def dataset() -> Any:
        return model_data.training_dataset(train, WINDOW, BATCH, 0, 0, False)

    began, steps = time.perf_counter(), 0
    for _ in dataset():
        steps += 1
        if time.perf_counter() - began > min(seconds, 10):
            break
    rates = {"input pipeline alone (botkit's tf.data windows, no model)": steps * targets_per_step / (time.perf_counter() - began)}

    class Rate(keras.callbacks.Callback):
        """Targets/s of the last fit it watched."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.rate = self.params["steps"] * targets_per_step / (time.perf_counter() - self.began)

    for name, jit in (
        ("plain keras fit, no callbacks, same network (XLA off, Keras's CPU default)", False),
        ("plain keras fit with jit_compile=True (XLA)", True),
    ):
        model = build_model(ModelConfig(vocab_size=len(vocab), dropout=default_dropout(len(train))))  # as botkit train builds it
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(keras.optimizers.Adam(2e-3, clipnorm=1.0), loss={"next": loss}, jit_compile=jit)
        rate = Rate()
        model.fit(dataset(), steps_per_epoch=10, epochs=1, verbose=0, shuffle=False)  # traces and compiles
        model.fit(dataset(), steps_per_epoch=10, epochs=1, verbose=0, shuffle=False, callbacks=[rate])  # how long a step takes
        model.fit(dataset(), steps_per_epoch=max(20, int(seconds * rate.rate / targets_per_step)), epochs=1, verbose=0, shuffle=False, callbacks=[rate])
        rates[name] = rate.rate
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training time of each row (default 60)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the text, read as one stream (default {DATA})")
    parser.add_argument("--json", type=Path, default=peer_env.HERE / "out" / "train_rate.json", help="where the figures go")
    args = parser.parse_args()
    machine = peer_env.machine()
    print(f"machine: {peer_env.machine_line(machine)}", flush=True)
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, flags, env) in enumerate(CLI_ROWS):
            rows[f"botkit train, {name}"] = cli_row(args.data, Path(tmp) / f"model{i}", args.seconds, flags, env)
            print(f"{rows[f'botkit train, {name}']:>10,.0f}  botkit train, {name}", flush=True)
        for name, rate in probes(args.data, Path(tmp), args.seconds).items():
            rows[name] = rate
            print(f"{rate:>10,.0f}  {name}", flush=True)
    base = rows[f"botkit train, {CLI_ROWS[0][0]}"]
    load = os.getloadavg()[0]
    print(f"\ntraining targets/s, {args.seconds:g} s each; load {machine['load_average']} before, {load:.1f} after")
    print(f"machine: {peer_env.machine_line(machine)}")
    for name, rate in rows.items():
        print(f"{rate:>10,.0f}  {rate / base:5.2f}x  {name}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": args.seconds, "machine": machine, "load_after": load, "targets_per_second": rows}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
