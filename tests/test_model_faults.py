"""Training faults and budgets a user meets: resumed time budgets, damaged resume files, another
model's weights, failed runs, Ctrl-C, the progress bar. Each ends in one ``botkit: error:`` line."""

from __future__ import annotations

import io
import json
import shlex
import shutil
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.model import callbacks
from botkit.model.callbacks import ProgressBar
from botkit.training import TrainState

TINY = ["--embedding-size", "8", "--rnn-layers", "1", "--rnn-size", "16", "--window", "16", "--batch-size", "8", "--sample-every", "0"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "titles.txt"
    path.write_text("".join(f"a title with the number {i} in it\n" for i in range(60)), encoding="utf-8")
    return path


def state(out: Path) -> dict:
    return json.loads((out / "resume" / "state.json").read_text())


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("botkit: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_resume_minutes_is_extra_time(tmp_path: Path, corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "timed"
    assert main(["train", str(corpus), "-o", str(out), "--minutes", "0.04", "--patience", "0", *TINY]) == 0
    first = state(out)
    assert main(["train", str(corpus), "-o", str(out), "--resume", "--minutes", "0.04"]) == 0
    second = state(out)
    assert second["step"] > first["step"] and second["elapsed"] >= first["elapsed"] + 2
    assert json.loads((out / "config.json").read_text())["training"]["minutes"] == pytest.approx(first["elapsed"] / 60 + 0.04)
    assert main(["train", str(corpus), "-o", str(out), "--resume"]) == 0  # the budget is spent: said so
    assert "nothing left to train" in caplog.text and state(out)["step"] == second["step"]


def test_damaged_resume_files_and_another_models_weights(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, other = tmp_path / "m", tmp_path / "other"
    assert main(["train", str(corpus), "-o", str(out), "--epochs", "1", *TINY]) == 0
    assert main(["train", str(corpus), "-o", str(other), "--epochs", "1", *TINY[:5], "24", *TINY[6:]]) == 0
    capsys.readouterr()
    resume = out / "resume"
    kept = {name: (resume / name).read_bytes() for name in ("optimizer.npz", "model.weights.h5")}
    (resume / "optimizer.npz").write_bytes(kept["optimizer.npz"][:100])
    err = error_line(capsys, "train", str(corpus), "-o", str(out), "--resume", "--epochs", "2")
    assert "resume/optimizer.npz: missing, truncated or not a botkit optimizer state" in err
    (resume / "optimizer.npz").write_bytes(kept["optimizer.npz"])
    (resume / "model.weights.h5").write_bytes(kept["model.weights.h5"][:3000])
    err = error_line(capsys, "train", str(corpus), "-o", str(out), "--resume", "--epochs", "2")
    assert "resume/model.weights.h5: truncated or not a botkit weights file" in err and "resume/config.json" not in err
    shutil.copy(other / "model.weights.h5", out / "model.weights.h5")
    err = error_line(capsys, "eval", str(out), str(corpus))
    assert f"its weights do not match the model of {out / 'config.json'}" in err and "Warning" not in err


def test_a_failed_run_leaves_no_token_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a\n")
    out = tmp_path / "weights" / "short"
    assert "too little text" in error_line(capsys, "train", str(short), "-o", str(out), *TINY)
    assert not out.exists()


def test_ctrl_c_says_how_to_resume(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    step_end = callbacks.ScheduleAndBudget.on_train_batch_end

    def interrupt_at_step_5(self, batch, logs=None):  # noqa: ANN001, ANN202
        step_end(self, batch, logs)
        if self.state.step == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.ScheduleAndBudget, "on_train_batch_end", interrupt_at_step_5)
    out = tmp_path / "m"
    assert main(["train", str(corpus), "-o", str(out), "--epochs", "3", "--lr", "0.01", *TINY]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"botkit: interrupted at step 5; the training state is saved in {out / 'resume'}; continue with: botkit train ")
    command = shlex.split(err.split("continue with: ")[1])
    # The settings the first run was given (the model's shape is in its folder): the rest of the run as planned.
    assert command == [
        "botkit",
        "train",
        str(corpus),
        "-o",
        str(out),
        "--resume",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--window",
        "16",
        "--lr",
        "0.01",
        "--sample-every",
        "0",
    ]
    monkeypatch.setattr(callbacks.ScheduleAndBudget, "on_train_batch_end", step_end)
    assert main(command[1:]) == 0 and state(out)["epoch"] == 3


@pytest.mark.parametrize(("total", "budget", "shown"), [(10, None, "3/10 steps"), (None, 60.0, "15/60 s, step 3")])
def test_progress_bar_shows_steps_of_the_total_or_time_of_the_budget(total: int | None, budget: float | None, shown: str) -> None:
    progress, file = TrainState(), io.StringIO()
    bar = ProgressBar(progress, total, budget, 256, file=file)
    bar.on_train_begin()
    bar.bar.mininterval = 0
    for batch in range(3):
        progress.step, progress.elapsed = progress.step + 1, progress.elapsed + 5
        bar.on_train_batch_end(batch, {"loss": 1.5})
    assert shown in file.getvalue() and "loss 1.500" in file.getvalue() and "targets/s" in file.getvalue()


def error_lines(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The lines of a failed command's report: ``botkit: error:`` first, then one problem a line, no traceback."""
    assert main(list(args)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("botkit: error: ") and "Traceback" not in captured.err and captured.out == "", captured.err
    return captured.err.strip().removeprefix("botkit: error: ").splitlines()


@pytest.mark.parametrize(
    ("model", "training", "problems"),
    [
        (
            {"vocab_size": 5, "rnn_size": "abc", "dropout": float("nan"), "colour": 1},
            {},
            ["model.colour: unknown key", "model.rnn_size: expected a whole number (got 'abc')", "model.dropout: expected a number (got nan)"],
        ),
        (
            {"rnn_layers": True, "head": 3},
            {},
            ["model.vocab_size: required key is missing", "model.rnn_layers: expected a whole number (got True)", "model.head: expected a string (got 3)"],
        ),
        (
            {"vocab_size": 5, "rnn_size": 0, "head": "x"},
            [],
            [
                "model: model head must be 'attention' or 'attention+last' (got 'x')",
                "model: embedding size, RNN layers and RNN size must all be at least 1",
                "training: expected a mapping of training settings",
            ],
        ),
        (
            {"vocab_size": 5, "aux_loss_weight": 1e309},
            {"window": "abc", "minutes": float("inf"), "corpus": "c.jsonl"},
            [
                "model.aux_loss_weight: expected a number (got inf)",
                "training.minutes: Input should be a finite number (got inf)",
                "training.window: Input should be a valid integer, unable to parse string as an integer (got 'abc')",
                "training.corpus: expected a list of corpus files",
            ],
        ),
        ("not a mapping", {}, ["model: not a botkit model config (expected a mapping of sizes)"]),
    ],
)
def test_a_hand_edited_model_config_names_the_file_and_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: object, training: object, problems: list[str]
) -> None:
    """A config.json with wrong types used to end in ``'<' not supported between instances of 'str'
    and 'int'`` (no file named); now every problem of it is listed, each naming the file and key."""
    folder = tmp_path / "edited"
    folder.mkdir()
    config = folder / "config.json"
    config.write_text(json.dumps({"format_version": 1, "model": model, "training": training}), encoding="utf-8")  # NaN/Infinity as Python writes them
    out = tmp_path / "samples.txt"
    for args in (["generate", str(folder), "-n", "2", "-o", str(out)], ["eval", str(folder), str(config)]):
        assert error_lines(capsys, *args) == [f"{config}: {problem}" for problem in problems]
    assert not out.exists() and sorted(p.name for p in folder.iterdir()) == ["config.json"]


def test_a_format_version_that_is_no_number_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    (folder / "config.json").write_text('{"format_version": "1", "model": {"vocab_size": 5}}', encoding="utf-8")
    assert error_line(capsys, "generate", str(folder)) == f"botkit: error: {folder / 'config.json'}: format_version: expected a whole number (got '1')"
