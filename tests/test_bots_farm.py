"""``botkit farm build``: fetch each model bot's corpora, train its model, skip what is up to date;
then ``botkit run`` posts what the model generates: files → corpus → model → samples → filters → outbox."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from botkit.cli import main

WORDS = "apple pear tree fruit red green sweet sour juice pie".split()


def farm(tmp_path: Path, train: str = "{epochs: 1, window: 16, batch_size: 16, sample_every: 0}") -> Path:
    rng = random.Random(0)
    lines = "".join(" ".join(rng.choice(WORDS) for _ in range(6)) + "\n" for _ in range(300))
    (tmp_path / "titles.txt").write_text(lines, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "corpora:\n  apples: {source: files, paths: [titles.txt]}\n"
        f"bots:\n  apple: {{model: weights/apple, corpus: apples, train: {train}, filters: [length],"
        " generate: {temperature: 0.5, max_length: 60}, buffer: {size: 4, low: 1}}\n  curated: {posts: titles.txt}\n",
        encoding="utf-8",
    )
    return config


def test_build_trains_once_then_skips_until_the_corpus_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = farm(tmp_path)
    assert main(["farm", "build", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would fetch corpus apples into {tmp_path / 'corpora' / 'apples.jsonl'}" in out and "would train apple" in out
    assert not (tmp_path / "weights").exists()
    assert main(["farm", "build", str(config)]) == 0
    out = capsys.readouterr().out
    assert "added 300 new document(s)" in out and f"{tmp_path / 'weights' / 'apple'}: 1 epoch(s)" in out
    assert main(["farm", "build", str(config)]) == 0
    assert "apple: " in (out := capsys.readouterr().out) and "is up to date (corpus and training settings unchanged); skipped" in out
    with open(tmp_path / "titles.txt", "a", encoding="utf-8") as fh:
        fh.write("a brand new apple title\n")
    assert main(["farm", "build", str(config), "--dry-run"]) == 0
    assert "would fetch corpus apples" in capsys.readouterr().out  # the fetch decides; the old stamp is not trusted
    assert main(["farm", "build", str(config)]) == 0
    assert "added 1 new document(s)" in (out := capsys.readouterr().out) and "1 epoch(s)" in out

    for _ in range(2):
        assert main(["run", str(config), "--once"]) == 0
    out = capsys.readouterr().out
    assert out.count("apple: posted: candidate") == 2 and out.count("curated: posted") == 2
    generated = (tmp_path / "outbox" / "apple.txt").read_text(encoding="utf-8").splitlines()
    assert len(generated) == 2 and all(line.split("  ", 2)[2].strip() for line in generated)
    assert generated[0] != generated[1]


def test_build_names_every_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = farm(tmp_path, "{epochs: 1, speed: fast}")
    config.write_text(config.read_text() + "  pear: {model: weights/pear, corpus: [apples, pears]}\n  plum: {model: weights/plum}\n", encoding="utf-8")
    assert main(["farm", "build", str(config)]) == 1
    err = capsys.readouterr().err
    assert "bots.apple.train.speed: unknown key" in err
    assert "bots.pear.corpus: no corpus named pears under corpora:" in err
    assert "bots.plum.corpus: required to build a model" in err
    assert not (tmp_path / "corpora").exists()


def test_a_setting_the_trainer_refuses_is_named_by_its_key_in_the_bots_train_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``botkit train`` would say ``--from base: ... drop --rnn-size``; a bot's train: block has no flags."""
    config = farm(tmp_path, "{from: base, rnn_size: 32, epochs: 1}")
    assert main(["farm", "build", str(config)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"botkit: error: {config}: bots.apple.train.from ") and "--" not in last
    assert last.endswith("the model shape comes from the base model; drop bots.apple.train.rnn_size")


def test_train_from_is_relative_to_the_config_except_the_shipped_base(tmp_path: Path) -> None:
    from botkit.bots.farm import _base_model
    from botkit.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text(
        "bots:\n  a: {model: weights/a, train: {from: weights/other}}\n  b: {model: weights/b, train: {from: base}}\n  c: {model: weights/c}\n",
        encoding="utf-8",
    )
    bots = load_config(config).bots
    assert _base_model(bots["a"]) == tmp_path / "weights" / "other"
    assert _base_model(bots["b"]) == Path("base")
    assert _base_model(bots["c"]) is None
