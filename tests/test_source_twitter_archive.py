"""twitter-archive: tweets.js in every form a user has it (file, parts, folder, .zip), options, bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from botkit.cli import main
from botkit.corpus import Document, read_corpus
from botkit.sources.twitter_archive import TwitterArchiveOptions, TwitterArchiveSource


def tweet(id_: str, text: str, *, reply_to: str | None = None, lang: str = "en", created: str = "Wed Oct 10 20:19:24 +0000 2018") -> dict[str, Any]:
    """One element of tweets.js, shaped like the archive's (counts are strings there)."""
    body = {
        "id": id_,
        "id_str": id_,
        "full_text": text,
        "created_at": created,
        "lang": lang,
        "favorite_count": "3",
        "retweet_count": "0",
        "retweeted": False,
        "entities": {"hashtags": [], "user_mentions": []},
    }
    if reply_to:
        body |= {"in_reply_to_status_id_str": reply_to, "in_reply_to_screen_name": "bob"}
    return {"tweet": body}


PART0 = [
    tweet("1", "fish &amp; chips &lt;3 &gt;_&gt;", created="Sat Mar 02 23:59:59 -0500 2019"),
    tweet("2", "RT @alice: someone else's words"),
    tweet("3", "@bob @carol sure, see you at 5", reply_to="99"),
    tweet("4", "je pense donc je tweete", lang="fr"),
]
PART1 = [tweet("5", "the second part 🐦")]


def tweets_js(items: list[dict[str, Any]], kind: str = "tweets", part: int = 0) -> str:
    return f"window.YTD.{kind}.part{part} = " + json.dumps(items, indent=2, ensure_ascii=False)


def write_archive(root: Path) -> Path:
    """An unpacked archive: data/ with two tweet parts and files that are not tweets."""
    data = root / "data"
    data.mkdir(parents=True)
    (data / "tweets.js").write_text(tweets_js(PART0))
    (data / "tweets-part1.js").write_text(tweets_js(PART1, part=1))
    (data / "tweet-headers.js").write_text('window.YTD.tweet_headers.part0 = [{"tweet": {"tweet_id": "1"}}]')
    (data / "like.js").write_text('window.YTD.like.part0 = [{"like": {"tweetId": "7", "fullText": "not mine"}}]')
    (root / "Your archive.html").write_text("<html></html>")
    return root


def zip_archive(root: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(root.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(root).as_posix())
    return path


def documents(*paths: Path, **options: Any) -> list[Document]:
    return list(TwitterArchiveSource(TwitterArchiveOptions(paths=list(paths), **options)).documents())


def texts(*paths: Path, **options: Any) -> list[str]:
    return [d.text for d in documents(*paths, **options)]


DEFAULT_TEXTS = ["fish & chips <3 >_>", "sure, see you at 5", "je pense donc je tweete", "the second part 🐦"]


def test_fetch_from_the_zip_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = zip_archive(write_archive(tmp_path / "unpacked"), tmp_path / "twitter-2024-01-01.zip")
    out = tmp_path / "me.jsonl"
    assert main(["fetch", "twitter-archive", str(archive), "--label", "me", "-o", str(out)]) == 0
    assert "added 4 new document(s)" in capsys.readouterr().out
    docs = list(read_corpus(out))
    assert [d.text for d in docs] == DEFAULT_TEXTS
    assert [d.id for d in docs] == ["1", "3", "4", "5"]
    assert {(d.label, d.source) for d in docs} == {("me", "twitter-archive")}
    assert docs[0].created == "2019-03-03T04:59:59Z"  # -0500 converted to UTC
    assert docs[1].created == "2018-10-10T20:19:24Z"

    assert main(["fetch", "twitter-archive", str(archive), "--label", "me", "-o", str(out)]) == 0
    assert "added 0 new document(s)" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["root", "data", "files", "glob"])
def test_every_way_to_point_at_the_archive(where: str, tmp_path: Path) -> None:
    root = write_archive(tmp_path)
    data = root / "data"
    paths = {
        "root": [root],
        "data": [data],
        "files": [data / "tweets.js", data / "tweets-part1.js"],
        "glob": [data / "tweets*.js"],
    }[where]
    assert texts(*paths) == DEFAULT_TEXTS


def test_parts_are_read_in_part_order(tmp_path: Path) -> None:
    for part in (10, 2, 0):
        name = "tweets.js" if part == 0 else f"tweets-part{part}.js"
        (tmp_path / name).write_text(tweets_js([tweet(str(part), f"part {part}")], part=part))
    assert texts(tmp_path) == ["part 0", "part 2", "part 10"]


def test_older_tweet_part0_prefix(tmp_path: Path) -> None:
    (tmp_path / "tweet.js").write_text("\ufeff" + tweets_js(PART1, kind="tweet") + ";\n")  # BOM and a trailing semicolon
    assert texts(tmp_path) == ["the second part 🐦"]


def test_options_for_retweets_replies_mentions_and_language(tmp_path: Path) -> None:
    root = write_archive(tmp_path)
    assert "RT @alice: someone else's words" in texts(root, retweets=True)
    assert "sure, see you at 5" not in texts(root, replies=False)
    assert "@bob @carol sure, see you at 5" in texts(root, strip_mentions=False)
    assert texts(root, lang=["fr"]) == ["je pense donc je tweete"]
    assert {d.label for d in documents(root)} == {None}


def test_a_reply_that_is_only_mentions_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "tweets.js").write_text(tweets_js([tweet("1", "@bob @carol ", reply_to="9"), tweet("2", "kept")]))
    assert texts(tmp_path) == ["kept"]


def test_a_reply_to_a_tweet_in_the_archive_gets_it_as_parent_across_parts(tmp_path: Path) -> None:
    """Archives list newest first, so the reply comes before its parent, here even in an earlier part."""
    (tmp_path / "tweets.js").write_text(
        tweets_js(
            [
                tweet("12", "@me and the third", reply_to="11"),
                tweet("11", "@me then the second &amp; more", reply_to="10"),
                tweet("13", "@someone_else a reply to a tweet that is not mine", reply_to="777"),
            ]
        )
    )
    (tmp_path / "tweets-part1.js").write_text(tweets_js([tweet("10", "first, a thread 🧵")], part=1))
    got = {d.id: d.parent for d in documents(tmp_path)}
    assert got == {"12": "then the second & more", "11": "first, a thread 🧵", "13": None, "10": None}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"tweet": {}}]', "does not start with 'window.YTD.tweets.part0 = '"),
        ('window.YTD.tweets.part0 = [ {"tweet": {"full_text": "cut off', "not valid JSON after 'window.YTD.tweets.part0 ='"),
        ("window.YTD.like.part0 = []", "holds window.YTD.like data, not tweets"),
        ('window.YTD.tweets.part0 = {"tweet": {}}', "expected a JSON array"),
        ('window.YTD.tweets.part0 = [{"tweet": {"full_text": "ok"}}, {"tweet": {"text": "no"}}]', 'item 1 is not a tweet (no "full_text")'),
        (
            'window.YTD.tweets.part0 = [{"tweet": {"id_str": "8", "full_text": "x", "created_at": "2018-10-10"}}]',
            "tweet 8: created_at '2018-10-10' is not like",
        ),
    ],
)
def test_bad_tweets_file_is_one_clear_error(content: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tweets.js"
    path.write_text(content)
    assert main(["fetch", "twitter-archive", str(path), "-o", str(tmp_path / "out.jsonl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"botkit: error: {path}: ") and expected in err


def test_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_zip = tmp_path / "archive.zip"
    not_zip.write_text("not a zip")
    no_tweets = tmp_path / "empty.zip"
    zipfile.ZipFile(no_tweets, "w").close()
    (tmp_path / "folder").mkdir()
    cases = {
        tmp_path / "missing.js": "no such file or folder",
        tmp_path / "*.nothing": "matches no files",
        not_zip: "cannot open as a zip archive",
        no_tweets: "has no data/tweets.js inside",
        tmp_path / "folder": "no tweets.js here or in data/",
    }
    for path, expected in cases.items():
        assert main(["fetch", "twitter-archive", str(path), "-o", str(tmp_path / "out.jsonl")]) == 1
        assert f"botkit: error: {path}: {expected}" in capsys.readouterr().err


def test_lone_surrogate_escapes_in_tweets_fetch_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tweets.js is JSON: a tweet cut inside an emoji holds a ``\\ud83d`` escape, which becomes U+FFFD,
    also as the parent of a reply to it; a whole pair of escapes is the emoji."""
    items = [tweet("1", "cut at 280 \ud83d"), tweet("2", "whole \ud83d\ude00 pair"), tweet("3", "my own thread", reply_to="1")]
    path = tmp_path / "tweets.js"
    path.write_text(f"window.YTD.tweets.part0 = {json.dumps(items)}")  # ensure_ascii: the halves as escapes
    assert "\\ud83d" in path.read_text()
    out = tmp_path / "tweets.jsonl"
    assert main(["fetch", "twitter-archive", str(path), "-o", str(out)]) == 0
    assert "2 lone surrogate(s) replaced with U+FFFD" in capsys.readouterr().out
    assert [(d.text, d.parent) for d in read_corpus(out)] == [("cut at 280 \ufffd", None), ("whole \U0001f600 pair", None), ("my own thread", "cut at 280 \ufffd")]
