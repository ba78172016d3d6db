"""``bluesky``: post to Bluesky (or any AT Protocol PDS) with the atproto SDK's ``Client``.

The handle and an **app password** (never the account's own password) come from config.yaml, the
password as ``${BLUESKY_APP_PASSWORD}`` (pydantic ``SecretStr``, redacted from every error).

Sessions: ``createSession`` is limited to 30 per 5 minutes and 300 a day per account, so a bot
logs in once and keeps the session (the SDK's session string) in ``SESSIONS/BOT.session``, mode
0600, beside the config by default. Every start and tick reuses it; the SDK refreshes the access
token before it expires (``refreshSession``) and each refresh is saved again. Only when the server
refuses both tokens does the bot log in with the app password again.

Exactly once: a post is created with ``com.atproto.repo.createRecord`` and a record key chosen by
the bot (:func:`record_key`, a TID made from the candidate's claim), so every try of one candidate
writes to the same key: the server refuses a second create at an existing key (the reference PDS
answers it with HTTP 500, a failure the bot retries after reconciling), and
:meth:`BlueskyTarget.reconcile` simply reads that key back (``getRecord``).

Links (and, when asked, mentions) become rich-text facets (UTF-8 byte offsets, the SDK's detection); the 300-grapheme limit is checked first.

Reply bots (a ``reply:`` block) listen to the account's notifications with reason ``mention`` or
``reply`` (``app.bsky.notification.listNotifications``); a ``reply`` counts only when it answers
one of the bot's own posts (Bluesky also notifies replies further down its threads, which were not
addressed to it). A reply's depth comes from ``app.bsky.feed.getPostThread`` (its parents), asked
once per notification the bot has not decided about, and only when the parent is not the root. A
reply is a post whose record carries ``reply: {root, parent}`` (strong refs: uri and cid), written
at the same deterministic record key as a post, so reconciliation reads that key back. The PDS
does not check that the parent still exists (the AppView flags such a reply, it does not refuse
it), so the bot asks for the parent first (``app.bsky.feed.getPosts``) and marks a reply to a
deleted post failed instead of posting it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field, SecretStr

from botkit.bots.ledger import Candidate
from botkit.bots.targets import Disabled, Incoming, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.post_text import LIMITS, graphemes, room_for, without_mentions
from botkit.redact import redact_url

if TYPE_CHECKING:
    from atproto import Client

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Far inside Bluesky's limits (5,000 points an hour, 35,000 a day; a post costs 3), and slow
#: enough for a bot people follow by choice: one post every half hour at most, 24 a day.
DEFAULT_LIMITS = Limits(min_interval=1800.0, daily_cap=24)
GRAPHEMES_MAX = LIMITS["bluesky"]  # app.bsky.feed.post: text maxGraphemes
TIMEOUT_S = 20.0  # httpx's default is 5 s, too short for a loaded PDS; this ends well inside a claim's 30 s lease
DEFAULT_WAIT_S = 900.0  # when a 429 says neither ratelimit-reset nor retry-after
POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"
BOT_LABEL = "bot"
#: Errors about the session's tokens, not the request: new tokens fix them.
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable
REASONS = ("mention", "reply")  # the notifications a reply bot answers
PAGE = 50  # notifications asked per request (the lexicon allows 100)
PAGES = 3  # most pages read in one listening tick, while every notification on them is new to the bot
PARENT_HEIGHT = 100  # parents asked for to measure a reply's depth: far deeper than any max_depth


class BlueskyTargetOptions(TargetOptions):
    handle: str = Field(description="the bot account's handle, e.g. mybot.bsky.social")
    app_password: SecretStr | None = Field(None, description="an app password of the account (use ${BLUESKY_APP_PASSWORD}; Settings > App passwords)")
    base_url: str | None = Field(None, description="the PDS to log in to, for a self-hosted one (default: bsky.social)")
    langs: list[str] | None = Field(None, description="languages of the posts, e.g. [en]")
    mentions: bool = Field(False, description="turn @handles into mentions, which notify those accounts (etiquette: only accounts that opted in)")
    label_bot: bool = Field(False, description="self-label the account's profile as a bot at start when it is not")
    sessions: Path = Field(
        Path("sessions"), description="folder of the saved login sessions, one BOT.session (mode 0600) per bot (default: sessions/ beside the config)"
    )


class BlueskyTarget(Target):
    summary = "post to Bluesky or another AT Protocol PDS (atproto Client, handle + app password)"
    Options = BlueskyTargetOptions
    options: BlueskyTargetOptions
    default_limits: ClassVar[Limits] = DEFAULT_LIMITS

    listens = True

    _client: Client | None = None
    _label_checked: bool = False

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        """What is left of the 300 graphemes once the signature is added (the filters count characters, never fewer)."""
        return room_for(GRAPHEMES_MAX, options.signature, graphemes)

    @classmethod
    def missing(cls, options: TargetOptions) -> list[str]:
        assert isinstance(options, BlueskyTargetOptions)
        return [] if options.app_password else ["app_password: required for a live bluesky target (e.g. app_password: ${BLUESKY_APP_PASSWORD})"]

    def account(self) -> str:
        return f"bluesky:{self.options.handle.lower().lstrip('@')}"

    @property
    def session_file(self) -> Path:
        return self.options.sessions / f"{self.bot}.session"

    # -- posting -----------------------------------------------------------------------------

    def post(self, candidate: Candidate) -> PostResult:
        from atproto import models
        from atproto_client.exceptions import BadRequestError

        text = self.text_of(candidate)
        length = graphemes(text)
        if length > GRAPHEMES_MAX:
            raise Rejected(f"{length} graphemes; Bluesky takes at most {GRAPHEMES_MAX} (the text is not cut)")
        rkey = record_key(self.bot, candidate)
        parent = None if candidate.reply_to is None else ReplyTo.parse(candidate.reply_to)
        with self._errors():
            if parent is not None and not self._call(lambda client: client.app.bsky.feed.get_posts({"uris": [parent.uri]}).posts):
                raise Rejected(f"the post it answers is gone ({parent.uri} was deleted)")
            facets = self._call(lambda client: self._facets(client, text))
            record = models.AppBskyFeedPost.Record(
                created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                text=text,
                facets=facets or None,
                langs=self.options.langs,
                reply=None if parent is None else parent.ref(),
            )
            try:
                self._call(
                    lambda client: client.com.atproto.repo.create_record({"repo": self._did(client), "collection": POST, "rkey": rkey, "record": record})
                )
            except BadRequestError as exc:  # refused: the key taken by our earlier try, or the record itself
                found = self._look_up(candidate)
                if found is not None:
                    return found
                raise Rejected(f"Bluesky refused the post (HTTP 400: {_xrpc(exc)})") from None
        return self._result(rkey)

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        """The record at the candidate's key (``getRecord``): there, it was posted; not there, it was not.

        A reply is written at its claim's key like a post, so the same lookup finds it."""
        with self._errors():
            return self._look_up(candidate)

    def _look_up(self, candidate: Candidate) -> PostResult | None:
        from atproto_client.exceptions import BadRequestError

        rkey = record_key(self.bot, candidate)
        try:
            record = self._call(lambda client: client.com.atproto.repo.get_record({"repo": self._did(client), "collection": POST, "rkey": rkey}))
        except BadRequestError as exc:
            if _error(exc) == "RecordNotFound":
                return None
            raise
        if getattr(record.value, "text", None) != self.text_of(candidate):
            raise Rejected(f"record key {rkey} already holds another post; this candidate cannot be posted under it")
        return self._result(rkey, note="found by reconciliation")

    def _result(self, rkey: str, note: str | None = None) -> PostResult:
        handle = self.options.handle.lstrip("@")
        return PostResult(rkey, url=f"https://bsky.app/profile/{handle}/post/{rkey}", note=note)

    def _facets(self, client: Client, text: str) -> list[Any]:
        """Links, #tags and $cashtags as rich-text facets; mentions too (the SDK resolves their handles) when asked."""
        from atproto_client.utils import facet_detection

        return client.detect_facets(text) if self.options.mentions else facet_detection.detect_facets(text)

    # -- listening ---------------------------------------------------------------------------

    def me(self) -> str:
        """The handle, as a notification names its author (handles are lower case)."""
        return self.options.handle.lstrip("@").lower()

    def incoming(self, watch: list[str]) -> list[Incoming]:
        """Mentions of the account and replies to its posts that the bot has not decided about yet, oldest first.

        Notifications come newest first: the next page is read only while a full page holds
        nothing the ledger knows (at most :data:`PAGES`). There is no ``reply.watch`` on Bluesky.
        """
        with self._errors():
            return self._call(self._heard)

    def _heard(self, client: Client) -> list[Incoming]:
        did = self._did(client)
        heard: list[Any] = []
        cursor = None
        for _ in range(PAGES):
            params = {"reasons": list(REASONS), "limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = client.app.bsky.notification.list_notifications(params)
            heard += page.notifications
            uris = [n.uri for n in page.notifications]
            if not page.cursor or len(uris) < PAGE or len(self.ledger.unseen(self.bot, uris)) < len(uris):
                break
            cursor = page.cursor
        fresh = self.ledger.unseen(self.bot, (n.uri for n in heard))
        found: dict[str, Incoming] = {}
        for notification in sorted(reversed(heard), key=lambda n: n.indexed_at):  # oldest first, ties kept in order
            if notification.uri not in fresh or notification.uri in found or notification.author.did == did:
                continue  # decided before, twice in one answer, or the bot's own
            item = self._incoming(client, notification, did)
            if item is not None:
                found[item.id] = item
        return list(found.values())

    def _incoming(self, client: Client, notification: Any, did: str) -> Incoming | None:
        """One notification as something to answer, or None: not addressed to the bot, or deleted since."""
        if notification.reason not in REASONS:
            return None
        record = notification.record
        reply = getattr(record, "reply", None)
        if notification.reason == "reply" and (reply is None or _repo(reply.parent.uri) != did):
            return None  # a reply further down one of the bot's threads: addressed to someone else
        depth = self._depth(client, notification.uri, reply)
        if depth is None:
            log.info("%s: %s was deleted before it could be read; not answered", self.bot, notification.uri)
            return None
        author = notification.author
        root = (notification.uri, notification.cid) if reply is None else (reply.root.uri, reply.root.cid)
        return Incoming(
            id=notification.uri, text=without_mentions(getattr(record, "text", "") or ""), author=author.handle, thread=root[0], depth=depth,
            link=ReplyTo(notification.uri, notification.cid, *root).link,
            author_is_bot=any(getattr(label, "val", None) == BOT_LABEL for label in author.labels or []),
            url=f"https://bsky.app/profile/{author.handle}/post/{notification.uri.rsplit('/', 1)[-1]}", created_at=_when(notification.indexed_at),
        )  # fmt: skip

    def _depth(self, client: Client, uri: str, reply: Any) -> int | None:
        """How many posts are above ``uri``: 0 for a root, 1 for a reply to one, else its parents counted
        (``getPostThread``); None when the post is gone."""
        from atproto_client.exceptions import BadRequestError

        if reply is None:
            return 0
        if reply.parent.uri == reply.root.uri:
            return 1
        try:
            node = client.app.bsky.feed.get_post_thread({"uri": uri, "depth": 0, "parent_height": PARENT_HEIGHT}).thread
        except BadRequestError as exc:
            if _error(exc) == "NotFound":
                return None
            raise
        depth = 0
        while (parent := getattr(node, "parent", None)) is not None:
            depth += 1
            if getattr(parent, "post", None) is None:  # a deleted or blocked post: its own parents are not shown
                depth += parent.uri != reply.root.uri
                break
            node = parent
        return max(depth, 2)  # the parent is not the root, so at least two above

    # -- the session ---------------------------------------------------------------------------

    def _call(self, request: Callable[[Client], T]) -> T:
        """``request`` with a logged-in client; once more with new tokens when the server refused the access token.

        A request refused for its token was not carried out, so sending it again cannot double it.
        The first request of a process also checks the bot label (it needs the session too).
        """
        from atproto_client.exceptions import BadRequestError

        client = self.client
        try:
            return self._checked(client, request)
        except BadRequestError as exc:
            if _error(exc) not in TOKEN_ERRORS:
                raise
            log.info("%s: Bluesky refused the access token (%s); refreshing the session", self.bot, _error(exc))
        self._renew(client)
        return self._checked(client, request)

    def _checked(self, client: Client, request: Callable[[Client], T]) -> T:
        if not self._label_checked:
            self._check_label(client)
            self._label_checked = True
        return request(client)

    @property
    def client(self) -> Client:
        """The logged-in client: the saved session when there is one, else a new login (its tokens are checked at first use)."""
        if self._client is None:
            from atproto import Client
            from atproto_client.request import Request

            client = Client(self.options.base_url, request=Request(timeout=TIMEOUT_S))
            client.on_session_change(lambda event, session: self._save(session.export()))
            saved = self._load()
            if saved is not None:
                client.login(session_string=saved, fetch_bsky_profile=False)
            else:
                self._login(client)
            self._client = client
        return self._client

    def _renew(self, client: Client) -> None:
        """New tokens from the refresh token (``refreshSession``); from the app password when that is refused too."""
        from atproto_client.client.session import Session
        from atproto_client.exceptions import BadRequestError

        old = Session.decode(client.export_session_string())
        try:
            # ignore_session_check: the client would otherwise try its own refresh with the refused access token first.
            new = client.com.atproto.server.refresh_session(headers={"Authorization": f"Bearer {old.refresh_jwt}"}, ignore_session_check=True)
        except BadRequestError as exc:
            if _error(exc) not in TOKEN_ERRORS:
                raise
            log.info("%s: Bluesky refused the refresh token too (%s); logging in with the app password", self.bot, _error(exc))
            self._login(client)
            return
        client.login(session_string=Session(new.handle, new.did, new.access_jwt, new.refresh_jwt, old.pds_endpoint).encode(), fetch_bsky_profile=False)

    def _login(self, client: Client) -> None:
        """A new session from the app password (``createSession``, which the server limits)."""
        assert self.options.app_password is not None  # missing() refused to start without one
        client.login(self.options.handle.lstrip("@"), self.options.app_password.get_secret_value(), fetch_bsky_profile=False)

    def _did(self, client: Client) -> str:
        """The account's DID, from the session (the SDK fills ``client.me`` only when it fetches the profile)."""
        from atproto_client.client.session import Session

        return Session.decode(client.export_session_string()).did

    def _load(self) -> str | None:
        """The saved session string, when it is for this handle and PDS (a changed config logs in afresh)."""
        try:
            saved = json.loads(self.session_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("handle") != self.options.handle or saved.get("base_url") != self.options.base_url:
            return None
        return saved.get("session") or None

    def _save(self, session: str) -> None:
        """Write the session atomically, readable by its owner only: it logs in as the bot."""
        folder = self.session_file.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = folder / f".{self.session_file.name}.{os.getpid()}"
        content = json.dumps({"handle": self.options.handle, "base_url": self.options.base_url, "session": session})
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.replace(temporary, self.session_file)

    def _check_label(self, client: Client) -> None:
        """Whether the profile carries the ``bot`` self-label; added when the config asks, else a warning."""
        from atproto import models
        from atproto_client.exceptions import BadRequestError

        did = self._did(client)
        try:
            profile = client.com.atproto.repo.get_record({"repo": did, "collection": PROFILE, "rkey": "self"}).value
        except BadRequestError as exc:
            if _error(exc) != "RecordNotFound":
                raise
            profile = models.AppBskyActorProfile.Record()
        labels = list(getattr(getattr(profile, "labels", None), "values", None) or [])
        if any(getattr(label, "val", None) == BOT_LABEL for label in labels):
            return
        if not self.options.label_bot:
            log.warning("%s: the Bluesky account %s is not labelled as a bot; label it in the app or with label_bot: true", self.bot, self.options.handle)
            return
        labelled = models.AppBskyActorProfile.Record(
            **{
                **profile.model_dump(exclude={"labels", "py_type"}),
                "labels": models.ComAtprotoLabelDefs.SelfLabels(values=[*labels, models.ComAtprotoLabelDefs.SelfLabel(val=BOT_LABEL)]),
            }
        )
        client.com.atproto.repo.put_record({"repo": did, "collection": PROFILE, "rkey": "self", "record": labelled})
        log.info("%s: labelled the Bluesky account %s as a bot", self.bot, self.options.handle)

    def secrets(self) -> list[str]:
        return [self.options.app_password.get_secret_value()] if self.options.app_password else []

    def describe(self) -> str:
        return f"Bluesky {self.options.handle} on {redact_url(self.options.base_url or 'bsky.social')}"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's exceptions, sorted into what the bot should do about them."""
        import httpx
        from atproto_client.exceptions import BadRequestError, NetworkError, RateLimitExceededError, RequestException, UnauthorizedError

        try:
            yield
        except RateLimitExceededError as exc:
            wait = _wait(exc)
            raise RateLimited(f"Bluesky answered HTTP 429 (rate limit exceeded); waiting {wait:.0f}s", wait) from None
        except NetworkError as exc:  # a transport failure, or 409 / 413 / 502
            raise Transient(f"Bluesky unreachable or the answer was lost ({_transport(exc)})") from None
        except httpx.TransportError as exc:  # those the SDK lets through: a connection closed without an answer...
            raise Transient(f"Bluesky unreachable or the answer was lost ({type(exc).__name__})") from None
        except UnauthorizedError as exc:
            raise Disabled(
                f"Bluesky refused the login of {self.options.handle} (HTTP {_status(exc)}: {_xrpc(exc)}); check the handle and make a new app password"
            ) from None
        except BadRequestError as exc:
            if _error(exc) in TOKEN_ERRORS or _error(exc) in ("AccountTakedown", "AuthFactorTokenRequired"):
                raise Disabled(f"Bluesky refused the account {self.options.handle} (HTTP 400: {_xrpc(exc)}); use an app password, check the account") from None
            raise Transient(f"unexpected answer from Bluesky (HTTP 400: {_xrpc(exc)})") from None
        except RequestException as exc:  # 5xx and other statuses
            raise Transient(f"Bluesky failed with HTTP {_status(exc)}") from None


@dataclass(frozen=True)
class ReplyTo:
    """What a reply needs of the post it answers, kept as the candidate's ``reply_to``: ``uri cid root-uri root-cid``."""

    uri: str
    cid: str
    root_uri: str
    root_cid: str

    @property
    def link(self) -> str:
        return f"{self.uri} {self.cid} {self.root_uri} {self.root_cid}"

    @classmethod
    def parse(cls, link: str) -> ReplyTo:
        parts = link.split()
        if len(parts) != 4:
            raise Rejected(f"not a Bluesky post to answer: {link!r}")
        return cls(*parts)

    def ref(self) -> Any:
        """The record's ``reply`` field: strong refs to the thread's root and the parent."""
        from atproto import models

        strong = models.ComAtprotoRepoStrongRef.Main
        return models.AppBskyFeedPost.ReplyRef(root=strong(uri=self.root_uri, cid=self.root_cid), parent=strong(uri=self.uri, cid=self.cid))


def record_key(bot: str, candidate: Candidate) -> str:
    """The candidate's record key: a TID (13 base32-sortable characters) made from its claim.

    Its time is the second of the claim, with the candidate's id (mod a million) as the
    microseconds, so no two candidates of a ledger share a key whatever the database keeps of
    the claim time below the second; its clock id is hashed from the bot's name, which keeps apart
    bots of separate ledgers that post as one account. The claim time stays the same for every try
    and every reconciliation of one claim; a candidate released as certainly not posted gets the
    key of its next claim. Bluesky orders posts by their key, so one from the moment of posting is
    what the app expects.
    """
    assert candidate.claimed_at is not None, "only a claimed candidate is posted"
    micros = int(candidate.claimed_at.timestamp()) * 1_000_000 + candidate.id % 1_000_000
    clock = int.from_bytes(hashlib.sha256(bot.encode()).digest()[:2]) & 0x3FF
    value = (micros << 10) | clock  # 53 bits of time, 10 of clock id: the top bit stays 0
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _repo(uri: str) -> str:
    """The repository (DID) of an ``at://`` URI."""
    return uri.removeprefix("at://").split("/", 1)[0]


def _when(stamp: str | None) -> datetime | None:
    """An AT Protocol datetime as aware UTC (None when missing or unreadable)."""
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _error(exc: Any) -> str | None:
    """The XRPC error name of an answer (``ExpiredToken``, ``RecordNotFound``...)."""
    content = getattr(getattr(exc, "response", None), "content", None)
    return getattr(content, "error", None)


def _xrpc(exc: Any) -> str:
    content = getattr(getattr(exc, "response", None), "content", None)
    message = getattr(content, "message", None)
    return f"{_error(exc) or 'error'}: {message}"[:200] if message else (_error(exc) or "no details")


def _status(exc: Any) -> Any:
    return getattr(getattr(exc, "response", None), "status_code", "?")


def _transport(exc: Any) -> str:
    return f"HTTP {_status(exc)}" if getattr(exc, "response", None) is not None else type(exc.__cause__ or exc).__name__


def _wait(exc: Any) -> float:
    """Seconds until the window resets (``ratelimit-reset``, a Unix time), else ``retry-after``."""
    if exc.reset_at is not None:
        return max((exc.reset_at - datetime.now(UTC)).total_seconds(), 0.0) + 1.0
    return exc.retry_after if exc.retry_after is not None else DEFAULT_WAIT_S
