"""``botkit train --resume`` says which flags it ignores; ``--distribute`` trains under a tf.distribute strategy."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from botkit.cli import main
from botkit.model import saving
from botkit.model.network import model_inputs

TINY = ["--embedding-size", "16", "--rnn-layers", "1", "--rnn-size", "32", "--window", "16", "--batch-size", "8", "--sample-every", "0"]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = "to be or not that is the question whether tis nobler in mind".split()
    path = tmp_path / "play.md"
    path.write_text("\n".join(" ".join(rng.choice(words, size=6)) for _ in range(40)) + "\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``botkit train`` in-process; stdout and stderr together."""
    assert main(["train", *args]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_resume_names_every_ignored_flag_and_the_value_kept(
    tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "m"
    run(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "1", "--seed", "3", *TINY)
    caplog.set_level(logging.WARNING, logger="botkit")
    conflicting = ["--window", "32", "--batch-size", "4", "--train-size", "0.8", "--seed", "5", "--word", "--rnn-size", "64"]
    run(capsys, str(text_file), "--single-text", "-o", str(out), "--resume", "--epochs", "2", *conflicting)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "--resume: ignoring --window 32, the first run's --window 16 is kept" in warnings
    assert "--resume: ignoring --batch-size 4, the first run's --batch-size 8 is kept" in warnings
    assert "--resume: ignoring --train-size 0.8, the first run's --train-size 0.9 is kept" in warnings
    assert "--resume: ignoring --seed 5, the first run's --seed 3 is kept" in warnings
    assert "--resume: ignoring --word, the first run's --char is kept" in warnings
    assert "--resume: ignoring --rnn-size 64, the model keeps its --rnn-size 32" in warnings
    assert len(warnings) == 6
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["window"], training["batch_size"], training["seed"], training["level"]) == (16, 8, 3, "char")


def test_resume_with_the_same_or_no_flags_warns_nothing(
    tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "m"
    run(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "1", *TINY)
    caplog.set_level(logging.WARNING, logger="botkit")
    run(capsys, str(text_file), "--single-text", "-o", str(out), "--resume", "--epochs", "2", "--window", "16", "--rnn-size", "32")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_mirrored_strategy_trains_saves_resumes_and_reloads(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On this CPU-only machine MirroredStrategy has one replica (the CPU): the whole path still runs."""
    out = tmp_path / "mirrored"
    run(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "1", "--distribute", "mirrored", *TINY)
    summary = run(capsys, str(text_file), "--single-text", "-o", str(out), "--resume", "--epochs", "2", "--distribute", "mirrored")
    assert "2 epoch(s)" in summary
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["distribute"] == "mirrored"
    state = json.loads((out / "resume" / "state.json").read_text())
    assert state["epoch"] == 2 and state["history"][1]["train_loss"] < state["history"][0]["train_loss"]
    saved = saving.load(out)
    ids = np.asarray(saved.vocab.encode("to be or not"), np.int32)[None]
    logits = np.asarray(saved.model(model_inputs(saved.config, ids, np.zeros_like(ids)), training=False)["next"])
    assert np.isfinite(logits).all()
    best = config["training"]["result"]["best_val_loss"]
    assert math.isfinite(best) and best < math.log(saved.config.vocab_size)


def test_bad_multi_worker_cluster_spec_is_one_line(
    tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert main(["train", str(text_file), "--single-text", "-o", str(tmp_path / "m"), "--distribute", "multi-worker", *TINY]) == 1
    err = capsys.readouterr().err
    assert "--distribute multi-worker: TF_CONFIG is not a usable cluster spec" in err and "Traceback" not in err


TWO_REPLICAS = """
import sys
from pathlib import Path

import tensorflow as tf

# Two logical CPUs stand in for two GPUs: MirroredStrategy then splits every batch in two.
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
mirrored, replicas = tf.distribute.MirroredStrategy, []


def two_cpus():
    strategy = mirrored(["/cpu:0", "/cpu:1"])
    replicas.append(strategy.num_replicas_in_sync)
    return strategy


tf.distribute.MirroredStrategy = two_cpus
from botkit.model.train import TrainConfig, train

config = TrainConfig(single_text=True, epochs=1, window=16, batch_size=8, sample_every=0, distribute="mirrored")
report = train([Path(sys.argv[1])], Path(sys.argv[2]), config, {"embedding_size": 16, "rnn_layers": 1, "rnn_size": 32})
print(*replicas, report.state.step)
"""


def test_mirrored_strategy_splits_batches_over_two_replicas(tmp_path: Path, text_file: Path) -> None:
    """Several GPUs cannot be had here; two logical CPU devices take the same code path (PerReplica batches, all-reduce)."""
    import subprocess
    import sys

    script = tmp_path / "two_replicas.py"
    script.write_text(TWO_REPLICAS)
    done = subprocess.run([sys.executable, str(script), str(text_file), str(tmp_path / "m")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["2", str(json.loads((tmp_path / "m" / "resume" / "state.json").read_text())["step"])]  # one strategy, 2 replicas
    saved = saving.load(tmp_path / "m")
    assert math.isfinite(json.loads((tmp_path / "m" / "config.json").read_text())["training"]["result"]["best_val_loss"])
    assert saved.config.rnn_size == 32
