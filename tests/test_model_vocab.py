"""Vocabulary and token stream: no TensorFlow needed, so these run in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from botkit.errors import BotkitError, CorpusError
from botkit.model import data
from botkit.model.evaluate import window_plan
from botkit.model.vocab import CAP, SEP_ID, UNK_ID, UPPER, Vocabulary, VocabularyBuilder, join_words, split_words


def build(level: str, *texts: str, max_words: int | None = None) -> Vocabulary:
    builder = VocabularyBuilder(level, max_words)  # type: ignore[arg-type]
    for text in texts:
        builder.add(text)
    return builder.build()


def test_char_vocab_orders_by_frequency_and_round_trips() -> None:
    vocab = build("char", "abracadabra", "é!")
    assert vocab.tokens[:3] == ["<pad>", "<sep>", "<unk>"]
    assert vocab.tokens[3:6] == ["a", "b", "r"]  # most frequent first
    ids = vocab.encode("bar é?")
    assert ids.dtype == np.uint16 and ids[-1] == UNK_ID  # "?" and " " were never seen
    assert vocab.decode(ids) == "bar<unk>é<unk>"


def test_word_tokens_keep_punctuation_and_casing() -> None:
    text = "Hello, WORLD! Don't stop: iPhone 42.\nNew line"
    tokens = list(split_words(text))
    assert tokens[:5] == [CAP, "hello", ",", UPPER, "world"]
    assert "don't" in tokens and "iPhone" in tokens and "\n" in tokens and "42" in tokens
    assert join_words(tokens) == text


@pytest.mark.parametrize("text", ['He said "yes" (twice).', "a/b - well-known c", "Cost: $5, 50% off!"])
def test_word_detokenisation_rebuilds_normal_spacing(text: str) -> None:
    assert join_words(split_words(text)) == text


def test_word_vocab_is_capped_with_unknown() -> None:
    vocab = build("word", "the cat the dog the cat bird", max_words=2)
    assert vocab.tokens[5:] == ["the", "cat"]
    assert list(vocab.encode("the bird")) == [vocab.tokens.index("the"), UNK_ID]
    assert vocab.decode(vocab.encode("The cat.")) == "The cat <unk>"


def test_extending_keeps_every_old_id() -> None:
    old = build("char", "abc")
    new = old.extended(build("char", "xcay").tokens, ["news"])
    assert new.tokens[: len(old)] == old.tokens and new.tokens[len(old) :] == ["x", "y"]
    assert new.labels == ["", "news"]


def test_vocab_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    with pytest.raises(BotkitError, match="vocab.json: vocabulary file not found"):
        Vocabulary.load(path)
    path.write_text('{"level": "char", "tokens": ["a"], "labels": [""]}')
    with pytest.raises(BotkitError, match="vocab.json: not a botkit vocabulary"):
        Vocabulary.load(path)
    with pytest.raises(BotkitError, match="label 'x' is not one the model was trained on"):
        build("char", "a").label_id("x")


def write_jsonl(path: Path, docs: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def test_stream_layout_labels_and_cache(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": "ab", "label": "x"}, {"text": "c"}, {"text": "ba", "label": "y"}])
    builder = data.count_vocabulary([corpus], "char", False, None)
    vocab = builder.build()
    assert vocab.labels == ["", "x", "y"]
    stream = data.encode([corpus], vocab, False, tmp_path / "cache")
    assert vocab.decode(stream.tokens) == "abcba"
    assert list(stream.tokens[[0, 3, 5, 8]]) == [SEP_ID] * 4  # <sep> ab <sep> c <sep> ba <sep>
    assert list(stream.labels) == [1, 1, 1, 0, 0, 2, 2, 2, 2]  # a separator belongs to the document it opens
    again = data.encode([corpus], vocab, False, tmp_path / "cache")
    assert again.tokens.filename == stream.tokens.filename  # cached: encoded once
    assert len(list((tmp_path / "cache").glob("*.tokens"))) == 1


def test_single_text_is_one_stream(tmp_path: Path) -> None:
    text = tmp_path / "novel.md"
    text.write_text("First line\nsecond line\n", encoding="utf-8")
    vocab = data.count_vocabulary([text], "char", True, None).build()
    stream = data.encode([text], vocab, True, tmp_path / "cache")
    assert stream.tokens[0] == SEP_ID and stream.labels is None
    assert vocab.decode(stream.tokens) == "First line\nsecond line\n"
    with pytest.raises(CorpusError, match="novel.md: not a corpus.*add --single-text"):
        data.count_vocabulary([text], "char", False, None)


def test_empty_corpus_is_a_clear_error(tmp_path: Path) -> None:
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n\n")
    vocab = data.count_vocabulary([corpus], "char", False, None).build()
    with pytest.raises(CorpusError, match="empty.txt: no text to train on"):
        data.encode([corpus], vocab, False, tmp_path / "cache")


def test_windows_are_contiguous_and_resumable(tmp_path: Path) -> None:
    stream = data.TokenStream(np.arange(1000, dtype=np.uint16), None)
    split, _ = data.split_stream(stream, 0.5)
    batches = data.window_batches(split, window=10, batch_size=4, seed=3)
    first = [next(batches)[0] for _ in range(5)]
    for batch in first:
        assert batch.shape == (4, 11) and (np.diff(batch, axis=1) == 1).all() and batch.max() < 500
    resumed = next(data.window_batches(split, window=10, batch_size=4, seed=3, first_step=4))[0]
    assert (resumed == first[4]).all()


@pytest.mark.parametrize("length", [2, 5, 16, 17, 40, 101])
def test_eval_windows_score_every_token_but_the_first_once(length: int) -> None:
    window = 8
    scored: list[int] = []
    for start, first in window_plan(length, window):
        stop = min(start + window, length - 1)
        scored += [start + 1 + j for j in range(first, stop - start)]
        assert first == 0 or first == window // 2
    assert scored == list(range(1, length))


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # beside a development checkout only
SHIPPED_DATA = Path(__file__).resolve().parents[1] / "botkit" / "data"


def shipped_titles() -> list[str]:
    import csv

    with open(SHIPPED_DATA / "reddit_titles.csv", encoding="utf-8", newline="") as handle:
        reddit = [row["title"] for row in csv.DictReader(handle)]
    return (SHIPPED_DATA / "hacker_news_titles.txt").read_text(encoding="utf-8").splitlines() + reddit


def assert_round_trips(titles: list[str]) -> None:
    builder = VocabularyBuilder("word")
    for title in titles:
        builder.add(title)
    vocab = builder.build()
    changed = [(t, vocab.decode(vocab.encode(t))) for t in titles if vocab.decode(vocab.encode(t)) != t]
    assert not changed, changed[:5]


@pytest.mark.parametrize(
    "text",
    [
        "C++ vs. C#",
        "Ubuntu 17.10 released",
        "github.com/x is down",
        "Raises $13.7B at a $1,000,000 cap",
        "See https://example.com/a?b=1.",
        "Python 3.11.2 and v1.2.3-beta",
        "I <3 this :) ;-)",
        "AT&T's 10:30 call",
        "  two  spaces\tand a tab ",
        "“Quoted,” he said.",
        'He said "yes" (twice).',
    ],
)
def test_word_tokens_round_trip_exactly(text: str) -> None:
    assert join_words(split_words(text)) == text


def test_shipped_titles_round_trip_through_a_word_vocabulary() -> None:
    assert_round_trips(shipped_titles())


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside this checkout")
def test_shared_title_files_round_trip_through_a_word_vocabulary() -> None:
    titles = [line for path in sorted(SHARED_DATA.glob("*.txt")) if "shakespeare" not in path.name for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(titles) > 3000
    assert_round_trips(titles)


def test_unknown_spacing_tokens_are_dropped_for_older_vocabularies() -> None:
    """A word model trained before spacing tokens existed reads "C++" as before, without <unk>s."""
    vocab = Vocabulary("word", ["<pad>", "<sep>", "<unk>", "<cap>", "<upper>", "a", "+", "b"])
    assert UNK_ID not in vocab.encode("a+b")
