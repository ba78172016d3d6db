"""The ``gitter`` and ``matrix`` sources on small real-shaped exports, and through the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from botkit.cli import main
from botkit.corpus import Document, read_corpus
from botkit.errors import SourceError
from botkit.sources.chat import GitterSource, MatrixSource, strip_reply_fallback

DATA = Path(__file__).parent / "data" / "chat"
GITTER_ARRAY = DATA / "gitter_room.json"
GITTER_PAGES = DATA / "gitter_pages.ndjson"
MATRIX_EXPORT = DATA / "matrix_export.json"

#: What the Matrix fixture must give: state events, the image, the reaction, the redacted message,
#: the edit events and the edit by someone else are gone; the last edit wins; the reply quote is cut.
MATRIX_MESSAGES = [
    ("@ann:matrix.org", "$hello", "Has anyone trained a char-rnn on this room yet?"),
    ("@bob:example.org", "$reply", "Not yet, the corpus is too small"),
    ("@ann:matrix.org", "$emote", "sighs at the tiny corpus"),
    ("@bob:example.org", "$typo", "I will export more history tomorrow"),
    ("@notices:matrix.org", "$notice", "Nightly build #42 passed"),
]


def gitter(*paths: Path, **options: Any) -> list[Document]:
    return list(GitterSource.from_mapping({"paths": list(paths), **options}, "test").documents())


def matrix(*paths: Path, **options: Any) -> list[Document]:
    return list(MatrixSource.from_mapping({"paths": list(paths), **options}, "test").documents())


@pytest.fixture
def matrix_zip(tmp_path: Path) -> Path:
    """An export zip as Element writes it with attachments: a folder holding export.json and files."""
    path = tmp_path / "botkit-dev - Chat Export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(MATRIX_EXPORT, "botkit-dev - Chat Export/export.json")
        archive.writestr("botkit-dev - Chat Export/images/loss-curve.png", b"\x89PNG\r\n\x1a\n")
    return path


def test_gitter_json_array() -> None:
    got = gitter(GITTER_ARRAY)
    assert [(d.label, d.text) for d in got] == [
        ("quincylarson", "Hi everyone! Just finished the *Meet Bonfire* challenge :tada:"),
        ("camperbot", "quincylarson sends brownie points to @berkeleytrue :sparkles: :thumbsup: :sparkles:"),
        ("BerkeleyTrue", "@quincylarson nice work!\nthe next one is harder"),
    ]
    first = got[0]
    assert (first.id, first.created, first.source) == ("55b8f1ec0fc9f982beab6f3a", "2015-07-29T15:31:24Z", f"gitter:{GITTER_ARRAY}")


def test_gitter_pages_one_a_line_and_single_messages() -> None:
    got = gitter(GITTER_PAGES)
    assert [d.text for d in got] == [
        "page one, first message",
        "page one, second message",
        "page two: https://gitter.im is moving",
        "a single message on its own line",
    ]
    assert [d.id[-4:] for d in got if d.id] == ["6001", "6002", "6003", "6004"]


def test_gitter_user_filters_ignore_case_across_files() -> None:
    no_bot = gitter(GITTER_ARRAY, GITTER_PAGES, exclude_user=["CamperBot"])
    assert [d.label for d in no_bot] == ["quincylarson", "BerkeleyTrue", "ann", "bob", "ann"]
    only = gitter(GITTER_ARRAY, GITTER_PAGES, include_user=["ann", "berkeleytrue"])
    assert [d.label for d in only] == ["BerkeleyTrue", "ann", "ann"]


def test_gitter_through_the_cli_excluding_camperbot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gitter.jsonl"
    code = main(["fetch", "gitter", str(GITTER_ARRAY), str(GITTER_PAGES), "--exclude-user", "camperbot", "-o", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and "added 5 new document(s)" in stdout
    assert {d.label for d in read_corpus(out)} == {"quincylarson", "BerkeleyTrue", "ann", "bob"}


def test_matrix_export_keeps_text_messages_with_edits_applied_and_reply_quotes_cut() -> None:
    got = matrix(MATRIX_EXPORT)
    assert [(d.label, d.id, d.text) for d in got] == MATRIX_MESSAGES
    assert got[0].created == "2024-03-02T00:02:00Z"
    assert got[0].source == f"matrix:{MATRIX_EXPORT}"


def test_matrix_zip_gives_the_same_messages(matrix_zip: Path) -> None:
    assert [(d.label, d.id, d.text) for d in matrix(matrix_zip)] == MATRIX_MESSAGES


def test_matrix_filters_and_label_override_through_the_cli(matrix_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "room.jsonl"
    args = ["fetch", "matrix", str(matrix_zip), "--exclude-user", "@notices:matrix.org", "--label", "botkit-dev", "-o", str(out)]
    assert main(args) == 0
    assert "added 4 new document(s)" in capsys.readouterr().out
    assert [(d.label, d.id) for d in read_corpus(out)] == [("botkit-dev", m[1]) for m in MATRIX_MESSAGES[:4]]


def test_a_quote_that_is_not_a_reply_fallback_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "quote.json"
    body = "> to be or not to be\n\nthat is the question"
    event = {"type": "m.room.message", "sender": "@ann:matrix.org", "event_id": "$q", "content": {"msgtype": "m.text", "body": body}}
    path.write_text(json.dumps({"room_name": "r", "messages": [event]}))
    assert [d.text for d in matrix(path)] == [body]


@pytest.mark.parametrize(
    ("body", "stripped"),
    [
        ("> <@a:b> hi\n\nhello", "hello"),
        ("> <@a:b> line one\n>\n> line three\n\nreply\n\nwith a blank line", "reply\n\nwith a blank line"),
        ("> <@a:b> no blank line after the quote\nreply", "> <@a:b> no blank line after the quote\nreply"),
        ("no quote at all", "no quote at all"),
    ],
)
def test_strip_reply_fallback(body: str, stripped: str) -> None:
    assert strip_reply_fallback(body) == stripped


def test_invalid_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"text": "fine"},\n {"text": oops}]')
    with pytest.raises(SourceError, match=r"broken\.json: not valid JSON \(Expecting value at line 2 column 11\); expected Gitter messages"):
        gitter(path)


def test_an_element_export_given_to_gitter_points_to_matrix() -> None:
    with pytest.raises(SourceError, match=r"matrix_export\.json: item 1 is not a Gitter message .*use 'botkit fetch matrix'"):
        gitter(MATRIX_EXPORT)


def test_gitter_json_given_to_matrix_says_what_was_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "matrix", str(GITTER_ARRAY), "-o", str(tmp_path / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("botkit: error:")]
    assert lines == [f'botkit: error: {GITTER_ARRAY}: not an Element chat export (expected one JSON object with a "messages" list)']


def test_a_zip_without_an_export_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.png", b"")
        archive.writestr("b.json", b"{}")
        archive.writestr("c.json", b"{}")
    with pytest.raises(SourceError, match=r"photos\.zip: the zip holds no export\.json"):
        matrix(path)


@pytest.mark.parametrize("source", [GitterSource, MatrixSource])
def test_a_missing_file_says_what_was_expected(tmp_path: Path, source: type[GitterSource | MatrixSource]) -> None:
    with pytest.raises(SourceError, match=r"gone\.json: file not found; expected "):
        list(source.from_mapping({"paths": [tmp_path / "gone.json"]}, "test").documents())


def test_matrix_reply_gets_the_message_it_answers_and_the_gap_rule_is_opt_in() -> None:
    hello, reply = MATRIX_MESSAGES[0][2], MATRIX_MESSAGES[1][2]
    assert [d.parent for d in matrix(MATRIX_EXPORT)] == [None, hello, None, None, None]  # the explicit reply only
    # Within 60 s and by someone else: ann's emote answers bob, bob's edited message answers ann;
    # the notice came 5 minutes after the last message, so it answers nothing.
    paired = matrix(MATRIX_EXPORT, reply_gap=60)
    assert [d.parent for d in paired] == [None, hello, reply, "sighs at the tiny corpus", None]


def write_gitter(path: Path, messages: list[tuple[str, str, str, str | None]]) -> Path:
    """Messages as (id, user, seconds past 12:00, parentId)."""
    path.write_text(
        json.dumps(
            [
                {"id": id_, "text": f"{user} says {id_}", "sent": f"2021-05-01T12:00:{sec}.000Z", "fromUser": {"username": user}}
                | ({"parentId": parent} if parent else {})
                for id_, user, sec, parent in messages
            ]
        )
    )
    return path


def test_gitter_thread_messages_answer_the_thread_root_before_any_user_filter(tmp_path: Path) -> None:
    path = write_gitter(
        tmp_path / "room.json",
        [
            ("m1", "camperbot", "00", None),
            ("m2", "ann", "05", "m1"),  # in the thread of the bot's message
            ("m3", "ann", "06", None),  # same author as the message before: never its reply
            ("m4", "bob", "09", None),
            ("m5", "ann", "50", None),  # 41 s later: past the gap
            ("m6", "bob", "51", "gone"),  # a thread whose root is not in the file: no parent, no guess
        ],
    )
    got = gitter(path, exclude_user=["camperbot"], reply_gap=30)
    assert [(d.id, d.parent) for d in got] == [
        ("m2", "camperbot says m1"),
        ("m3", None),
        ("m4", "ann says m3"),
        ("m5", None),
        ("m6", None),
    ]
    assert [d.parent for d in gitter(path)] == [None, "camperbot says m1", None, None, None, None]


def test_gitter_surrogate_escapes_and_bad_bytes_fetch_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A lone ``\\ud83d`` escape (text or username) becomes U+FFFD; a pair of escapes is the emoji;
    a Latin-1 byte becomes U+FFFD too; all counted, none stops the fetch."""
    path = tmp_path / "room.json"
    path.write_bytes(
        b'[{"id": "g1", "text": "broken \\ud83d emoji", "fromUser": {"username": "ann\\udc00"}},\n'
        b' {"id": "g2", "text": "whole \\ud83d\\ude00 emoji", "fromUser": {"username": "bob"}},\n'
        b' {"id": "g3", "text": "caf\xe9", "fromUser": {"username": "bob"}}]'
    )
    out = tmp_path / "room.jsonl"
    with caplog.at_level("WARNING"):
        assert main(["fetch", "gitter", str(path), "-o", str(out)]) == 0
    assert "2 lone surrogate(s) replaced with U+FFFD" in capsys.readouterr().out
    assert f"{path}: 1 invalid UTF-8 sequence(s) replaced with U+FFFD" in caplog.text
    assert [(d.label, d.text) for d in read_corpus(out)] == [("ann\ufffd", "broken \ufffd emoji"), ("bob", "whole \U0001f600 emoji"), ("bob", "caf\ufffd")]


def test_matrix_surrogate_escapes_in_messages_edits_and_replies_fetch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def event(event_id: str, body: str, **content: Any) -> str:
        return json.dumps({"type": "m.room.message", "sender": "@ann:matrix.org", "event_id": event_id, "content": {"msgtype": "m.text", "body": body, **content}})

    reply = {"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}
    edit = {"m.new_content": {"msgtype": "m.text", "body": "edited \ude00 too"}, "m.relates_to": {"rel_type": "m.replace", "event_id": "$b"}}
    export = tmp_path / "export.json"  # json.dumps writes each lone half as its escape, as a broken exporter would
    export.write_text('{"room_name": "r", "messages": [' + ", ".join([event("$a", "cut \ud83d"), event("$b", "typo"), event("$c", "answer", **reply), event("$e", "* edited", **edit)]) + "]}")
    assert "\\ud83d" in export.read_text()
    out = tmp_path / "room.jsonl"
    assert main(["fetch", "matrix", str(export), "-o", str(out)]) == 0
    # "cut \ud83d" twice (the message, then the parent of the reply) and the edit's half once.
    assert "3 lone surrogate(s) replaced with U+FFFD" in capsys.readouterr().out
    assert [(d.text, d.parent) for d in read_corpus(out)] == [("cut \ufffd", None), ("edited \ufffd too", None), ("answer", "cut \ufffd")]
