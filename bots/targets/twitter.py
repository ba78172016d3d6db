"""``twitter``: post to X with tweepy's ``Client.create_tweet`` (API v2, OAuth 1.0a user context).

The four OAuth 1.0a values come from config.yaml, normally as ``${ENV_VARS}``; they are never
shown again (pydantic ``SecretStr``, redacted from every error).

Reconciliation looks the claimed text up among the account's own posts since the claim
(``GET /2/users/:id/tweets``), as X shows them: ``&``, ``<``, ``>`` escaped as HTML entities and
every link replaced by a ``https://t.co/...`` one (see :func:`shown_as`). Found: that post, with
its id. Not found: the bot posts again; should X then refuse the text as "duplicate content" (its
timeline lagging behind, say), the first try did go out after all and is recorded with no remote
id and a note saying so. X does not promise that refusal, so it is only the second line of defence,
and the only one where X will not list the account's posts (its Free tier serves just posting and
``/2/users/me``): then the bot says so once and relies on it.

It listens too (a bot's ``reply:`` block): each listening tick asks for the account's mentions
(``GET /2/users/:id/mentions``, one page of :data:`MENTIONS`, with the authors and the posts they
answer expanded), from the newest mention the ledger has decided about (``since_id``, kept in
memory: after a restart the first page is read again, and the ledger skips what it saw). A
mention's depth is its place in its conversation: 0 for a post, 1 for a reply to the
conversation's root, more found by looking up the posts it answers (``GET /2/tweets?ids=``, one
call per level for every new mention at once, at most :data:`~botkit.bots.replies.DEPTH_WALK`). What the bot answers
is the text without the ``@handles`` X puts before a reply. A reply is ``create_tweet`` with
``in_reply_to_tweet_id``; it is reconciled like a post, among the account's own posts, as a reply
to that parent (X shows a reply with ``@PARENT_AUTHOR`` before its text). X's 403 or 404 for a
parent deleted or out of reach fails that reply only.

Seam for tests and proxies: the tweepy client is built in :meth:`TwitterTarget.make_client` and
kept as :attr:`TwitterTarget.client`; tweepy hard-codes ``https://api.twitter.com``, so a test
mounts a ``requests`` transport adapter on ``target.client.session`` to reach a local fake server.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from botkit.bots.ledger import Candidate
from botkit.bots.replies import thread_depths
from botkit.bots.targets import Disabled, Incoming, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.post_text import LIMITS, room_for

if TYPE_CHECKING:
    import tweepy

log = logging.getLogger(__name__)

#: Well inside X's per-user posting limits, and slow enough to stay a welcome bot.
DEFAULT_LIMITS = Limits(min_interval=300.0, daily_cap=48)
TWEET_MAX = LIMITS["twitter"]
TIMEOUT_S = 20.0  # tweepy sets none: a hung connection would hold the bot forever; 20 s ends well inside a claim's 30 s lease
DEFAULT_WAIT_S = 900.0  # X's windows are 15 minutes; used when a 429 has no reset header
DUPLICATE = "duplicate content"
RECENT = 100  # posts to look through when reconciling (X's most per page): far more than one account makes between two ticks
CLOCK_SLACK = timedelta(seconds=300)  # a post this much older than the claim still counts (clock skew)
#: A word of ours that X may show as a t.co link: one with a scheme, or a bare domain (X links those too).
_LINKISH = re.compile(r"://|\w\.[A-Za-z]{2,}")
_TCO = r"\S*https://t\.co/\w+\S*"  # the link, with whatever punctuation X left outside it
KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
MENTIONS = 100  # mentions read per listening tick: one page, X's most
TWEET_FIELDS = ["conversation_id", "in_reply_to_user_id", "referenced_tweets", "created_at", "author_id"]
_LEADING_HANDLES = re.compile(r"^(?:\s*@\w{1,15}\b)+\s*")
#: X's words for a reply whose parent cannot be answered (deleted, hidden, or replies limited by its author).
_PARENT_GONE = ("deleted", "not visible", "reply to this conversation", "not allowed")


class TwitterTargetOptions(TargetOptions):
    consumer_key: SecretStr | None = Field(None, description="the app's API key (use ${ENV_VAR})")
    consumer_secret: SecretStr | None = Field(None, description="the app's API key secret (use ${ENV_VAR})")
    access_token: SecretStr | None = Field(None, description="the bot account's access token (use ${ENV_VAR})")
    access_token_secret: SecretStr | None = Field(None, description="the bot account's access token secret (use ${ENV_VAR})")


class TwitterTarget(Target):
    summary = "post to X (tweepy Client.create_tweet, OAuth 1.0a user context)"
    Options = TwitterTargetOptions
    options: TwitterTargetOptions
    default_limits: ClassVar[Limits] = DEFAULT_LIMITS

    listens = True
    #: X's timelines lag behind a post, and some access levels have none: a lookup that finds
    #: nothing proves nothing; only the next post's duplicate refusal does (see :meth:`post`).
    lookup_proves_absence: ClassVar[bool] = False

    _client: tweepy.Client | None = None
    _user_id: int | None = None
    _username: str | None = None
    #: since_id of the next mentions request: the newest mention of a page the ledger has decided about entirely.
    _since: int | None = None
    _newest: int | None = None  # the newest mention of the last page
    _heard: tuple[str, ...] = ()  # what the last page handed the bot, undecided then
    #: False once X refused to list the account's posts: its access level has no timelines.
    _can_look_up: bool = True
    #: The candidate a lookup just did not find: a duplicate refusal of its post means it went out.
    _looked_up: int | None = None

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        """What is left of a tweet once the signature is added."""
        return room_for(TWEET_MAX, options.signature)

    @classmethod
    def missing(cls, options: TargetOptions) -> list[str]:
        return [f"{key}: required for a live twitter target (e.g. {key}: ${{X_{key.upper()}}})" for key in KEYS if not getattr(options, key)]

    def account(self) -> str:
        """``x:`` and a short hash of the access token (one token, one X account): never the token itself."""
        token = _reveal(self.options.access_token)
        return f"x:{hashlib.sha256(token.encode()).hexdigest()[:16]}" if token else super().account()

    @property
    def client(self) -> tweepy.Client:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def make_client(self) -> tweepy.Client:
        import tweepy

        client = tweepy.Client(**{key: _reveal(getattr(self.options, key)) for key in KEYS}, wait_on_rate_limit=False)
        client.session.mount("https://", _timeout_adapter())
        return client

    def post(self, candidate: Candidate) -> PostResult:
        unsure, self._looked_up = self._looked_up == candidate.id, None
        with self._errors():
            try:
                return self._create(candidate)
            except _Duplicate:
                if unsure:
                    return PostResult(None, note="X answered 'duplicate content': posted before a crash or lost answer; id unknown")
                raise Rejected("X refused the text as duplicate content (an earlier post had the same text)") from None

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        """The claimed text among the account's own posts since the claim, as X shows it; None when it is not there."""
        found = self._look_up(candidate) if self._can_look_up else None
        if found is None:
            self._looked_up = candidate.id
        return found

    def _look_up(self, candidate: Candidate) -> PostResult | None:
        import tweepy

        matches = shown_as(self.text_of(candidate))
        parent = candidate.reply_to
        since = None if candidate.claimed_at is None else candidate.claimed_at - CLOCK_SLACK  # aware UTC: tweepy sends it as UTC
        with self._errors():
            user = self._me()
            try:
                response = self.client.get_users_tweets(user, max_results=RECENT, start_time=since, tweet_fields=["referenced_tweets"], user_auth=True)
            except tweepy.Forbidden as exc:  # the account's own 403s come from posting; this one is about the access level
                self._can_look_up = False
                log.warning(
                    "%s: X will not list the account's posts (HTTP 403: %s); only its duplicate-content refusal can tell a post went out",
                    self.bot,
                    _messages(exc),
                )
                return None
        for tweet in response.data or []:
            answers = _replied_to(tweet)
            if answers != (None if parent is None else int(parent)):
                continue  # a reply is never the post, nor a reply to another parent
            if matches(tweet.text) or (parent is not None and matches(_LEADING_HANDLES.sub("", tweet.text))):
                return PostResult(str(tweet.id), url=f"https://x.com/i/web/status/{tweet.id}", note="found by reconciliation")
        return None

    def _me(self) -> int:
        """The account's user id, asked once (with its username): neither changes for one access token."""
        if self._user_id is None:
            user = self.client.get_me(user_auth=True).data
            self._user_id, self._username = int(user.id), str(user.username)
        return self._user_id

    def me(self) -> str:
        """The account's username (``/2/users/me``, asked once), as mentions name their authors."""
        if self._username is None:
            with self._errors():
                self._me()
        assert self._username is not None
        return self._username

    # -- listening ---------------------------------------------------------------------------

    def incoming(self, watch: list[str]) -> list[Incoming]:
        """The account's newest mentions the bot has not decided about, oldest first (see the module's docstring)."""
        import tweepy

        with self._errors():
            user = self._me()
            if self._newest is not None and not self.ledger.unseen(self.bot, self._heard):
                self._since = self._newest  # everything up to there was decided: ask only for what is newer
            try:
                response = self.client.get_users_mentions(
                    user, since_id=self._since, max_results=MENTIONS, expansions=["referenced_tweets.id", "author_id"],
                    tweet_fields=TWEET_FIELDS, user_fields=["username"], user_auth=True,
                )  # fmt: skip
            except tweepy.Forbidden as exc:  # bad keys answer 401: a 403 here is about the access level (or a suspended account)
                raise Disabled(
                    f"X will not list the account's mentions (HTTP 403: {_messages(exc)}); a reply bot needs an access level that reads them (X's Free tier does not)"
                ) from None
        every = response.data or []
        if every:
            self._newest = max(self._newest or 0, *(t.id for t in every))
        tweets = [t for t in every if t.author_id != user]  # the bot's own: never answered
        names = {int(u.id): str(u.username) for u in response.includes.get("users", [])}
        fresh = self.ledger.unseen(self.bot, (str(t.id) for t in tweets))
        new = [t for t in tweets if str(t.id) in fresh]
        self._heard = tuple(str(t.id) for t in new)
        # What each post answers, as far as this page tells: the root of a conversation answers nothing.
        up: dict[int, int | None] = {}
        for tweet in [*new, *response.includes.get("tweets", [])]:
            up[tweet.id] = _replied_to(tweet)
            if tweet.conversation_id is not None:
                up[tweet.conversation_id] = None
        depths = thread_depths({t.id: up[t.id] for t in new}, up, self._parents_of)
        items = [
            Incoming(
                id=str(t.id), text=_spoken(t.text), author=names.get(t.author_id or 0, str(t.author_id)), thread=str(t.conversation_id or t.id),
                depth=depths[t.id], link=str(t.id), url=f"https://x.com/{names.get(t.author_id or 0, 'i/web')}/status/{t.id}",
                created_at=t.created_at.astimezone(UTC) if t.created_at else None,
            )
            for t in new
        ]  # fmt: skip
        return sorted(items, key=lambda item: int(item.id))

    def _parents_of(self, tweets: set[int]) -> dict[int, int | None]:
        """What each of ``tweets`` answers (None: a conversation's root); the ones X does not show are left out."""
        with self._errors():
            response = self.client.get_tweets(sorted(tweets), tweet_fields=["referenced_tweets", "conversation_id"], user_auth=True)
        return {tweet.id: _replied_to(tweet) for tweet in response.data or []}

    def _create(self, candidate: Candidate) -> PostResult:
        import tweepy

        parent = candidate.reply_to
        try:
            response = self.client.create_tweet(text=self.text_of(candidate), in_reply_to_tweet_id=parent)
        except tweepy.Forbidden as exc:
            if any(DUPLICATE in message.lower() for message in exc.api_messages):
                raise _Duplicate from None
            if parent is not None and any(word in message.lower() for message in exc.api_messages for word in _PARENT_GONE):
                raise Rejected(f"X refused the reply to {parent} (HTTP 403: {_messages(exc)})") from None
            raise
        except tweepy.NotFound as exc:
            if parent is not None:
                raise Rejected(f"X refused the reply to {parent} (HTTP 404: {_messages(exc)}): the post is gone") from None
            raise
        tweet_id = str(response.data["id"])
        return PostResult(tweet_id, url=f"https://x.com/i/web/status/{tweet_id}")

    def secrets(self) -> list[str]:
        return [value for key in KEYS if (value := _reveal(getattr(self.options, key)))]

    def describe(self) -> str:
        return "X (api.twitter.com)"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """tweepy's and requests' exceptions, sorted into what the bot should do about them."""
        import requests
        import tweepy

        try:
            yield
        except tweepy.TooManyRequests as exc:
            wait = DEFAULT_WAIT_S if exc.reset_time is None else max(exc.reset_time - time.time(), 0.0) + 1.0
            raise RateLimited(f"X answered HTTP 429 (too many requests); waiting {wait:.0f}s", wait) from None
        except tweepy.TwitterServerError as exc:
            raise Transient(f"X failed with HTTP {exc.response.status_code}") from None
        except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
            raise Disabled(
                f"X refused the account (HTTP {exc.response.status_code}: {_messages(exc)}); check the four OAuth 1.0a keys and the app's write permission"
            ) from None
        except tweepy.BadRequest as exc:
            raise Rejected(f"X refused the text (HTTP 400: {_messages(exc)})") from None
        except tweepy.HTTPException as exc:
            raise Transient(f"unexpected answer from X (HTTP {exc.response.status_code})") from None
        except requests.RequestException as exc:
            raise Transient(f"X unreachable ({type(exc).__name__})") from None


class _Duplicate(Exception):
    """X's 403 'duplicate content': what it means depends on whether a lookup just missed the post."""


def shown_as(text: str) -> Callable[[str], bool]:
    """A test of whether X's copy of a post (``text`` in API v2) is ``text``.

    X escapes ``&``, ``<`` and ``>`` as HTML entities and replaces every link by a t.co link, so a
    word of ours that looks like a link matches itself or any t.co link; spacing at the ends and
    between words, and Unicode composition (X counts text in NFC), may differ.
    """
    words = unicodedata.normalize("NFC", text).split()
    parts = [f"(?:{re.escape(word)}|{_TCO})" if _LINKISH.search(word) else re.escape(word) for word in words]
    pattern = re.compile(r"\s+".join(parts))

    def matches(shown: str) -> bool:
        plain = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        return pattern.fullmatch(unicodedata.normalize("NFC", plain).strip()) is not None

    return matches


def _replied_to(tweet: Any) -> int | None:
    """The id of the post a post answers (its ``replied_to`` reference), or None."""
    return next((int(ref.id) for ref in tweet.referenced_tweets or [] if ref.type == "replied_to"), None)


def _spoken(text: str) -> str:
    """What a post says: X's entities unescaped, without the ``@handles`` X puts before a reply."""
    return _LEADING_HANDLES.sub("", html.unescape(text), count=1).strip()


def _messages(exc: Any) -> str:
    return "; ".join(exc.api_messages)[:200] or "no details"


def _reveal(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _timeout_adapter() -> Any:
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        """Gives every request a timeout unless it has one."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # requests passes its own arguments by keyword
            kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT_S
            return super().send(request, *args, **kwargs)

    return TimeoutAdapter()
