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

Seam for tests and proxies: the tweepy client is built in :meth:`TwitterTarget.make_client` and
kept as :attr:`TwitterTarget.client`; tweepy hard-codes ``https://api.twitter.com``, so a test
mounts a ``requests`` transport adapter on ``target.client.session`` to reach a local fake server.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from botkit.bots import Disabled, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.bots.ledger import Candidate

if TYPE_CHECKING:
    import tweepy

log = logging.getLogger(__name__)

#: Well inside X's per-user posting limits, and slow enough to stay a welcome bot.
DEFAULT_LIMITS = Limits(min_interval=300.0, daily_cap=48)
TWEET_MAX = 280
TIMEOUT_S = 20.0  # tweepy sets none: a hung connection would hold the bot forever; 20 s ends well inside a claim's 30 s lease
DEFAULT_WAIT_S = 900.0  # X's windows are 15 minutes; used when a 429 has no reset header
DUPLICATE = "duplicate content"
RECENT = 100  # posts to look through when reconciling (X's most per page): far more than one account makes between two ticks
CLOCK_SLACK = timedelta(seconds=300)  # a post this much older than the claim still counts (clock skew)
#: A word of ours that X may show as a t.co link: one with a scheme, or a bare domain (X links those too).
_LINKISH = re.compile(r"://|\w\.[A-Za-z]{2,}")
_TCO = r"\S*https://t\.co/\w+\S*"  # the link, with whatever punctuation X left outside it
KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


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

    _client: tweepy.Client | None = None
    _user_id: int | None = None
    #: False once X refused to list the account's posts: its access level has no timelines.
    _can_look_up: bool = True
    #: The candidate a lookup just did not find: a duplicate refusal of its post means it went out.
    _looked_up: int | None = None

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        """What is left of a tweet once the signature is added."""
        return TWEET_MAX - (len(options.signature) + 2 if options.signature else 0)

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
        since = None if candidate.claimed_at is None else candidate.claimed_at - CLOCK_SLACK  # aware UTC: tweepy sends it as UTC
        with self._errors():
            user = self._me()
            try:
                response = self.client.get_users_tweets(user, max_results=RECENT, start_time=since, user_auth=True)
            except tweepy.Forbidden as exc:  # the account's own 403s come from posting; this one is about the access level
                self._can_look_up = False
                log.warning(
                    "%s: X will not list the account's posts (HTTP 403: %s); only its duplicate-content refusal can tell a post went out",
                    self.bot,
                    _messages(exc),
                )
                return None
        for tweet in response.data or []:
            if matches(tweet.text):
                return PostResult(str(tweet.id), url=f"https://x.com/i/web/status/{tweet.id}", note="found by reconciliation")
        return None

    def _me(self) -> int:
        """The account's user id, asked once: it never changes for one access token."""
        if self._user_id is None:
            self._user_id = int(self.client.get_me(user_auth=True).data.id)
        return self._user_id

    def _create(self, candidate: Candidate) -> PostResult:
        import tweepy

        try:
            response = self.client.create_tweet(text=self.text_of(candidate))
        except tweepy.Forbidden as exc:
            if any(DUPLICATE in message.lower() for message in exc.api_messages):
                raise _Duplicate from None
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
