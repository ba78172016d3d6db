"""The novelty filter and its corpus index: verbatim runs, single texts, saving, reuse and rebuilds."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from botkit.errors import ConfigError, CorpusError
from botkit.filters import FilterContext, build_chain
from botkit.filters.ngrams import SortedHashes, ngram_hashes
from botkit.filters.novelty import INDEX_NAME, NoveltyFilter, NoveltyOptions, Settings, _Builder, _pieces, build_index
from botkit.sample import Sample

SHAKESPEARE = Path(__file__).resolve().parents[1] / "botkit" / "data" / "tinyshakespeare.txt"

TITLES = [
    "My dog learned to open the fridge and now eats all the cheese",
    "Scientists discover a new species of frog in the rain forest",
    "Senate passes the budget bill after a long night of debate",
    "Good boy",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "titles.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": "x"}) + "\n" for t in TITLES), encoding="utf-8")
    return path


def novelty(context: FilterContext, **options: object) -> NoveltyFilter:
    return NoveltyFilter(NoveltyOptions(**options), context)


def check(filt: NoveltyFilter, *texts: str) -> list[str | None]:
    return filt.check([Sample(t) for t in texts])


def test_verbatim_lines_and_runs_inside_longer_samples_are_rejected(corpus: Path) -> None:
    filt = novelty(FilterContext(corpus_paths=(corpus,)))
    result = check(
        filt,
        TITLES[1],
        "BREAKING: scientists DISCOVER a new species of frog, in the rain forest near my house today",
        "Good boy!",
    )
    assert result[0] == 'repeats 7 words of the corpus verbatim: "scientists discover a new species of frog"'
    assert result[1] is not None and result[1].startswith("repeats 7 words of the corpus verbatim")
    assert result[2] == 'is a corpus document verbatim: "good boy"'


def test_novel_samples_sharing_shorter_runs_are_kept(corpus: Path) -> None:
    filt = novelty(FilterContext(corpus_paths=(corpus,)))
    six_shared = "Yesterday my dog learned to open the door of the shed"  # "my dog learned to open the" is 6 words
    assert check(filt, six_shared, "A good boy is a good dog", "Good", "", "Senate passes the budget") == [None] * 5
    assert check(novelty(FilterContext(corpus_paths=(corpus,)), words=6), six_shared)[0] is not None


def test_runs_stay_inside_documents_of_a_line_corpus(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("one two three four\nfive six seven eight\n", encoding="utf-8")
    across = "one two three four five six seven eight"
    assert check(novelty(FilterContext(corpus_paths=(lines,))), across) == [None]
    # the same file as one text (how training with --single-text reads it): runs cross its lines
    assert check(novelty(FilterContext(corpus_paths=(lines,), single_text=True)), across)[0] is not None
    assert check(novelty(FilterContext(corpus_paths=(lines,)), single_text=True), across)[0] is not None


def test_a_single_text_corpus_is_one_long_run_of_words(tmp_path: Path) -> None:
    text = SHAKESPEARE.read_text(encoding="utf-8")[:20_000]
    single = tmp_path / "shakespeare.jsonl"  # what `botkit fetch files --single-text` writes
    single.write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
    filt = novelty(FilterContext(corpus_paths=(single,)))
    across_lines = "Speak, speak. First Citizen: You are all resolved rather to die than to famish?"
    novel = "First Citizen: we are all resolved to feast upon the corn of the senate tonight"
    assert check(filt, across_lines, novel)[0] is not None
    assert check(filt, novel) == [None]


def test_tiny_shakespeare_verbatim_passage_versus_held_out_text(tmp_path: Path) -> None:
    text = SHAKESPEARE.read_text(encoding="utf-8")
    split = int(len(text) * 0.9)
    train = tmp_path / "train.txt"
    train.write_text(text[:split], encoding="utf-8")
    filt = novelty(FilterContext(corpus_paths=(train,), single_text=True))
    verbatim = " ".join(text[:split].split()[5000:5030])
    held_out = text[split:].split()
    chunks = [" ".join(held_out[i : i + 20]) for i in range(0, 4000, 20)]
    assert check(filt, verbatim)[0] is not None
    assert sum(v is not None for v in check(filt, *chunks)) <= len(chunks) // 50  # new text by the same author passes


def test_character_runs(corpus: Path) -> None:
    filt = novelty(FilterContext(corpus_paths=(corpus,)), chars=24)
    result = check(filt, "wow, Scientists discover a NEW thing", "a new species of frog in my garden", "species of frogs and dogs")
    assert result[0] == 'repeats 24 characters of the corpus verbatim: "scientists discover a ne"'
    assert result[1] is not None and result[2] is None


def test_index_is_saved_beside_the_weights_and_reused_while_the_corpus_is_unchanged(corpus: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights" / "titles"
    context = FilterContext(corpus_paths=(corpus,), weights_dir=weights)
    novelty(context)
    index = weights / INDEX_NAME

    def identity() -> tuple[int, int]:
        st = index.stat()
        return st.st_ino, st.st_mtime_ns

    built = identity()
    assert check(novelty(context), TITLES[0])[0] is not None
    assert identity() == built  # loaded, not rebuilt
    os.utime(corpus, ns=(1, 1))  # touched (a copy, a checkout) but the same text
    assert check(novelty(context), TITLES[0])[0] is not None
    assert identity() == built
    with corpus.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "A brand new title about seven or more words"}) + "\n")
    assert check(novelty(context), "a brand new title about seven or more words!")[0] is not None
    rebuilt = identity()
    assert rebuilt != built
    novelty(context, words=6)  # other settings: another index
    assert identity() != rebuilt


def test_the_saved_index_works_without_the_corpus(corpus: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    novelty(FilterContext(corpus_paths=(corpus,), weights_dir=weights))
    corpus.unlink()
    assert build_chain("default", FilterContext(weights_dir=weights)).names[-1] == "novelty"
    assert check(novelty(FilterContext(weights_dir=weights)), TITLES[2])[0] is not None
    with pytest.raises(CorpusError, match=r"titles\.jsonl: corpus file not found"):
        novelty(FilterContext(weights_dir=weights), words=5)  # a new setting needs the corpus


def test_an_unreadable_index_is_rebuilt(corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = tmp_path / "custom.idx"
    index.write_bytes(b"not an index")
    with caplog.at_level(logging.WARNING):
        filt = novelty(FilterContext(corpus_paths=(corpus,)), index=index)
    assert "unreadable novelty index, rebuilding it" in caplog.text
    assert check(filt, TITLES[0])[0] is not None
    assert index.read_bytes()[:2] == b"PK"  # a fresh .npz archive replaced it


def test_missing_corpus_and_no_corpus_at_all(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"gone\.jsonl: corpus file not found"):
        novelty(FilterContext(corpus_paths=(tmp_path / "gone.jsonl",)))
    with pytest.raises(ConfigError, match="needs the training corpus"):
        novelty(FilterContext(weights_dir=tmp_path))


def test_a_build_in_many_small_batches_equals_one_in_a_single_batch(tmp_path: Path) -> None:
    documents = [SHAKESPEARE.read_text(encoding="utf-8")[:6_000], "short doc", "another short one here", "x"]
    results = []
    for batch_words, piece_chars in ((1 << 20, 1 << 20), (5, 40)):
        builder = _Builder(6, 30, batch_words)
        for doc in documents:
            builder.add(_pieces(doc, piece_chars))
        results.append(builder.finish())
    (words_one, chars_one), (words_many, chars_many) = results
    assert len(words_one) > 900 and len(chars_one) > 4000
    np.testing.assert_array_equal(words_one, words_many)
    np.testing.assert_array_equal(chars_one, chars_many)


def test_ngram_hashes_stay_inside_documents() -> None:
    tokens = np.array([1, 2, 3, 1, 2, 3, 4, 9], dtype=np.uint64)
    lengths = np.array([3, 4, 1])
    hashes, positions = ngram_hashes(tokens, lengths, 3, np.array([True, True, True]))
    assert positions.tolist() == [7, 0, 3, 4]  # the 1-token document whole, then the 3-token runs
    assert hashes[1] == hashes[2] and len(set(hashes.tolist())) == 3
    _, positions = ngram_hashes(tokens, lengths, 3, np.array([True, True, False]))
    assert positions.tolist() == [0, 3, 4]


def test_sorted_hashes_merge_runs_into_one_sorted_unique_set() -> None:
    rng = np.random.default_rng(7)
    parts = [rng.integers(0, 5_000, 700).astype(np.uint64) for _ in range(40)]
    merged = SortedHashes(merge_at=1_000)
    for part in parts:
        merged.add(part)
    np.testing.assert_array_equal(merged.result(), np.unique(np.concatenate(parts)))


def test_index_settings_are_recorded(corpus: Path) -> None:
    index = build_index(Settings((corpus,), 7, None, False))
    assert index.settings() == Settings((corpus.resolve(),), 7, None, False)
    assert index.meta["corpora"][0]["size"] == corpus.stat().st_size
