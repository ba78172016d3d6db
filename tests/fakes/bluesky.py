"""A fake AT Protocol PDS (Bluesky) for tests: the real atproto ``Client`` talks to it over XRPC on 127.0.0.1.

It serves, at ``/xrpc/NSID`` in the PDS's shapes and error bodies (``{"error", "message"}``):

* ``com.atproto.server.createSession`` (handle or DID + app password): access and refresh JWTs
  (unsigned here; the client only reads their ``exp``), 401 ``AuthenticationRequired`` for a wrong
  password, and the per-account limit (30 per 5 minutes) as a 429;
* ``com.atproto.server.refreshSession`` (bearer: the refresh JWT): new tokens, the old refresh
  token revoked; 400 ``ExpiredToken`` for an expired or revoked one;
* ``com.atproto.repo.createRecord`` (with an optional client-chosen ``rkey``, which must be a TID
  for posts): 200 ``{uri, cid, commit, validationStatus}``; 500 ``InternalServerError`` for a key
  that already holds a record (the reference PDS refuses to overwrite with a create that way), 400
  ``InvalidRequest`` for post text over 300 graphemes; and what a test scripts with :meth:`FakeBluesky.fail_next` (429 with the
  ``ratelimit-*`` headers, 5xx, a dropped connection, a record made but answered with 500);
* ``com.atproto.repo.getRecord`` (400 ``RecordNotFound``), ``putRecord``, ``listRecords``;
* ``com.atproto.identity.resolveHandle`` and ``app.bsky.feed.getAuthorFeed``;
* replies: a post record's ``reply: {root, parent}`` is stored as sent, without checking that the
  parent exists (a PDS validates the record against the lexicon only; the AppView indexes such a
  reply with ``invalidReplyRoot``);
* ``app.bsky.notification.listNotifications`` (``reasons`` repeated, ``limit``, ``cursor``): the
  AppView's notifications for a new post (``notifsForInsert``): ``mention`` for each mention facet,
  ``reply`` to the authors of its parents up to 5 levels up, one per account, never its author
  (:attr:`FakeBluesky.notify_self` lifts that); they go with the post when it is deleted;
* ``app.bsky.feed.getPostThread`` (``uri``, ``depth``, ``parentHeight``): ``threadViewPost``s,
  a deleted parent as ``notFoundPost``, 400 ``NotFound`` for a post that is gone;
  ``app.bsky.feed.getPosts`` (``uris`` repeated): the posts that exist;
* authors' views carry their profile's self-labels (``bot`` when the profile has it).

Tests speak as other accounts with :meth:`FakeBluesky.post_as`, label them with
:meth:`FakeBluesky.label_bot`, delete posts with :meth:`FakeBluesky.delete`, and fail the next
notifications request with :meth:`FakeBluesky.rate_limit_listening`.

Authenticated routes answer 401 ``AuthenticationRequired`` without a bearer token and 400
``ExpiredToken`` for an access token past its ``exp`` or expired by :meth:`FakeBluesky.expire_sessions`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes import Answer, JsonService

ACCESS_TTL_S = 2 * 3600.0  # Bluesky's access tokens live about two hours
REFRESH_TTL_S = 90 * 86400.0
SESSIONS_PER_5_MIN = 30
POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"
REPLY_NOTIF_DEPTH = 5  # the AppView notifies the authors of a reply's parents up to this many levels up
_TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")


@dataclass
class Record:
    did: str
    collection: str
    rkey: str
    value: dict[str, Any]
    cid: str
    indexed_at: float = field(default_factory=time.time)

    @property
    def uri(self) -> str:
        return f"at://{self.did}/{self.collection}/{self.rkey}"


@dataclass(frozen=True)
class Notification:
    serial: int
    did: str  # who is notified
    reason: str
    uri: str  # the post that caused it
    reason_subject: str | None = None


class FakeBluesky(JsonService):
    """The fake PDS: accounts (handle → app password), sessions, records, a request log, a server."""

    def __init__(self, accounts: dict[str, str], *, others: tuple[str, ...] = (), access_ttl: float = ACCESS_TTL_S, answer_delay: float = 0.0) -> None:
        super().__init__(answer_delay=answer_delay)
        self.accounts = dict(accounts)
        #: Seconds an access token lives (clients refresh one whose ``exp`` is near).
        self.access_ttl = access_ttl
        #: Handles that resolve (for mentions) but cannot log in here.
        self.others = others
        self.records: dict[tuple[str, str, str], Record] = {}
        self.access: dict[str, tuple[str, float]] = {}  # access JWT -> (did, expiry)
        self.refresh: dict[str, str] = {}  # live refresh JWT -> did
        self.logins: list[float] = []
        self._serial = itertools.count(1)
        self.notifications: list[Notification] = []
        self._notification_serial = itertools.count(1)
        #: The AppView never notifies an account of its own posts; True makes this fake do it, so a
        #: test shows that the bot's own guard holds even where a service would.
        self.notify_self = False
        self._listen_faults: list[Answer] = []
        self._query = threading.local()  # the request's query with repeated keys (the base class keeps the last)

    # -- scripting and inspection -------------------------------------------------------------

    def did(self, handle: str) -> str:
        return "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]

    def handle_of(self, did: str) -> str:
        return next(h for h in [*self.accounts, *self.others] if self.did(h) == did)

    def rate_limit_next(self, seconds: float) -> None:
        """Answer the next post with 429 and a reset ``seconds`` from now, as the PDS does."""
        headers = {"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(int(time.time() + seconds)), "ratelimit-policy": "5000;w=3600"}
        self.fail_next(Answer(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers))

    def expire_sessions(self, *, refresh: bool = False) -> None:
        """Expire every access token now (and revoke the refresh tokens too, with ``refresh``)."""
        self.access = {token: (did, 0.0) for token, (did, _) in self.access.items()}
        if refresh:
            self.refresh.clear()

    def posts(self, handle: str | None = None) -> list[Record]:
        """The posts of one account (or all), oldest first."""
        mine = [r for r in self.records.values() if r.collection == POST and (handle is None or r.did == self.did(handle))]
        return sorted(mine, key=lambda r: r.indexed_at)

    def texts(self, handle: str | None = None) -> list[str]:
        return [r.value["text"] for r in self.posts(handle)]

    def record(self, uri: str) -> Record | None:
        did, collection, rkey = uri.removeprefix("at://").split("/")
        return self.records.get((did, collection, rkey))

    def rate_limit_listening(self, seconds: float) -> None:
        """Answer the next listNotifications with 429 and a reset ``seconds`` from now."""
        headers = {"ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-reset": str(int(time.time() + seconds)), "ratelimit-policy": "3000;w=300"}
        self._listen_faults.append(Answer(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers))

    def post_as(self, handle: str, text: str, *, reply_to: Record | None = None) -> Record:
        """A post by ``handle`` (one of ``others``, or an account), written straight into its repo: its
        ``@handle``s become mention facets, ``reply_to`` makes it a reply (root taken from the parent)."""
        did = self.did(handle)
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": _iso(time.time())}
        facets = [
            {"index": {"byteStart": len(text[: m.start()].encode()), "byteEnd": len(text[: m.end()].encode())},
             "features": [{"$type": "app.bsky.richtext.facet#mention", "did": self.did(m[1])}]}
            for m in re.finditer(r"@([\w.-]+\w)", text) if m[1] in self.accounts or m[1] in self.others
        ]  # fmt: skip
        if facets:
            record["facets"] = facets
        if reply_to is not None:
            root = reply_to.value.get("reply", {}).get("root") or {"uri": reply_to.uri, "cid": reply_to.cid}
            record["reply"] = {"root": root, "parent": {"uri": reply_to.uri, "cid": reply_to.cid}}
        rkey = _tid_now()
        while (did, POST, rkey) in self.records:
            rkey = _tid_now()
        self._write(did, POST, rkey, record)
        return self.records[(did, POST, rkey)]

    def label_bot(self, handle: str) -> None:
        """Self-label ``handle``'s profile as a bot, as the app's setting does."""
        profile = {"$type": PROFILE, "labels": {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "bot"}]}}
        self._write(self.did(handle), PROFILE, "self", profile)

    def delete(self, uri: str) -> None:
        """Delete a record (``deleteRecord``); the notifications it caused go with it, its replies stay."""
        did, collection, rkey = uri.removeprefix("at://").split("/")
        self.records.pop((did, collection, rkey), None)
        self.notifications = [n for n in self.notifications if n.uri != uri]

    def calls(self) -> list[tuple[str, str, int]]:
        """Every XRPC call in order: (method, NSID, status)."""
        return [(r.method, r.path.removeprefix("/xrpc/"), r.status) for r in self.requests]

    # -- answers -------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        self._query.all = parse_qs(urlsplit(handler.path).query)
        super()._handle(handler)

    def _many(self, key: str) -> list[str]:
        """Every value of a repeated query parameter (``reasons=mention&reasons=reply``)."""
        return list(getattr(self._query, "all", {}).get(key, []))

    def route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any], headers: dict[str, str]) -> Answer:
        nsid = path.removeprefix("/xrpc/")
        bearer = headers.get("authorization", "").removeprefix("Bearer ") or None
        if nsid == "com.atproto.server.createSession":
            return self._create_session(body)
        if nsid == "com.atproto.server.refreshSession":
            return self._refresh_session(bearer)
        if nsid == "com.atproto.identity.resolveHandle":
            handle = query.get("handle", "")
            known = handle in self.accounts or handle in self.others
            return Answer(200, {"did": self.did(handle)}) if known else _error(400, "InvalidRequest", "Unable to resolve handle")
        if bearer is None:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        session = self.access.get(bearer)
        if session is None:
            return _error(400, "InvalidToken", "Token could not be verified")
        did, expiry = session
        if expiry <= time.time():
            return _error(400, "ExpiredToken", "Token has expired")
        return self._authenticated(nsid, did, query, body)

    def _authenticated(self, nsid: str, did: str, query: dict[str, str], body: dict[str, Any]) -> Answer:
        if nsid == "com.atproto.repo.createRecord":
            return self._create_record(did, body)
        if nsid == "com.atproto.repo.putRecord":
            return self._write(did, body["collection"], body["rkey"], body["record"])
        if nsid == "com.atproto.repo.getRecord":
            record = self.records.get((self._repo(query["repo"]), query["collection"], query["rkey"]))
            if record is None:
                return _error(400, "RecordNotFound", f"Could not locate record: at://{query['repo']}/{query['collection']}/{query['rkey']}")
            return Answer(200, {"uri": record.uri, "cid": record.cid, "value": record.value})
        if nsid == "com.atproto.repo.listRecords":
            return self._list_records(query)
        if nsid == "app.bsky.feed.getAuthorFeed":
            return self._author_feed(query)
        if nsid == "app.bsky.notification.listNotifications":
            return self._listen_faults.pop(0) if self._listen_faults else self._list_notifications(did, query)
        if nsid == "app.bsky.feed.getPostThread":
            return self._post_thread(query)
        if nsid == "app.bsky.feed.getPosts":
            found = [self.record(uri) for uri in self._many("uris")]
            return Answer(200, {"posts": [self._post_view(r) for r in found if r is not None]})
        return _error(501, "MethodNotImplemented", "Method Not Implemented")

    def _create_session(self, body: dict[str, Any]) -> Answer:
        handle = str(body.get("identifier", "")).removeprefix("@")
        handle = next((h for h in self.accounts if self.did(h) == handle), handle)
        now = time.time()
        self.logins = [t for t in self.logins if now - t < 300]
        if len(self.logins) >= SESSIONS_PER_5_MIN:
            return Answer(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"ratelimit-reset": str(int(self.logins[0] + 300))})
        if self.accounts.get(handle) != body.get("password"):
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.logins.append(now)
        return Answer(200, {**self._tokens(self.did(handle)), "handle": handle, "did": self.did(handle), "active": True})

    def _refresh_session(self, bearer: str | None) -> Answer:
        did = self.refresh.pop(bearer, None) if bearer else None
        if did is None:
            return _error(400, "ExpiredToken", "Token has been revoked")
        return Answer(200, {**self._tokens(did), "handle": self.handle_of(did), "did": did, "active": True})

    def _tokens(self, did: str) -> dict[str, str]:
        now = time.time()
        serial = next(self._serial)
        access = _jwt({"scope": "com.atproto.appPass", "sub": did, "iat": int(now), "exp": int(now + self.access_ttl), "n": serial})
        refresh = _jwt({"scope": "com.atproto.refresh", "sub": did, "iat": int(now), "exp": int(now + REFRESH_TTL_S), "jti": f"r{serial}"})
        self.access[access] = (did, now + self.access_ttl)
        self.refresh[refresh] = did
        return {"accessJwt": access, "refreshJwt": refresh}

    def _repo(self, repo: str) -> str:
        return repo if repo.startswith("did:") else self.did(repo)

    def _create_record(self, did: str, body: dict[str, Any]) -> Answer:
        if self._repo(body.get("repo", "")) != did:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        collection, rkey, record = body["collection"], body.get("rkey"), body["record"]
        fault = self.take_fault()
        if fault is not None and not fault.act_first:
            return fault.answer
        if rkey is None:
            rkey = _tid_now()
        if collection == POST and not _TID.fullmatch(rkey):
            return _error(400, "InvalidRequest", f"Invalid record key for {POST}: {rkey}")
        if (did, collection, rkey) in self.records:
            return _error(500, "InternalServerError", "Internal Server Error")  # the reference PDS's answer; its log says "There is already a value at key"
        if collection == POST and len(record.get("text", "")) > 300:  # the PDS counts graphemes; code points agree for the tests' texts
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes")
        answer = self._write(did, collection, rkey, record)
        return fault.answer if fault is not None else answer

    def _write(self, did: str, collection: str, rkey: str, value: dict[str, Any]) -> Answer:
        cid = "bafyrei" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:52]
        record = Record(did, collection, rkey, value, cid)
        new = (did, collection, rkey) not in self.records
        self.records[(did, collection, rkey)] = record
        if new and collection == POST:
            self._notify(record)
        commit = {"cid": "bafyrei" + hashlib.sha256(cid.encode()).hexdigest()[:52], "rev": _tid_now()}
        return Answer(200, {"uri": record.uri, "cid": cid, "commit": commit, "validationStatus": "valid"})

    def _list_records(self, query: dict[str, str]) -> Answer:
        did, collection = self._repo(query["repo"]), query["collection"]
        mine = sorted((r for r in self.records.values() if r.did == did and r.collection == collection), key=lambda r: r.rkey, reverse=True)
        if query.get("reverse") == "true":
            mine.reverse()
        cursor = query.get("cursor")
        if cursor:
            mine = [r for r in mine if (r.rkey > cursor if query.get("reverse") == "true" else r.rkey < cursor)]
        page = mine[: int(query.get("limit", "50"))]
        answer: dict[str, Any] = {"records": [{"uri": r.uri, "cid": r.cid, "value": r.value} for r in page]}
        if len(mine) > len(page):
            answer["cursor"] = page[-1].rkey
        return Answer(200, answer)

    def _author_feed(self, query: dict[str, str]) -> Answer:
        did = self._repo(query["actor"])
        author = {"did": did, "handle": self.handle_of(did), "labels": [], "createdAt": "2026-01-01T00:00:00.000Z"}
        posts = sorted((r for r in self.records.values() if r.did == did and r.collection == POST), key=lambda r: r.rkey, reverse=True)
        feed = [
            {"post": {"uri": r.uri, "cid": r.cid, "author": author, "record": r.value, "indexedAt": r.value.get("createdAt"), "labels": [],
                      "replyCount": 0, "repostCount": 0, "likeCount": 0, "quoteCount": 0}}
            for r in posts[: int(query.get("limit", "50"))]
        ]  # fmt: skip
        return Answer(200, {"feed": feed})

    # -- the AppView's side ------------------------------------------------------------------

    def _notify(self, post: Record) -> None:
        """The notifications a new post causes (the AppView's ``notifsForInsert``): mentions, then replies up the thread."""
        notified = set() if self.notify_self else {post.did}

        def maybe(did: str, reason: str, subject: str | None = None) -> None:
            if did not in notified:
                notified.add(did)
                self.notifications.append(Notification(next(self._notification_serial), did, reason, post.uri, subject))

        for facet in post.value.get("facets") or []:
            for feature in facet.get("features", []):
                if feature.get("$type") == "app.bsky.richtext.facet#mention":
                    maybe(feature["did"], "mention")
        parent = self.record((post.value.get("reply") or {}).get("parent", {}).get("uri", "at://x/y/z"))
        for _ in range(REPLY_NOTIF_DEPTH - 1):
            if parent is None:
                break
            maybe(parent.did, "reply", parent.uri)
            parent = self.record((parent.value.get("reply") or {}).get("parent", {}).get("uri", "at://x/y/z"))

    def _list_notifications(self, did: str, query: dict[str, str]) -> Answer:
        reasons = self._many("reasons")
        mine = [n for n in reversed(self.notifications) if n.did == did and (not reasons or n.reason in reasons)]
        if query.get("cursor"):
            mine = [n for n in mine if n.serial < int(query["cursor"])]
        page = mine[: int(query.get("limit", "50"))]
        notifications = []
        for n in page:
            post = self.record(n.uri)
            if post is None:
                continue
            notifications.append(
                {"uri": post.uri, "cid": post.cid, "author": self._author(post.did), "reason": n.reason, "record": post.value,
                 "isRead": False, "indexedAt": _iso(post.indexed_at), "labels": [], **({"reasonSubject": n.reason_subject} if n.reason_subject else {})}
            )  # fmt: skip
        answer: dict[str, Any] = {"notifications": notifications}
        if len(mine) > len(page):
            answer["cursor"] = str(page[-1].serial)
        return Answer(200, answer)

    def _post_thread(self, query: dict[str, str]) -> Answer:
        post = self.record(query["uri"])
        if post is None:
            return _error(400, "NotFound", f"Post not found: {query['uri']}")
        return Answer(200, {"thread": self._thread_view(post, int(query.get("depth", "6")), int(query.get("parentHeight", "80")))})

    def _thread_view(self, post: Record, depth: int, height: int, *, up: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": self._post_view(post)}
        parent_uri = (post.value.get("reply") or {}).get("parent", {}).get("uri")
        if up and parent_uri and height > 0:
            parent = self.record(parent_uri)
            view["parent"] = (
                {"$type": "app.bsky.feed.defs#notFoundPost", "uri": parent_uri, "notFound": True}
                if parent is None
                else self._thread_view(parent, 0, height - 1)
            )
        if depth > 0:
            below = [r for r in self.posts() if (r.value.get("reply") or {}).get("parent", {}).get("uri") == post.uri]
            view["replies"] = [self._thread_view(r, depth - 1, 0, up=False) for r in below]
        return view

    def _post_view(self, post: Record) -> dict[str, Any]:
        replies = sum((r.value.get("reply") or {}).get("parent", {}).get("uri") == post.uri for r in self.posts())
        return {
            "uri": post.uri, "cid": post.cid, "author": self._author(post.did), "record": post.value, "indexedAt": _iso(post.indexed_at),
            "labels": [], "replyCount": replies, "repostCount": 0, "likeCount": 0, "quoteCount": 0,
        }  # fmt: skip

    def _author(self, did: str) -> dict[str, Any]:
        """A ProfileView: handle, and the profile's self-labels as the AppView shows them."""
        profile = self.records.get((did, PROFILE, "self"))
        values = ((profile.value.get("labels") or {}).get("values") or []) if profile is not None else []
        labels = [
            {"src": did, "uri": f"at://{did}/{PROFILE}/self", "cid": profile.cid, "val": v["val"], "cts": "2026-01-01T00:00:00.000Z"}
            for v in values if profile is not None
        ]  # fmt: skip
        return {"did": did, "handle": self.handle_of(did), "labels": labels, "createdAt": "2026-01-01T00:00:00.000Z", "indexedAt": "2026-01-01T00:00:00.000Z"}


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}Z"


def _error(status: int, error: str, message: str) -> Answer:
    return Answer(status, {"error": error, "message": message})


def _jwt(payload: dict[str, Any]) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed = f"{part(json.dumps({'typ': 'at+jwt', 'alg': 'ES256K'}).encode())}.{part(json.dumps(payload).encode())}"
    return f"{signed}.{part(hashlib.sha256(signed.encode()).digest())}"  # not a real signature: clients only read the payload


def _tid_now() -> str:
    value = int(time.time() * 1_000_000) << 10
    return "".join("234567abcdefghijklmnopqrstuvwxyz"[(value >> shift) & 31] for shift in range(60, -1, -5))
