"""A fake Reddit OAuth API for tests: real praw talks to it over HTTP on 127.0.0.1.

It serves the wire shapes praw 8 / prawcore 4 use (see /work/shared/research/apis.md §1.5):

* ``POST /api/v1/access_token``: HTTP Basic client auth, ``password`` and ``client_credentials``
  grants. A wrong client id/secret answers 401 (as Reddit does); a wrong password answers 200
  with ``{"error": "invalid_grant"}`` (as Reddit does).
* ``GET /r/{sub}/top?t=&limit=&after=``: a Listing, at most 100 posts a page whatever ``limit``
  asks, paged by ``after``, capped at 1000 posts per (subreddit, time filter) like Reddit's
  precomputed listings. Posts are ranked by score within the time window, so different time
  filters list different posts and their union can pass the cap.
* ``GET /comments/{id}``: the post and its comment forest, as Reddit shapes it (a list of two
  Listings; each comment's ``replies`` a Listing or ``""``). With :attr:`FakeReddit.comment_page`,
  top-level comments past that many are folded into one ``more`` stub, as Reddit folds long threads.
* Unknown subreddits answer 404 (or, with ``redirect_unknown``, the 302 to
  ``/subreddits/search`` that Reddit also uses); private ones 403.
* Every API answer carries all three ``x-ratelimit-*`` headers (prawcore reads them together).
* For posting bots: ``POST /api/submit`` records a :class:`Submission` (a user token is required,
  as on Reddit) and answers in the ``json.data`` / ``json.errors`` shape; ``GET /api/v1/me`` and
  ``GET /user/{name}/submitted`` (newest first) let a bot look up what it already posted.
  :meth:`FakeReddit.fail_submit` scripts RATELIMIT errors, 5xx and 403 for submissions only,
  :meth:`FakeReddit.drop_submit` closes the connection without any answer, and
  :attr:`FakeReddit.submit_delay` widens the window between making a post and answering.
  With :attr:`FakeReddit.normalise`, ``/user/{name}/submitted`` shows titles and bodies as Reddit
  may: whitespace trimmed and collapsed, ``&``, ``<``, ``>`` escaped as HTML entities.

* For reply bots: ``GET /message/inbox`` (also ``/message/comments``, ``/message/selfreply``,
  ``/message/mentions``: comment replies, replies to the account's posts and ``u/NAME`` mentions,
  newest first, in the inbox's shape: ``context`` and ``type`` but no ``link_id``, ``permalink`` or
  ``depth``), ``GET /r/{sub}/comments`` and ``GET /r/{sub}/new`` (``a+b`` for several; comments
  with ``link_id`` and ``permalink`` but no ``depth``, as Reddit lists them), ``GET /api/info?id=``
  (things by fullname), ``GET /user/{name}/comments`` (newest first) and ``POST /api/comment``
  (``{"json": {"data": {"things": [...]}}}``; Reddit's DELETED_COMMENT, DELETED_LINK,
  THREAD_LOCKED and TOO_OLD errors for a parent deleted, locked or archived).
  :meth:`FakeReddit.post`, :meth:`FakeReddit.comment`, :meth:`FakeReddit.delete`,
  :meth:`FakeReddit.lock` and :meth:`FakeReddit.archive` script other users; :meth:`FakeReddit.fail_comment`
  and :meth:`FakeReddit.drop_comment` fail ``/api/comment`` as ``fail_submit`` does submissions.

Tests script faults with :meth:`FakeReddit.fail_next` and assert on :attr:`FakeReddit.requests`.
The class is meant to grow (``POST /api/submit`` for posting bots) without changing its users.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fakes import LocalServer

TOKEN_PATH = "/api/v1/access_token"
INVALID_TOKEN = {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'}
PAGE_SIZE = 100
LISTING_CAP = 1000
TIME_WINDOWS: dict[str, float | None] = {
    "hour": 3600.0,
    "day": 86400.0,
    "week": 7 * 86400.0,
    "month": 30 * 86400.0,
    "year": 365 * 86400.0,
    "all": None,
}
DROP = 0  # the status logged for a request whose connection was closed without an answer


@dataclass
class Post:
    """One submission, with the fields praw reads (a missing one would make praw fetch it)."""

    id: str
    title: str
    subreddit: str
    created_utc: float
    score: int = 1
    selftext: str = ""
    over_18: bool = False
    stickied: bool = False
    author: str = "someone"
    comments: list[Comment] = field(default_factory=list)
    deleted: bool = False
    locked: bool = False
    archived: bool = False

    def thing(self, *, normalised: bool = False) -> dict[str, Any]:
        """The listing entry; ``normalised``: title and body as Reddit may show them (see :func:`normalised_text`)."""
        show = normalised_text if normalised else str
        return {
            "kind": "t3",
            "data": {
                "id": self.id,
                "name": f"t3_{self.id}",
                "title": "[deleted]" if self.deleted else show(self.title),
                "selftext": "[deleted]" if self.deleted else show(self.selftext),
                "is_self": bool(self.selftext),
                "score": self.score,
                "created_utc": self.created_utc,
                "over_18": self.over_18,
                "stickied": self.stickied,
                "locked": self.locked,
                "archived": self.archived,
                "author": "[deleted]" if self.deleted else self.author,
                "subreddit": self.subreddit,
                "permalink": f"/r/{self.subreddit}/comments/{self.id}/",
                "num_comments": len(self.comments),
            },
        }


@dataclass
class Comment:
    """One comment of a post; ``parent`` is the id of the comment it answers, None for a top-level one."""

    id: str
    body: str
    parent: str | None = None
    created_utc: float = 0.0
    score: int = 1
    stickied: bool = False
    author: str = "someone"
    deleted: bool = False
    locked: bool = False

    @property
    def fullname(self) -> str:
        return f"t1_{self.id}"

    def parent_name(self, post: Post) -> str:
        return f"t1_{self.parent}" if self.parent else f"t3_{post.id}"

    def thing(self, post: Post, depth: int | None, replies: list[dict[str, Any]], *, normalised: bool = False) -> dict[str, Any]:
        """The comment as a post's comment tree shows it (with ``depth``), or as other listings do (``depth`` None: left out)."""
        data = {
            "id": self.id,
            "name": self.fullname,
            "parent_id": self.parent_name(post),
            "link_id": f"t3_{post.id}",
            "body": "[deleted]" if self.deleted else (normalised_text(self.body) if normalised else self.body),
            "author": "[deleted]" if self.deleted else self.author,
            "score": self.score,
            "created_utc": self.created_utc,
            "stickied": self.stickied,
            "locked": self.locked,
            "archived": post.archived,
            "subreddit": post.subreddit,
            "permalink": f"/r/{post.subreddit}/comments/{post.id}/_/{self.id}/",
            "replies": _listing(replies) if replies else "",
        }
        if depth is not None:
            data["depth"] = depth
        return {"kind": "t1", "data": data}


@dataclass(frozen=True)
class Submission:
    """One post a bot made: as listings show it, plus the form praw sent (kind, flair, ...)."""

    post: Post
    form: dict[str, str]


@dataclass
class _SubmitFault:
    status: int  # 200: a json.errors answer (RATELIMIT)
    body: dict[str, Any]
    post_first: bool  # make the post, then answer with the fault


@dataclass(frozen=True)
class LoggedRequest:
    """What the fake saw: tests assert on grants, paging and retries with these."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    client_id: str | None  # from HTTP Basic auth on the token endpoint
    bearer: str | None  # the access token on API calls
    user_agent: str
    status: int


@dataclass
class _Fault:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Answer:
    status: int
    body: dict[str, Any] | list[Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before sending, outside the lock


class FakeReddit(LocalServer):
    """The fake service: its data, its credentials, its request log and its HTTP server.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`); :attr:`url` is then the
    value for praw's ``oauth_url`` and ``reddit_url``.
    """

    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        now: float | None = None,
        ratelimit_window: float = 10.0,
        ratelimit_budget: int = 1000,
    ) -> None:
        super().__init__()
        self.clients = dict(clients or {})
        self.users = dict(users or {})
        self.now = time.time() if now is None else now
        self.subreddits: dict[str, list[Post]] = {}
        self.private: set[str] = set()
        self.redirect_unknown = False
        self.requests: list[LoggedRequest] = []
        self.ratelimit_window = ratelimit_window
        self.ratelimit_budget = ratelimit_budget
        self._faults: deque[_Fault | None] = deque()  # None: serve this call normally
        self._tokens: set[str] = set()
        self._issued = itertools.count(1)
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._used = 0
        self.submissions: list[Submission] = []
        self.submit_delay = 0.0
        #: Show the account's submissions with whitespace collapsed and HTML entities escaped.
        self.normalise = False
        self._submit_faults: deque[_SubmitFault] = deque()
        self._token_users: dict[str, str] = {}
        #: Top-level comments shown per post before the rest fold into a ``more`` stub (None: all).
        self.comment_page: int | None = None
        self._comment_faults: deque[_SubmitFault] = deque()
        self._made = itertools.count(1)  # ids of what users (and bots) post here: one sequence, so they sort by age

    # -- data --------------------------------------------------------------------------------

    def add_posts(self, subreddit: str, posts: list[Post]) -> None:
        self.subreddits.setdefault(subreddit.lower(), []).extend(posts)

    def generate(self, subreddit: str, count: int, *, seed: int = 0, max_age_days: float = 3 * 365) -> list[Post]:
        """``count`` plain posts with random scores, spread over ``max_age_days`` so that every
        time filter has some (a quarter of them in the last day, where real traffic bunches)."""
        rng = random.Random(seed)
        posts = []
        for n in range(count):
            age = rng.uniform(0, 86400) if n % 4 == 0 else rng.uniform(0, max_age_days * 86400)
            posts.append(Post(f"{subreddit.lower()}{n:05d}", f"{subreddit} post {n}", subreddit, round(self.now - age), rng.randint(1, 50_000)))
        self.add_posts(subreddit, posts)
        return posts

    def top(self, subreddit: str, time_filter: str) -> list[Post]:
        """What Reddit lists for ``/r/{subreddit}/top?t={time_filter}``: the cap applies."""
        window = TIME_WINDOWS[time_filter]
        posts = [p for p in self.subreddits[subreddit.lower()] if window is None or p.created_utc >= self.now - window]
        return sorted(posts, key=lambda p: (-p.score, p.id))[:LISTING_CAP]

    # -- other users, for reply bots -------------------------------------------------------------

    def post(self, subreddit: str, title: str, *, author: str = "someone", selftext: str = "") -> str:
        """A new post by ``author`` in ``subreddit``, made now; returns its fullname."""
        post = Post(f"p{next(self._made):05d}", title, subreddit, time.time(), selftext=selftext, author=author)
        self.add_posts(subreddit, [post])
        return f"t3_{post.id}"

    def comment(self, parent: str, body: str, *, author: str = "someone") -> str:
        """A new comment by ``author`` under ``parent`` (a fullname), made now; returns its fullname."""
        found = self.find(parent)
        assert found is not None, f"no {parent} here"
        post, under = found
        comment = Comment(f"k{next(self._made):05d}", body, under.id if under else None, time.time(), author=author)
        post.comments.append(comment)
        return comment.fullname

    def delete(self, fullname: str) -> None:
        """Delete a post or comment, as its author would: it stays, as ``[deleted]``."""
        post, comment = self._thing(fullname)
        if comment is not None:
            comment.deleted = True
        else:
            post.deleted = True

    def lock(self, fullname: str) -> None:
        post, comment = self._thing(fullname)
        if comment is not None:
            comment.locked = True
        else:
            post.locked = True

    def archive(self, fullname: str) -> None:
        """Archive a post (Reddit does so after six months): nothing in it can be answered."""
        self._thing(fullname)[0].archived = True

    def find(self, fullname: str) -> tuple[Post, Comment | None] | None:
        """The post of a fullname, and the comment when it names one; None when there is no such thing."""
        kind, _, thing_id = fullname.partition("_")
        for posts in self.subreddits.values():
            for post in posts:
                if kind == "t3" and post.id == thing_id:
                    return post, None
                if kind == "t1":
                    for comment in post.comments:
                        if comment.id == thing_id:
                            return post, comment
        return None

    def _thing(self, fullname: str) -> tuple[Post, Comment | None]:
        found = self.find(fullname)
        assert found is not None, f"no {fullname} here"
        return found

    def all_comments(self) -> list[tuple[Post, Comment]]:
        """Every comment with its post, oldest first."""
        every = [(post, comment) for posts in self.subreddits.values() for post in posts for comment in post.comments]
        return sorted(every, key=lambda pc: (pc[1].created_utc, pc[1].id))

    def replies(self, fullname: str) -> list[Comment]:
        """The comments directly under a post or comment, oldest first."""
        return [c for post, c in self.all_comments() if c.parent_name(post) == fullname]

    def comments_by(self, author: str) -> list[Comment]:
        return [c for _, c in self.all_comments() if c.author.lower() == author.lower()]

    def depth(self, fullname: str) -> int:
        """How deep a thing sits: a post 0, a top-level comment 1..."""
        post, comment = self._thing(fullname)
        depth = 0
        while comment is not None:
            depth += 1
            parent = comment.parent
            comment = next((c for c in post.comments if c.id == parent), None) if parent else None
        return depth

    # -- scripting and inspection -------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        after: int = 0,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer ``times`` API calls (not token requests) with ``status``, once ``after`` more
        calls have been served normally (so a fault can land in the middle of paging)."""
        if status == 401 and headers is None:  # prawcore needs this header on a 401 (else KeyError)
            headers = dict(INVALID_TOKEN)
        self._faults.extend([None] * after)
        for _ in range(times):
            self._faults.append(_Fault(status, dict(headers or {}), body or {"message": "fault", "error": status}))

    def fail_submit(self, status: int = 200, *, times: int = 1, ratelimit_minutes: int | None = None, post_first: bool = False) -> None:
        """Answer the next ``times`` submissions with ``status``, or with Reddit's RATELIMIT error
        ("Take a break for N minutes") when ``ratelimit_minutes`` is given. ``post_first`` makes the
        post before failing the answer (the client then cannot know it went out)."""
        if ratelimit_minutes is not None:
            message = f"Looks like you've been doing that a lot. Take a break for {ratelimit_minutes} minutes before trying again."
            body: dict[str, Any] = {"json": {"errors": [["RATELIMIT", message, "ratelimit"]]}}
        else:
            body = {"message": "fault", "error": status}
        self._submit_faults.extend(_SubmitFault(status, body, post_first) for _ in range(times))

    def drop_submit(self, *, times: int = 1, post_first: bool = True) -> None:
        """Close the connection of the next ``times`` submissions without answering (the client sees
        a dropped connection), by default after making the post."""
        self._submit_faults.extend(_SubmitFault(DROP, {}, post_first) for _ in range(times))

    def fail_comment(self, status: int = 200, *, times: int = 1, ratelimit_minutes: int | None = None, post_first: bool = False) -> None:
        """As :meth:`fail_submit`, for ``POST /api/comment`` (a reply)."""
        if ratelimit_minutes is not None:
            message = f"Looks like you've been doing that a lot. Take a break for {ratelimit_minutes} minutes before trying again."
            body: dict[str, Any] = {"json": {"errors": [["RATELIMIT", message, "ratelimit"]]}}
        else:
            body = {"message": "fault", "error": status}
        self._comment_faults.extend(_SubmitFault(status, body, post_first) for _ in range(times))

    def drop_comment(self, *, times: int = 1, post_first: bool = True) -> None:
        """As :meth:`drop_submit`, for ``POST /api/comment``: by default the comment is made, the answer lost."""
        self._comment_faults.extend(_SubmitFault(DROP, {}, post_first) for _ in range(times))

    def titles(self, subreddit: str | None = None) -> list[str]:
        """Titles of the submissions made so far, in order (of one subreddit, if given)."""
        return [s.post.title for s in self.submissions if subreddit is None or s.post.subreddit.lower() == subreddit.lower()]

    def grants(self) -> list[str]:
        """The ``grant_type`` of every token request, in order."""
        return [r.form.get("grant_type", "") for r in self.requests if r.path == TOKEN_PATH]

    def api_requests(self) -> list[LoggedRequest]:
        return [r for r in self.requests if r.path != TOKEN_PATH]

    def praw_ini(self, site: str, **settings: str) -> str:
        """A praw.ini section pointing praw at this server, plus ``settings`` (credentials...)."""
        lines = [f"[{site}]", f"oauth_url = {self.url}", f"reddit_url = {self.url}"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    # -- server ------------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- request handling (called from server threads) ----------------------------------------

    def _answer_token(self, client_id: str | None, secret: str | None, form: dict[str, str]) -> _Answer:
        if client_id is None or self.clients.get(client_id) != secret:
            return _Answer(401, {"message": "Unauthorized", "error": 401})
        grant = form.get("grant_type")
        if grant == "password" and self.users.get(form.get("username", "")) != form.get("password"):
            return _Answer(200, {"error": "invalid_grant"})
        if grant not in ("password", "client_credentials"):
            return _Answer(200, {"error": "unsupported_grant_type"})
        token = f"token-{next(self._issued)}"
        self._tokens.add(token)
        if grant == "password":
            self._token_users[token] = form["username"]
        return _Answer(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _answer_api(self, method: str, path: str, query: dict[str, str], bearer: str | None, form: dict[str, str] | None = None) -> _Answer:
        fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            if fault.status == 401:
                self._tokens.discard(bearer or "")  # the token really is dead: only a refresh helps
            return _Answer(fault.status, fault.body, fault.headers)
        if bearer not in self._tokens:
            return _Answer(401, {"message": "Unauthorized", "error": 401}, dict(INVALID_TOKEN))
        answer = self._route(method, path, query, form or {}, self._token_users.get(bearer or ""))
        answer.headers.update(self._ratelimit_headers())
        return answer

    def _route(self, method: str, path: str, query: dict[str, str], form: dict[str, str] | None = None, user: str | None = None) -> _Answer:
        parts = path.removesuffix(".json").strip("/").split("/")
        if method == "GET" and len(parts) == 3 and parts[0] == "r" and parts[2] == "top":
            return self._listing(parts[1], query)
        if method == "GET" and len(parts) == 2 and parts[0] == "comments":
            return self._comment_page(parts[1])
        if method == "POST" and parts == ["api", "submit"]:
            return self._submit(form or {}, user)
        if method == "GET" and parts == ["api", "v1", "me"]:
            return _Answer(200, {"name": user, "id": f"u{user}", "created_utc": self.now}) if user else _Answer(403, {"message": "Forbidden", "error": 403})
        if method == "GET" and len(parts) == 3 and parts[0] == "user" and parts[2] == "submitted":
            return self._submitted(parts[1], query)
        if method == "GET" and len(parts) == 3 and parts[0] == "user" and parts[2] == "comments":
            return self._user_comments(parts[1], query)
        if method == "GET" and len(parts) == 2 and parts[0] == "message" and parts[1] in _INBOX:
            return self._inbox(user, _INBOX[parts[1]], query) if user else _Answer(403, {"message": "Forbidden", "error": 403})
        if method == "GET" and len(parts) == 3 and parts[0] == "r" and parts[2] in ("comments", "new"):
            return self._newest(parts[1], parts[2], query)
        if method == "GET" and parts == ["api", "info"]:
            return self._info(query)
        if method == "POST" and parts == ["api", "comment"]:
            return self._reply(form or {}, user)
        return _Answer(404, {"message": "Not Found", "error": 404})

    def _inbox(self, user: str, kinds: frozenset[str], query: dict[str, str]) -> _Answer:
        """``GET /message/...``: comments answering the user's posts and comments, and those naming u/USER, newest first."""
        items = []
        for post, comment in reversed(self.all_comments()):
            if comment.author.lower() == user.lower():
                continue
            parent = self.find(comment.parent_name(post))
            assert parent is not None
            above = parent[1].author if parent[1] is not None else parent[0].author
            if above.lower() == user.lower():
                kind = "comment_reply" if parent[1] is not None else "post_reply"
            elif f"u/{user.lower()}" in comment.body.lower():
                kind = "username_mention"
            else:
                continue
            if kind not in kinds:
                continue
            data = comment.thing(post, None, [])["data"]
            for key in ("link_id", "permalink", "locked", "archived", "stickied"):
                del data[key]  # not in inbox items: praw finds the post through the context
            data.update({
                "context": f"/r/{post.subreddit}/comments/{post.id}/_/{comment.id}/?context=3", "type": kind, "was_comment": True, "new": True,
                "subject": kind.replace("_", " "), "dest": user, "link_title": post.title, "subreddit_name_prefixed": f"r/{post.subreddit}",
                "first_message": None, "first_message_name": None, "likes": None, "distinguished": None, "num_comments": len(post.comments),
            })  # fmt: skip
            items.append({"kind": "t1", "data": data})
        return _Answer(200, _listing(items[: min(int(query.get("limit", 25)), PAGE_SIZE)]))

    def _newest(self, names: str, what: str, query: dict[str, str]) -> _Answer:
        """``GET /r/a+b/comments`` or ``/r/a+b/new``: the newest comments or posts of those subreddits."""
        subs = [name.lower() for name in names.split("+")]
        if any(name in self.private for name in subs):
            return _Answer(403, {"reason": "private", "message": "Forbidden", "error": 403})
        if any(name not in self.subreddits for name in subs):
            return _Answer(404, {"message": "Not Found", "error": 404})
        size = min(int(query.get("limit", 25)), PAGE_SIZE)
        if what == "new":
            posts = sorted((p for name in subs for p in self.subreddits[name]), key=lambda p: (p.created_utc, p.id), reverse=True)
            return _Answer(200, _listing([p.thing() for p in posts[:size]]))
        comments = [(post, c) for post, c in reversed(self.all_comments()) if post.subreddit.lower() in subs]
        return _Answer(200, _listing([c.thing(post, None, []) for post, c in comments[:size]]))

    def _info(self, query: dict[str, str]) -> _Answer:
        """``GET /api/info?id=t1_a,t3_b``: the things that exist, deleted ones included (as ``[deleted]``)."""
        things = []
        for name in query.get("id", "").split(","):
            found = self.find(name)
            if found is not None:
                post, comment = found
                things.append(post.thing() if comment is None else comment.thing(post, None, []))
        return _Answer(200, _listing(things))

    def _user_comments(self, user: str, query: dict[str, str]) -> _Answer:
        """``GET /user/{name}/comments``: that account's comments, newest first (one page)."""
        mine = [(post, c) for post, c in reversed(self.all_comments()) if c.author.lower() == user.lower()]
        page = mine[: min(int(query.get("limit", 25)), PAGE_SIZE)]
        return _Answer(200, _listing([c.thing(post, None, [], normalised=self.normalise) for post, c in page]))

    def _reply(self, form: dict[str, str], user: str | None) -> _Answer:
        """``POST /api/comment``: Reddit's checks on the parent in Reddit's shapes, then the comment is made."""
        fault = self._comment_faults.popleft() if self._comment_faults else None
        if fault is not None and not fault.post_first:
            return _Answer(fault.status, fault.body)
        parent, text = form.get("thing_id", ""), form.get("text", "")
        if user is None:
            return _api_errors("USER_REQUIRED", "Please log in to do that.", None)
        found = self.find(parent)
        if found is None:
            return _api_errors("NO_THING_ID", "no thing id given or the ID doesn't exist", "parent")
        post, comment = found
        if comment is not None and comment.deleted:
            return _api_errors("DELETED_COMMENT", "that comment has been deleted", "parent")
        if post.deleted:
            return _api_errors("DELETED_LINK", "the link you are commenting on has been deleted", "parent")
        if post.archived:
            return _api_errors("TOO_OLD", "that's a piece of history now; it's too late to reply to it", "parent")
        if post.locked or (comment is not None and comment.locked):
            return _api_errors("THREAD_LOCKED", "Comments are locked.", "parent")
        if not text.strip():
            return _api_errors("NO_TEXT", "we need something here", "text")
        made = Comment(f"k{next(self._made):05d}", text, comment.id if comment else None, time.time(), author=user)
        post.comments.append(made)
        if fault is not None:
            return _Answer(fault.status, fault.body, delay=self.submit_delay)
        return _Answer(200, {"json": {"errors": [], "data": {"things": [made.thing(post, None, [])]}}}, delay=self.submit_delay)

    def _submit(self, form: dict[str, str], user: str | None) -> _Answer:
        """``POST /api/submit``: Reddit's checks in Reddit's shapes, then the post is recorded."""
        fault = self._submit_faults.popleft() if self._submit_faults else None
        if fault is not None and not fault.post_first:
            return _Answer(fault.status, fault.body)
        name, title = form.get("sr", ""), form.get("title", "")
        if user is None:
            return _Answer(200, {"json": {"errors": [["USER_REQUIRED", "Please log in to do that.", None]]}})
        if name.lower() in self.private:
            return _Answer(403, {"reason": "private", "message": "Forbidden", "error": 403})
        if name.lower() not in self.subreddits:
            return _Answer(200, {"json": {"errors": [["SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"]]}})
        if not title.strip() or len(title) > 300:
            return _Answer(200, {"json": {"errors": [["TOO_LONG" if title.strip() else "NO_TEXT", "title must be 1 to 300 characters", "title"]]}})
        post = Post(f"s{len(self.submissions) + 1:05d}", title, name, time.time(), selftext=form.get("text", ""), author=user)
        self.submissions.append(Submission(post, dict(form)))
        self.add_posts(name, [post])
        if fault is not None:
            return _Answer(fault.status, fault.body, delay=self.submit_delay)
        url = f"https://www.reddit.com/r/{name}/comments/{post.id}/"
        return _Answer(200, {"json": {"errors": [], "data": {"url": url, "id": post.id, "name": f"t3_{post.id}", "drafts_count": 0}}}, delay=self.submit_delay)

    def _submitted(self, user: str, query: dict[str, str]) -> _Answer:
        """``GET /user/{name}/submitted``: that account's posts, newest first (one page is enough here)."""
        mine = [s.post for s in reversed(self.submissions) if s.post.author.lower() == user.lower()]
        page = mine[: min(int(query.get("limit", 25)), PAGE_SIZE)]
        return _Answer(200, _listing([p.thing(normalised=self.normalise) for p in page]))

    def _comment_page(self, post_id: str) -> _Answer:
        """``GET /comments/{id}``: ``[Listing(post), Listing(comment tree)]``, replies nested inside."""
        post = next((p for posts in self.subreddits.values() for p in posts if p.id == post_id), None)
        if post is None:
            return _Answer(404, {"message": "Not Found", "error": 404})
        children: dict[str | None, list[Comment]] = {}
        for comment in post.comments:
            children.setdefault(comment.parent, []).append(comment)

        def tree(parent: str | None, depth: int) -> list[dict[str, Any]]:
            kids = children.get(parent, [])
            shown = kids if parent or self.comment_page is None else kids[: self.comment_page]
            things = [c.thing(post, depth, tree(c.id, depth + 1)) for c in shown]
            if len(shown) < len(kids):
                folded = [c.id for c in kids[len(shown) :]]
                more = {"count": len(folded), "name": f"t1_{folded[0]}", "id": folded[0], "parent_id": f"t3_{post.id}", "depth": depth, "children": folded}
                things.append({"kind": "more", "data": more})
            return things

        return _Answer(200, [_listing([post.thing()]), _listing(tree(None, 0))])

    def _listing(self, subreddit: str, query: dict[str, str]) -> _Answer:
        name = subreddit.lower()
        if name in self.private:
            return _Answer(403, {"reason": "private", "message": "Forbidden", "error": 403})
        if name not in self.subreddits:
            if self.redirect_unknown:
                return _Answer(302, {}, {"location": f"/subreddits/search.json?q={subreddit}"})
            return _Answer(404, {"message": "Not Found", "error": 404})
        time_filter = query.get("t", "day")
        if time_filter not in TIME_WINDOWS:
            return _Answer(400, {"message": "Bad Request", "error": 400})
        ranked = self.top(name, time_filter)
        start = 0
        if "after" in query:
            names = [f"t3_{p.id}" for p in ranked]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(ranked)
        page = ranked[start : start + min(int(query.get("limit", 25)), PAGE_SIZE)]
        more = start + len(page) < len(ranked)
        data = {
            "after": f"t3_{page[-1].id}" if page and more else None,
            "before": None,
            "dist": len(page),
            "modhash": None,
            "children": [p.thing() for p in page],
        }
        return _Answer(200, {"kind": "Listing", "data": data})

    def _ratelimit_headers(self) -> dict[str, str]:
        """All three headers, from a budget per short window: generous enough that prawcore
        never paces a test, honest enough that its parser runs on every answer."""
        elapsed = time.monotonic() - self._window_start
        if elapsed >= self.ratelimit_window:
            self._window_start, self._used, elapsed = time.monotonic(), 0, 0.0
        self._used += 1
        return {
            "x-ratelimit-used": str(self._used),
            "x-ratelimit-remaining": f"{max(self.ratelimit_budget - self._used, 0):.1f}",
            "x-ratelimit-reset": str(math.ceil(self.ratelimit_window - elapsed)),
        }

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        length = int(handler.headers.get("content-length") or 0)
        form = dict(parse_qsl(handler.rfile.read(length).decode())) if length else {}
        client_id, secret = _basic_auth(handler.headers.get("authorization"))
        bearer = _bearer(handler.headers.get("authorization"))
        with self._lock:
            if url.path == TOKEN_PATH and handler.command == "POST":
                answer = self._answer_token(client_id, secret, form)
            else:
                answer = self._answer_api(handler.command, url.path, query, bearer, form)
            user_agent = handler.headers.get("user-agent", "")
            self.requests.append(LoggedRequest(handler.command, url.path, query, form, client_id, bearer, user_agent, answer.status))
        if answer.delay:
            time.sleep(answer.delay)
        if answer.status == DROP:
            handler.close_connection = True  # http.server then closes the socket: no status line at all
            return
        body = json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        handler.send_header("content-type", "application/json; charset=UTF-8")
        handler.send_header("content-length", str(len(body)))
        for key, value in answer.headers.items():
            handler.send_header(key, value)
        if handler.close_connection:  # the client asked to close (prawcore's token requests): say so, as
            handler.send_header("Connection", "close")  # servers do, or urllib3 reuses the dead socket
        handler.end_headers()
        handler.wfile.write(body)


#: The inbox listings and what each lists (``/message/unread`` too: nothing here is ever marked read).
_INBOX = {
    "inbox": frozenset({"comment_reply", "post_reply", "username_mention"}),
    "unread": frozenset({"comment_reply", "post_reply", "username_mention"}),
    "comments": frozenset({"comment_reply"}),
    "selfreply": frozenset({"post_reply"}),
    "mentions": frozenset({"username_mention"}),
}


def _api_errors(error: str, message: str, field: str | None) -> _Answer:
    """Reddit's refusal of a form: HTTP 200 with ``json.errors``."""
    return _Answer(200, {"json": {"errors": [[error, message, field]]}})


def _listing(children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"after": None, "before": None, "dist": len(children), "modhash": None, "children": children}}


def normalised_text(text: str) -> str:
    """``text`` with whitespace trimmed and collapsed and ``&``, ``<``, ``>`` escaped, as Reddit's JSON may show it."""
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _bearer(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:]


def _handler_for(fake: FakeReddit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as with the real service

        def do_GET(self) -> None:
            fake._handle(self)

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet; tests read fake.requests
            pass

    return Handler


def isolated_praw(folder: Path, monkeypatch: Any) -> Path:
    """praw set up to read only ``folder/xdg/praw.ini`` (no PRAW_* variables, no cached ini), with
    ``folder`` as the current directory; returns the praw.ini path for the test's sites."""
    import os

    import praw

    for key in list(os.environ):
        if key.lower().startswith("praw_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder / "xdg"))
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)  # praw reads its ini once per process
    monkeypatch.chdir(folder)
    (folder / "xdg").mkdir(exist_ok=True)
    return folder / "xdg" / "praw.ini"
