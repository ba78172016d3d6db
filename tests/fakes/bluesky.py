"""A fake AT Protocol PDS (Bluesky) for tests: the real atproto ``Client`` talks to it over XRPC on 127.0.0.1.

It serves, at ``/xrpc/NSID`` in the PDS's shapes and error bodies (``{"error", "message"}``):

* ``com.atproto.server.createSession`` (handle or DID + app password): access and refresh JWTs
  (unsigned here; the client only reads their ``exp``), 401 ``AuthenticationRequired`` for a wrong
  password, and the per-account limit (30 per 5 minutes) as a 429;
* ``com.atproto.server.refreshSession`` (bearer: the refresh JWT): new tokens, the old refresh
  token revoked; 400 ``ExpiredToken`` for an expired or revoked one;
* ``com.atproto.repo.createRecord`` (with an optional client-chosen ``rkey``, which must be a TID
  for posts): 200 ``{uri, cid, commit, validationStatus}``; 400 ``InvalidRequest`` for a key that
  already holds a record (the PDS refuses to overwrite with a create) and for post text over 300
  graphemes; and what a test scripts with :meth:`FakeBluesky.fail_next` (429 with the
  ``ratelimit-*`` headers, 5xx, a dropped connection, a record made but answered with 500);
* ``com.atproto.repo.getRecord`` (400 ``RecordNotFound``), ``putRecord``, ``listRecords``;
* ``com.atproto.identity.resolveHandle`` and ``app.bsky.feed.getAuthorFeed``.

Authenticated routes answer 401 ``AuthenticationRequired`` without a bearer token and 400
``ExpiredToken`` for an access token past its ``exp`` or expired by :meth:`FakeBluesky.expire_sessions`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fakes import Answer, JsonService

ACCESS_TTL_S = 2 * 3600.0  # Bluesky's access tokens live about two hours
REFRESH_TTL_S = 90 * 86400.0
SESSIONS_PER_5_MIN = 30
POST = "app.bsky.feed.post"
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

    def calls(self) -> list[tuple[str, str, int]]:
        """Every XRPC call in order: (method, NSID, status)."""
        return [(r.method, r.path.removeprefix("/xrpc/"), r.status) for r in self.requests]

    # -- answers -------------------------------------------------------------------------------

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
            return _error(400, "InvalidRequest", f"Record already exists: at://{did}/{collection}/{rkey}")
        if collection == POST and len(record.get("text", "")) > 300:  # the PDS counts graphemes; code points agree for the tests' texts
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes")
        answer = self._write(did, collection, rkey, record)
        return fault.answer if fault is not None else answer

    def _write(self, did: str, collection: str, rkey: str, value: dict[str, Any]) -> Answer:
        cid = "bafyrei" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:52]
        record = Record(did, collection, rkey, value, cid)
        self.records[(did, collection, rkey)] = record
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
