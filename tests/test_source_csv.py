"""The ``csv`` source: real pandas reads of small files, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from botkit.cli import main
from botkit.corpus import Document, corpus_stats, read_corpus
from botkit.errors import ConfigError, SourceError
from botkit.sources.tabular import CsvSource

DATA = Path(__file__).parent / "data" / "csv"
KAGGLE_SAMPLE = DATA / "freecodecamp_sample.csv"
REDDIT_TITLES = Path("/work/shared/data/reddit_rarepuppers_politics_2000_context.csv")


def docs(**options: Any) -> list[Document]:
    return list(CsvSource.from_mapping(options, "test").documents())


def fetch_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fetch", "csv", *args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one ``botkit: error:`` line (other plugins may log warnings around it)."""
    lines = [line for line in err.splitlines() if line.startswith("botkit: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_kaggle_style_chat_csv_defaults_to_text_column_and_skips_empty_rows() -> None:
    got = docs(path=KAGGLE_SAMPLE, label_column="fromUser.username", id_column="id", created_column="sent")
    assert [(d.label, d.text) for d in got] == [
        ("quincylarson", "Welcome, campers!"),
        ("camperbot", "quincylarson sends brownie points to @berkeleytrue :sparkles:"),
        ("BerkeleyTrue", "first line\nsecond line, still the same message"),
        ("ann", "NA is not a missing value here"),  # "NA" is text, not a missing value
        ("camperbot", "ann sends brownie points to @quincylarson :sparkles:"),
    ]
    assert [d.id for d in got][:2] == ["55b8f1ec0fc9f982beab6f3a", "55b8f1f50fc9f982beab6f3c"]
    # Z, an offset converted to UTC, and an unreadable time left out rather than failing the row.
    assert [d.created for d in got] == [
        "2015-07-29T15:31:24Z",
        "2015-07-29T15:31:33Z",
        "2015-07-29T15:31:47Z",
        "2015-07-29T13:33:00Z",
        None,
    ]
    assert {d.source for d in got} == {f"csv:{KAGGLE_SAMPLE}"}


def test_title_column_is_the_next_default_and_a_lone_named_column_the_last(tmp_path: Path) -> None:
    titles = tmp_path / "titles.csv"
    titles.write_text("score,title\n5,first title\n3,second title\n")
    assert [d.text for d in docs(path=titles)] == ["first title", "second title"]
    lone = tmp_path / "lone.csv"
    lone.write_text(",message\n0,only column with a name\n")
    assert [(d.text, d.label, d.id) for d in docs(path=lone)] == [("only column with a name", None, None)]


def test_exclude_drops_the_bot_and_include_ors_values_within_a_column() -> None:
    no_bot = docs(path=KAGGLE_SAMPLE, label_column="fromUser.username", exclude=["fromUser.username=camperbot"])
    assert [d.label for d in no_bot] == ["quincylarson", "BerkeleyTrue", "ann"]
    some = docs(
        path=KAGGLE_SAMPLE,
        label_column="fromUser.username",
        include=["fromUser.username=ann", "fromUser.username=camperbot"],
        exclude=["fromUser.id=55b977f00fc9f982beab7883"],
    )
    assert [d.label for d in some] == ["ann"]


def test_values_may_contain_equals_signs(tmp_path: Path) -> None:
    path = tmp_path / "eq.csv"
    path.write_text("text,tag\nkeep me,a=b\ndrop me,a\n")
    assert [d.text for d in docs(path=path, include=["tag=a=b"])] == ["keep me"]


def test_small_chunks_yield_every_row_in_order(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,text\n" + "".join(f"{i},message number {i}\n" for i in range(10)))
    got = docs(path=path, id_column="id", chunk_size=3)
    assert [d.text for d in got] == [f"message number {i}" for i in range(10)]
    assert [d.id for d in got] == [str(i) for i in range(10)]


def test_rows_stream_before_the_end_of_the_file_is_parsed(tmp_path: Path) -> None:
    """With small chunks, early rows arrive before pandas even reaches a broken line 9."""
    path = tmp_path / "broken.csv"
    path.write_text("text\n" + "".join(f"row {i}\n" for i in range(7)) + '"unclosed\n' + "more\n" * 3)
    rows = CsvSource.from_mapping({"path": path, "chunk_size": 2}, "test").documents()
    assert [next(rows).text for _ in range(4)] == ["row 0", "row 1", "row 2", "row 3"]
    with pytest.raises(SourceError, match=r"broken\.csv: not valid CSV \(C error: EOF inside string starting at row 8\)"):
        list(rows)


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"text,who\ncaf\xe9 au lait,ann\n\xef\xbb\xbfplain,bob\n")
    assert [d.text for d in docs(path=path)] == ["caf\ufffd au lait", "\ufeffplain"]


def test_tab_separated_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "chat.tsv"
    path.write_text("user\ttext\nann\thello, world\nbob\tbye\n")
    out = tmp_path / "out.jsonl"
    code, stdout, _ = fetch_cli(capsys, str(path), "--sep", "\\t", "--label-column", "user", "-o", str(out))
    assert code == 0, stdout
    assert [(d.label, d.text) for d in read_corpus(out)] == [("ann", "hello, world"), ("bob", "bye")]


def test_reddit_titles_csv_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not REDDIT_TITLES.is_file():
        pytest.skip(f"{REDDIT_TITLES} not present")
    out = tmp_path / "titles.jsonl"
    args = [str(REDDIT_TITLES), "--text-column", "title", "--label-column", "context_label", "-o", str(out)]
    code, stdout, err = fetch_cli(capsys, *args)
    assert code == 0, err
    # 2,000 rows; 7 rarepuppers titles repeat an earlier one and are deduplicated.
    assert "added 1,993 new document(s)" in stdout
    assert dict(corpus_stats(out).labels) == {"politics": 1000, "rarepuppers": 993}
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["label"] == "politics" and first["text"].startswith("Trump revealed highly classified information")
    code, stdout, _ = fetch_cli(capsys, *args)  # incremental: nothing new the second time
    assert code == 0 and "added 0 new document(s)" in stdout


def test_missing_column_names_the_file_and_lists_the_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = fetch_cli(capsys, str(KAGGLE_SAMPLE), "--label-column", "username", "-o", str(tmp_path / "o.jsonl"))
    assert code == 1
    line = error_line(err)
    assert str(KAGGLE_SAMPLE) in line and "'username'" in line and "--label-column" in line
    assert "fromUser.id, fromUser.username, fromUser.displayName, text, sent, id, mentions" in line
    assert "Unnamed" not in line and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("flag", ["include", "exclude"])
def test_filter_on_a_missing_column_names_the_flag(flag: str) -> None:
    with pytest.raises(SourceError, match=rf"no column 'user' \(from --{flag}\); the file's columns: fromUser\.id"):
        docs(path=KAGGLE_SAMPLE, **{flag: ["user=camperbot"]})


def test_no_text_column_to_guess_asks_for_one(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("body,author\nhi,ann\n")
    with pytest.raises(SourceError, match=r"two\.csv: no 'text' or 'title' column; choose one with --text-column .*body, author"):
        docs(path=path)


def test_malformed_filter_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = fetch_cli(capsys, str(KAGGLE_SAMPLE), "--exclude", "camperbot")
    assert code == 1
    line = error_line(err)
    assert "--exclude" in line and "'camperbot' is not COLUMN=VALUE" in line


def test_a_separator_must_be_one_character() -> None:
    with pytest.raises(ConfigError, match=r"sep: .*one character"):
        docs(path=KAGGLE_SAMPLE, sep=";;")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"nope\.csv: CSV file not found"),
        (b"", r"empty\.csv: the file is empty \(a CSV needs a header row"),
        (b'text\nfine\n"never closed\n', r"quote\.csv: not valid CSV \(.*\); check --sep"),
    ],
    ids=["not-found", "empty", "unclosed-quote"],
)
def test_unreadable_files_are_one_line_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    name = {None: "nope.csv", b"": "empty.csv"}.get(content, "quote.csv")
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as info:
        docs(path=path)
    assert "\n" not in str(info.value)


def test_unix_times_in_seconds_or_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "times.csv"
    path.write_text("text,s,ms\na,1500000000,1709337720000\nb,,1709337780000\n")
    assert [d.created for d in docs(path=path, created_column="s")] == ["2017-07-14T02:40:00Z", None]
    assert [d.created for d in docs(path=path, created_column="ms")] == ["2024-03-02T00:02:00Z", "2024-03-02T00:03:00Z"]


def test_parent_column_gives_pairs_and_stats_count_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,response\nHow are you?,Fine.\n,A row answering nothing\nAnd you?,Also fine.\n")
    got = docs(path=path, text_column="response", parent_column="prompt")
    assert [(d.text, d.parent) for d in got] == [("Fine.", "How are you?"), ("A row answering nothing", None), ("Also fine.", "And you?")]
    out = tmp_path / "pairs.jsonl"
    assert fetch_cli(capsys, str(path), "--text-column", "response", "--parent-column", "prompt", "-o", str(out))[0] == 0
    assert corpus_stats(out).parents == 2


def test_reply_gap_pairs_turns_across_chunks_before_filters(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(
        "text,user,room,sent\n"
        "hi all,ann,r,1000\n"
        "hey ann,bob,r,1010\n"  # another author, 10 s later: a reply
        "how are things,bob,r,1012\n"  # same author again: not a reply
        "build passed,ci,r,1015\n"  # dropped by --exclude, but still the previous turn
        "great,ann,r,1020\n"
        ",bob,r,1021\n"  # an empty row is no turn
        "much later,bob,r,2000\n"  # past the gap
    )
    got = docs(path=path, author_column="user", created_column="sent", reply_gap=30, exclude=["user=ci"], chunk_size=2)
    assert [(d.text, d.parent) for d in got] == [
        ("hi all", None),
        ("hey ann", "hi all"),
        ("how are things", None),
        ("great", "build passed"),
        ("much later", None),
    ]
    by_label = docs(path=path, label_column="user", created_column="sent", reply_gap=30)
    assert [d.parent for d in by_label][1] == "hi all"  # the label column names the author when no author column is given


def test_reply_gap_without_times_or_authors_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = fetch_cli(capsys, str(KAGGLE_SAMPLE), "--reply-gap", "60", "--label-column", "fromUser.username")
    assert code == 1
    assert "--reply-gap: needs created_column and author_column (or label_column)" in error_line(err)


def test_surrogate_bytes_become_u_fffd_and_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A CSV can hold a surrogate only as bytes (CESU-8 / WTF-8 ``\\xed\\xa0\\xbd``), invalid in UTF-8:
    pandas decodes them to U+FFFD, one per byte, and the count is reported once, chunks or not."""
    path = tmp_path / "cesu.csv"
    path.write_bytes(b"text,who\nbroken \xed\xa0\xbd emoji,ann\nfine,bob\nalso \xed\xb8\x80 low,ann\n")
    out = tmp_path / "out.jsonl"
    with caplog.at_level("WARNING"):
        code, stdout, err = fetch_cli(capsys, str(path), "--label-column", "who", "--chunk-size", "1", "-o", str(out))
    assert code == 0, err
    assert "added 3 new document(s)" in stdout
    assert [d.text for d in read_corpus(out)] == ["broken \ufffd\ufffd\ufffd emoji", "fine", "also \ufffd\ufffd\ufffd low"]
    assert caplog.text.count(f"{path}: 6 invalid UTF-8 sequence(s) replaced with U+FFFD") == 1
