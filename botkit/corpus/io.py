"""Reading and writing line-delimited corpora: one document a line.

Two formats, chosen by the file suffix:

* ``.jsonl``: ``{"text": ..., "label": ..., "id": ..., "source": ..., "created": ..., "parent": ...}``
  a line; only ``text`` is required (corpora from before ``parent`` existed simply lack the key).
  The others are strings or null (``id`` may also be a whole number): a line whose label or parent
  is a list, an object, a boolean or a number is an error naming the line, as bad JSON is, not a
  label ``"[]"`` trained on.
  JSON escapes newlines inside a document.
* ``.txt``: the bare text a line, no labels and no parents. Newlines, carriage returns and backslashes inside a
  document are written as ``\\n``, ``\\r`` and ``\\\\`` so one line stays one document.

Writes are atomic and incremental (:class:`CorpusWriter`): the new file is built beside the old
one and renamed over it, so a crash or Ctrl-C never leaves a truncated corpus, and documents that
are already there (same id, else same text) are not added again. The temporary file names its
writer's process; the next write removes those of writers that were killed (:mod:`botkit.atomic`).

Bad text never stops a read or a write: invalid UTF-8 bytes and lone surrogates (``"\\ud83d"``
escapes) become U+FFFD, and how many is reported.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TextIO, TypeVar

from botkit.atomic import remove_stale_temps, temp_path
from botkit.corpus.document import Document
from botkit.errors import CorpusError

log = logging.getLogger(__name__)

FORMATS = (".jsonl", ".txt")
_FIELDS = ("text", "label", "id", "source", "created", "parent")
#: What each optional .jsonl field may hold besides null. A label and a parent are text the model
#: trains on, so a list, an object, a boolean or a number there is a mistake, never a label "[]" or
#: a parent "True"; an id may be another tool's number, and is read as its digits.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {"label": (str,), "id": (str, int), "source": (str,), "created": (str,), "parent": (str,)}
_FIELD_WANTED = {key: "a string or a whole number" if int in kinds else "a string" for key, kinds in _FIELD_TYPES.items()}
#: What a .txt corpus cannot hold, each worth one warning per write: (field, its plural for the message).
_NOT_IN_TXT = (("label", "labels"), ("parent", "parents"))
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_ESCAPE_RE = re.compile(r"[\\\n\r]")
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}
_UNESCAPE_RE = re.compile(r"\\(.)")
T = TypeVar("T")


def corpus_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CorpusError(f"{path}: a corpus must end in .jsonl or .txt (got {suffix or 'no suffix'!r})")
    return suffix


def encode_txt(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)


def decode_txt(line: str) -> str:
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group()), line)


def encode_line(doc: Document, fmt: str) -> str:
    if fmt == ".txt":
        return encode_txt(doc.text) + "\n"
    return json.dumps(doc.to_json(), ensure_ascii=False) + "\n"


def _parse_jsonl(line: str, path: Path, number: int) -> Document:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: line {number} is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise CorpusError(f'{path}: line {number} has no "text" string (each line must be an object like {{"text": "..."}})')
    for key in _FIELDS[1:]:
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[key])):
            raise CorpusError(f'{path}: line {number}: "{key}" must be {_FIELD_WANTED[key]} or null (got {_json_kind(value)} {_shown(value)})')
    fields = {k: (None if obj.get(k) is None else str(obj[k])) for k in _FIELDS[1:]}
    return Document(obj["text"], **fields)


def _json_kind(value: object) -> str:
    """What JSON type ``value`` was, in the words a corpus author knows."""
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (list, "a list"), (dict, "an object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "a string")


def _shown(value: object) -> str:
    """``value`` as JSON, cut short: the error quotes it, not a whole nested object."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:40] + "…"


#: A codec error handler (``errors=``, pandas' ``encoding_errors=``): each invalid sequence becomes
#: U+FFFD and is counted; :func:`counting_replaced` says how many a decode replaced.
REPLACE_AND_COUNT = "botkit-count-replace"
_replaced = [0]


def _count_and_replace(error: UnicodeError) -> tuple[str, int]:
    _replaced[0] += 1
    return "\ufffd", error.end  # type: ignore[attr-defined]


codecs.register_error(REPLACE_AND_COUNT, _count_and_replace)


def counting_replaced(decode: Callable[[], T]) -> tuple[T, int]:
    """``decode()``'s result and how many invalid sequences :data:`REPLACE_AND_COUNT` replaced in it.

    A codec error handler takes no context, so the count is a global tally read before and after;
    the call being synchronous, what it replaced is exactly the difference, even when readers
    of several files take turns.
    """
    before = _replaced[0]
    result = decode()
    return result, _replaced[0] - before


def warn_replaced(path: str | Path, invalid_utf8: int = 0, lone_surrogates: int = 0) -> None:
    """Tell the user, once per file, how much bad text became U+FFFD: never fatal, never hidden."""
    # A file name that is not UTF-8 reaches Python as lone surrogates ("caf\udce9.txt"); shown as
    # its escapes, as a terminal would, so no log handler or log file with a strict encoding fails on it.
    path = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    if invalid_utf8:
        log.warning("%s: %d invalid UTF-8 sequence(s) replaced with U+FFFD", path, invalid_utf8)
    if lone_surrogates:
        log.warning("%s: %d lone surrogate(s) (invalid Unicode escapes such as \\ud83d) replaced with U+FFFD", path, lone_surrogates)


def read_lines(path: str | Path, what: str = "input") -> Iterator[str]:
    """Lines of a UTF-8 text file (newline kept), invalid bytes replaced and counted.

    Invalid UTF-8 is not fatal (scraped text often has some), but the user is told how much
    was replaced, once, when the file has been read.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a folder, expected a {what} file") from None
    except OSError as exc:  # no read permission, a dead mount: the user's to fix, not a crash
        raise CorpusError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    replaced = 0
    with handle:
        while True:
            try:
                raw = handle.readline()
            except OSError as exc:  # an I/O error part way: stop with the file named, not a traceback
                raise CorpusError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
            if not raw:
                break
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text, bad = counting_replaced(lambda: raw.decode("utf-8", REPLACE_AND_COUNT))
                replaced += bad
            # A single-text corpus is one line of many MB: hold no extra copy while the caller works.
            del raw
            yield text
            del text
    warn_replaced(path, invalid_utf8=replaced)


def read_corpus(path: str | Path, *, keep_surrogates: bool = False) -> Iterator[Document]:
    """Stream the documents of a corpus file, in file order.

    A lone surrogate in a .jsonl line (a ``"\\ud83d"`` escape, by hand or by another tool) becomes
    U+FFFD and is counted, as invalid UTF-8 is: the trainer hashes and saves what it reads, and
    neither can take one. ``keep_surrogates`` hands them on untouched, for a reader that refuses
    such a document itself rather than use it altered (a bot's queue of posts).
    """
    path = Path(path)
    fmt = corpus_format(path)
    lone = 0
    for number, raw in enumerate(read_lines(path, "corpus"), 1):
        line = raw.rstrip("\r\n")
        del raw
        if not line.strip():
            continue
        doc = _parse_jsonl(line, path, number) if fmt == ".jsonl" else Document(decode_txt(line))
        del line  # see read_lines: no second copy of a huge document while it is in use
        if not keep_surrogates:
            doc, count = doc.with_surrogates_replaced()
            lone += count
        yield doc
    warn_replaced(path, lone_surrogates=lone)


class CorpusWriter:
    """Adds new documents to a corpus file, atomically.

    Use as a context manager. On a clean exit, or on Ctrl-C (the documents already fetched are
    worth keeping and are all whole), the new file replaces the old one in one rename. On any
    other error, a failed write (disk full, read-only folder) included, the old file is left
    exactly as it was and the temporary file is removed.

    Lone surrogates in a document added become U+FFFD (``surrogates`` counts them) rather than
    fail the write: they can come from any source's JSON, and are checked here, where every
    document enters a corpus, not in each source.
    """

    def __init__(self, path: str | Path, *, dedupe_text: bool = True) -> None:
        self.path = Path(path)
        self.format = corpus_format(self.path)
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise CorpusError(f"{self.path}: {self.path.parent} is a file, not a folder")
        if not self.path.parent.is_dir():
            raise CorpusError(f"{self.path}: folder {self.path.parent} does not exist")
        self.dedupe_text = dedupe_text
        self.added = 0
        self.skipped = 0
        self.existing = 0
        self.surrogates = 0  # lone surrogates replaced in the documents added
        self._seen: set[int] = set()
        self._tmp: TextIO | None = None
        self._warned: set[str] = set()

    def __enter__(self) -> CorpusWriter:
        # The temporary file names this process, so the next write of this corpus removes those of
        # killed writers (fetches killed part way left hundreds of MB) and keeps a live writer's.
        remove_stale_temps(self.path)
        try:
            self._tmp = open(temp_path(self.path), "x", encoding="utf-8")
        except OSError as exc:
            raise self._failed(f"cannot create a file in {self.path.parent}", exc) from None
        try:
            if self.path.exists():
                self._copy_old()
        except BaseException:  # __exit__ does not run when __enter__ fails: clean up here
            self._discard()
            raise
        return self

    def _copy_old(self) -> None:
        for doc in read_corpus(self.path):
            self._remember(doc)
            self.existing += 1
        assert self._tmp is not None
        try:
            # Byte for byte: the old lines stay exactly as they were, invalid UTF-8 included
            # (re-encoding it as text would fail on the bytes that do not decode).
            with open(self.path, "rb") as old:
                self._tmp.flush()
                shutil.copyfileobj(old, self._tmp.buffer)
            if self._tmp.tell() and not self._ends_with_newline():
                self._tmp.write("\n")
        except OSError as exc:
            raise self._failed("cannot copy the old corpus", exc) from None

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _failed(self, what: str, exc: OSError) -> CorpusError:
        kept = "the old corpus is unchanged" if self.path.exists() else "nothing written"
        return CorpusError(f"{self.path}: {what} ({exc.strerror or exc}); {kept}")

    def _remember(self, doc: Document) -> None:
        self._seen.add(doc.key)
        if self.dedupe_text:
            self._seen.add(doc.text_key)

    def add(self, doc: Document) -> bool:
        """Write ``doc`` unless the corpus already holds it; True when it was written."""
        assert self._tmp is not None, "use CorpusWriter as a context manager"
        doc, lone = doc.with_surrogates_replaced()  # before the keys: the corpus, read back, gives these
        self.surrogates += lone
        if doc.key in self._seen or (self.dedupe_text and doc.text_key in self._seen):
            self.skipped += 1
            return False
        self._remember(doc)
        if self.format == ".txt":
            self._warn_lost(doc)
        try:
            self._tmp.write(encode_line(doc, self.format))
        except OSError as exc:
            raise self._failed("cannot write the corpus", exc) from None
        self.added += 1
        return True

    def _warn_lost(self, doc: Document) -> None:
        """Say once per field that a .txt corpus drops it, rather than losing it silently."""
        for name, plural in _NOT_IN_TXT:
            if getattr(doc, name) is not None and name not in self._warned:
                log.warning("%s: .txt corpora keep no %s; use .jsonl to keep them", self.path, plural)
                self._warned.add(name)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._tmp is not None
        keep = exc_type is None or issubclass(exc_type, KeyboardInterrupt)
        try:
            if keep and self.added:
                tmp_path = Path(self._tmp.name)
                try:
                    self._tmp.flush()
                    os.fsync(self._tmp.fileno())
                    self._tmp.close()
                    if self.path.exists():
                        shutil.copymode(self.path, tmp_path)
                    else:
                        os.chmod(tmp_path, 0o666 & ~_umask())
                    os.replace(tmp_path, self.path)
                except OSError as error:
                    raise self._failed("cannot write the corpus", error) from None
        finally:
            self._discard()

    def _discard(self) -> None:
        """Close and remove the temporary file (a no-op once it has been renamed into place)."""
        assert self._tmp is not None
        # Closing flushes what is buffered; when a write already failed (disk full) that fails
        # again, and the error is known: the file is only being thrown away.
        with contextlib.suppress(OSError):
            self._tmp.close()
        Path(self._tmp.name).unlink(missing_ok=True)


def make_folder(path: Path) -> None:
    """Create a corpus's folder (``corpora/`` by default) or say in one line why it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CorpusError(f"{path}: cannot create its folder {path.parent}: a file is in the way") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot create its folder {path.parent} ({exc.strerror or type(exc).__name__})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
