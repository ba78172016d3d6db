"""``twitter``: post to X with tweepy's ``Client.create_tweet`` (API v2, OAuth 1.0a user context).

The four OAuth 1.0a values come from config.yaml, normally as ``${ENV_VARS}``; they are never
shown again (pydantic ``SecretStr``, redacted from every error).

Reconciliation posts the claimed text again: X refuses a duplicate with 403 "duplicate content",
which means the first try did go out. X does not say which tweet it was, so that post is recorded
with no remote id and a note saying so.

Seam for tests and proxies: the tweepy client is built in :meth:`TwitterTarget.make_client` and
kept as :attr:`TwitterTarget.client`; tweepy hard-codes ``https://api.twitter.com``, so a test
mounts a ``requests`` transport adapter on ``target.client.session`` to reach a local fake server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from botkit.bots import Disabled, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.bots.ledger import Candidate

if TYPE_CHECKING:
    import tweepy

#: Well inside X's per-user posting limits, and slow enough to stay a welcome bot.
DEFAULT_LIMITS = Limits(min_interval=300.0, daily_cap=48)
TWEET_MAX = 280
TIMEOUT_S = 30.0  # tweepy sets none: a hung connection would hold the bot forever
DEFAULT_WAIT_S = 900.0  # X's windows are 15 minutes; used when a 429 has no reset header
DUPLICATE = "duplicate content"
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

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        """What is left of a tweet once the signature is added."""
        return TWEET_MAX - (len(options.signature) + 2 if options.signature else 0)

    @classmethod
    def missing(cls, options: TargetOptions) -> list[str]:
        return [f"{key}: required for a live twitter target (e.g. {key}: ${{X_{key.upper()}}})" for key in KEYS if not getattr(options, key)]

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
        with self._errors():
            try:
                return self._create(candidate)
            except _Duplicate:
                raise Rejected("X refused the text as duplicate content (an earlier post had the same text)") from None

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        """Post again: a duplicate answer proves the earlier try went out."""
        with self._errors():
            try:
                return self._create(candidate)
            except _Duplicate:
                return PostResult(None, note="X answered 'duplicate content': posted before a crash or lost answer; id unknown")

    def _create(self, candidate: Candidate) -> PostResult:
        import tweepy

        try:
            response = self.client.create_tweet(text=self.render(candidate))
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
            raise Disabled(f"X refused the account (HTTP {exc.response.status_code}: {_messages(exc)}); check the four OAuth 1.0a keys and the app's write permission") from None
        except tweepy.BadRequest as exc:
            raise Rejected(f"X refused the text (HTTP 400: {_messages(exc)})") from None
        except tweepy.HTTPException as exc:
            raise Transient(f"unexpected answer from X (HTTP {exc.response.status_code})") from None
        except requests.RequestException as exc:
            raise Transient(f"X unreachable ({type(exc).__name__})") from None


class _Duplicate(Exception):
    """X's 403 'duplicate content': what it means depends on whether we are reconciling."""


def _messages(exc: Any) -> str:
    return "; ".join(exc.api_messages)[:200] or "no details"


def _reveal(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _timeout_adapter() -> Any:
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        """Gives every request a timeout unless it has one."""

        def send(self, request: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT_S
            return super().send(request, **kwargs)

    return TimeoutAdapter()
