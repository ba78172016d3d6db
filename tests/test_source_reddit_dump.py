"""reddit-dump: long-window zstd and NDJSON dumps, filters, bad lines, broken files, bounded memory.

Every dump here is written by the test with the real ``zstandard`` compressor, using the same
2 GiB window (``window_log=31``) and checksums as ``zstd --long=31``, so the long-window path, the
multi-frame path and the error paths run against real zstd data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

from botkit.cli import main
from botkit.corpus import read_corpus
from botkit.sources import reddit_dump
from botkit.sources.reddit_dump import RedditDumpOptions, RedditDumpSource

BASE = 1_600_000_000  # 2020-09-13T12:26:40Z; post i is created i hours later
SUBREDDITS = ("pics", "AskReddit", "aww")
# Post i has kind KINDS[i % 10]: half are ordinary, the rest are each one thing the source skips.
KINDS = ("normal",) * 5 + ("stickied", "nsfw", "deleted_title", "removed_body", "mod_removed")
BOTKIT = Path(sys.executable).with_name("botkit")


def make_post(i: int) -> dict[str, Any]:
    kind = KINDS[i % 10]
    created = BASE + i * 3600
    return {
        "id": f"p{i}",
        "subreddit": SUBREDDITS[i % 3],
        # Multibyte characters everywhere, so cut pieces often split a UTF-8 sequence.
        "title": "[deleted]" if kind == "deleted_title" else f"Post {i}: café 日本 🐶 " + "é" * (i % 7),
        "selftext": "[removed]" if kind == "removed_body" else f"body of {i} ✓",
        "score": i,
        "created_utc": str(created) if i % 2 else created,  # older dumps hold strings
        "stickied": kind == "stickied",
        "over_18": kind == "nsfw",
        "removed_by_category": "moderator" if kind == "mod_removed" else None,
    }


def ndjson(posts: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for post in posts:
        yield json.dumps(post, ensure_ascii=False).encode() + b"\n"


def cut(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def write_zst(path: Path, pieces: Iterable[bytes], *, block_every: int = 0, frame_every: int = 0) -> Path:
    """Compress like ``zstd --long=31``; optionally end a zstd block or frame after every few pieces."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31, write_checksum=True)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(compression_params=params).stream_writer(fh) as writer:
        for n, piece in enumerate(pieces, 1):
            writer.write(piece)
            if frame_every and n % frame_every == 0:
                writer.flush(zstandard.FLUSH_FRAME)
            elif block_every and n % block_every == 0:
                writer.flush(zstandard.FLUSH_BLOCK)
    return path


def kept(i: int, subreddit: str | None = None) -> bool:
    return KINDS[i % 10] == "normal" and (subreddit is None or SUBREDDITS[i % 3] == subreddit)


def day(i: int) -> date:
    return datetime.fromtimestamp(BASE + i * 3600, UTC).date()


def fetch(*args: str) -> int:
    return main(["fetch", "reddit-dump", *args])


@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read a few bytes at a time, so lines and characters are cut between pieces."""
    monkeypatch.setattr(reddit_dump, "READ_SIZE", 61)


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """300 posts, zstd blocks ending every 37 bytes (mid-line, mid-character) and a new frame every 100 blocks."""
    data = b"".join(ndjson(make_post(i) for i in range(300)))
    return write_zst(tmp_path / "RS_2020-09.zst", cut(data, 37), block_every=1, frame_every=100)


def test_dump_needs_the_long_window_and_has_several_frames(dump: Path) -> None:
    data = dump.read_bytes()
    with pytest.raises(zstandard.ZstdError, match="too much memory"):
        zstandard.ZstdDecompressor().decompressobj().decompress(data)
    first_frame = zstandard.ZstdDecompressor(max_window_size=2**31).decompressobj()
    first_frame.decompress(data)
    assert first_frame.eof and first_frame.unused_data  # so the test covers frame after frame


def test_reads_every_kept_post_intact_across_cut_pieces(dump: Path, small_reads: None) -> None:
    docs = list(RedditDumpSource(RedditDumpOptions(paths=[dump])).documents())
    expected = [i for i in range(300) if kept(i)]
    assert [d.id for d in docs] == [f"p{i}" for i in expected]
    assert [d.text for d in docs] == [make_post(i)["title"] for i in expected]
    first = docs[0]
    assert (first.label, first.source, first.created) == ("pics", "reddit-dump", "2020-09-13T12:26:40Z")
    assert docs[1].created == "2020-09-13T13:26:40Z"  # post 1 has created_utc as a string


def test_uncompressed_ndjson_cut_every_few_bytes(tmp_path: Path, small_reads: None) -> None:
    path = tmp_path / "pics_submissions.ndjson"
    path.write_bytes(b"".join(ndjson(make_post(i) for i in range(60))))
    docs = list(RedditDumpSource(RedditDumpOptions(paths=[path])).documents())
    assert [d.text for d in docs] == [make_post(i)["title"] for i in range(60) if kept(i)]


def test_filters_by_subreddit_score_and_dates(dump: Path) -> None:
    def ids(**options: Any) -> list[str]:
        return [d.id for d in RedditDumpSource(RedditDumpOptions(paths=[dump], **options)).documents()]

    assert ids(subreddit=["r/PICS"], min_score=100) == [f"p{i}" for i in range(100, 300) if kept(i, "pics")]
    one_day = ids(since="2020-09-15", until="2020-09-15")  # both ends are whole UTC days, included
    assert one_day == [f"p{i}" for i in range(300) if kept(i) and day(i) == date(2020, 9, 15)]
    assert (one_day[0], one_day[-1]) == ("p40", "p54")  # post 36 is the day's first, 59 its last; 40..54 are kept
    assert ids(subreddit=["aww", "askreddit"], until="2020-09-13") == [f"p{i}" for i in range(12) if kept(i) and i % 3]


def test_selftext_nsfw_removed_and_limit(dump: Path) -> None:
    def ids(**options: Any) -> set[str]:
        return {d.id for d in RedditDumpSource(RedditDumpOptions(paths=[dump], **options)).documents()}

    base = ids()
    assert ids(over_18=True) - base == {f"p{i}" for i in range(300) if KINDS[i % 10] == "nsfw"}
    assert ids(removed=True) - base == {f"p{i}" for i in range(300) if KINDS[i % 10] in ("removed_body", "mod_removed")}
    assert len(ids(limit=7)) == 7
    doc = next(RedditDumpSource(RedditDumpOptions(paths=[dump], selftext=True)).documents())
    assert doc.text == "Post 0: café 日本 🐶 \n\nbody of 0 ✓"


def test_subreddit_filter_checks_the_field_not_the_text(tmp_path: Path) -> None:
    decoy = make_post(1) | {"title": 'he wrote "subreddit": "pics" in aww'}
    path = tmp_path / "RS.jsonl"
    path.write_bytes(b"".join(ndjson([decoy, make_post(0)])))
    assert [d.id for d in RedditDumpSource(RedditDumpOptions(paths=[path], subreddit=["pics"])).documents()] == ["p0"]


def test_fetch_twice_adds_nothing_new(dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pics.jsonl"
    assert fetch(str(dump), "--subreddit", "pics", "--min-score", "50", "-o", str(out)) == 0
    first = capsys.readouterr().out
    docs = list(read_corpus(out))
    expected = [f"p{i}" for i in range(300) if kept(i, "pics") and i >= 50]
    assert [d.id for d in docs] == expected
    assert f"added {len(expected)} new document(s)" in first
    assert {d.label for d in docs} == {"pics"}

    assert fetch(str(dump), "--subreddit", "pics", "-o", str(out)) == 0  # a wider second run
    second = capsys.readouterr().out
    wider = [f"p{i}" for i in range(300) if kept(i, "pics")]
    assert f"added {len(wider) - len(expected)} new document(s)" in second
    assert sorted(d.id for d in read_corpus(out)) == sorted(wider)


def test_bad_lines_are_skipped_and_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = list(ndjson(make_post(i) for i in range(40)))
    lines[4:4] = [b'{"id": "broken", "title": "cut off\n']
    lines[20:20] = [b"\xff\xfe not json at all\n", b"[1, 2]\n", b"\n"]
    path = write_zst(tmp_path / "RS_bad.zst", lines)
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING):
        assert fetch(str(path), "-o", str(out)) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == reddit_dump.__name__]
    assert warnings == [f"{path}: skipped 3 line(s) that are not JSON submissions or comments (the first is line 5)"]
    assert len(list(read_corpus(out))) == sum(kept(i) for i in range(40))


def _truncated(path: Path) -> tuple[Path, str]:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "the file is truncated: its zstd data stops mid-frame after line"


def _corrupted(path: Path) -> tuple[Path, str]:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path, "corrupt zstd data after line"


def _not_zstd(path: Path) -> tuple[Path, str]:
    path.write_text('{"title": "plain text"}\n')
    return path, "not zstd-compressed (it starts with"


def _empty(path: Path) -> tuple[Path, str]:
    path.write_bytes(b"")
    return path, "not zstd-compressed (the file is empty)"


def _garbage(path: Path) -> tuple[Path, str]:
    path = path.with_suffix(".ndjson")
    path.write_bytes(b"\x00\x01 binary\n" * 3)
    return path, "no line is a JSON submission"


@pytest.mark.parametrize("damage", [_truncated, _corrupted, _not_zstd, _empty, _garbage])
def test_broken_files_fail_with_one_line_naming_the_file(damage: Any, dump: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, expected = damage(dump)
    out = dump.parent / "out.jsonl"
    assert fetch(str(path), "-o", str(out)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"botkit: error: {path}: ") and expected in err
    assert not out.exists()


def test_truncated_file_message_from_the_installed_command(dump: Path) -> None:
    _truncated(dump)
    run = subprocess.run(
        [str(BOTKIT), "fetch", "reddit-dump", str(dump), "-o", str(dump.parent / "out.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{dump}: the file is truncated" in run.stderr
    assert f"of {dump.stat().st_size:,} bytes read" in run.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.zst"], "missing.zst: no such dump file or folder"),
        (["*.nothing"], "*.nothing: matches no dump files"),
        (["x.zst", "--subreddit", "pics,aww"], "'pics,aww' is not a subreddit name"),
        (["x.zst", "--since", "2021-01-02", "--until", "2021-01-01"], "is before since (2021-01-02), so no post could match (got '2021-01-01')"),
        (["x.zst", "--since", "last week"], "--since: Input should be a valid date"),
    ],
)
def test_bad_arguments(args: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert fetch(*args, "-o", "out.jsonl") == 1
    assert expected in capsys.readouterr().err


def test_folder_and_glob_read_months_in_order(tmp_path: Path) -> None:
    for month, posts in (("2020-10", range(10, 20)), ("2020-09", range(10))):
        write_zst(tmp_path / f"RS_{month}.zst", ndjson(make_post(i) for i in posts))
    for path in (tmp_path, tmp_path / "RS_2020-*.zst"):
        ids = [d.id for d in RedditDumpSource(RedditDumpOptions(paths=[path])).documents()]
        assert ids == [f"p{i}" for i in range(20) if kept(i)]


def test_memory_stays_bounded_on_a_large_dump(tmp_path: Path) -> None:
    """100k submissions (about 30 MB of NDJSON) stream through with a Python heap of a few MB."""
    lines, written = 100_000, 0

    def counted(pieces: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal written
        for piece in pieces:
            written += len(piece)
            yield piece

    posts = (
        {
            "id": f"b{i}",
            "title": f"title {i} café",
            "selftext": hashlib.sha256(b"%d" % i).hexdigest() * 3,
            "subreddit": SUBREDDITS[i % 3],
            "score": i,
            "created_utc": BASE + i,
        }
        for i in range(lines)
    )
    path = write_zst(tmp_path / "RS_big.zst", counted(ndjson(posts)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in RedditDumpSource(RedditDumpOptions(paths=[path], selftext=True)).documents())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == lines
    assert peak < written / 8, f"peak {peak:,} bytes for {written:,} bytes of NDJSON"


def make_comment(id_: str, body: str, parent_id: str, *, created: int = BASE, subreddit: str = "pics", score: int = 1) -> dict[str, Any]:
    return {"id": id_, "body": body, "parent_id": parent_id, "link_id": "t3_p0", "subreddit": subreddit, "score": score, "created_utc": created}


def test_comment_dump_pairs_each_comment_with_the_post_or_comment_it_answers(tmp_path: Path, small_reads: None, caplog: pytest.LogCaptureFixture) -> None:
    """In a folder the submissions are read first, whatever the names sort as, so titles are found."""
    write_zst(tmp_path / "pics_submissions.zst", ndjson([make_post(0), make_post(3) | {"min": 1}]))
    comments = [
        make_comment("c1", "nice café 🐶", "t3_p0"),
        make_comment("c2", "[deleted]", "t3_p0"),
        make_comment("c3", "agreed", "t1_c1", score=-5),  # too low to keep with --min-score 0, still a parent
        make_comment("c4", "replying to a gone comment", "t1_c2"),
        make_comment("c5", "and to the low one", "t1_c3"),
        make_comment("c6", "answers a post from another month", "t3_old"),
        make_comment("c7", "elsewhere", "t3_p0", subreddit="aww"),
    ]
    write_zst(tmp_path / "pics_comments.zst", ndjson(comments))
    options = {"paths": [tmp_path], "min_score": 0, "subreddit": ["pics"]}
    with caplog.at_level(logging.WARNING):
        docs = list(RedditDumpSource(RedditDumpOptions(**options)).documents())
    assert [(d.id, d.text, d.parent) for d in docs] == [
        ("p0", make_post(0)["title"], None),
        ("p3", make_post(3)["title"], None),
        ("t1_c1", "nice café 🐶", make_post(0)["title"]),
        ("t1_c5", "and to the low one", "agreed"),
    ]
    assert (docs[2].label, docs[2].source, docs[2].created) == ("pics", "reddit-dump", "2020-09-13T12:26:40Z")
    assert "2 comment(s) answer a parent not in the dumps read" in caplog.text and "skipped" in caplog.text
    orphans = [d for d in RedditDumpSource(RedditDumpOptions(**options, orphans=True)).documents() if d.parent is None]
    assert [d.id for d in orphans] == ["p0", "p3", "t1_c4", "t1_c6"]


def test_the_parent_cache_bounds_memory_and_keeps_busy_parents(tmp_path: Path) -> None:
    """40,000 comments in a chain (each answers the one before) plus one old post that every
    hundredth comment answers: with a cache of 150 texts all parents are found, the old post
    stays because it is used, and the heap stays small."""
    lines = 40_000

    def chain() -> Iterator[dict[str, Any]]:
        for i in range(lines):
            parent = "t3_p0" if i % 100 == 0 else f"t1_c{i - 1}"
            yield make_comment(f"c{i}", f"comment {i} " + hashlib.sha256(b"%d" % i).hexdigest(), parent, created=BASE + i)

    write_zst(tmp_path / "RS_2020-09.zst", ndjson([make_post(0)]))
    write_zst(tmp_path / "RC_2020-09.zst", ndjson(chain()))
    tracemalloc.start()
    try:
        docs = RedditDumpSource(RedditDumpOptions(paths=[tmp_path], parent_cache=150)).documents()
        found = sum(d.parent is not None for d in docs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == lines
    assert peak < 2_000_000, f"peak {peak:,} bytes"


def test_lone_surrogate_escapes_become_u_fffd_and_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pushshift lines with ``\\ud83d`` escapes (an emoji cut in half) fetch; a whole pair is the emoji."""
    posts = [
        b'{"id": "s1", "subreddit": "pics", "title": "broken \\ud83d emoji", "created_utc": 1600000000}\n',
        b'{"id": "s2", "subreddit": "pics", "title": "whole \\ud83d\\ude00 emoji", "created_utc": 1600000001}\n',
    ]
    write_zst(tmp_path / "pics_submissions.zst", posts)
    comments = [
        b'{"id": "c1", "body": "answers the broken one", "parent_id": "t3_s1", "subreddit": "pics", "created_utc": 1600000002}\n',
        b'{"id": "c2", "body": "low half \\ude00 alone", "parent_id": "t3_s2", "subreddit": "pics", "created_utc": 1600000003}\n',
    ]
    write_zst(tmp_path / "pics_comments.zst", comments)
    out = tmp_path / "pics.jsonl"
    assert fetch(str(tmp_path), "-o", str(out)) == 0
    # The broken title counts twice: once as a post, once as the parent c1 answers.
    assert "added 4 new document(s)" in (stdout := capsys.readouterr().out) and "3 lone surrogate(s) replaced with U+FFFD" in stdout
    assert [(d.id, d.text, d.parent) for d in read_corpus(out)] == [
        ("s1", "broken \ufffd emoji", None),
        ("s2", "whole \U0001f600 emoji", None),
        ("t1_c1", "answers the broken one", "broken \ufffd emoji"),
        ("t1_c2", "low half \ufffd alone", "whole \U0001f600 emoji"),
    ]
