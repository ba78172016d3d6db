"""Reply models: pair corpora encoded as ``<sep> parent <reply> reply``, the loss and eval on the
reply only, replies generated to given parents, and the conditioning measured by the bench.

The pair corpus is a fixed table: each parent word has one reply word, so a tiny model that
learned anything from the parent scores the true replies far better than after shuffled parents.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from botkit.cli import main
from botkit.generate import Generator
from botkit.model import saving
from botkit.model.data import encode, split_stream
from botkit.model.evaluate import evaluate_file
from botkit.model.network import ModelConfig, build_model
from botkit.model.train import TrainConfig, train
from botkit.model.vocab import REPLY, SEP_ID, Vocabulary, VocabularyBuilder

TABLE = {"alpha": "zulu", "bravo": "yankee", "charlie": "xray", "delta": "whiskey", "echo": "victor", "golf": "tango"}
TINY = {"embedding_size": 16, "rnn_layers": 1, "rnn_size": 32}


def load_bench():  # noqa: ANN201 - the bench module
    spec = importlib.util.spec_from_file_location("reply_conditioning", Path(__file__).resolve().parents[1] / "bench" / "reply_conditioning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write_pairs(path: Path, count: int, seed: int, label: bool = False) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        parent = rng.choice(list(TABLE))
        lines.append({"text": TABLE[parent], "parent": parent, **({"label": "odd" if i % 2 else "even"} if label else {})})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reply")
    config = TrainConfig(epochs=15, batch_size=16, window=32, lr=0.03, patience=0, sample_every=0)
    train([write_pairs(folder / "pairs.jsonl", 500, seed=0)], folder / "weights", config, TINY)
    return folder / "weights"


def test_a_pair_corpus_is_encoded_parent_reply_with_targets_on_the_reply_only(tmp_path: Path) -> None:
    corpus = tmp_path / "pairs.jsonl"
    corpus.write_text(json.dumps({"text": "ok", "parent": "hi"}) + "\n" + json.dumps({"text": "yo"}) + "\n")
    builder = VocabularyBuilder("char")
    builder.add("ok", parent="hi")
    builder.add("yo")
    vocab = builder.build()
    assert vocab.tokens[3] == REPLY and vocab.conditional and vocab.reply_id == 3
    stream = encode([corpus], vocab, single_text=False, cache_dir=tmp_path / "cache")
    reply = vocab.reply_id
    # <sep> h i <reply> o k <sep> <reply> y o <sep>: the second document replies to an empty parent.
    expected = [SEP_ID, *vocab.encode("hi"), reply, *vocab.encode("ok"), SEP_ID, reply, *vocab.encode("yo"), SEP_ID]
    assert list(stream.tokens) == expected
    assert stream.replies is not None and list(stream.replies) == [0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]
    assert vocab.decode(expected) == "hiokyo"  # structure tokens are not text


def test_a_corpus_without_parents_and_old_vocabularies_are_not_conditional(tmp_path: Path) -> None:
    builder = VocabularyBuilder("word")
    builder.add("Hello there")
    assert not builder.build().conditional
    old = Vocabulary("char", ["<pad>", "<sep>", "<unk>", "a"])
    old.save(tmp_path / "vocab.json")
    assert not Vocabulary.load(tmp_path / "vocab.json").conditional


def test_the_model_records_it_is_conditional_and_its_val_split_starts_at_a_pair(model: Path) -> None:
    saved = saving.load(model)
    assert saved.vocab.conditional and saved.training["conditional"] is True
    stream = encode([Path(saved.training["corpus"][0])], saved.vocab, False, model / "cache")
    _, val = split_stream(stream, 0.9)
    assert val is not None and stream.tokens[val.start] == SEP_ID and stream.replies is not None
    assert val.targets()[1] == 0 and val.tokens()[1] != saved.vocab.reply_id  # a parent follows the cut


def test_eval_scores_only_the_replies(model: Path, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "held.jsonl", 50, seed=1)
    report = evaluate_file(model, pairs)
    replies = [json.loads(line)["text"] for line in pairs.read_text().splitlines()]
    assert report.score.targets == sum(len(r) + 1 for r in replies)  # each reply and its end, no parent
    assert "only the replies are scored" in report.summary()
    assert report.score.mean < 0.3


def test_replies_are_scored_better_after_their_true_parents_than_after_shuffled_ones(model: Path, tmp_path: Path) -> None:
    result = load_bench().conditioning(model, write_pairs(tmp_path / "held.jsonl", 100, seed=2), seed=3)
    assert result.true.targets == result.shuffled.targets
    assert result.shuffled.mean - result.true.mean > 0.5, result.summary()


def test_generated_replies_answer_their_parents_and_leave_the_parent_out(model: Path) -> None:
    generator = Generator.load(model, jit=False)
    samples = generator.generate(5, parent=["alpha", "golf", "delta"], temperature=0.2, max_length=12)
    assert len(samples) == 15
    texts = [s.text for s in samples]
    assert texts[:5] == ["zulu"] * 5 and texts[5:10] == ["tango"] * 5 and texts[10:] == ["whiskey"] * 5
    assert all(np.isfinite(s.score) for s in samples)
    assert [s.parent for s in samples] == ["alpha"] * 5 + ["golf"] * 5 + ["delta"] * 5  # each sample says what it answers
    prefixed = generator.generate(2, parent="echo", prefix="vic", temperature=0.2, max_length=12)
    assert [s.text for s in prefixed] == ["victor"] * 2


def test_cli_replies_to_parents_from_a_file_and_refuses_a_missing_parent(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parents = tmp_path / "parents.txt"
    parents.write_text("bravo\ncharlie\n")
    assert main(["generate", str(model), "--parents", str(parents), "-n", "2", "-t", "0.2", "--filters", "none"]) == 0
    assert capsys.readouterr().out.splitlines() == ["yankee", "yankee", "xray", "xray"]
    out = tmp_path / "replies.jsonl"
    assert main(["generate", str(model), "--parent", "bravo", "-n", "1", "-t", "0.2", "--filters", "none", "-o", str(out)]) == 0
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["parent"] == "bravo" and json.loads(line)["text"] == "yankee"
    assert main(["generate", str(model), "-n", "2"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("botkit: error:") and "is a reply model" in err


def test_a_model_that_only_posts_refuses_a_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vocab = Vocabulary("char", ["<pad>", "<sep>", "<unk>", "a"])
    config = ModelConfig(vocab_size=len(vocab), embedding_size=4, rnn_layers=1, rnn_size=4)
    saving.save(tmp_path / "plain", build_model(config), config, vocab, {"window": 8})
    assert main(["generate", str(tmp_path / "plain"), "--parent", "hi"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("botkit: error:") and "not a reply model" in err and len(err.strip().splitlines()) == 1


def test_a_word_level_labelled_reply_model_trains_and_evaluates(tmp_path: Path) -> None:
    corpus = write_pairs(tmp_path / "pairs.jsonl", 200, seed=4, label=True)
    config = TrainConfig(level="word", epochs=3, batch_size=8, window=16, patience=0, sample_every=0)
    train([corpus], tmp_path / "word", config, TINY)
    saved = saving.load(tmp_path / "word")
    assert saved.vocab.level == "word" and saved.vocab.conditional and saved.config.labelled
    report = evaluate_file(tmp_path / "word", corpus)
    assert report.score.targets == 2 * 200  # one word and the end of each reply
    samples = Generator.load(tmp_path / "word", jit=False).generate(2, parent="alpha", label="odd", max_length=5)
    assert len(samples) == 2 and all("alpha" not in s.text for s in samples)
