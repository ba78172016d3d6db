"""A fake Mastodon instance for tests: real Mastodon.py talks to it over HTTP on 127.0.0.1.

It serves, in Mastodon's REST shapes (mastodon/documentation ``methods/*.md``), with a bearer
access token on every route (401 ``{"error": "The access token is invalid"}`` otherwise):

* ``GET /api/v1/accounts/verify_credentials`` and ``PATCH /api/v1/accounts/update_credentials``
  (``bot``): the token's account, with its ``bot`` flag;
* ``GET /api/v2/instance``: ``configuration.statuses.max_characters`` (``max_characters``);
* ``POST /api/v1/statuses`` (form fields ``status``, ``visibility``, ``spoiler_text``,
  ``sensitive``, ``language``; header ``Idempotency-Key``): 200 with the Status; a repeat of a key
  the account used within the hour answers with the status made first, as Mastodon does; 422
  ``Validation failed: Text character limit of N exceeded`` (links counted as 23); and whatever a
  test scripts with :meth:`FakeMastodon.fail_next` (a 429 with ``X-RateLimit-Reset``, 5xx, a
  dropped connection, a status made but answered with 500);
* ``GET /api/v1/accounts/:id/statuses?limit=``: the account's statuses, newest first, their
  ``content`` as HTML the way Mastodon renders it (:func:`html_of`);
* ``POST /api/v1/statuses`` with ``in_reply_to_id``: a reply; 404 ``The post you are trying to
  reply to does not appear to exist.`` when that status is gone (checked before anything else, as
  Mastodon's ``set_thread`` does);
* ``GET /api/v1/notifications`` (``types[]``, ``since_id``, ``max_id``, ``min_id``, ``limit``):
  the account's notifications, newest first, with Mastodon's ``Link`` header (``rel="next"`` with
  ``max_id``, ``rel="prev"`` with ``min_id``); a mention notifies every local account it names
  but its author (:attr:`FakeMastodon.notify_self` lifts that), and dies with its status;
* ``GET /api/v1/statuses/:id/context``: ``ancestors`` (oldest first) and ``descendants`` (depth
  first), 404 ``Record not found`` for a status that is gone.

Tests speak as other people with :meth:`FakeMastodon.post_as` (their ``bot`` flag included),
delete statuses with :meth:`FakeMastodon.delete`, and fail the next notifications request with
:meth:`FakeMastodon.rate_limit_listening`.

Every answer carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (an ISO 8601 time).
"""

from __future__ import annotations

import html
import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakes import Answer, JsonService

IDEMPOTENCY_S = 3600.0  # how long Mastodon keeps an Idempotency-Key
_TOKEN = re.compile(r"(?P<url>https?://[^\s<>\"]+[^\s<>\".,;:!?)'])|(?P<mention>(?<![\w/])@\w+(?:@[\w.-]+\w)?)|(?P<tag>(?<![\w/&])#\w+)")
_STATUSES = re.compile(r"/api/v1/accounts/([^/]+)/statuses")
_CONTEXT = re.compile(r"/api/v1/statuses/([^/]+)/context")
_MENTION = re.compile(r"(?<![\w/])@(\w+)(?:@[\w.-]+\w)?")
IN_REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."


@dataclass(frozen=True)
class Status:
    id: str
    username: str
    text: str  # as it was sent
    visibility: str
    spoiler_text: str
    sensitive: bool
    language: str | None
    idempotency_key: str | None
    created_at: float = field(default_factory=time.time)
    in_reply_to_id: str | None = None


@dataclass(frozen=True)
class Notification:
    id: str
    username: str  # who is notified
    type: str
    author: str
    status_id: str
    created_at: float = field(default_factory=time.time)


class FakeMastodon(JsonService):
    """The fake instance: accounts (access token → username), statuses, a request log, a server."""

    def __init__(self, tokens: dict[str, str], *, max_characters: int = 500, bots: bool = False, answer_delay: float = 0.0) -> None:
        super().__init__(answer_delay=answer_delay)
        self.tokens = dict(tokens)
        self.max_characters = max_characters
        #: Whether each account is flagged as a bot (``bots`` for one that was not asked about yet).
        self.bots = bots
        self.bot: dict[str, bool] = {}
        self.statuses: list[Status] = []
        self._ids = itertools.count(113_000_000_000_000_000)
        #: Accounts without a token here (people, other bots), username -> their ``bot`` flag.
        self.people: dict[str, bool] = {}
        self.notifications: list[Notification] = []
        self._notification_ids = itertools.count(34_975_000)
        #: Mastodon never notifies an account of its own mentions; True makes this fake do it, so a
        #: test shows that the bot's own guard holds even where a server would.
        self.notify_self = False
        self._listen_faults: list[Answer] = []

    # -- scripting and inspection -------------------------------------------------------------

    def rate_limit_next(self, seconds: float) -> None:
        """Answer the next post with 429 and a reset ``seconds`` from now, as Mastodon does."""
        self.fail_next(Answer(429, {"error": "Too many requests"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _iso(time.time() + seconds)}))

    def rate_limit_listening(self, seconds: float) -> None:
        """Answer the next notifications request with 429 and a reset ``seconds`` from now."""
        self._listen_faults.append(
            Answer(429, {"error": "Too many requests"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _iso(time.time() + seconds)})
        )

    def post_as(self, username: str, text: str, *, in_reply_to: str | None = None, visibility: str = "public", bot: bool = False) -> Status:
        """A status by someone without a token here (``bot``: their account's flag), notifying those it mentions."""
        self.people[username] = bot
        status = Status(str(next(self._ids)), username, text, visibility, "", False, None, None, in_reply_to_id=in_reply_to)
        self._add(status)
        return status

    def delete(self, status_id: str) -> None:
        """Delete a status (and, as Mastodon does, the notifications about it); its replies stay, orphaned."""
        self.statuses = [s for s in self.statuses if s.id != status_id]
        self.notifications = [n for n in self.notifications if n.status_id != status_id]

    def status(self, status_id: str) -> Status | None:
        return next((s for s in self.statuses if s.id == status_id), None)

    def by(self, username: str) -> list[Status]:
        """The statuses of one account, oldest first."""
        return [s for s in self.statuses if s.username == username]

    def texts(self) -> list[str]:
        return [s.text for s in self.statuses]

    def account_id(self, username: str) -> str:
        if username in self.people:
            return str(900 + list(self.people).index(username))
        return str(100 + sorted(set(self.tokens.values())).index(username))

    def calls(self) -> list[tuple[str, str, int]]:
        """Every request in order: (method, path, status), an account id shown as ID."""
        return [(r.method, _STATUSES.sub("/api/v1/accounts/ID/statuses", r.path), r.status) for r in self.requests]

    # -- answers -------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], headers: dict[str, str]) -> Answer:
        answer = self._route(method, path, query, body, headers)
        limits = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299", "X-RateLimit-Reset": _iso(time.time() + 300)}
        answer.headers = {**limits, **answer.headers}
        return answer

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], headers: dict[str, str]) -> Answer:
        path = path.rstrip("/")  # Rails routes ignore a trailing slash (Mastodon.py sends one on some paths)
        username = self.tokens.get(headers.get("authorization", "").removeprefix("Bearer "))
        if username is None:
            return Answer(401, {"error": "The access token is invalid"})
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return Answer(200, self._account(username))
        if method == "PATCH" and path == "/api/v1/accounts/update_credentials":
            if "bot" in body:
                self.bot[username] = body["bot"].lower() in ("1", "true")
            return Answer(200, self._account(username))
        if method == "GET" and path == "/api/v2/instance":
            return Answer(200, self._instance())
        if method == "POST" and path == "/api/v1/statuses":
            return self._post(username, body, headers.get("idempotency-key"))
        listing = _STATUSES.fullmatch(path)
        if method == "GET" and listing:
            return self._list(listing[1], query)
        if method == "GET" and path == "/api/v1/notifications":
            return self._listen_faults.pop(0) if self._listen_faults else self._notifications(username, query)
        context = _CONTEXT.fullmatch(path)
        if method == "GET" and context:
            return self._context(context[1])
        return Answer(404, {"error": "Record not found"})

    def _post(self, username: str, body: dict[str, Any], key: str | None) -> Answer:
        parent = body.get("in_reply_to_id") or None
        if parent is not None and self.status(parent) is None:
            return Answer(404, {"error": IN_REPLY_NOT_FOUND})
        if key is not None:
            for status in self.statuses:
                if status.username == username and status.idempotency_key == key and time.time() - status.created_at < IDEMPOTENCY_S:
                    return Answer(200, self._status(status))
        fault = self.take_fault()
        if fault is not None and not fault.act_first:
            return fault.answer
        text = body.get("status", "")
        length = len(re.sub(r"https?://\S+", "x" * 23, text))  # Mastodon counts grapheme clusters; code points are the same for the tests' texts
        if not text.strip() or length > self.max_characters:
            return Answer(422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"})
        status = Status(
            str(next(self._ids)), username, text, body.get("visibility", "public"), body.get("spoiler_text", ""),
            body.get("sensitive", "").lower() in ("1", "true"), body.get("language"), key, in_reply_to_id=parent,
        )  # fmt: skip
        self._add(status)
        return fault.answer if fault is not None else Answer(200, self._status(status))

    def _add(self, status: Status) -> None:
        """Keep a new status and notify the local accounts it mentions (not its author, unless :attr:`notify_self`)."""
        self.statuses.append(status)
        local = set(self.tokens.values())
        for name in dict.fromkeys(_MENTION.findall(status.text)):
            if name in local and (name != status.username or self.notify_self):
                self.notifications.append(Notification(str(next(self._notification_ids)), name, "mention", status.username, status.id))

    def _notifications(self, username: str, query: dict[str, str]) -> Answer:
        """``GET /api/v1/notifications``: newest first, paged by notification id, with the Link header."""
        types = query.get("types[]")
        mine = [n for n in reversed(self.notifications) if n.username == username and (types is None or n.type == types)]
        for key, keep in (("max_id", lambda n, v: int(n.id) < v), ("since_id", lambda n, v: int(n.id) > v), ("min_id", lambda n, v: int(n.id) > v)):
            if query.get(key):
                mine = [n for n in mine if keep(n, int(query[key]))]
        limit = min(int(query.get("limit", "40")), 80)
        page = mine[-limit:] if query.get("min_id") else mine[:limit]  # min_id: the oldest ones after it
        headers = {}
        if page:
            base = f"{self.url}/api/v1/notifications"
            headers["Link"] = f'<{base}?max_id={page[-1].id}>; rel="next", <{base}?min_id={page[0].id}>; rel="prev"'
        return Answer(200, [self._notification(n) for n in page], headers)

    def _notification(self, notification: Notification) -> dict[str, Any]:
        status = self.status(notification.status_id)
        return {
            "id": notification.id, "type": notification.type, "created_at": _iso(notification.created_at),
            "group_key": f"ungrouped-{notification.id}", "account": self._account(notification.author),
            "status": None if status is None else self._status(status),
        }  # fmt: skip

    def _context(self, status_id: str) -> Answer:
        """``GET /api/v1/statuses/:id/context``: the statuses above (oldest first) and below (depth first)."""
        status = self.status(status_id)
        if status is None:
            return Answer(404, {"error": "Record not found"})
        ancestors = []
        parent = self.status(status.in_reply_to_id) if status.in_reply_to_id else None
        while parent is not None:
            ancestors.insert(0, parent)
            parent = self.status(parent.in_reply_to_id) if parent.in_reply_to_id else None

        def below(of: str) -> list[Status]:
            return [d for child in self.statuses if child.in_reply_to_id == of for d in (child, *below(child.id))]

        return Answer(200, {"ancestors": [self._status(s) for s in ancestors], "descendants": [self._status(s) for s in below(status_id)]})

    def _list(self, account_id: str, query: dict[str, str]) -> Answer:
        owners = {self.account_id(name): name for name in [*self.tokens.values(), *self.people]}
        if account_id not in owners:
            return Answer(404, {"error": "Record not found"})
        limit = min(int(query.get("limit", "20")), 40)
        mine = [s for s in reversed(self.statuses) if s.username == owners[account_id]]
        return Answer(200, [self._status(s) for s in mine[:limit]])

    def _account(self, username: str) -> dict[str, Any]:
        account_id = self.account_id(username)
        return {
            "id": account_id, "username": username, "acct": username, "display_name": username.title(), "locked": False,
            "bot": self.people[username] if username in self.people else self.bot.get(username, self.bots), "discoverable": True, "group": False, "created_at": "2026-01-01T00:00:00.000Z",
            "note": "<p>a bot</p>", "url": f"{self.url}/@{username}", "uri": f"{self.url}/users/{username}",
            "avatar": f"{self.url}/avatars/original/missing.png", "avatar_static": f"{self.url}/avatars/original/missing.png",
            "header": f"{self.url}/headers/original/missing.png", "header_static": f"{self.url}/headers/original/missing.png",
            "followers_count": 0, "following_count": 0, "statuses_count": sum(s.username == username for s in self.statuses),
            "last_status_at": None, "emojis": [], "fields": [],
            "source": {"privacy": "public", "sensitive": False, "language": "", "note": "a bot", "fields": [], "follow_requests_count": 0},
        }  # fmt: skip

    def _status(self, status: Status) -> dict[str, Any]:
        return {
            "id": status.id, "created_at": _iso(status.created_at), "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": self._parent_account(status),
            "sensitive": status.sensitive, "spoiler_text": status.spoiler_text, "visibility": status.visibility, "language": status.language,
            "uri": f"{self.url}/users/{status.username}/statuses/{status.id}", "url": f"{self.url}/@{status.username}/{status.id}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "edited_at": None, "content": html_of(status.text),
            "reblog": None, "application": {"name": "botkit", "website": None}, "account": self._account(status.username),
            "media_attachments": [], "tags": [], "emojis": [], "card": None, "poll": None,
            "mentions": [
                {"id": self.account_id(name), "username": name, "acct": name, "url": f"{self.url}/@{name}"}
                for name in dict.fromkeys(_MENTION.findall(status.text)) if name in self.people or name in self.tokens.values()
            ],
        }  # fmt: skip

    def _parent_account(self, status: Status) -> str | None:
        parent = self.status(status.in_reply_to_id) if status.in_reply_to_id else None
        return None if parent is None else self.account_id(parent.username)

    def _instance(self) -> dict[str, Any]:
        return {
            "domain": "127.0.0.1", "title": "Fake Mastodon", "version": "4.3.0", "source_url": "https://github.com/mastodon/mastodon",
            "description": "a fake instance for tests", "languages": ["en"],
            "configuration": {
                "urls": {"streaming": "wss://127.0.0.1"},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": {"max_characters": self.max_characters, "max_media_attachments": 4, "characters_reserved_per_url": 23},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": "admin@example.com", "account": None}, "rules": [],
        }  # fmt: skip


def html_of(text: str) -> str:
    """A status's text as Mastodon renders its ``content``: HTML-escaped, paragraphs and line breaks,
    links shortened with invisible spans, mentions as h-cards (showing the local part only) and hashtags."""
    paragraphs = re.split(r"\n{2,}", text.strip())
    return "".join(f"<p>{_marked_up(p).replace(chr(10), '<br />')}</p>" for p in paragraphs)


def _marked_up(text: str) -> str:
    parts, last = [], 0
    for match in _TOKEN.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        parts.append(_link(match))
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _link(match: re.Match[str]) -> str:
    if match["url"]:
        url = match["url"]
        scheme, _, rest = url.partition("://")
        shown = (
            f'<span class="ellipsis">{html.escape(rest[:30])}</span><span class="invisible">{html.escape(rest[30:])}</span>'
            if len(rest) > 30
            else f'<span class="">{html.escape(rest)}</span>'
        )
        return f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no"><span class="invisible">{scheme}://</span>{shown}</a>'
    if match["mention"]:
        user, _, host = match["mention"][1:].partition("@")
        return f'<span class="h-card" translate="no"><a href="https://{host or "local"}/@{user}" class="u-url mention">@<span>{user}</span></a></span>'
    tag = match["tag"][1:]
    return f'<a href="/tags/{tag.lower()}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(when * 1000) % 1000:03d}Z"
