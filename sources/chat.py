"""``gitter`` and ``matrix``: chat messages from Gitter's REST JSON and Element's "Export chat" files.

Both label each message with its sender, so a model can learn who says what, and both take
``--exclude-user`` (drop a bot such as CamperBot) and ``--include-user``. Gitter's history now
lives on Matrix (Element took it over in February 2023), so new exports come from Element; the
Gitter reader is for message JSON saved from the old REST API.

A message that replies to another (a Matrix ``m.in_reply_to``, a Gitter thread's ``parentId``)
gets that message's text as its ``parent`` when it is in the files read. With ``--reply-gap``,
any other message gets the previous one as parent when someone else wrote it that many seconds
before or less: a guess that suits a two-person chat more than a busy room, so it is off unless asked.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from abc import abstractmethod
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import Field

from botkit.corpus import Document, iso_utc
from botkit.corpus.io import REPLACE_AND_COUNT, counting_replaced, warn_replaced
from botkit.errors import SourceError
from botkit.options import Options
from botkit.sources import Source
from botkit.sources.pairs import PreviousTurn, RecentTexts

_SPACE = re.compile(r"\s*")


class ChatOptions(Options):
    paths: list[Path] = Field(description="exported chat files", json_schema_extra={"positional": True}, min_length=1)
    include_user: list[str] = Field(
        [], description="keep only messages from this user (repeatable; a Gitter username or a Matrix ID like @ann:matrix.org)"
    )
    exclude_user: list[str] = Field([], description="drop messages from this user, e.g. camperbot (repeatable)")
    label: str | None = Field(None, description="label every message with this (e.g. the room name) instead of its sender")
    reply_gap: float | None = Field(
        None,
        ge=0,
        description="a message that replies to nothing gets the previous message as parent when another user "
        "sent it at most this many seconds before (default off: consecutive chat messages often do not answer each other)",
    )


class ChatSource(Source):
    """What the chat sources share: files in, one document per message, user filters, labels."""

    Options = ChatOptions
    options: ChatOptions
    #: What one file should be, for error messages.
    expected: ClassVar[str] = ""

    def default_name(self) -> str:
        return self.options.paths[0].stem if len(self.options.paths) == 1 else super().default_name()

    def documents(self) -> Iterator[Document]:
        o = self.options
        include = {user.casefold() for user in o.include_user}
        exclude = {user.casefold() for user in o.exclude_user}
        texts = RecentTexts()  # the files are read whole anyway; ids are unique across them
        for path in o.paths:
            if not path.is_file():
                raise SourceError(f"{path}: {'is a folder' if path.is_dir() else 'file not found'}; expected {self.expected}")
            for doc in self.paired(self.messages(path), texts):
                user = (doc.label or "").casefold()
                if (include and user not in include) or user in exclude:
                    continue
                yield doc if o.label is None else dataclasses.replace(doc, label=o.label)

    def paired(self, messages: Iterator[tuple[Document, str | None]], texts: RecentTexts) -> Iterator[Document]:
        """The messages of one file with their parents, found before any user filter: a reply to
        an excluded bot still answers what the bot said."""
        turns = PreviousTurn(self.options.reply_gap)  # per file: a file is one room
        for doc, reply_to in messages:
            guess = turns.parent(doc.label, doc.created, doc.text)
            parent = guess if reply_to is None else texts.get(reply_to)
            if doc.id is not None:
                texts.add(doc.id, doc.text)
            yield doc if parent is None else dataclasses.replace(doc, parent=parent)

    @abstractmethod
    def messages(self, path: Path) -> Iterator[tuple[Document, str | None]]:
        """Every message of one file, labelled with its sender, with the id of the message it replies to."""

    def json_values(self, path: Path, raw: bytes) -> Iterator[Any]:
        """The JSON values in ``raw``, one after another: one document, NDJSON, or pages back to back.

        Invalid UTF-8 becomes U+FFFD, counted in a warning: one bad byte must not cost the room.
        """
        text, invalid = counting_replaced(lambda: raw.decode("utf-8-sig", REPLACE_AND_COUNT))
        warn_replaced(path, invalid_utf8=invalid)
        decoder = json.JSONDecoder()
        pos = _SPACE.match(text).end()  # type: ignore[union-attr]
        while pos < len(text):
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise SourceError(
                    f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); expected {self.expected}"
                ) from None
            yield value
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]


class GitterSource(ChatSource):
    summary = "Gitter REST message JSON (chatMessages pages: a JSON array, or NDJSON); label = username"
    expected = "Gitter messages as saved from GET /v1/rooms/:roomId/chatMessages (a JSON array, or one per line)"

    def messages(self, path: Path) -> Iterator[tuple[Document, str | None]]:
        source = f"gitter:{path}"
        for number, message in enumerate(self._items(path), 1):
            if not isinstance(message, dict) or not isinstance(message.get("text"), str):
                hint = "; this looks like an Element export: use 'botkit fetch matrix'" if _is_element_export(message) else ""
                raise SourceError(f'{path}: item {number} is not a Gitter message (an object with a "text" string){hint}')
            user = message.get("fromUser")
            doc = Document(
                message["text"],
                label=_str_or_none(user.get("username")) if isinstance(user, dict) else None,
                id=_str_or_none(message.get("id")),
                source=source,
                created=_iso_from_text(message.get("sent")),
            )
            yield doc, _str_or_none(message.get("parentId"))  # set on the messages of a thread

    def _items(self, path: Path) -> Iterator[Any]:
        """Messages, whether the file is one array, arrays back to back, or one message a line."""
        for value in self.json_values(path, path.read_bytes()):
            yield from value if isinstance(value, list) else [value]


_TEXT_MSGTYPES = frozenset({"m.text", "m.emote", "m.notice"})


class MatrixSource(ChatSource):
    """Element "Export chat" JSON, or its zip; text messages only.

    An edited message is taken in its last edited form (the edit events themselves are not
    documents), since that is what its author meant; edits by anyone but the author are ignored,
    as Matrix clients do. The quoted fallback that older clients put before a reply is removed.
    """

    summary = "Matrix/Element 'Export chat' JSON or .zip; text, emote and notice messages; label = sender"
    expected = "an Element 'Export chat' JSON file (or its .zip)"

    def messages(self, path: Path) -> Iterator[tuple[Document, str | None]]:
        events = self._events(path)
        edits = _latest_edits(events)
        source = f"matrix:{path}"
        for event in events:
            if not _is_text_message(event) or _relation(event).get("rel_type") == "m.replace":
                continue
            sender, event_id = _str_or_none(event.get("sender")), _str_or_none(event.get("event_id"))
            edited = edits.get((event_id, sender))
            reply = _relation(event).get("m.in_reply_to")
            if edited is not None:
                body = edited["body"]
            elif reply is not None:
                body = strip_reply_fallback(event["content"]["body"])
            else:
                body = event["content"]["body"]
            reply_to = _str_or_none(reply.get("event_id")) if isinstance(reply, dict) else None
            doc = Document(body, label=sender, id=event_id, source=source, created=_iso_from_ms(event.get("origin_server_ts")))
            yield doc, reply_to

    def _events(self, path: Path) -> list[Any]:
        values = list(self.json_values(path, _export_bytes(path)))
        if len(values) != 1 or not _is_element_export(values[0]):
            raise SourceError(f'{path}: not an Element chat export (expected one JSON object with a "messages" list)')
        return values[0]["messages"]


def _export_bytes(path: Path) -> bytes:
    """The export JSON: the file itself, or ``export.json`` (else the only .json) inside a zip."""
    if not zipfile.is_zipfile(path):
        return path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if PurePosixPath(n).name == "export.json"]
        names = names or [n for n in archive.namelist() if n.endswith(".json")]
        if len(names) != 1:
            raise SourceError(f"{path}: the zip holds no export.json; expected the zip Element's 'Export chat' writes")
        return archive.read(names[0])


def _is_element_export(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("messages"), list)


def _relation(event: dict[str, Any]) -> dict[str, Any]:
    relation = event["content"].get("m.relates_to")
    return relation if isinstance(relation, dict) else {}


def _is_text_message(event: Any) -> bool:
    if not isinstance(event, dict) or event.get("type") != "m.room.message":
        return False
    content = event.get("content")
    return isinstance(content, dict) and _is_text_content(content)


def _is_text_content(content: Any) -> bool:
    return isinstance(content, dict) and content.get("msgtype") in _TEXT_MSGTYPES and isinstance(content.get("body"), str)


def _latest_edits(events: list[Any]) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    """The newest replacement content per (edited event id, its sender), from ``m.replace`` events."""
    latest: dict[tuple[str | None, str | None], tuple[int, dict[str, Any]]] = {}
    for event in events:
        if not _is_text_message(event) or _relation(event).get("rel_type") != "m.replace":
            continue
        new = event["content"].get("m.new_content")
        if not _is_text_content(new):
            continue
        key = (_str_or_none(_relation(event).get("event_id")), _str_or_none(event.get("sender")))
        ts = event.get("origin_server_ts") if isinstance(event.get("origin_server_ts"), int) else 0
        if key not in latest or ts >= latest[key][0]:
            latest[key] = (ts, new)
    return {key: new for key, (_, new) in latest.items()}


def strip_reply_fallback(body: str) -> str:
    """A reply's body without the quote of the message it answers (``> ...`` lines, then a blank line)."""
    lines = body.split("\n")
    quoted = next((i for i, line in enumerate(lines) if not line.startswith(">")), len(lines))
    if quoted and quoted < len(lines) and lines[quoted] == "":
        return "\n".join(lines[quoted + 1 :])
    return body


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso_from_text(value: Any) -> str | None:
    """An ISO-8601 time (Gitter's ``sent``) as ISO-8601 UTC; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return iso_utc(when)


def _iso_from_ms(value: Any) -> str | None:
    """Matrix's ``origin_server_ts`` (milliseconds since 1970) as ISO-8601 UTC."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return iso_utc(value / 1000)
    except (OverflowError, OSError, ValueError):  # a corrupt timestamp costs the time, not the message
        return None
