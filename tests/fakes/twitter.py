"""A fake X API v2 for tests: real tweepy talks to it over HTTP on 127.0.0.1.

tweepy hard-codes ``https://api.twitter.com`` (see /work/shared/research/apis.md §2), so a test
routes a client's own ``requests`` session here with :meth:`FakeX.route` (a transport adapter that
rewrites the URL); a subprocess is routed by starting it through this module::

    PYTHONPATH=tests python -m fakes.twitter http://127.0.0.1:PORT -- run config.yaml

It serves, in X's API v2 shapes (401 for unknown OAuth 1.0a keys on every route):

* ``POST /2/tweets``: 201 with ``{"data": {"id", "text", ...}}``; 403 "duplicate content" for a
  text the account already posted (unless ``duplicates=False``: X does not promise that check);
  400 for text over 280 characters; and whatever a test scripts with :meth:`FakeX.fail_next`
  (429 with an ``x-rate-limit-reset`` header, 5xx, a dropped connection, or a post that is made
  but answered with 500).
* ``GET /2/users/me``: ``{"data": {"id", "name", "username"}}`` of the keys' account.
* ``GET /2/users/:id/tweets?max_results=&start_time=``: that account's posts, newest first,
  ``{"data": [...], "meta": {"result_count", "newest_id", "oldest_id", "next_token"?}}`` (just
  ``meta`` when there are none); ``max_results`` 5 to 100 (default 10). ``timeline_lag`` hides
  posts younger than that many seconds, as X's timelines can lag behind a post; with
  ``timelines=False`` it answers 403 "client-not-enrolled", as X's Free tier does.

For reply bots:

* ``POST /2/tweets`` with ``{"reply": {"in_reply_to_tweet_id": ...}}``: a reply in the parent's
  conversation, shown (as X does) with ``@PARENT_AUTHOR`` before its text; 403 "deleted or not
  visible" for a parent that is gone.
* ``GET /2/users/:id/mentions?since_id=&max_results=&expansions=&tweet.fields=&user.fields=``: the
  posts naming ``@USERNAME``, newest first, with ``includes.users`` (``author_id``) and
  ``includes.tweets`` (``referenced_tweets.id``; a deleted one as an ``errors`` entry, as X does).
  :meth:`FakeX.fail_reads` scripts its faults (a 429 while listening).
* ``GET /2/tweets?ids=`` and ``GET /2/tweets/:id``: lookups (``errors`` for what is gone);
  ``tweet.fields`` are honoured here and on the timeline.
* :meth:`FakeX.add_user`, :meth:`FakeX.say` (a post or reply by anyone) and :meth:`FakeX.delete`
  script other users.

Texts come back as X shows them (:func:`shown`): ``&``, ``<``, ``>`` escaped as HTML entities and
links replaced by t.co links. Every answer carries the three ``x-rate-limit-*`` headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fakes import LocalServer

TWEETS_PATH = "/2/tweets"
TWEET_MAX = 280
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
REAL_HOST = "https://api.twitter.com"
#: X's answer to an endpoint the app's access level (the Free tier) does not include.
NOT_ENROLLED = {
    "client_id": "27400769", "title": "Client Forbidden", "reason": "client-not-enrolled",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview", "required_enrollment": "Appropriate Level of API Access",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}  # fmt: skip
_OAUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
_USER_TWEETS = re.compile(r"/2/users/(\d+)/tweets")
_MENTIONS = re.compile(r"/2/users/(\d+)/mentions")
_ONE_TWEET = re.compile(r"/2/tweets/(\d+)")
GONE_PARENT = "You attempted to reply to a Tweet that is deleted or not visible to you."
# Links as X finds them: with a scheme, or a bare domain; punctuation at the end stays outside.
_LINK = re.compile(r"(?<![\w@.])(?:https?://)?(?:[A-Za-z0-9-]+\.)+(?:com|org|net|dev|io|co|me)\b(?:/\S*)?", re.I)
_TRAILING = ".,;:!?)'\""


@dataclass(frozen=True)
class Tweet:
    id: str
    text: str  # as it was sent
    consumer_key: str
    access_token: str
    created_at: float = field(default_factory=time.time)
    author_id: str = ""
    in_reply_to: str | None = None  # the parent's id, for a reply
    conversation_id: str = ""  # the root post's id ("": this post's own)
    prefix: str = ""  # what X shows before the text: "@parent_author " for a reply

    def data(self, fields: frozenset[str] = frozenset(), parent_author: str | None = None) -> dict[str, Any]:
        """The tweet object of API v2 with the default fields and ``fields`` asked for, its text as X shows it."""
        data: dict[str, Any] = {"id": self.id, "text": shown(self.prefix + self.text), "edit_history_tweet_ids": [self.id]}
        extra = {
            "author_id": self.author_id,
            "conversation_id": self.conversation_id or self.id,
            "created_at": datetime.fromtimestamp(self.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(self.created_at * 1000) % 1000:03d}Z",
        }
        if self.in_reply_to is not None:
            extra["referenced_tweets"] = [{"type": "replied_to", "id": self.in_reply_to}]
            if parent_author is not None:
                extra["in_reply_to_user_id"] = parent_author
        data.update({key: value for key, value in extra.items() if key in fields})
        return data


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    body: dict[str, Any]
    consumer_key: str | None
    access_token: str | None
    status: int
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int  # 0: drop the connection without an answer
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    post_first: bool = False  # make the post, then answer with the fault (an ambiguous failure)


class FakeX(LocalServer):
    """The fake service: accounts (consumer key → access token), tweets, a request log, a server."""

    def __init__(
        self,
        accounts: dict[str, str] | None = None,
        *,
        window: float = 900.0,
        limit: int = 10_000,
        answer_delay: float = 0.0,
        duplicates: bool = True,
        timeline_lag: float = 0.0,
        timelines: bool = True,
    ) -> None:
        super().__init__()
        self.accounts = dict(accounts or {})
        #: Refuse a text the account already posted with 403 "duplicate content".
        self.duplicates = duplicates
        #: Seconds before a new post shows in its account's timeline.
        self.timeline_lag = timeline_lag
        #: Serve ``GET /2/users/:id/tweets`` (X's Free tier does not).
        self.timelines = timelines
        #: Seconds between making a post and answering: widens the window in which a crash
        #: leaves the client not knowing that its post went out.
        self.answer_delay = answer_delay
        self.tweets: list[Tweet] = []
        self.requests: list[LoggedRequest] = []
        self.window = window
        self.limit = limit
        self._faults: list[_Fault] = []
        self._read_faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._next_id = 1_900_000_000_000_000_000
        #: Users who are not one of the keys' accounts: id -> username.
        self.users: dict[str, str] = {}
        self.deleted: set[str] = set()

    # -- scripting and inspection -------------------------------------------------------------

    def fail_next(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None, post_first: bool = False) -> None:
        """Answer the next ``times`` posts with ``status`` (0 drops the connection).

        ``post_first`` makes the post and then fails the answer: the client cannot know it went out.
        """
        body = {"title": "fault", "detail": f"scripted {status}", "type": "about:blank", "status": status}
        self._faults += [_Fault(status, dict(headers or {}), body, post_first) for _ in range(times)]

    def rate_limit_next(self, seconds: float) -> None:
        """Answer the next post with 429 and a reset ``seconds`` from now, as X does."""
        reset = str(int(time.time() + seconds))
        self.fail_next(429, headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})

    def fail_reads(self, status: int, *, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` listings of mentions with ``status`` (0 drops the connection)."""
        body = {"title": "fault", "detail": f"scripted {status}", "type": "about:blank", "status": status}
        self._read_faults += [_Fault(status, dict(headers or {}), body) for _ in range(times)]

    def rate_limit_reads(self, seconds: float) -> None:
        """Answer the next listing of mentions with 429 and a reset ``seconds`` from now."""
        reset = str(int(time.time() + seconds))
        self.fail_reads(429, headers={"x-rate-limit-limit": "75", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})

    def texts(self) -> list[str]:
        return [t.text for t in self.tweets]

    def user_id(self, access_token: str) -> str:
        """The id of the account an access token belongs to (stable, numeric, as X's)."""
        return str(1_000_000 + list(self.accounts.values()).index(access_token))

    def username(self, user_id: str) -> str:
        """A user's handle: ``botID`` for the keys' accounts."""
        return self.users.get(user_id, f"bot{user_id}")

    def add_user(self, username: str) -> str:
        """Another user of X; returns their id."""
        user_id = str(2_000_000 + len(self.users))
        self.users[user_id] = username
        return user_id

    def say(self, username: str, text: str, *, reply_to: str | None = None) -> Tweet:
        """A post (or reply) by ``username``, made now: another user, or a keys' account posting outside botkit."""
        ids = {name: uid for uid, name in self.users.items()}
        ids.update({self.username(self.user_id(token)): self.user_id(token) for token in self.accounts.values()})
        with self._lock:
            return self._add(text, "", "", ids[username], reply_to)

    def delete(self, tweet_id: str) -> None:
        self.deleted.add(tweet_id)

    def tweet(self, tweet_id: str) -> Tweet | None:
        """A post that exists (not deleted)."""
        found = next((t for t in self.tweets if t.id == tweet_id), None)
        return None if found is None or found.id in self.deleted else found

    def replies_to(self, tweet_id: str) -> list[Tweet]:
        return [t for t in self.tweets if t.in_reply_to == tweet_id and t.id not in self.deleted]

    def by(self, username: str) -> list[Tweet]:
        return [t for t in self.tweets if self.username(t.author_id) == username]

    def _add(self, text: str, key: str, token: str, author: str, reply_to: str | None) -> Tweet:
        parent = self.tweet(reply_to) if reply_to else None
        self._next_id += 1
        tweet_id = str(self._next_id)
        prefix = ""
        if parent is not None:
            handle = f"@{self.username(parent.author_id)}"
            prefix = "" if text.lower().startswith(handle.lower()) else f"{handle} "
        tweet = Tweet(tweet_id, text, key, token, time.time(), author, reply_to, parent.conversation_id or parent.id if parent else "", prefix)
        self.tweets.append(tweet)
        return tweet

    # -- server ------------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def route(self, session: Any) -> None:
        """Send a ``requests`` session's calls to api.twitter.com here instead (the test's seam)."""
        session.mount(REAL_HOST, rewrite_adapter(self.url))

    # -- request handling --------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], key: str | None, token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        """(status, body, headers, drop) for one request."""
        if key is None or self.accounts.get(key) != token:
            return 401, {"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank", "status": 401}, {}, False
        assert token is not None
        if method == "POST" and path == TWEETS_PATH:
            return self._create(body, key, token)
        if method == "GET" and path == "/2/users/me":
            user = self.user_id(token)
            return 200, {"data": {"id": user, "name": f"Bot {user}", "username": self.username(user)}}, {}, False
        mentions = _MENTIONS.fullmatch(path)
        if method == "GET" and mentions:
            fault = self._read_faults.pop(0) if self._read_faults else None
            if fault is not None:
                return fault.status, fault.body, fault.headers, fault.status == 0
            return (*self._mentions(mentions[1], query), {}, False)
        if method == "GET" and (path == TWEETS_PATH or _ONE_TWEET.fullmatch(path)):
            return (*self._lookup(path, query), {}, False)
        timeline = _USER_TWEETS.fullmatch(path)
        if method == "GET" and timeline and not self.timelines:
            return 403, NOT_ENROLLED, {}, False
        if method == "GET" and timeline:
            return (*self._timeline(timeline[1], query), {}, False)
        return 404, {"title": "Not Found Error", "detail": f"no route {path}", "type": "about:blank", "status": 404}, {}, False

    def _create(self, body: dict[str, Any], key: str, token: str) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None and not fault.post_first:
            return fault.status, fault.body, fault.headers, fault.status == 0
        text = str(body.get("text", ""))
        reply_to = body.get("reply", {}).get("in_reply_to_tweet_id") if isinstance(body.get("reply"), dict) else None
        if reply_to is not None and self.tweet(str(reply_to)) is None:
            return 403, {"detail": GONE_PARENT, "type": "about:blank", "title": "Forbidden", "status": 403}, {}, False
        if self.duplicates and any(t.text == text and t.access_token == token for t in self.tweets):
            return 403, {"detail": DUPLICATE_DETAIL, "type": "about:blank", "title": "Forbidden", "status": 403}, {}, False
        if not text or len(text) > TWEET_MAX:
            return (
                400,
                {
                    "errors": [{"message": f"text must be 1 to {TWEET_MAX} characters"}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
                {},
                False,
            )
        tweet = self._add(text, key, token, self.user_id(token), None if reply_to is None else str(reply_to))
        if fault is not None:
            return fault.status, fault.body, fault.headers, fault.status == 0
        return 201, {"data": tweet.data()}, {}, False

    def _timeline(self, user: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET /2/users/:id/tweets``: the account's posts since ``start_time``, newest first, one page."""
        try:
            size = int(query.get("max_results", "10"))
            since = datetime.strptime(query["start_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() if "start_time" in query else 0.0
        except ValueError:
            size, since = 0, 0.0
        if not 5 <= size <= 100:
            return 400, {
                "errors": [
                    {"parameters": {"max_results": [query.get("max_results")]}, "message": "The `max_results` query parameter value is not between 5 and 100"}
                ],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
        tokens = {self.user_id(token): token for token in self.accounts.values()}
        if user not in tokens:
            return 200, {
                "errors": [
                    {
                        "value": user,
                        "detail": f"Could not find user with id: [{user}].",
                        "title": "Not Found Error",
                        "resource_type": "user",
                        "parameter": "id",
                        "resource_id": user,
                        "type": "https://api.twitter.com/2/problems/resource-not-found",
                    }
                ]
            }
        shown_by = time.time() - self.timeline_lag
        mine = [t for t in reversed(self.tweets) if t.author_id == user and t.id not in self.deleted and since <= t.created_at <= shown_by]
        page = mine[:size]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        if len(mine) > size:
            meta["next_token"] = f"page-after-{page[-1].id}"
        return 200, {"data": [self._data(t, query) for t in page], "meta": meta}

    def _data(self, tweet: Tweet, query: dict[str, str]) -> dict[str, Any]:
        parent = self.tweet(tweet.in_reply_to) if tweet.in_reply_to else None
        fields = frozenset(query.get("tweet.fields", "").split(","))
        return tweet.data(fields, parent.author_id if parent else None)

    def _mentions(self, user: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET /2/users/:id/mentions``: posts naming @USERNAME since ``since_id``, newest first, one page, with includes."""
        size = int(query.get("max_results", "10"))
        if not 5 <= size <= 100:
            return 400, {"errors": [{"message": "The `max_results` query parameter value is not between 5 and 100"}], "title": "Invalid Request",
                         "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}  # fmt: skip
        handle = re.compile(rf"@{re.escape(self.username(user))}\b", re.I)
        since = int(query.get("since_id", "0"))
        found = [t for t in reversed(self.tweets) if t.id not in self.deleted and int(t.id) > since and handle.search(t.prefix + t.text)]
        page = found[:size]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        expansions = set(query.get("expansions", "").split(","))
        answer: dict[str, Any] = {"data": [self._data(t, query) for t in page]}
        includes: dict[str, Any] = {}
        errors = []
        if "author_id" in expansions:
            authors = dict.fromkeys(t.author_id for t in page)
            includes["users"] = [{"id": a, "name": self.username(a).title(), "username": self.username(a)} for a in authors]
        if "referenced_tweets.id" in expansions:
            for parent_id in dict.fromkeys(t.in_reply_to for t in page if t.in_reply_to):
                assert parent_id is not None
                parent = self.tweet(parent_id)
                if parent is None:
                    errors.append(_not_found(parent_id, "referenced_tweets.id"))
                else:
                    includes.setdefault("tweets", []).append(self._data(parent, query))
        if includes:
            answer["includes"] = includes
        if errors:
            answer["errors"] = errors
        answer["meta"] = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        return 200, answer

    def _lookup(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET /2/tweets?ids=`` or ``/2/tweets/:id``: what exists, and an ``errors`` entry for the rest."""
        one = _ONE_TWEET.fullmatch(path)
        ids = [one[1]] if one else [i for i in query.get("ids", "").split(",") if i]
        found = [t for i in ids if (t := self.tweet(i)) is not None]
        answer: dict[str, Any] = {}
        if found:
            answer["data"] = self._data(found[0], query) if one else [self._data(t, query) for t in found]
        missing = [i for i in ids if self.tweet(i) is None]
        if missing:
            answer["errors"] = [_not_found(i, "id" if one else "ids") for i in missing]
        return 200, answer

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        key, token = _oauth1(handler.headers.get("authorization"))
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        with self._lock:
            status, answer, headers, drop = self._answer(handler.command, url.path, query, body, key, token)
            self.requests.append(LoggedRequest(handler.command, url.path, body, key, token, status, query))
            headers = {"x-rate-limit-limit": str(self.limit), "x-rate-limit-remaining": str(self.limit - 1),
                       "x-rate-limit-reset": str(int(time.time() + self.window)), **headers}  # fmt: skip
        if self.answer_delay:
            time.sleep(self.answer_delay)
        if drop:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        data = json.dumps(answer).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json; charset=utf-8")
            handler.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request (the crash test)
            handler.close_connection = True


def _not_found(tweet_id: str, parameter: str) -> dict[str, Any]:
    return {"value": tweet_id, "detail": f"Could not find tweet with {parameter}: [{tweet_id}].", "title": "Not Found Error", "resource_type": "tweet",
            "parameter": parameter, "resource_id": tweet_id, "type": "https://api.twitter.com/2/problems/resource-not-found"}  # fmt: skip


def shown(text: str) -> str:
    """A text as X's API v2 shows it: ``&``, ``<``, ``>`` escaped, each link replaced by a t.co link."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LINK.sub(_tco, escaped)


def _tco(match: re.Match[str]) -> str:
    link = match[0].rstrip(_TRAILING)
    return "https://t.co/" + hashlib.sha256(link.encode()).hexdigest()[:10] + match[0][len(link) :]


def _oauth1(header: str | None) -> tuple[str | None, str | None]:
    """``oauth_consumer_key`` and ``oauth_token`` of an OAuth 1.0a header (the signature is not checked)."""
    if not header or not header.startswith("OAuth "):
        return None, None
    params = {k: unquote(v) for k, v in _OAUTH_PARAM.findall(header)}
    return params.get("oauth_consumer_key"), params.get("oauth_token")


def _handler_for(fake: FakeX) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            fake._handle(self)

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def rewrite_adapter(base: str) -> Any:
    """A ``requests`` adapter sending ``https://api.twitter.com/...`` to ``base/...``."""
    from requests.adapters import HTTPAdapter

    class Rewrite(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            request.url = base + request.url[len(REAL_HOST) :]
            kwargs["timeout"] = kwargs.get("timeout") or 10
            return super().send(request, **kwargs)

    return Rewrite()


def main(argv: list[str]) -> int:
    """Run the botkit CLI with every ``requests`` session routed to the fake at ``argv[0]``."""
    import requests

    base, rest = argv[0], argv[argv.index("--") + 1 :]
    original = requests.Session.__init__

    def routed(self: requests.Session, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.mount(REAL_HOST, rewrite_adapter(base))

    requests.Session.__init__ = routed  # type: ignore[method-assign]
    from botkit.cli import main as botkit_main

    return botkit_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
