"""``twitter-archive``: your own tweets, from the account archive X/Twitter lets you download.

The archive keeps tweets in ``data/tweets.js`` (``data/tweet.js`` in archives from about 2020),
split into ``tweets-part1.js`` ... for big accounts. These are JavaScript, not JSON: a single
assignment ``window.YTD.tweets.part0 = [...]`` whose right-hand side is a JSON array of
``{"tweet": {...}}`` objects. Users get the archive as a .zip and may or may not unpack it, so a
path may be the .zip, the unpacked folder, its ``data/`` folder, or tweets files themselves.

A reply to a tweet that is also in the archive (a thread of your own) gets that tweet's text as
its ``parent``. The archive lists newest first, so replies come before what they answer: the
files are read twice, first for the text of every tweet by id (tens of MB for 100,000 tweets),
then for the documents, rather than holding every parsed tweet at once.
"""

from __future__ import annotations

import glob
import html
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from pydantic import Field

from botkit.corpus import Document, iso_utc
from botkit.errors import SourceError
from botkit.options import Options
from botkit.sources import Source, is_glob

_ASSIGNMENT = re.compile(r"\s*window\.YTD\.(\w+)\.part\d+\s*=\s*")
_TWEET_KINDS = ("tweets", "tweet")
#: tweets.js, tweets-part1.js, ... and the older tweet.js; not tweet-headers.js or deleted-tweets.js.
_TWEETS_FILE = re.compile(r"tweets?(?:-part(\d+))?\.js", re.IGNORECASE)
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")
CREATED_AT = "%a %b %d %H:%M:%S %z %Y"  # Wed Oct 10 20:19:24 +0000 2018


class TwitterArchiveOptions(Options):
    paths: list[Path] = Field(
        description="the archive .zip, its unpacked folder or data/ folder, or tweets.js / tweets-partN.js files (globs too)",
        json_schema_extra={"positional": True},
        min_length=1,
    )
    retweets: bool = Field(False, description='include retweets ("RT @..."), which are other people\'s words (default: skip)')
    replies: bool = Field(True, description="include your replies to other tweets (default on)")
    strip_mentions: bool = Field(
        True,
        description="remove the @mentions a reply starts with, so generated text does not ping real accounts (default on)",
    )
    lang: list[str] = Field(
        default_factory=list, description="keep only tweets X tagged with this language, e.g. en (repeatable; default: all)"
    )
    label: str | None = Field(None, description="context label for every tweet (default: none)")


class TwitterArchiveSource(Source):
    summary = "your tweets from an X/Twitter account archive (.zip, folder, or data/tweets.js)"
    Options = TwitterArchiveOptions
    options: TwitterArchiveOptions

    def default_name(self) -> str:
        return self.options.label or "tweets"

    def documents(self) -> Iterator[Document]:
        texts = {_id(tweet): self.text(tweet) for tweet, _ in self.tweets()} if self.options.replies else {}
        for tweet, name in self.tweets():
            doc = self.document(tweet, name, texts)
            if doc is not None:
                yield doc

    def tweets(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every tweet of every path, with the name of its file for messages."""
        for path in self.options.paths:
            for name, text in tweets_files(path):
                for index, item in enumerate(parse_tweets_js(name, text)):
                    yield _tweet(item, name, index), name

    def text(self, tweet: dict[str, Any]) -> str:
        """The tweet's words as a corpus holds them."""
        text = html.unescape(tweet["full_text"])  # the archive stores &amp; &lt; &gt; as the web page shows them
        if tweet.get("in_reply_to_status_id_str") and self.options.strip_mentions:
            text = _LEADING_MENTIONS.sub("", text)
        return text

    def document(self, tweet: dict[str, Any], name: str, texts: dict[str | None, str]) -> Document | None:
        """The tweet as a document, or None when the options leave it out; ``texts``: every tweet's text by id."""
        o = self.options
        raw: str = tweet["full_text"]
        reply_to = tweet.get("in_reply_to_status_id_str")
        if (raw.startswith("RT @") and not o.retweets) or (reply_to and not o.replies):
            return None
        if o.lang and tweet.get("lang") not in o.lang:
            return None
        text = self.text(tweet)
        if not text.strip():
            return None
        return Document(
            text,
            label=o.label,
            id=_id(tweet),
            source="twitter-archive",
            created=_created(tweet, name),
            parent=(texts.get(str(reply_to)) or None) if reply_to else None,  # a parent of mentions only is no text
        )


def tweets_files(path: Path) -> Iterator[tuple[str, str]]:
    """(name for messages, text) of every tweets file a path names, parts in order."""
    if is_glob(path):  # a glob may name folders and zips too, so each match is opened as the user's path would be
        matches = sorted(map(Path, glob.glob(str(path))), key=_in_part_order)
        if not matches:
            raise SourceError(f"{path}: matches no files")
        for match in matches:
            yield from _tweets_files_at(match)
    else:
        yield from _tweets_files_at(path)


def _tweets_files_at(path: Path) -> Iterator[tuple[str, str]]:
    if path.is_dir():
        folder = path / "data" if (path / "data").is_dir() else path
        files = sorted(filter(_is_tweets_file, folder.iterdir()), key=_in_part_order)
        if not files:
            raise SourceError(
                f"{path}: no tweets.js here or in data/; give the archive's folder, its .zip, or the tweets.js file"
            )
        for file in files:
            yield str(file), _read_text(file)
    elif not path.is_file():
        raise SourceError(f"{path}: no such file or folder")
    elif path.suffix.lower() == ".zip":
        yield from _zip_members(path)
    else:
        yield str(path), _read_text(path)


def _zip_members(path: Path) -> Iterator[tuple[str, str]]:
    """The tweets files in ``data/`` inside an archive .zip, read without unpacking it."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path}: cannot open as a zip archive ({exc}); download the archive again") from None
    with archive:
        names = (PurePosixPath(name) for name in archive.namelist())
        members = sorted((m for m in names if m.parent.name == "data" and _is_tweets_file(m)), key=_in_part_order)
        if not members:
            raise SourceError(f"{path}: has no data/tweets.js inside; is it an X/Twitter account archive?")
        for member in members:
            name = f"{path}:{member}"
            yield name, _decode(archive.read(str(member)), name)


def _is_tweets_file(path: PurePath) -> bool:
    return _TWEETS_FILE.fullmatch(path.name) is not None


def _in_part_order(path: PurePath) -> tuple[str, int, str]:
    """Sort key: tweets.js (part 0) before tweets-part1.js before tweets-part10.js, per folder."""
    match = _TWEETS_FILE.fullmatch(path.name)
    return str(path.parent), int(match.group(1) or 0) if match else 0, path.name


def _read_text(path: Path) -> str:
    try:
        return _decode(path.read_bytes(), str(path))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{name}: not UTF-8 text (bad byte at offset {exc.start}); is it a tweets.js from an X/Twitter archive?") from None


def parse_tweets_js(name: str, text: str) -> list[Any]:
    """The JSON array on the right of ``window.YTD.tweets.part0 = ``."""
    match = _ASSIGNMENT.match(text)
    if match is None:
        raise SourceError(
            f"{name}: does not start with 'window.YTD.tweets.part0 = ', so it is not a tweets.js from an X/Twitter archive"
        )
    if match.group(1) not in _TWEET_KINDS:
        raise SourceError(f"{name}: holds window.YTD.{match.group(1)} data, not tweets; use data/tweets.js")
    try:
        items = json.loads(text[match.end():].rstrip().removesuffix(";"))
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{name}: not valid JSON after '{match.group().strip()}' ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "is the file cut short or edited?"
        ) from None
    if not isinstance(items, list):
        raise SourceError(f"{name}: expected a JSON array [...] after '{match.group().strip()}'")
    return items


def _tweet(item: Any, name: str, index: int) -> dict[str, Any]:
    """Unwrap ``{"tweet": {...}}``; anything without a ``full_text`` string means a wrong file."""
    tweet = item.get("tweet", item) if isinstance(item, dict) else None
    if not isinstance(tweet, dict) or not isinstance(tweet.get("full_text"), str):
        raise SourceError(f'{name}: item {index} is not a tweet (no "full_text")')
    return tweet


def _id(tweet: dict[str, Any]) -> str | None:
    tweet_id = tweet.get("id_str") or tweet.get("id")
    return None if tweet_id is None else str(tweet_id)


def _created(tweet: dict[str, Any], name: str) -> str | None:
    value = tweet.get("created_at")
    if value is None:
        return None
    try:
        when = datetime.strptime(value, CREATED_AT)
    except (TypeError, ValueError):
        raise SourceError(f"{name}: tweet {tweet.get('id_str')}: created_at {value!r} is not like 'Wed Oct 10 20:19:24 +0000 2018'") from None
    return iso_utc(when)
