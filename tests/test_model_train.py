"""Training, model folders and eval, end to end through ``botkit train``/``botkit eval`` on tiny models."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest

from botkit.cli import main
from botkit.generate import Generator
from botkit.model import callbacks as callbacks_module
from botkit.model import saving
from botkit.model.callbacks import BestCheckpoint, EarlyStopping, EpochReport, ResumeState, ShowSamples, TrainingCallbacks, Validation
from botkit.model.data import Split, TokenStream
from botkit.model.evaluate import Scorer, evaluate_file, window_plan
from botkit.model.network import ModelConfig, build_model, model_inputs
from botkit.model.vocab import Vocabulary
from botkit.training import SMALL_CORPUS_DROPOUT, SMALL_CORPUS_TOKENS, LearningRateSchedule, TrainState, default_dropout

TINY = ["--embedding-size", "16", "--rnn-layers", "1", "--rnn-size", "32", "--window", "16", "--batch-size", "8", "--sample-every", "0"]
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex a jovial bard".split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 8))).capitalize() + "." for _ in range(n)]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "story.md"
    path.write_text("\n".join(sentences(40)) + "\n", encoding="utf-8")
    return path


def train(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``botkit train`` in-process; its stdout and stderr, together."""
    assert main(["train", *args]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    return captured.out + captured.err


def predict(saved: saving.Saved, ids: np.ndarray, label: int = 0) -> np.ndarray:
    inputs = model_inputs(saved.config, ids[None], np.full((1, len(ids)), label, np.int32))
    return np.asarray(saved.model(inputs, training=False)["next"])


def test_char_model_trains_saves_and_samples(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "weights" / "char"
    summary = train(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "2", *TINY[:-1], "1")
    assert "2 epoch(s)" in summary and "targets/s" in summary and "val loss" in summary
    assert summary.count("sample at temperature") == 2 * 3  # every epoch, three temperatures
    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 1 and config["level"] == "char" and config["model"]["rnn_size"] == 32
    result = config["training"]["result"]
    assert math.isfinite(result["best_val_loss"]) and result["best_val_loss"] < math.log(config["model"]["vocab_size"])
    samples = [s.text for s in Generator.load(out, jit=False).generate(2, temperature=0.5, max_length=30)]
    assert len(samples) == 2 and all(isinstance(s, str) and len(s) <= 30 for s in samples)


def test_reload_gives_identical_predictions(tmp_path: Path) -> None:
    vocab = Vocabulary("char", ["<pad>", "<sep>", "<unk>", *"abc"], ["", "x", "y"])
    config = ModelConfig(vocab_size=len(vocab), num_labels=3, embedding_size=8, rnn_layers=2, rnn_size=12)
    model = build_model(config)
    saving.save(tmp_path / "m", model, config, vocab, {"window": 8})
    saved = saving.load(tmp_path / "m")
    ids = np.array([1, 3, 4, 5, 3, 4], np.int32)
    before = np.asarray(model(model_inputs(config, ids[None], np.full((1, 6), 2, np.int32)))["next"])
    assert np.array_equal(before, predict(saved, ids, label=2))
    assert saved.vocab == vocab and saved.config == config


def test_word_model_trains_on_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "titles.txt"
    corpus.write_text("\n".join(sentences(60)) + "\n", encoding="utf-8")
    out = tmp_path / "word"
    train(capsys, str(corpus), "--word", "--max-words", "12", "-o", str(out), "--epochs", "2", *TINY)
    saved = saving.load(out)
    assert saved.vocab.level == "word" and len(saved.vocab) == 5 + 12 and "<cap>" in saved.vocab.tokens
    assert "." in saved.vocab.tokens and "The" not in saved.vocab.tokens
    report = evaluate_file(out, corpus)
    assert "nats/token" in report.summary() and report.score.targets > 500


def test_a_corpus_with_a_lone_surrogate_escape_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A hand-written ``\\ud83d`` (half an emoji) reaches the trainer as U+FFFD: the vocabulary, its
    hash for the token cache and the saved model all need valid Unicode."""
    corpus = tmp_path / "hand.jsonl"
    lines = ['{"text": "broken \\ud83d emoji"}', *(json.dumps({"text": s}) for s in sentences(40))]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "char"
    with caplog.at_level("WARNING"):
        summary = train(capsys, str(corpus), "-o", str(out), "--epochs", "1", *TINY)
    assert "1 epoch(s)" in summary and f"{corpus}: 1 lone surrogate(s)" in caplog.text
    tokens = saving.load(out).vocab.tokens
    assert "\ufffd" in tokens and not any(0xD800 <= ord(c) <= 0xDFFF for t in tokens for c in t)


def test_context_model_conditions_on_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "chat.jsonl"
    lines = [{"text": "abab abab", "label": "ann"} if i % 2 else {"text": "cdcd cdcd", "label": "bob"} for i in range(80)]
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "context"
    train(capsys, str(corpus), "-o", str(out), "--epochs", "3", "--lr", "0.01", *TINY)
    saved = saving.load(out)
    assert saved.vocab.labels == ["", "bob", "ann"] and saved.config.num_labels == 3
    assert sorted(saved.model.output_names) == ["aux", "next"]
    ids = saved.vocab.encode("ab")
    ann, bob = predict(saved, ids, saved.vocab.label_id("ann")), predict(saved, ids, saved.vocab.label_id("bob"))
    assert not np.allclose(ann, bob)
    texts = Generator(saved.model, saved.config, saved.vocab, saved.training, jit=False).generate(1, temperature=0.5, max_length=10, label="ann")
    assert len(texts) == 1 and texts[0].label == "ann"


def hand_set_model(vocab: Vocabulary, probabilities: np.ndarray, tmp_path: Path) -> Path:
    """A model whose every prediction is ``probabilities``: zero weights, output bias = log p."""
    config = ModelConfig(vocab_size=len(vocab), embedding_size=4, rnn_layers=1, rnn_size=4)
    model = build_model(config)
    for variable in model.weights:
        variable.assign(np.zeros(variable.shape, dtype="float32"))
    model.get_layer("next").bias.assign(np.log(probabilities).astype("float32"))
    saving.save(tmp_path / "hand", model, config, vocab, {"window": 8})
    return tmp_path / "hand"


def test_eval_on_a_hand_set_model_gives_the_exact_cross_entropy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vocab = Vocabulary("char", ["<pad>", "<sep>", "<unk>", "a", "b"])
    p = np.array([0.05, 0.05, 0.1, 0.6, 0.2])
    text = tmp_path / "ab.text"
    text.write_text("abaab" * 7)  # 35 characters, more than four windows of 8
    path = hand_set_model(vocab, p, tmp_path)
    targets = [*vocab.encode("abaab" * 7), 1]  # every character, then the closing separator
    expected = -np.mean(np.log(p[targets]))
    assert main(["eval", str(path), str(text)]) == 0
    out = capsys.readouterr().out
    nats, bits = (float(x) for x in re.findall(r"([0-9.]+) (?:nats|bits)/character", out))
    assert nats == pytest.approx(expected, abs=1e-4) and bits == pytest.approx(expected / math.log(2), abs=1e-4)
    assert "36 characters scored" in out


def test_scorer_matches_a_direct_keras_computation(tmp_path: Path) -> None:
    import keras

    config = ModelConfig(vocab_size=7, embedding_size=8, rnn_layers=2, rnn_size=8)
    keras.utils.set_random_seed(1)
    model = build_model(config)
    tokens = np.random.default_rng(0).integers(1, 7, size=45).astype(np.uint16)
    window = 10
    got = Scorer(model, config, window, batch_size=3).score(Split(TokenStream(tokens, None), 0, len(tokens)))
    nats = 0.0
    for start, first in window_plan(len(tokens), window):
        chunk = tokens[start : start + window + 1].astype(np.int32)
        logits = np.asarray(model(chunk[None, :-1])["next"])[0].astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        nats -= sum(logp[j, chunk[j + 1]] for j in range(first, len(chunk) - 1))
    assert got.targets == len(tokens) - 1
    assert got.nats == pytest.approx(nats, rel=1e-5)


def test_eval_agrees_with_the_training_val_loss(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    train(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "2", "--train-size", "0.75", *TINY)
    val_loss = json.loads((out / "config.json").read_text())["training"]["result"]["best_val_loss"]
    chars = text_file.read_text()
    cut = int((len(chars) + 2) * 0.75)  # the stream is <sep> text <sep>; token i is character i-1
    held_out = tmp_path / "held_out.text"
    held_out.write_text(chars[cut - 1 :])
    assert evaluate_file(out, held_out).score.mean == pytest.approx(val_loss, rel=1e-5)  # the val split is scored as eval reads it


def test_the_weights_carry_every_epochs_losses(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    train(capsys, str(text_file), "--single-text", "-o", str(out), "--epochs", "3", "--patience", "0", *TINY)
    training = json.loads((out / "config.json").read_text())["training"]
    history = training["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # all epochs, even those after the best one the weights hold
    assert all(h["train_loss"] > 0 and h["val_loss"] > 0 for h in history)
    assert min(h["val_loss"] for h in history) == pytest.approx(training["result"]["best_val_loss"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: (d / "model.weights.h5").write_bytes((d / "model.weights.h5").read_bytes()[:2000]),
            "model.weights.h5: truncated or not a botkit weights file",
        ),
        (lambda d: (d / "model.weights.h5").write_text("hello"), "model.weights.h5: truncated or not a botkit weights file"),
        (lambda d: (d / "model.weights.h5").unlink(), "model.weights.h5: missing"),
        (lambda d: (d / "config.json").write_text('{"format_version": 1, "mod'), "config.json: truncated or not a botkit config"),
        (lambda d: (d / "config.json").unlink(), "config.json: missing"),
        (lambda d: (d / "vocab.json").write_text("[]"), "vocab.json: not a botkit vocabulary file"),
    ],
)
def test_bad_weights_files_get_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, message: str) -> None:  # noqa: ANN001
    vocab = Vocabulary("char", ["<pad>", "<sep>", "<unk>", "a", "b"])
    path = hand_set_model(vocab, np.full(5, 0.2), tmp_path)
    damage(path)
    text = tmp_path / "t.text"
    text.write_text("abab")
    assert main(["eval", str(path), str(text)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("botkit: error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_missing_model_folder_and_empty_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "t.text"
    text.write_text("abab")
    assert main(["eval", str(tmp_path / "nope"), str(text)]) == 1
    assert "nope: no such model folder" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["train", str(empty), "-o", str(tmp_path / "w"), *TINY]) == 1
    assert "empty.jsonl: no text to train on (empty corpus?)" in capsys.readouterr().err
    assert main(["train", str(text), "-o", str(tmp_path / "w"), *TINY]) == 1
    assert "t.text: not a corpus (.jsonl or .txt); to train on a plain text file as one stream, add --single-text" in capsys.readouterr().err


def test_tensorboard_logs_or_a_clear_error(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "tb"
    args = ["train", str(text_file), "--single-text", "-o", str(tmp_path / "m"), "--epochs", "1", "--tensorboard", str(logs), *TINY]
    if importlib.util.find_spec("tensorboard") is None:
        assert main(args) == 1
        assert "--tensorboard needs the tensorboard package (pip install tensorboard)" in capsys.readouterr().err
    else:
        assert main(args) == 0
        assert list(logs.rglob("events.out.tfevents.*"))


def test_linear_schedule_by_steps_and_by_time() -> None:
    steps = LearningRateSchedule(0.01, warmup_steps=2, total_steps=10, budget_seconds=None)
    assert [round(steps(s, 0.0), 6) for s in (0, 1, 5, 9, 10)] == [0.005, 0.009, 0.005, 0.001, 0.0]
    timed = LearningRateSchedule(0.01, warmup_steps=0, total_steps=None, budget_seconds=60)
    assert timed(123, 15.0) == pytest.approx(0.0075) and timed(5, 60.0) == 0.0


def optimizer_state(path: Path) -> tuple[int, float]:
    with np.load(path / "resume" / "optimizer.npz") as saved:
        return int(saved["arr_0"]), float(saved["arr_1"])  # Adam's iteration count, learning rate


def test_resume_continues_optimizer_and_schedule(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    train(capsys, str(text_file), "--single-text", "-o", str(whole), "--epochs", "4", "--patience", "0", *TINY)
    train(capsys, str(text_file), "--single-text", "-o", str(halves), "--epochs", "2", "--patience", "0", *TINY)
    steps_2, lr_2 = optimizer_state(halves)
    train(capsys, str(text_file), "--single-text", "-o", str(halves), "--resume", "--epochs", "4")
    state = json.loads((halves / "resume" / "state.json").read_text())
    assert state["epoch"] == 4 and [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    steps_4, lr_4 = optimizer_state(halves)
    assert steps_4 == 2 * steps_2 == optimizer_state(whole)[0] == state["step"]
    per_epoch = steps_2 // 2
    # The last step's rate is set from the 4-epoch plan, exactly as in the uninterrupted run.
    assert lr_4 == pytest.approx(optimizer_state(whole)[1]) == pytest.approx(8e-3 * (1 - (steps_4 - 1) / (4 * per_epoch)))
    assert lr_2 == pytest.approx(8e-3 * (1 - (steps_2 - 1) / steps_2))  # the first run decayed over its own 2 epochs


def test_fine_tune_extends_the_vocabulary(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base"
    train(capsys, str(text_file), "--single-text", "-o", str(base), "--epochs", "1", *TINY)
    new_text = tmp_path / "new.md"
    new_text.write_text(text_file.read_text() + "Zut! Xylophones & ümlauts.\n", encoding="utf-8")
    tuned = tmp_path / "tuned"
    train(
        capsys,
        str(new_text),
        "--single-text",
        "--from",
        str(base),
        "-o",
        str(tuned),
        "--epochs",
        "1",
        "--window",
        "16",
        "--batch-size",
        "8",
        "--sample-every",
        "0",
    )
    old, new = saving.load(base), saving.load(tuned)
    assert new.vocab.tokens[: len(old.vocab)] == old.vocab.tokens
    assert {"Z", "X", "&", "ü"} <= set(new.vocab.tokens[len(old.vocab) :])
    assert new.config.rnn_size == old.config.rnn_size == 32 and new.config.vocab_size == len(new.vocab)
    assert main(["train", str(new_text), "--single-text", "--from", str(base), "-o", str(tuned), "--rnn-size", "64"]) == 1
    assert "the model shape comes from the base model; drop --rnn-size" in capsys.readouterr().err


def test_dropout_defaults_by_corpus_size_and_is_chosen_again_on_fine_tuning(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert default_dropout(SMALL_CORPUS_TOKENS - 1) == SMALL_CORPUS_DROPOUT > 0 and default_dropout(SMALL_CORPUS_TOKENS) == 0
    unset, zero = tmp_path / "unset", tmp_path / "zero"
    train(capsys, str(text_file), "--single-text", "-o", str(unset), "--epochs", "1", *TINY)
    train(capsys, str(text_file), "--single-text", "-o", str(zero), "--epochs", "1", "--dropout", "0", *TINY)
    assert saving.load(unset).config.dropout == SMALL_CORPUS_DROPOUT  # a few hundred characters: a small corpus
    assert saving.load(zero).config.dropout == 0
    # The base's own dropout (0 here) is not inherited: the new corpus decides, or --dropout.
    tuned, tuned_03 = tmp_path / "tuned", tmp_path / "tuned_03"
    train(capsys, str(text_file), "--single-text", "--from", str(zero), "-o", str(tuned), "--epochs", "1", "--sample-every", "0")
    train(capsys, str(text_file), "--single-text", "--from", str(zero), "-o", str(tuned_03), "--epochs", "1", "--dropout", "0.3", "--sample-every", "0")
    assert saving.load(tuned).config.dropout == SMALL_CORPUS_DROPOUT
    assert saving.load(tuned_03).config.dropout == 0.3
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"under {SMALL_CORPUS_TOKENS:,} tokens" in " ".join(capsys.readouterr().out.split())  # the help says the rule


def test_extension_keeps_the_base_models_predictions(tmp_path: Path) -> None:
    old_config = ModelConfig(vocab_size=6, embedding_size=8, rnn_layers=1, rnn_size=8)
    new_config = ModelConfig(vocab_size=9, num_labels=2, embedding_size=8, rnn_layers=1, rnn_size=8)
    old, new = build_model(old_config), build_model(new_config)
    saving.extend_into(old, new)
    ids = np.array([[1, 3, 4, 5, 3]], np.int32)
    before = np.asarray(old(ids)["next"])
    after = np.asarray(new({"tokens": ids, "labels": np.zeros_like(ids)})["next"])
    assert np.allclose(after[..., :6], before, atol=1e-6)  # old tokens' logits unchanged (label 0 = none)
    assert (after[..., 6:] < before.min(axis=-1, keepdims=True) + 1).all()  # new tokens start unlikely


def test_minutes_budget_stops_training(tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "timed"
    # --patience 0: on this tiny text early stopping could otherwise end the run before the budget.
    summary = train(capsys, str(text_file), "--single-text", "-o", str(out), "--minutes", "0.1", "--patience", "0", *TINY)
    state = json.loads((out / "resume" / "state.json").read_text())
    assert 6 <= state["elapsed"] < 12 and "steps" in summary
    _, lr = optimizer_state(out)
    assert lr < 8e-3 * 0.5  # the time-based schedule was near its end when the budget ran out


class ScriptedScorer:
    """Stands in for the val-split Scorer: the val losses of a script, one per epoch."""

    def __init__(self, losses: list[float]) -> None:
        self.losses = iter(losses)

    def score(self, split: object) -> SimpleNamespace:
        return SimpleNamespace(mean=next(self.losses))


class LogsSeen(keras.callbacks.Callback):
    """Records the val_loss each epoch's logs carry when it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float | None] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.seen.append((logs or {}).get("val_loss"))


def run_epochs(order: tuple[int, ...], losses: list[float], state: TrainState, first: int, last: int, patience: int = 2) -> dict[str, Any]:
    """The epoch ends of fit from ``first`` to ``last`` (or an early stop) with the callbacks in
    ``order``: what each did, and the lines printed."""
    model = SimpleNamespace(stop_training=False)
    saved: list[tuple[int, float | None, int]] = []
    resumed: list[dict[str, Any]] = []
    report = EpochReport()
    spy = LogsSeen()
    made = [
        BestCheckpoint(state, True, lambda: saved.append((state.epoch, state.best_val, len(state.history))), report),
        EarlyStopping(state, patience, report),
        ResumeState(lambda: resumed.append(copy.deepcopy(asdict(state)))),
        spy,
    ]
    validation = Validation(state, ScriptedScorer(losses), Split(TokenStream(np.zeros(4, np.uint16), None), 0, 4), report)
    listed = TrainingCallbacks(validation, [made[i] for i in order], model=model, epochs=last, steps=1)
    lines: list[str] = []
    original, callbacks_module._say = callbacks_module._say, lines.append
    try:
        listed.on_train_begin()
        for epoch in range(first, last):
            listed.on_epoch_begin(epoch)
            listed.on_epoch_end(epoch, {"loss": 1.0})
            if model.stop_training:
                break
        listed.on_train_end()
    finally:
        callbacks_module._say = original
    return {"saved": saved, "resumed": resumed, "lines": lines, "val_loss_seen": spy.seen, "stopped": model.stop_training}


def test_the_epoch_callbacks_do_the_same_in_any_order() -> None:
    """Checkpoint, early stopping, resume state and any logs reader, in all 24 orders: the same
    saves, the same stop, the same lines; and a resumed run continues the early-stopping count."""
    losses = [3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8, 1.9]
    runs = [run_epochs(order, losses, TrainState(), 0, len(losses)) for order in itertools.permutations(range(4))]
    first = runs[0]
    assert all(run == first for run in runs)
    assert first["saved"] == [(1, 3.0, 1), (2, 2.0, 2), (4, 1.5, 4)]  # the best epochs, each with the history up to it
    assert first["stopped"] and [r["epoch"] for r in first["resumed"]] == [1, 2, 3, 4, 5, 6]  # 2 epochs no better than 1.5
    assert first["resumed"][2]["bad_epochs"] == 1 and first["resumed"][-1]["best_val"] == 1.5
    assert first["val_loss_seen"] == losses[:6]
    assert first["lines"] == [
        "epoch 1: step 0, train loss 1.0000, val loss 3.0000 (best, saved)",
        "epoch 2: step 0, train loss 1.0000, val loss 2.0000 (best, saved)",
        "epoch 3: step 0, train loss 1.0000, val loss 2.5000",
        "epoch 4: step 0, train loss 1.0000, val loss 1.5000 (best, saved)",
        "epoch 5: step 0, train loss 1.0000, val loss 1.6000",
        "epoch 6: step 0, train loss 1.0000, val loss 1.7000; no better for 2 epoch(s): stopping early",
    ]
    # --resume after epoch 5: Keras's early stopping continues the saved count, it does not restart it.
    after_5 = TrainState(**first["resumed"][4])
    for order in [(0, 1, 2, 3), (3, 2, 1, 0)]:
        resumed = run_epochs(order, losses[5:], TrainState(**copy.deepcopy(asdict(after_5))), 5, len(losses))
        assert resumed["stopped"] and resumed["lines"] == first["lines"][5:] and resumed["resumed"] == first["resumed"][5:]


@pytest.mark.parametrize("vocab_kind", ["plain", "labelled", "reply"])
def test_previews_are_drawn_by_the_generator_from_the_current_weights(vocab_kind: str) -> None:
    letters = ["<pad>", "<sep>", "<unk>", *(["<reply>"] if vocab_kind == "reply" else []), *"abcdefgh ."]
    vocab = Vocabulary("char", letters, ["", "ann", "bob"] if vocab_kind == "labelled" else [""])
    config = ModelConfig(vocab_size=len(vocab), num_labels=len(vocab.labels), embedding_size=8, rnn_layers=1, rnn_size=16)
    keras.utils.set_random_seed(2)
    model = build_model(config)
    label = "ann" if vocab_kind == "labelled" else None
    report, training = EpochReport(), {"window": 8}
    previews = ShowSamples(config, vocab, training, every=2, temperatures=(0.2, 1.0), length=20, label=label, seed=5, report=report)
    previews.set_model(model)

    def expected(epoch: int) -> list[str]:
        generator = Generator(model, config, vocab, training, jit=False)
        parent = "" if vocab_kind == "reply" else None
        texts = [generator.generate(1, temperature=t, max_length=20, label=label, seed=5 + epoch, parent=parent)[0].text for t in (0.2, 1.0)]
        return [f"  sample at temperature {t}: {text!r}" for t, text in zip((0.2, 1.0), texts)]

    previews.on_epoch_end(0)
    assert report.previews == []  # every 2 epochs: not after the first
    previews.on_epoch_end(1)
    assert report.previews == expected(1) and all(line.strip() for line in report.previews)
    before = expected(3)
    rng = np.random.default_rng(0)
    for variable in model.weights:  # training moves the weights: the next previews follow them
        variable.assign(rng.normal(0, 0.8, variable.shape).astype(np.float32))
    report.clear()
    previews.on_epoch_end(3)
    assert report.previews == expected(3) != before


def test_callbacks_in_reverse_order_train_the_same_model(
    tmp_path: Path, text_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [str(text_file), "--single-text", "--epochs", "12", "--patience", "2", "--lr", "0.1", *TINY[:-1], "3"]
    listed, given = [], callbacks_module.TrainingCallbacks.__init__
    out = {}
    for name in ("listed", "reversed"):
        if name == "reversed":
            monkeypatch.setattr(
                callbacks_module.TrainingCallbacks, "__init__", lambda self, validation, cbs, **kw: given(self, validation, list(reversed(cbs)), **kw)
            )
        out[name] = train(capsys, *args, "-o", str(tmp_path / name))
        listed.append([line for line in out[name].splitlines() if line.startswith(("epoch ", "  sample at"))])
    assert listed[0] == listed[1]
    assert "(best, saved)" in out["listed"] and "stopping early" in out["listed"] and "sample at temperature" in out["listed"]
    runs = [json.loads((tmp_path / name / "config.json").read_text())["training"] for name in ("listed", "reversed")]
    for run in runs:
        for epoch in run["history"]:
            epoch.pop("seconds")
        run["result"].pop("seconds")
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["result"] == runs[1]["result"]
    best, history = runs[0]["result"]["best_val_loss"], runs[0]["history"]
    assert len(history) < 12 and min(h["val_loss"] for h in history) == best  # stopped early; the folder holds the best epoch
    a, b = saving.load(tmp_path / "listed"), saving.load(tmp_path / "reversed")
    assert all(np.allclose(x, y) for x, y in zip(a.model.get_weights(), b.model.get_weights()))
