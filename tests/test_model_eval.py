"""``botkit eval`` reads a file the way the model was trained, and its number is the trainer's val loss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from botkit.cli import main
from botkit.model.evaluate import evaluate_file

TINY = ["--embedding-size", "16", "--rnn-layers", "1", "--rnn-size", "32", "--window", "16", "--batch-size", "8", "--sample-every", "0"]
WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex a jovial bard".split()


def titles(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=rng.integers(2, 7))).capitalize() for _ in range(n)]


def val_loss(out: Path) -> float:
    return json.loads((out / "config.json").read_text())["training"]["result"]["best_val_loss"]


def eval_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[float, str]:
    assert main(["eval", *args]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return float(re.search(r"([0-9.]+) nats/", out).group(1)), out


def test_stream_model_reads_a_txt_file_as_one_stream_and_matches_val_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(titles(50)) + "\n"
    source = tmp_path / "train.txt"
    source.write_text(text, encoding="utf-8")
    out = tmp_path / "stream"
    assert main(["train", str(source), "--single-text", "-o", str(out), "--epochs", "2", "--train-size", "0.8", *TINY]) == 0
    capsys.readouterr()
    cut = int((len(text) + 2) * 0.8)  # the stream is <sep> text <sep>: token i is character i-1
    held_out = tmp_path / "val.txt"
    held_out.write_text(text[cut - 1 :], encoding="utf-8")
    assert evaluate_file(out, held_out).score.mean == pytest.approx(val_loss(out), rel=1e-5)
    nats, said = eval_output(capsys, str(out), str(held_out))
    assert "read as one stream (as the model was trained: one stream; --as documents to change)" in said
    assert nats == pytest.approx(val_loss(out), abs=1e-4)
    other, said = eval_output(capsys, str(out), str(held_out), "--as", "documents")
    assert "document(s), one a line (as asked" in said and other != nats


def test_corpus_model_reads_documents_and_matches_val_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = titles(120)
    corpus = tmp_path / "titles.txt"
    corpus.write_text("\n".join(docs) + "\n", encoding="utf-8")
    out = tmp_path / "corpus"
    assert main(["train", str(corpus), "-o", str(out), "--epochs", "2", "--train-size", "0.8", *TINY]) == 0
    capsys.readouterr()
    starts = np.cumsum([0] + [len(d) + 1 for d in docs])  # where each document's separator is
    cut = int((starts[-1] + 1) * 0.8)
    held_out = tmp_path / "val.txt"
    val_docs = [d for d, start in zip(docs, starts) if start >= cut]
    held_out.write_text("\n".join(val_docs) + "\n", encoding="utf-8")
    nats, said = eval_output(capsys, str(out), str(held_out))
    assert f"read as {len(val_docs)} document(s), one a line (as the model was trained: a corpus" in said
    assert evaluate_file(out, held_out).score.mean == pytest.approx(val_loss(out), rel=1e-5)


def test_eval_of_an_empty_file_says_nothing_to_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "titles.txt"
    corpus.write_text("\n".join(titles(40)) + "\n", encoding="utf-8")
    out = tmp_path / "m"
    assert main(["train", str(corpus), "-o", str(out), "--epochs", "1", *TINY]) == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    capsys.readouterr()
    assert main(["eval", str(out), str(empty)]) == 1
    assert capsys.readouterr().err.strip() == f"botkit: error: {empty}: no text to evaluate (empty corpus?)"
