"""``mastodon``: post statuses to any Mastodon instance with Mastodon.py (``status_post``).

The access token comes from config.yaml as ``${MASTODON_TOKEN}`` (pydantic ``SecretStr``, redacted
from every error); it needs the ``write:statuses`` and ``read:accounts`` scopes (and
``write:accounts`` for ``set_bot_flag``).

Exactly once, two ways:

* every try of one candidate carries the same ``Idempotency-Key`` (a hash of the bot, the
  candidate and its claimed text): Mastodon keeps keys about an hour and answers a repeat with the
  status it already made, so a retry after a lost answer can never make a second status;
* after a crash (or a lost answer older than the key), :meth:`MastodonTarget.reconcile` looks the
  claimed text up among the account's own newest statuses (``account_statuses`` of ``me``), as
  Mastodon shows them: HTML, links and mentions marked up (see :func:`plain`).

Mastodon.py is told never to sleep on a rate limit (``ratelimit_method="throw"``) and to give up
after :data:`TIMEOUT_S`: the bot, not the library, decides when to try again.

Reply bots (a ``reply:`` block) listen to the account's **mention** notifications only
(``GET /api/v1/notifications?types[]=mention``; fediverse etiquette: answer only those who
addressed the bot), which needs the ``read:notifications`` and ``read:statuses`` scopes too. A
mention's thread and depth come from ``GET /api/v1/statuses/:id/context`` (its ancestors), asked
once per mention the bot has not decided about yet. A reply is a status with ``in_reply_to_id``
that starts with ``@author`` (so it notifies the one it answers, and nobody else), under the same
Idempotency-Key rule as a post; its visibility is the configured one, narrowed to the parent's
when that is narrower (a direct message is answered directly). A reply whose parent was deleted
meanwhile is refused by the instance (404) and marked failed; a lost answer is looked up among the
parent's replies (``status_context(parent).descendants``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, model_validator

from botkit import __version__
from botkit.bots.ledger import Candidate
from botkit.bots.targets import Disabled, Incoming, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.errors import ConfigError
from botkit.post_text import LIMITS, graphemes, room_for, without_mentions
from botkit.redact import redact_url
from botkit.sample import Sample

if TYPE_CHECKING:
    from mastodon import Mastodon

    from botkit.filters import FilterChain

log = logging.getLogger(__name__)

#: Fediverse etiquette: an announcement-style bot posts a few times a day (research notes §10);
#: Mastodon's own limit (300 requests per 5 minutes) is never the one that binds.
DEFAULT_LIMITS = Limits(min_interval=3600.0, daily_cap=8)
DEFAULT_MAX = LIMITS["mastodon"]  # stock Mastodon's limit; the instance's own (GET /api/v2/instance) applies at post time
URL_CHARS = 23  # Mastodon counts every link as this many characters, whatever its length
TIMEOUT_S = 20.0  # Mastodon.py's default is 300 s: a hung request must end well inside a claim's 30 s lease
DEFAULT_WAIT_S = 300.0  # Mastodon's windows are 5 minutes; used when a 429 has no usable reset header
RECENT = 40  # statuses to look through when reconciling (Mastodon's most per page)
CLOCK_SLACK = timedelta(seconds=300)  # a status this much older than the claim still counts (clock skew)
PAGE = 40  # mention notifications asked per request (Mastodon's default; it allows 80)
PAGES = 3  # most pages read in one listening tick, while every mention on them is new to the bot
#: Visibilities from the widest to the narrowest: a reply is never seen by more than its parent.
VISIBILITIES = ("public", "unlisted", "private", "direct")
_URL = re.compile(r"https?://\S+")
_REMOTE_MENTION = re.compile(r"^(@[\w.-]+)@[\w.-]+\.\w+")


class MastodonTargetOptions(TargetOptions):
    api_base_url: str = Field(description="the instance, e.g. https://botsin.space")
    access_token: SecretStr | None = Field(None, description="the bot account's access token (use ${MASTODON_TOKEN})")
    visibility: Literal["public", "unlisted", "private", "direct"] = Field(
        "unlisted", description="who sees the posts: unlisted (the default, bot etiquette) keeps them off the public timelines"
    )
    spoiler_text: str | None = Field(None, description="a content warning shown before every post (or, with spoiler_when, the flagged ones)")
    spoiler_when: list[str | dict[str, Any]] | None = Field(
        None,
        description="filters that flag a text for the content warning, e.g. [banned] or [{banned: {words: [...]}}]: "
        "a post that any of them would reject gets spoiler_text, the others none",
    )
    sensitive: bool = Field(False, description="mark every post's media as sensitive")
    language: str | None = Field(None, description="ISO 639-1 code of the posts' language, e.g. en")
    set_bot_flag: bool = Field(False, description="flag the account as a bot (bot: true) at start when it is not")
    _base_dir: Path | None = PrivateAttr(None)  # the config's folder: word-list files of spoiler_when are relative to it

    @model_validator(mode="after")
    def _spoiler_needs_a_text(self, info: ValidationInfo) -> MastodonTargetOptions:
        if self.spoiler_when is not None and not self.spoiler_text:
            raise ValueError("spoiler_when needs spoiler_text: the content warning the flagged posts get")
        base = (info.context or {}).get("base_dir")
        self._base_dir = Path(base) if base is not None else None
        return self

    def flagger(self) -> FilterChain | None:
        """The filters of ``spoiler_when`` as a chain (their errors as a :class:`ConfigError`), or None."""
        if self.spoiler_when is None:
            return None
        from botkit.filters import FilterContext, build_chain

        return build_chain(self.spoiler_when, FilterContext(), where="spoiler_when", base_dir=self._base_dir)


class MastodonTarget(Target):
    summary = "post to a Mastodon instance (Mastodon.py status_post, access token per bot)"
    Options = MastodonTargetOptions
    options: MastodonTargetOptions
    default_limits: ClassVar[Limits] = DEFAULT_LIMITS
    listens = True

    _api: Mastodon | None = None
    _me: Any = None
    _max_chars: int | None = None
    _flags: FilterChain | None = None
    #: The newest mention notification up to which every mention was decided (``since_id`` of the
    #: next listening request). Only saves work: the ledger decides what is new.
    _cursor: str | None = None

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        """Stock Mastodon's limit less the signature: the filters drop longer candidates."""
        return room_for(DEFAULT_MAX, options.signature)

    @classmethod
    def missing(cls, options: TargetOptions) -> list[str]:
        assert isinstance(options, MastodonTargetOptions)
        problems = [] if options.access_token else ["access_token: required for a live mastodon target (e.g. access_token: ${MASTODON_TOKEN})"]
        try:
            options.flagger()
        except ConfigError as exc:
            problems.append(str(exc))
        return problems

    def spoiler(self, text: str) -> str | None:
        """The content warning of one post: ``spoiler_text`` always, or only when a ``spoiler_when`` filter flags the text."""
        if not self.options.spoiler_text:
            return None
        if self._flags is None:
            self._flags = self.options.flagger()
        if self._flags is None or self._flags.apply([Sample(text)]).rejected:
            return self.options.spoiler_text
        return None

    def account(self) -> str:
        """``mastodon:HOST:`` and a short hash of the access token (one token, one account): never the token itself."""
        token = self._token()
        host = urlsplit(self.api_base_url).netloc.rpartition("@")[2].lower()  # never the userinfo: this key is stored in the ledger
        return f"mastodon:{host}:{hashlib.sha256(token.encode()).hexdigest()[:16]}" if token else super().account()

    @property
    def api_base_url(self) -> str:
        url = self.options.api_base_url.rstrip("/")
        return url if "://" in url else f"https://{url}"

    @property
    def shown_url(self) -> str:
        """The instance as messages and ``botkit status`` name it: its URL without any credential in it."""
        return redact_url(self.api_base_url)

    @property
    def api(self) -> Mastodon:
        if self._api is None:
            from mastodon import Mastodon

            self._api = Mastodon(
                access_token=self._token(), api_base_url=self.api_base_url, ratelimit_method="throw",
                request_timeout=TIMEOUT_S, user_agent=f"botkit/{__version__} (bot {self.bot})",
            )  # fmt: skip
        return self._api

    def idempotency_key(self, candidate: Candidate) -> str:
        """The same for every try of one claimed candidate, different for any other text or candidate (a new ledger reuses ids)."""
        source = f"botkit\0{self.bot}\0{candidate.id}\0{int(candidate.created_at.timestamp())}\0{self.text_of(candidate)}"
        return hashlib.sha256(source.encode()).hexdigest()[:32]

    # -- posting -----------------------------------------------------------------------------

    def render(self, candidate: Candidate) -> str:
        """A post as the base class renders it; a reply starts with ``@author`` of its parent, so it notifies them."""
        text = super().render(candidate)
        if candidate.reply_to is None:
            return text
        mention = Parent.parse(candidate.reply_to).mention
        return text if mention is None or text.split(maxsplit=1)[:1] == [mention] else f"{mention} {text}"

    def post(self, candidate: Candidate) -> PostResult:
        from mastodon import MastodonNotFoundError

        text = self.text_of(candidate)
        parent = None if candidate.reply_to is None else Parent.parse(candidate.reply_to)
        visibility = self.options.visibility if parent is None else parent.narrowed(self.options.visibility)
        with self._errors():
            self._start()
            limit = self._instance_limit()
            length = count(text)
            if length > limit:
                raise Rejected(f"{length} characters; the instance takes at most {limit} (the text is not cut)")
            try:
                status = self.api.status_post(
                    text, in_reply_to_id=None if parent is None else parent.id, visibility=visibility, spoiler_text=self.spoiler(text),
                    sensitive=self.options.sensitive, language=self.options.language, idempotency_key=self.idempotency_key(candidate),
                )  # fmt: skip
            except MastodonNotFoundError as exc:
                if parent is None:
                    raise
                raise Rejected(
                    f"{self.shown_url} has no status {parent.id} to answer (HTTP 404: {_message(exc)}); it was deleted or is hidden from the account"
                ) from None
        return PostResult(str(status["id"]), url=status.get("url") or status.get("uri"))

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        """The claimed text among the account's newest statuses since the claim, as Mastodon shows it;
        for a reply, among the parent's replies by the account (its own newest when the parent is gone)."""
        from mastodon import MastodonNotFoundError

        words = _words(self.text_of(candidate))
        since = None if candidate.claimed_at is None else candidate.claimed_at - CLOCK_SLACK
        parent = None if candidate.reply_to is None else Parent.parse(candidate.reply_to)
        with self._errors():
            self._start()
            statuses = None
            if parent is not None:
                try:
                    statuses = self.api.status_context(parent.id)["descendants"]
                except MastodonNotFoundError:
                    pass  # the parent was deleted since: the reply, if made, is still among the account's own
            if statuses is None:
                statuses = self.api.account_statuses(self._me["id"], limit=RECENT, exclude_reblogs=True)
            for status in statuses:
                if parent is not None and (str(status.get("in_reply_to_id")) != parent.id or str(status["account"]["id"]) != str(self._me["id"])):
                    continue
                created = status.get("created_at")
                if (since is None or created is None or created >= since) and _words(plain(status.get("content") or "")) == words:
                    return PostResult(str(status["id"]), url=status.get("url") or status.get("uri"), note="found by reconciliation")
        return None

    # -- listening ---------------------------------------------------------------------------

    def me(self) -> str:
        """The account's ``acct`` (``verify_credentials``), as a mention's author is named."""
        with self._errors():
            self._start()
        return str(self._me["acct"])

    def incoming(self, watch: list[str]) -> list[Incoming]:
        """The mentions of the account the bot has not decided about yet, oldest first.

        Newest first, Mastodon pages them by notification id: the next page is read only while a
        full page holds nothing the ledger knows (at most :data:`PAGES`). Each new mention's
        thread and depth come from its context (one request; none for a mention that answers
        nothing). There is no ``reply.watch`` here: a Mastodon bot answers only who mentions it.
        """
        from mastodon import MastodonNotFoundError

        with self._errors():
            self._start()
            me = str(self._me["acct"])
            page = self.api.notifications(types=["mention"], since_id=self._cursor, limit=PAGE)
            heard = list(page)
            for _ in range(PAGES - 1):
                ids = _status_ids(page)
                if len(page) < PAGE or len(self.ledger.unseen(self.bot, ids)) < len(ids):
                    break
                page = self.api.fetch_next(page)
                if not page:
                    break
                heard += page
            heard.sort(key=lambda n: _order(n["id"]))
            fresh = self.ledger.unseen(self.bot, _status_ids(heard))
            found: list[Incoming] = []
            passed = True
            for notification in heard:
                status = notification.get("status")
                new = status is not None and str(status["id"]) in fresh and status["account"]["acct"] != me
                item = None
                if new:
                    try:
                        item = self._incoming(status)
                    except MastodonNotFoundError:
                        log.info("%s: status %s was deleted before it could be read; not answered", self.bot, status["id"])
                if item is not None and item.id not in {f.id for f in found}:
                    found.append(item)
                if passed and item is None:  # decided before, not a mention, the bot's own, or gone: never asked again
                    self._cursor = str(notification["id"])
                passed = passed and item is None
        return found

    def _incoming(self, status: Any) -> Incoming:
        status_id = str(status["id"])
        thread, depth = status_id, 0
        if status.get("in_reply_to_id") is not None:
            ancestors = self.api.status_context(status_id)["ancestors"]
            depth = max(len(ancestors), 1)  # an ancestor the bot may not see still counts as one
            thread = str(ancestors[0]["id"]) if ancestors else str(status["in_reply_to_id"])
        account = status["account"]
        created = status.get("created_at")
        return Incoming(
            id=status_id, text=without_mentions(plain(status.get("content") or "")), author=str(account["acct"]), thread=thread, depth=depth,
            link=Parent(status_id, f"@{account['acct']}", str(status.get("visibility") or "public")).link, author_is_bot=bool(account.get("bot")),
            url=status.get("url") or status.get("uri"), created_at=created.astimezone(UTC) if isinstance(created, datetime) else None,
        )  # fmt: skip

    def _start(self) -> None:
        """Once per process: who the token belongs to, and the bot flag (set when asked, else a warning)."""
        if self._me is not None:
            return
        me = self.api.account_verify_credentials()
        if me.get("bot"):
            self._me = me
            return
        who = f"@{me.get('acct')} on {self.shown_url}"
        if not self.options.set_bot_flag:
            log.warning("%s: %s is not flagged as a bot; set it in the profile or with set_bot_flag: true", self.bot, who)
        else:
            from mastodon import MastodonAPIError

            try:
                me = self.api.account_update_credentials(bot=True)
                log.info("%s: flagged %s as a bot account", self.bot, who)
            except MastodonAPIError as exc:  # e.g. a token without write:accounts: posting still works
                log.warning(
                    "%s: could not flag %s as a bot (HTTP %s: %s); the token needs the write:accounts scope", self.bot, who, _status(exc), _message(exc)
                )
        self._me = me

    def _instance_limit(self) -> int:
        """``configuration.statuses.max_characters`` of ``GET /api/v2/instance``, asked once (default 500)."""
        if self._max_chars is None:
            try:
                configured = self.api.instance_v2()["configuration"]["statuses"]["max_characters"]
            except (KeyError, TypeError):
                configured = None
            self._max_chars = int(configured or DEFAULT_MAX)
        return self._max_chars

    def secrets(self) -> list[str]:
        token = self._token()
        return [token] if token else []

    def describe(self) -> str:
        return f"Mastodon {self.shown_url} ({self.options.visibility})"

    def _token(self) -> str | None:
        return None if self.options.access_token is None else self.options.access_token.get_secret_value()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Mastodon.py's exceptions, sorted into what the bot should do about them."""
        from mastodon import (
            MastodonAPIError,
            MastodonNetworkError,
            MastodonNotFoundError,
            MastodonRatelimitError,
            MastodonServerError,
            MastodonUnauthorizedError,
        )

        where = self.shown_url
        try:
            yield
        except MastodonRatelimitError:
            reset = self._api.ratelimit_reset if self._api is not None else None
            wait = DEFAULT_WAIT_S if reset is None else max(reset - time.time(), 0.0) + 1.0
            raise RateLimited(f"{where} answered HTTP 429 (too many requests); waiting {wait:.0f}s", wait) from None
        except MastodonNetworkError as exc:
            raise Transient(f"{where} unreachable or the answer was lost ({_cause(exc)})") from None
        except MastodonServerError as exc:
            raise Transient(f"{where} failed with HTTP {_status(exc)}") from None
        except MastodonUnauthorizedError as exc:
            raise Disabled(f"{where} refused the access token (HTTP 401: {_message(exc)}); make a new one (Preferences > Development)") from None
        except MastodonNotFoundError:
            raise Disabled(f"{where} has no Mastodon API here (HTTP 404); check api_base_url") from None
        except MastodonAPIError as exc:
            status = _status(exc)
            if status == 403:
                raise Disabled(f"{where} refused the account (HTTP 403: {_message(exc)}); check the token's scopes and the account's standing") from None
            if status == 422:
                raise Rejected(f"{where} refused the text (HTTP 422: {_message(exc)})") from None
            raise Transient(f"unexpected answer from {where} (HTTP {status}: {_message(exc)})") from None


@dataclass(frozen=True)
class Parent:
    """What a reply needs of the status it answers, kept as the candidate's ``reply_to``: ``ID @acct visibility``."""

    id: str
    mention: str | None = None  # "@acct" of its author
    visibility: str | None = None

    @property
    def link(self) -> str:
        return " ".join(part for part in (self.id, self.mention, self.visibility) if part)

    @classmethod
    def parse(cls, link: str) -> Parent:
        parts = link.split()
        if not parts:
            raise Rejected(f"not a Mastodon status to answer: {link!r}")
        mention = next((p for p in parts[1:] if p.startswith("@")), None)
        visibility = next((p for p in parts[1:] if p in VISIBILITIES), None)
        return cls(parts[0], mention, visibility)

    def narrowed(self, visibility: str) -> str:
        """The narrower of ``visibility`` (the configured one) and the parent's."""
        if self.visibility not in VISIBILITIES:
            return visibility
        return max(visibility, self.visibility, key=VISIBILITIES.index)


def _status_ids(notifications: Any) -> list[str]:
    return [str(n["status"]["id"]) for n in notifications if n.get("status") is not None]


def _order(notification_id: Any) -> tuple[int, str]:
    """Mastodon's ids are numbers in strings: shorter is older."""
    text = str(notification_id)
    return len(text), text


def count(text: str) -> int:
    """Characters as Mastodon counts them: grapheme clusters, every link as 23, a remote mention by its local part."""
    text = _URL.sub("x" * URL_CHARS, text)
    return graphemes(" ".join(_REMOTE_MENTION.sub(r"\1", word) for word in text.split(" ")))


def plain(content: str) -> str:
    """A status's HTML ``content`` as text: paragraphs and line breaks kept, tags dropped, entities decoded."""
    parser = _Text()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts).strip()


def _words(text: str) -> list[str]:
    """Words to compare a status by: Mastodon shows ``@user@host`` as ``@user`` and may respace lines."""
    return [_REMOTE_MENTION.sub(r"\1", word) for word in text.split()]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _status(exc: Exception) -> Any:
    return exc.args[1] if len(exc.args) > 1 else "?"


def _message(exc: Exception) -> str:
    return str(exc.args[3] if len(exc.args) > 3 and exc.args[3] else "no details")[:200]


def _cause(exc: Exception) -> str:
    """The transport error's kind (Mastodon.py wraps it in a message that may quote the URL)."""
    cause = exc.__context__ or exc
    return type(cause).__name__
