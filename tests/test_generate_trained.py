"""Generation from a tiny model trained here: conditioning, the CLI end to end, interactive mode.

The corpus has two labels whose texts use disjoint letters ("ann" writes a-d, "bob" writes w-z),
so a model that learned anything shows the label's (or the prefix's) letters in its samples.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from botkit.bots.supply import ModelSamples
from botkit.cli import main
from botkit.generate import Generator
from botkit.generate.interactive import END, Session
from botkit.model.train import TrainConfig, train

ANN, BOB = set("abcd"), set("wxyz")
BOTKIT = Path(sys.executable).with_name("botkit")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generate")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(400):
        label, letters = ("ann", "abcd") if i % 2 else ("bob", "wxyz")
        words = ["".join(rng.choice(list(letters), size=rng.integers(2, 5))) for _ in range(rng.integers(1, 3))]
        lines.append(json.dumps({"text": " ".join(words), "label": label}))
    corpus = folder / "letters.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    config = TrainConfig(epochs=40, batch_size=16, window=32, lr=0.03, patience=0, sample_every=0)
    train([corpus], folder / "weights", config, {"embedding_size": 16, "rnn_layers": 1, "rnn_size": 32})
    return folder / "weights"


@pytest.fixture(scope="module")
def generator(model: Path) -> Generator:
    return Generator.load(model, jit=False)


def share(texts: list[str], letters: set[str]) -> float:
    """The share of ``letters`` among the letters of ``texts``."""
    chars = [c for text in texts for c in text if c.isalpha()]
    return sum(c in letters for c in chars) / len(chars)


def test_label_conditioning_shifts_samples_to_the_labels_letters(generator: Generator) -> None:
    ann = [s.text for s in generator.generate(100, label="ann", max_length=30, seed=1, temperature=0.5)]
    bob = [s.text for s in generator.generate(100, label="bob", max_length=30, seed=1, temperature=0.5)]
    assert share(ann, ANN) > 0.75 and share(bob, BOB) > 0.75  # a tiny model, ten seconds of training
    assert share(ann, ANN) - share(bob, ANN) > 0.6
    mixed = generator.generate(100, label=["ann", "bob"], max_length=30, seed=1, temperature=0.5)
    assert share([s.text for s in mixed[0::2]], ANN) - share([s.text for s in mixed[1::2]], ANN) > 0.6


def test_prefix_conditioning_continues_in_the_prefixs_letters(generator: Generator) -> None:
    after_ann = [s.text[2:] for s in generator.generate(100, prefix="ab", max_length=30, seed=2)]
    after_bob = [s.text[2:] for s in generator.generate(100, prefix="wx", max_length=30, seed=2)]
    assert share(after_ann, ANN) > 0.7 and share(after_bob, BOB) > 0.7


def test_samples_end_like_the_training_documents(generator: Generator) -> None:
    samples = generator.generate(50, label="ann", max_length=200, temperature=0.5)
    lengths = [len(s.text) for s in samples]
    assert max(lengths) < 200 and 2 < np.mean(lengths) < 15  # documents are 2-9 characters


def test_cli_writes_jsonl(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    args = ["generate", str(model), "-n", "30", "-t", "0.5", "--label", "bob", "--filters", "none", "--batch-size", "8"]
    assert main([*args, "-o", str(out)]) == 0
    assert f"{out}: 30 of 30 samples kept" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 30 and {r["label"] for r in rows} == {"bob"} and {r["temperature"] for r in rows} == {0.5}
    assert all(r["score"] < 0 and r["text"] for r in rows)


def test_cli_prints_samples_and_the_filter_report(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The prefix makes samples long enough for the length filter's defaults (a few words) to keep some.
    args = ["generate", str(model), "-n", "40", "-t", "0", "-t", "2", "--prefix", "ab ab ab ", "--max-length", "20", "--filters", "dedupe,length", "--report"]
    assert main([*args, "--label", "ann", "--label", "bob"]) == 0
    out, err = capsys.readouterr()
    counts = {row.split()[0]: int(row.split()[1].replace(",", "")) for row in err.splitlines()[1:]}
    assert counts["total"] == 40 and counts["dedupe"] + counts["length"] + counts["kept"] == 40
    assert counts["dedupe"] > 0  # greedy first letters: texts repeat
    assert len(out.splitlines()) == counts["kept"] > 0


def test_cli_default_filters_say_how_many_they_rejected(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(model), "-n", "40", "-t", "0", "--label", "ann"]) == 0  # greedy: 40 times one text
    out, err = capsys.readouterr()
    kept = len(out.splitlines())
    assert kept <= 1 and f"{40 - kept} of 40 samples rejected by the filters" in err


def test_interactive_session_picks_types_and_takes_back(generator: Generator) -> None:
    answers = iter(["1", "", "\\d", "x", "2", "s"])
    shown: list[str] = []
    session = Session(generator, label="ann", top_n=3, seed=0)
    (first_choice,) = session.choices()[0][0]
    text = session.run(lambda prompt: next(answers), shown.append)
    assert text == generator.vocab.tokens[first_choice] + text[1] + text[2] and len(text) == 3
    assert any("1: " in line and "%" in line for line in shown) and shown[-1] == f"\n{text}"


def test_interactive_cli_reads_stdin(model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("1\n1\n"))  # then end of input: stop
    assert main(["generate", str(model), "--interactive", "--label", "bob", "--prefix", "w", "--top-n", "4"]) == 0
    out = capsys.readouterr().out
    text = out.splitlines()[-1]
    assert "4: " in out and text.startswith("w") and len(text) == 3
    assert END in out or "'" in out


def test_cli_end_to_end_in_a_subprocess_is_reproducible(model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = [str(BOTKIT), "generate", str(model), "-n", "20", "-t", "0.8", "--seed", "5", "--filters", "none", "-o"]
    for name in ("a.txt", "b.txt"):
        result = subprocess.run([*run, str(tmp_path / name)], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    assert len((tmp_path / "a.txt").read_text().splitlines()) == 20


def test_a_bots_supplier_hands_it_fresh_candidates_and_a_restart_carries_on(model: Path) -> None:
    """The supplier bots use (``bots.supply.ModelSamples``): each refill goes on from the bot's position."""
    from botkit.generation import GenerateSettings

    settings = GenerateSettings(temperature=[1.0], max_length=20, label=["ann"], prefix="a")
    generator = Generator.load(model)
    supplier = ModelSamples(lambda: generator, settings, salt="apple")
    first, second = supplier.candidates(8), supplier.candidates(8)
    assert len(first) == len(second) == 8 and first != second  # a fresh seed every refill
    assert all(s.label == "ann" and s.text.startswith("a") and len(s.text) <= 20 for s in first + second)
    assert ModelSamples(lambda: generator, settings, start=8, salt="apple").candidates(8) == second  # after a restart at position 8
    assert ModelSamples(lambda: generator, settings, salt="pear").candidates(8) != first  # another bot, its own samples


def test_cli_novelty_filter_uses_the_recorded_training_corpus(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Short samples of this model often are whole training documents: the novelty filter, fed from
    the corpus the model folder records, rejects those."""
    assert main(["generate", str(model), "-n", "60", "-t", "0.5", "--label", "ann", "--filters", "novelty", "--report"]) == 0
    out, err = capsys.readouterr()
    counts = {row.split()[0]: int(row.split()[1].replace(",", "")) for row in err.splitlines()[1:]}
    assert counts["novelty"] > 0 and counts["novelty"] + counts["kept"] == 60 == counts["total"]
    assert len(out.splitlines()) == counts["kept"]


def test_interactive_word_model_offers_cased_words_not_casing_marks(tmp_path: Path) -> None:
    """Every title starts with a capital, so ``<cap>`` is the likeliest first token: it is offered
    folded into its word ("Quick"), never on its own, and a sampled mark brings its word along."""
    rng = np.random.default_rng(0)
    words = "quick brown fox jumps over lazy dogs".split()
    corpus = tmp_path / "titles.txt"
    corpus.write_text("".join(" ".join(rng.choice(words, size=4)).capitalize() + "\n" for _ in range(200)))
    train(
        [corpus],
        tmp_path / "w",
        TrainConfig(level="word", epochs=8, batch_size=16, window=16, lr=0.03, sample_every=0),
        {"embedding_size": 8, "rnn_layers": 1, "rnn_size": 16},
    )
    generator = Generator.load(tmp_path / "w", jit=False)
    session = Session(generator, top_n=3, seed=0, temperature=0.5)
    marks = {generator.vocab.tokens.index("<cap>"), generator.vocab.tokens.index("<upper>")}
    choices = session.choices()
    assert all(ids[-1] not in marks for ids, _ in choices)
    assert session.choice_name(choices[0][0])[1].isupper() and choices[0][0][0] in marks
    assert sum(p for _, p in choices) <= 1 + 1e-6
    assert session.sampled()[-1] not in marks
    shown: list[str] = []
    answers = iter(["1", "x", "1", "s"])
    text = session.run(lambda prompt: next(answers), shown.append)
    assert text[0].isupper() and " " not in text and all("<cap>" not in line for line in shown)
