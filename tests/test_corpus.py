"""The corpus module: formats, atomic incremental writes, clean-up and stats."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botkit.cli import main
from botkit.corpus import CorpusWriter, Document, Normalization, Normalizer, corpus_stats, read_corpus, replace_lone_surrogates
from botkit.corpus.io import decode_txt, encode_txt
from botkit.errors import CorpusError

TRICKY = ["plain", "two\nlines", "back\\slash and \\n literal", "tab\there", "crlf\r\nend", "ünïcødé ☃", "trailing\\"]


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_round_trip_keeps_one_document_per_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    with CorpusWriter(path) as writer:
        for text in TRICKY:
            writer.add(Document(text))
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(TRICKY)
    assert [d.text for d in read_corpus(path)] == TRICKY


@pytest.mark.parametrize("text", TRICKY)
def test_txt_escaping_is_reversible(text: str) -> None:
    encoded = encode_txt(text)
    assert "\n" not in encoded and "\r" not in encoded
    assert decode_txt(encoded) == text


def test_jsonl_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    doc = Document("hello", label="politics", id="abc", source="reddit", created="2020-01-01T00:00:00Z")
    with CorpusWriter(path) as writer:
        writer.add(doc)
    assert json.loads(path.read_text()) == {"text": "hello", "label": "politics", "id": "abc", "source": "reddit", "created": "2020-01-01T00:00:00Z"}
    assert list(read_corpus(path)) == [doc]


def test_rerun_adds_only_new_documents_by_id_else_text(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CorpusWriter(path) as writer:
        writer.add(Document("first", id="1"))
        writer.add(Document("no id"))
    with CorpusWriter(path, dedupe_text=False) as writer:
        assert not writer.add(Document("first, edited", id="1"))  # same id: already there
        assert not writer.add(Document("no id"))  # no id: same text
        assert writer.add(Document("first", id="2"))  # new id, same text: kept without text dedupe
        assert writer.added == 1 and writer.skipped == 2 and writer.existing == 2
    with CorpusWriter(path) as writer:
        assert not writer.add(Document("first", id="3"))  # text dedupe on (the default)
    assert [d.id for d in read_corpus(path)] == ["1", None, "2"]


def test_failure_mid_write_leaves_the_old_corpus_untouched(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CorpusWriter(path) as writer:
        writer.add(Document("kept"))
    before = path.read_bytes()
    with pytest.raises(RuntimeError), CorpusWriter(path) as writer:
        writer.add(Document("lost"))
        raise RuntimeError("network died")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl"]  # no temp file left behind


def test_ctrl_c_keeps_the_whole_documents_already_fetched(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with pytest.raises(KeyboardInterrupt), CorpusWriter(path) as writer:
        writer.add(Document("one"))
        writer.add(Document("two"))
        raise KeyboardInterrupt
    assert [d.text for d in read_corpus(path)] == ["one", "two"]


def test_appending_to_a_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("hand written", encoding="utf-8")
    with CorpusWriter(path) as writer:
        writer.add(Document("added"))
    assert [d.text for d in read_corpus(path)] == ["hand written", "added"]


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "ok"}\n{"text": broken\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"c\.jsonl: line 2 is not valid JSON"):
        list(read_corpus(path))
    path.write_text('{"title": "no text key"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"line 1 has no \"text\""):
        list(read_corpus(path))


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("label", [], 'line 2: "label" must be a string or null (got a list [])'),
        ("label", {"a": 1}, '"label" must be a string or null (got an object {"a": 1})'),
        ("label", True, '"label" must be a string or null (got a boolean true)'),
        ("label", 3, '"label" must be a string or null (got a number 3)'),
        ("parent", 2.5, '"parent" must be a string or null (got a number 2.5)'),
        ("parent", ["x" * 100], '"parent" must be a string or null (got a list ["xxxx'),
        ("source", False, '"source" must be a string or null (got a boolean false)'),
        ("id", [1], '"id" must be a string or a whole number or null (got a list [1])'),
        ("id", True, '"id" must be a string or a whole number or null (got a boolean true)'),
    ],
)
def test_a_field_of_the_wrong_type_is_an_error_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, said: str
) -> None:
    """Such a value was turned into text ("[]", "True"): a label or parent the model then trained on."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "fine", "label": "a"}) + "\n" + json.dumps({"text": "bad", field: value}) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as caught:
        list(read_corpus(path))
    assert str(caught.value).startswith(f"{path}: line 2: ") and said in str(caught.value) and len(str(caught.value)) < 200
    assert main(["corpus", "stats", str(path)]) != 0  # the CLI says it on one line, no traceback
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_null_fields_and_a_numeric_id_still_read(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = [
        {"text": "a", "label": None, "parent": None, "id": 42},
        {"text": "b", "label": "x", "parent": "p", "id": "t3_1", "source": "s", "created": "2024-01-01T00:00:00Z"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert list(read_corpus(path)) == [Document("a", id="42"), Document("b", "x", "t3_1", "s", "2024-01-01T00:00:00Z", "p")]


def test_corpus_stats_shows_a_labels_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "t", "label": "r/\x1b]0;pwned\x07x"}) + "\n" + json.dumps({"text": "u", "label": "ünï 😀"}) + "\n", encoding="utf-8")
    assert main(["corpus", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "r/\\x1b]0;pwned\\x07x" in out and "\x1b" not in out and "ünï 😀" in out


def test_missing_folder_and_bad_suffix_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        CorpusWriter(tmp_path / "nope" / "c.jsonl")
    with pytest.raises(CorpusError, match=r"must end in \.jsonl or \.txt"):
        CorpusWriter(tmp_path / "c.csv")


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"good\nbad \xff\xfe byte\nalso good\n")
    with caplog.at_level(logging.WARNING):
        texts = [d.text for d in read_corpus(path)]
    assert texts == ["good", "bad \ufffd\ufffd byte", "also good"]
    assert "2 invalid UTF-8 sequence(s) replaced" in caplog.text


def test_normalizer_options() -> None:
    default = Normalizer(Normalization())
    assert default(Document("  e\u0301  spaced\t\tout  \n\n\n\nnext ")).text == "\u00e9 spaced out\n\nnext"
    assert default(Document("   ")) is None
    lower = Normalizer(Normalization(lowercase=True, strip_urls=True, min_length=3, max_length=20))
    assert lower(Document("See HTTPS://x.org/a?b=1 NOW")).text == "see now"
    assert lower(Document("ab")) is None
    assert lower(Document("x" * 21)) is None
    off = Normalizer(Normalization(nfc=False, collapse_whitespace=False))
    assert off(Document(" e\u0301  x ")).text == " e\u0301  x "


def test_stats(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CorpusWriter(path) as writer:
        for i in range(1, 101):
            writer.add(Document("a" * i, label="long" if i > 50 else "short"))
        writer.add(Document("bcd"))
    stats = corpus_stats(path)
    assert stats.documents == 101
    assert stats.characters == sum(range(1, 101)) + 3
    assert len(stats.charset) == 4
    assert stats.labels == {"long": 50, "short": 50}
    assert stats.percentiles()[50] == 50 and stats.percentiles()[100] == 100
    text = stats.format()
    assert "documents:           101" in text and "1 documents unlabelled" in text and "p50=50" in text
    assert "with parents:        0" in text


def test_pairs_round_trip_and_old_corpora_still_read(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "from before parents existed", "label": "old"}\n', encoding="utf-8")
    reply = Document("Fine, thanks.", label="bob", id="2", parent="How are you?\nAll well?")
    with CorpusWriter(path) as writer:
        assert writer.add(reply)
    assert json.loads(path.read_text().splitlines()[1])["parent"] == "How are you?\nAll well?"
    assert list(read_corpus(path)) == [Document("from before parents existed", label="old"), reply]
    stats = corpus_stats(path)
    assert stats.parents == 1 and "with parents:        1 (50% of documents)" in stats.format()


def test_same_reply_to_another_parent_is_a_new_pair(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CorpusWriter(path) as writer:
        assert writer.add(Document("Thanks!", parent="Here is the fix."))
        assert writer.add(Document("Thanks!", parent="Merged."))
        assert writer.add(Document("Thanks!"))
        assert not writer.add(Document("Thanks!", parent="Merged."))
        assert not writer.add(Document("Thanks!"))
    assert [d.parent for d in read_corpus(path)] == ["Here is the fix.", "Merged.", None]


def test_txt_corpus_warns_once_that_parents_are_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.txt"
    with caplog.at_level(logging.WARNING), CorpusWriter(path) as writer:
        for i in range(3):
            writer.add(Document(f"reply {i}", parent="question"))
    assert caplog.text.count(".txt corpora keep no parents; use .jsonl to keep them") == 1
    assert "labels" not in caplog.text
    assert [d.parent for d in read_corpus(path)] == [None] * 3


def test_normalizer_cleans_parents_but_limits_only_the_reply() -> None:
    normalize = Normalizer(Normalization(lowercase=True, strip_urls=True, max_length=10))
    assert normalize(Document("  Sure  ", parent=" A  LONG question, longer than ten ")) == Document("sure", parent="a long question, longer than ten")
    assert normalize(Document("Sure", parent="https://example.org/only-a-link")) == Document("sure")
    assert normalize(Document("x" * 11, parent="short")) is None


@pytest.mark.parametrize(
    ("text", "fixed", "lone"),
    [
        ("plain ünïcødé 😀", "plain ünïcødé 😀", 0),
        ("broken \ud83d emoji", "broken \ufffd emoji", 1),
        ("low half first \ude00\ud83d", "low half first \ufffd\ufffd", 2),
        ("a pair in two code points \ud83d\ude00", "a pair in two code points 😀", 0),
        ("\ud83d\ud83d\ude00\ude00", "\ufffd😀\ufffd", 2),
        ("\udce9 an undecodable byte, as surrogateescape gives it", "\ufffd an undecodable byte, as surrogateescape gives it", 1),
    ],
)
def test_lone_surrogates_become_u_fffd_and_split_pairs_join(text: str, fixed: str, lone: int) -> None:
    assert replace_lone_surrogates(text) == (fixed, lone)


def test_a_hand_written_jsonl_with_surrogate_escapes_reads_and_stats(tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_text(
        '{"text": "broken \\ud83d emoji", "label": "odd\\udc00"}\n{"text": "a real pair \\ud83d\\ude00"}\n{"text": "fine"}\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        docs = list(read_corpus(path))
    assert [(d.text, d.label) for d in docs] == [("broken \ufffd emoji", "odd\ufffd"), ("a real pair 😀", None), ("fine", None)]
    assert caplog.text.count("2 lone surrogate(s)") == 1
    assert main(["corpus", "stats", str(path)]) == 0
    assert "documents:           3" in capsys.readouterr().out


def test_fetch_adds_to_a_corpus_holding_invalid_utf8_and_keeps_its_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """The old lines are copied as bytes: CESU-8 (a surrogate encoded as UTF-8) stays as it was."""
    corpus = tmp_path / "c.jsonl"
    old = b'{"text": "cesu \xed\xa0\xbd bytes"}\n{"text": "escape \\ud83d"}\n'
    corpus.write_bytes(old)
    new = tmp_path / "new.txt"
    new.write_text("new line\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert main(["fetch", "files", str(new), "-o", str(corpus)]) == 0
    assert "added 1 new document(s)" in capsys.readouterr().out
    assert corpus.read_bytes().startswith(old)
    assert [d.text for d in read_corpus(corpus)] == ["cesu \ufffd\ufffd\ufffd bytes", "escape \ufffd", "new line"]
    assert "3 invalid UTF-8 sequence(s)" in caplog.text and "1 lone surrogate(s)" in caplog.text


def test_files_with_surrogate_bytes_and_an_undecodable_name_fetch(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A text file can hold a surrogate only as invalid bytes (decoded to U+FFFD and counted);
    a Latin-1 file name reaches the corpus's ``source`` as a surrogate, which must not stop the write."""
    name = "caf\udce9.txt"  # the file name b"caf\xe9.txt", as Python gives it
    (tmp_path / name).write_bytes(b"broken \xed\xa0\xbd emoji\n")
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING):
        assert main(["fetch", "files", str(tmp_path / name), "-o", str(out)]) == 0
    assert "1 lone surrogate(s) replaced with U+FFFD" in capsys.readouterr().out
    assert "caf\\udce9.txt: 3 invalid UTF-8 sequence(s) replaced" in caplog.text  # the name's escapes, never a lone surrogate
    assert not any("\udce9" in record.getMessage() for record in caplog.records)
    (doc,) = read_corpus(out)
    assert (doc.text, doc.source) == ("broken \ufffd\ufffd\ufffd emoji", f"files:{tmp_path}/caf\ufffd.txt")


#: Any character, surrogates half the time: lone halves, and pairs split into two code points.
ANY_TEXT = st.text(st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"])), min_size=1)


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
@settings(max_examples=60, deadline=None, database=None)
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=5), label=ANY_TEXT)
def test_any_text_round_trips_through_the_writer_and_reader(tmp_path_factory: pytest.TempPathFactory, suffix: str, texts: list[str], label: str) -> None:
    path = tmp_path_factory.mktemp("any") / f"c{suffix}"
    kept = [t for t in texts if suffix == ".jsonl" or encode_txt(t).strip()]  # a blank .txt line is no document
    with CorpusWriter(path, dedupe_text=False) as writer:
        for i, text in enumerate(kept):
            writer.add(Document(text, label=label, id=str(i)))
    if not kept:
        return
    docs = list(read_corpus(path))
    assert [d.text for d in docs] == [replace_lone_surrogates(t)[0] for t in kept]
    assert writer.surrogates == sum(replace_lone_surrogates(t)[1] for t in kept) + len(kept) * replace_lone_surrogates(label)[1]
    path.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert list(read_corpus(path)) == docs  # and read twice, the same
