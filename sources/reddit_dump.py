"""``reddit-dump``: Reddit submissions and comments from Pushshift / Arctic Shift dump files, streamed.

Dumps are the way past the API's cap of about 1000 posts a listing: monthly ``RS_YYYY-MM.zst``
files and per-subreddit ``<sub>_submissions.zst`` files, NDJSON (one submission a line)
compressed by zstd with a 2 GiB window (``zstd --long=31``). A month holds tens of GB of text, so
nothing here holds more than one piece of a file: it is read in fixed-size pieces, split into
lines as *bytes* (a newline byte never occurs inside a UTF-8 sequence, so a character or a line
cut between two pieces is simply joined again), and each line is parsed and dropped. Python's
memory stays at a few MB whatever the file size. The zstd window itself (up to 2 GiB for
``--long=31`` files, allocated by the C library as the data needs it) is the format's price.

Comment dumps (``RC_YYYY-MM.zst``, ``<sub>_comments.zst``) give pairs: each comment's ``parent``
is the text its ``parent_id`` names (``t1_...`` a comment, ``t3_...`` a post's title, with its
body under ``--selftext``) when that is in the dumps read. Joining a month against itself cannot
hold the month in memory, so the texts are kept in a bounded LRU (:class:`RecentTexts`) of
``--parent-cache`` entries, most recently added or looked up last out. Dumps are sorted by time
and a reply comes after its parent, mostly within hours, so a cache of the recent past finds
nearly all parents; with ``--subreddit`` only that subreddit's texts are kept, so the same cache
reaches back much further. Give a submissions dump before its comments dump (in a folder they
are read in that order) to find the titles that top-level comments answer. Comments whose parent
is not found are skipped, and counted at the end, unless ``--orphans`` keeps them without one.
The cache costs about 100,000 x (text + ~250 bytes); it is only filled when a comment dump is read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Generator, Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any

from pydantic import Field, ValidationInfo, field_validator

from botkit.corpus import REDDIT_GONE, Document, iso_utc
from botkit.errors import SourceError
from botkit.options import Options
from botkit.sources import Source, expand_paths, is_glob
from botkit.sources.pairs import RecentTexts

log = logging.getLogger(__name__)

#: Bytes read from the file at a time. Dumps inflate about 10x, so a decompressed piece is about
#: 1 MB. Tests shrink it to cut lines and multibyte characters between pieces.
READ_SIZE = 1 << 14
#: The longest real submission line is a few hundred kB; a longer one means the file is not NDJSON.
MAX_LINE = 1 << 24
#: ``zstd --long=31``: the decoder must be allowed a 2 GiB window or it refuses the dumps.
MAX_WINDOW = 1 << 31
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DUMP_SUFFIXES = (".zst", ".ndjson", ".jsonl", ".json")
_SUBREDDIT_NAME = re.compile(r"[A-Za-z0-9_]{2,21}")
_LAST_TIMESTAMP = 253402300800  # 10000-01-01: later "timestamps" are garbage, not dates


class RedditDumpOptions(Options):
    paths: list[Path] = Field(
        description="dump files (RS_2023-01.zst, pics_submissions.zst, or uncompressed .ndjson/.jsonl), folders of them, or globs",
        json_schema_extra={"positional": True},
        min_length=1,
    )
    subreddit: list[str] = Field(
        default_factory=list, description="keep only this subreddit (repeatable, case-insensitive; default: all)"
    )
    min_score: int | None = Field(None, description="keep posts with at least this score")
    since: date | None = Field(None, description="keep posts created on or after this UTC day (YYYY-MM-DD)")
    until: date | None = Field(None, description="keep posts created on or before this UTC day (YYYY-MM-DD)")
    selftext: bool = Field(False, description="document = title, a blank line, then the post's body (default: title only)")
    over_18: bool = Field(False, description="include posts marked NSFW (default: skip them)")
    removed: bool = Field(
        False, description="include posts deleted by their author or removed by moderators (dumps keep their titles)"
    )
    limit: int | None = Field(None, ge=1, description="stop after this many documents")
    parent_cache: int = Field(
        100_000,
        ge=0,
        description="comment dumps: recent post and comment texts kept to find each comment's parent "
        "(default 100000, some tens of MB; raise it if many parents are not found)",
    )
    orphans: bool = Field(
        False, description="comment dumps: keep comments whose parent is not in the dumps read, without a parent (default: skip them)"
    )

    @field_validator("subreddit")
    @classmethod
    def _subreddit_names(cls, names: list[str]) -> list[str]:
        """Accept ``r/Pics`` as well as ``pics``; reject what cannot be a name (``pics,aww``) early."""
        cleaned = [name.strip().removeprefix("/").removeprefix("r/") for name in names]
        for name in cleaned:
            if not _SUBREDDIT_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a subreddit name (2-21 letters, digits or _; repeat the flag for several)")
        return [name.lower() for name in cleaned]

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: date | None, info: ValidationInfo) -> date | None:
        since = info.data.get("since")
        if until and since and since > until:
            raise ValueError(f"is before since ({since}), so no post could match")
        return until


class RedditDumpSource(Source):
    summary = "Reddit posts and comments (with parents) from Pushshift / Arctic Shift dumps (RS_*/RC_*.zst, NDJSON), streamed"
    Options = RedditDumpOptions
    options: RedditDumpOptions

    def __init__(self, options: RedditDumpOptions) -> None:
        super().__init__(options)
        self._subreddits = frozenset(options.subreddit)
        self._since = _day_start(options.since) if options.since else None
        self._before = _day_start(options.until + timedelta(days=1)) if options.until else None

    def default_name(self) -> str:
        if self.options.subreddit:
            return "_".join(self.options.subreddit)
        paths = self.options.paths
        if len(paths) == 1 and not is_glob(paths[0]):
            return paths[0].name.split(".")[0]
        return "reddit-dump"

    def documents(self) -> Iterator[Document]:
        wanted = _subreddit_prefilter(self._subreddits)
        files = dump_files(self.options.paths)
        # Posts are only worth remembering when comments will look for them.
        texts = RecentTexts(self.options.parent_cache if any(map(_holds_comments, files)) else 0)
        docs = (
            doc
            for path in files
            for record in DumpFile(path, wanted).records()
            if (doc := self.document(record, texts)) is not None
        )
        try:
            yield from islice(docs, self.options.limit)
        finally:
            if texts.missing:
                log.warning(
                    "%d comment(s) answer a parent not in the dumps read (or older than the last --parent-cache %d texts): %s",
                    texts.missing, self.options.parent_cache, "kept without a parent" if self.options.orphans else "skipped",
                )

    def document(self, record: dict[str, Any], texts: RecentTexts) -> Document | None:
        """The post or comment as a document, or None when the options leave it out.

        Its text is remembered first, whatever the filters say: a post too old or too low-scoring
        to keep is still what its comments answer.
        """
        subreddit = str(record.get("subreddit") or "")
        if self._subreddits and subreddit.lower() not in self._subreddits:
            return None
        is_post = isinstance(record.get("title"), str)
        kind, text = ("t3", self.post_text(record)) if is_post else ("t1", str(record["body"]).strip())
        if record.get("id") is not None and text.strip() not in {"", *REDDIT_GONE}:
            texts.add(f"{kind}_{record['id']}", text)
        min_score = self.options.min_score
        if record.get("stickied") or (min_score is not None and _integer(record.get("score"), 0) < min_score):
            return None
        created = _timestamp(record.get("created_utc"))
        if not self._in_dates(created):
            return None
        doc = self.post(record, text) if is_post else self.comment(record, text, texts)
        if doc is None:
            return None
        return dataclasses.replace(doc, label=subreddit or None, created=None if created is None else iso_utc(created))

    def post_text(self, post: dict[str, Any]) -> str:
        """The title, and the body after a blank line under ``--selftext``."""
        title, body = post["title"], str(post.get("selftext") or "").strip()
        return f"{title}\n\n{body}" if self.options.selftext and body and body not in REDDIT_GONE else title

    def post(self, post: dict[str, Any], text: str) -> Document | None:
        o = self.options
        body = str(post.get("selftext") or "").strip()
        if post["title"].strip() in REDDIT_GONE or (post.get("over_18") and not o.over_18):
            return None
        if (post.get("removed_by_category") or body in REDDIT_GONE) and not o.removed:
            return None
        post_id = post.get("id")
        return Document(text, id=None if post_id is None else str(post_id), source="reddit-dump")

    def comment(self, comment: dict[str, Any], text: str, texts: RecentTexts) -> Document | None:
        """A comment with its parent's text; its id is the fullname (``t1_...``), which no post id can equal."""
        if text in REDDIT_GONE or not text:
            return None
        parent = texts.get(str(comment.get("parent_id") or ""))
        if parent is None and not self.options.orphans:
            return None
        comment_id = comment.get("id")
        return Document(text, id=None if comment_id is None else f"t1_{comment_id}", source="reddit-dump", parent=parent)

    def _in_dates(self, created: int | None) -> bool:
        if self._since is None and self._before is None:
            return True
        if created is None:
            return False
        return (self._since is None or created >= self._since) and (self._before is None or created < self._before)


class DumpFile:
    """One dump file as a stream of submission and comment objects, keeping count so errors can say where."""

    def __init__(self, path: Path, wanted: re.Pattern[bytes] | None = None) -> None:
        self.path = path
        self.wanted = wanted  # a fast byte-level pre-filter: lines it rejects are never parsed
        self.size = 0
        self.lines = 0
        self.records_read = 0
        self.bad = 0
        self.first_bad = 0

    def records(self) -> Generator[dict[str, Any], None, None]:
        """Every submission and comment object in the file; lines that are not JSON are skipped and counted.

        Dumps have rare broken lines, and one must not abort a 30 GB read, so they are reported
        once at the end. A file in which *every* parsed line is broken is an error instead.
        """
        try:
            fh = open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot open the dump ({exc.strerror})") from None
        with fh:
            self.size = os.fstat(fh.fileno()).st_size
            try:
                for line in self._lines(self._pieces(fh)):
                    self.lines += 1
                    if not line or line.isspace() or (self.wanted is not None and not self.wanted.search(line)):
                        continue
                    post = self._parse(line)
                    if post is not None:
                        yield post
            finally:
                if self.bad and self.records_read:
                    log.warning(
                        "%s: skipped %d line(s) that are not JSON submissions or comments (the first is line %d)",
                        self.path, self.bad, self.first_bad,
                    )
        if self.bad and not self.records_read:
            raise SourceError(
                f"{self.path}: no line is a JSON submission or comment (line {self.first_bad} is the first bad one); is this a Reddit dump?"
            )

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        try:
            post = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            post = None
        if isinstance(post, dict) and (isinstance(post.get("title"), str) or isinstance(post.get("body"), str)):
            self.records_read += 1
            return post
        self.bad += 1
        self.first_bad = self.first_bad or self.lines
        return None

    def _pieces(self, fh: IO[bytes]) -> Iterator[bytes]:
        """The file's decompressed bytes in pieces; zstd is recognised by its magic number."""
        head = fh.read(len(ZSTD_MAGIC))
        fh.seek(0)
        if head == ZSTD_MAGIC:
            return self._zstd_pieces(fh)
        if self.path.suffix.lower() == ".zst":
            what = "the file is empty" if not head else f"it starts with {head!r}, not the zstd magic number"
            raise SourceError(f"{self.path}: not zstd-compressed ({what}); download the dump again")
        return iter(partial(fh.read, READ_SIZE), b"")

    def _zstd_pieces(self, fh: IO[bytes]) -> Iterator[bytes]:
        """Decompress frame after frame; a file that ends inside a frame is reported as truncated.

        ``decompressobj`` rather than ``stream_reader``: the reader treats a cut-off file as a
        normal end, silently losing the rest of a month, while the object says whether its frame
        ended (``eof``).
        """
        import zstandard

        dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        frame, in_frame = dctx.decompressobj(), False
        try:
            while data := fh.read(READ_SIZE):
                while data:
                    yield frame.decompress(data)
                    in_frame = True
                    if not frame.eof:
                        break
                    data = frame.unused_data  # the start of the next frame, if any
                    frame, in_frame = dctx.decompressobj(), False
        except zstandard.ZstdError as exc:
            raise SourceError(f"{self.path}: corrupt zstd data {self._progress(fh)} ({exc}); download the dump again") from None
        if in_frame:
            raise SourceError(
                f"{self.path}: the file is truncated: its zstd data stops mid-frame {self._progress(fh)}; "
                "download it again (an interrupted download?)"
            )

    def _lines(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """Whole lines from pieces cut anywhere: a piece's unfinished last line waits for the next."""
        tail = b""
        for piece in pieces:
            lines = (tail + piece).split(b"\n")
            tail = lines.pop()
            if len(tail) > MAX_LINE:
                raise SourceError(
                    f"{self.path}: line {self.lines + len(lines) + 1} is over {MAX_LINE >> 20} MiB long; "
                    "a dump has one JSON submission a line (is this an NDJSON file?)"
                )
            yield from lines
        if tail:
            yield tail

    def _progress(self, fh: IO[bytes]) -> str:
        return f"after line {self.lines:,} ({fh.tell():,} of {self.size:,} bytes read)"


def dump_files(paths: Iterable[Path]) -> list[Path]:
    """Every dump file the paths name, in order: RS_2023-01 before RS_2023-02, and a month's or a
    subreddit's submissions before its comments, whose parents they are."""
    return expand_paths(
        paths, lambda folder: (p for p in folder.iterdir() if p.suffix.lower() in DUMP_SUFFIXES), "dump file", order=_submissions_first
    )


def _submissions_first(path: Path) -> tuple[str, bool]:
    name = path.name
    comments = name.startswith("RC_") or "_comments" in name
    return name.replace("RC_", "RS_", 1).replace("_comments", "_submissions", 1), comments


def _holds_comments(path: Path) -> bool:
    """Whether the file's first record is a comment (dumps hold one kind), read without the rest."""
    dump = DumpFile(path)
    records = dump.records()
    first = next(records, None)
    dump.bad = 0  # bad lines before it are reported by the real read, not twice
    records.close()
    return first is not None and not isinstance(first.get("title"), str)


def _subreddit_prefilter(names: frozenset[str]) -> re.Pattern[bytes] | None:
    """A regex that finds ``"subreddit": "<name>"`` in a raw line, so other lines skip json.loads.

    Filtering a monthly dump for a few subreddits drops more than 99% of lines; not parsing them
    makes the read several times faster. Inside a JSON string the quotes are escaped, so a title
    that merely mentions the key cannot match; the parsed post is still checked exactly.
    """
    if not names:
        return None
    alternatives = b"|".join(re.escape(name.encode()) for name in sorted(names))
    return re.compile(rb'"subreddit"\s*:\s*"(?:' + alternatives + rb')"', re.IGNORECASE)


def _integer(value: Any, default: int) -> int:
    """Dumps hold numbers or numeric strings (older Pushshift ``created_utc`` is ``"1234567890"``)."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def _timestamp(value: Any) -> int | None:
    """``created_utc`` as Unix seconds, or None when missing or not a plausible date."""
    seconds = _integer(value, -1)
    return seconds if 0 <= seconds < _LAST_TIMESTAMP else None


def _day_start(day: date) -> int:
    return int(datetime.combine(day, time(), UTC).timestamp())

