"""``reddit``: submit posts to a subreddit with praw, each bot as its own account.

Credentials come only from praw's own configuration: ``site:`` names a praw.ini section holding
the bot account's script app (client_id, client_secret, username, password), so each bot of a
farm can be a separate account and no secret ever sits in config.yaml. Every post identifies its
bot: the user agent names botkit and the owner's ``contact`` (unless the site sets its own), and
``flair_*`` or ``signature`` can mark posts as generated.

The text claimed for posting (:meth:`RedditTarget.render`, kept in the ledger) is the title, a
newline, then the body: titles are one line, so it parses back without ambiguity whatever the
options say later. Reconciliation asks Reddit for the account's newest submissions
(``/user/ME/submitted``) and looks for that title (and body) in the bot's subreddit since the
claim. For that to be the only path to a second try, prawcore must not retry a submission by
itself: see :func:`_requestor_class`.

It listens too (a bot's ``reply:`` block). Each listening tick reads the account's inbox
(``GET /message/inbox``, one page: replies to its comments and posts, and ``u/NAME`` mentions)
and, with ``reply.watch``, the newest comments and posts of those subreddits (``/r/a+b/comments``
and ``/r/a+b/new``, one request each whatever their number). It never marks anything read: the
ledger remembers what the bot decided about, so a restart reads the same page harmlessly, and the
account's inbox stays as its owner left it. A comment's depth comes from its listing when Reddit
gives one, else from its ancestors, looked up for every new comment at once (``/api/info``, one
call per level, at most :data:`~botkit.bots.replies.DEPTH_WALK`). A reply is a comment under the parent's fullname
(``POST /api/comment``), never retried blindly either; it is reconciled against the account's
newest comments (``/user/ME/comments``): same parent, same body, made since the claim. Reddit's
refusals of one parent (deleted, locked, archived) fail that reply only.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field

from botkit import __version__, praw_site
from botkit.bots.ledger import Candidate
from botkit.bots.replies import thread_depths
from botkit.bots.targets import Disabled, Incoming, Limits, PostResult, RateLimited, Rejected, Target, TargetOptions, Transient
from botkit.post_text import LIMITS

if TYPE_CHECKING:
    import praw

#: Reddit's own rules leave room for far more; a bot account that posts more than this gets
#: reported and its subreddit banned for volume. Lower only for a private test subreddit.
DEFAULT_LIMITS = Limits(min_interval=600.0, daily_cap=24)
TITLE_MAX = LIMITS["reddit-title"]  # Reddit refuses longer titles
RECENT = 25  # submissions to look through when reconciling; a bot posts far fewer between two ticks
CLOCK_SLACK_S = 300.0  # a submission this much older than the claim still counts (clock skew)
DEFAULT_WAIT_S = 600.0  # when a RATELIMIT or 429 does not say how long
_WAIT = re.compile(r"(\d{1,4}) (milliseconds?|seconds?|minutes?)")
_UNITS = {"milli": 0.001, "secon": 1.0, "minut": 60.0}
#: Errors about the bot or its subreddit, not the text: posting again cannot help.
_BOT_ERRORS = {"SUBREDDIT_NOEXIST", "SUBREDDIT_NOTALLOWED", "SUBREDDIT_NOTALLOWED_BANNED", "USER_REQUIRED", "BANNED_FROM_SUBREDDIT"}
NEEDS = ("client_id", "client_secret", "username", "password")
#: Requests prawcore may repeat on its own: fetching twice changes nothing on Reddit.
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: What Reddit shows instead of the body of a post a moderator removed or its author deleted.
_GONE = frozenset({"[removed]", "[deleted]"})
#: Inbox items and watched comments and posts read per listening tick: one page each (Reddit's most).
HEARD = 100


class Unanswered(Exception):
    """A request that changes something (a submission) got no clear answer: a 5xx, a timeout, a
    dropped connection. Reddit may have acted on it, so only reconciliation may decide to send it
    again. Deliberately not a prawcore exception: prawcore lets it through instead of retrying."""


class RedditTargetOptions(TargetOptions):
    site: str | None = Field(None, description="praw.ini section with the bot account's credentials (client_id, client_secret, username, password)")
    subreddit: str | None = Field(None, description="subreddit to post into, as NAME or r/NAME (a bot that only replies needs none)")
    mode: Literal["title", "title+body"] = Field(
        "title", description="title: the whole text is the title; title+body: the first line is the title, the rest the body"
    )
    flair_id: str | None = Field(None, description="flair template id for every post")
    flair_text: str | None = Field(None, description="flair text for every post (e.g. 'generated')")
    contact: str | None = Field(None, description="who runs the bot (u/NAME or an e-mail), for the user agent Reddit asks for")

    @property
    def sub(self) -> str:
        """The subreddit's bare name; only a bot that posts asks (the config check makes sure it has one)."""
        assert self.subreddit is not None, "a reply-only Reddit bot has no subreddit to post into"
        return self.subreddit.removeprefix("/").removeprefix("r/")


class RedditTarget(Target):
    summary = "submit to a subreddit (praw; credentials from a praw.ini site per bot)"
    Options = RedditTargetOptions
    options: RedditTargetOptions
    default_limits: ClassVar[Limits] = DEFAULT_LIMITS
    listens = True
    watches = "subreddits"
    needed_to_post = ("subreddit",)

    _reddit: praw.Reddit | None = None
    _me: str | None = None

    @classmethod
    def max_chars(cls, options: TargetOptions) -> int | None:
        return TITLE_MAX if isinstance(options, RedditTargetOptions) and options.mode == "title" else None

    @classmethod
    def missing(cls, options: TargetOptions) -> list[str]:
        assert isinstance(options, RedditTargetOptions)
        if not options.site:
            return ["site: required for a live reddit target (a praw.ini section with the bot account's credentials)"]
        try:
            config = praw_site.read_site(options.site)
        except praw_site.SiteError as exc:
            return [f"site: {exc}"]
        problems = []
        lacking = [key for key in NEEDS if not getattr(config, key)]
        if lacking:
            problems.append(f"site: praw site {options.site!r} lacks {', '.join(lacking)} (a posting bot needs a script app: {', '.join(NEEDS)})")
        if not config.user_agent and not options.contact:
            problems.append("contact: required (who runs this bot, e.g. u/yourname; it goes into the user agent) unless the praw site sets user_agent")
        return problems

    # -- posting -----------------------------------------------------------------------------

    def render(self, candidate: Candidate) -> str:
        """Title, newline, body (the signature, if any, ends the body); just the title when there is no body.

        In ``title`` mode the whole text is the title, on one line as Reddit shows titles. A reply
        is a comment: its text as it is, and the signature after a blank line.
        """
        if candidate.reply_to is not None:
            return super().render(candidate)
        text = candidate.text.strip()
        if self.options.mode == "title":
            title, body = " ".join(text.split()), ""
        else:
            title, _, body = text.partition("\n")
        if self.options.signature:
            body = f"{body.strip()}\n\n{self.options.signature}"
        body = body.strip()
        return f"{title.strip()}\n{body}" if body else title.strip()

    def title_body(self, candidate: Candidate) -> tuple[str, str]:
        """Title and body of the text claimed for posting (see :meth:`render`)."""
        title, _, body = self.text_of(candidate).partition("\n")
        return title, body

    def post(self, candidate: Candidate) -> PostResult:
        if candidate.reply_to is not None:
            return self._reply(candidate.reply_to, self.text_of(candidate))
        title, body = self.title_body(candidate)
        with self._errors():
            submission = (
                self.reddit().subreddit(self.options.sub).submit(title=title, selftext=body, flair_id=self.options.flair_id, flair_text=self.options.flair_text)
            )
            # praw drops the URL Reddit sent (reading .url would fetch the post again): build it.
            return PostResult(submission.id, url=f"https://www.reddit.com/r/{self.options.sub}/comments/{submission.id}/")

    def reconcile(self, candidate: Candidate) -> PostResult | None:
        """The claimed post among the account's newest submissions: same subreddit, title and body, made since the claim.

        A reply: among the account's newest comments, one under the same parent with the same body.
        """
        # claimed_at is aware UTC (as every ledger time), so its Unix time is right in any local zone.
        since = 0.0 if candidate.claimed_at is None else candidate.claimed_at.timestamp() - CLOCK_SLACK_S
        if candidate.reply_to is not None:
            return self._find_reply(candidate.reply_to, self.text_of(candidate), since)
        title, body = self.title_body(candidate)
        with self._errors():
            me = self.reddit().user.me()
            if me is None:  # praw's answer for a read-only client: this site has no account to post as
                raise Disabled(f"r/{self.options.sub}: praw site {self.options.site!r} is read-only (no username and password): it cannot post")
            for submission in me.submissions.new(limit=RECENT):
                if (
                    submission.subreddit.display_name.lower() == self.options.sub.lower()
                    and submission.created_utc >= since
                    and _same(submission.title, title)
                    and (not body or submission.selftext.strip() in _GONE or _same(submission.selftext, body))
                ):
                    return PostResult(submission.id, url=f"https://www.reddit.com{submission.permalink}", note="found by reconciliation")
        return None

    # -- replies -----------------------------------------------------------------------------

    def _reply(self, parent: str, text: str) -> PostResult:
        """A comment under ``parent`` (a fullname: ``t1_`` a comment, ``t3_`` a post)."""
        kind, _, thing_id = parent.partition("_")
        with self._errors(f"reply to {parent}", reply=True):
            reddit = self.reddit()
            thing = reddit.comment(id=thing_id) if kind == "t1" else reddit.submission(id=thing_id)
            comment = thing.reply(text)
        if comment is None:  # praw's answer when Reddit made the comment but did not show it (a quarantined subreddit)
            return PostResult(None, note="Reddit made the reply but did not return it")
        return PostResult(comment.id, url=_url_of(comment))

    def _find_reply(self, parent: str, text: str, since: float) -> PostResult | None:
        """The account's comment under ``parent`` with this body (or one a moderator removed since), made since ``since``."""
        with self._errors(f"reply to {parent}"):
            for comment in self.reddit().redditor(self.me()).comments.new(limit=RECENT):
                data = vars(comment)  # what the listing gave: reading a missing attribute would fetch the comment
                body = str(data.get("body", ""))
                if data.get("parent_id") == parent and float(data.get("created_utc", 0.0)) >= since and (body.strip() in _GONE or _same(body, text)):
                    return PostResult(comment.id, url=_url_of(comment), note="found by reconciliation")
        return None

    def me(self) -> str:
        """The account's name as Reddit spells it (``/api/v1/me``, asked once)."""
        if self._me is None:
            with self._errors(self._who(), listening=True):
                account = self.reddit().user.me()
                if account is None:  # praw's answer for a read-only client
                    raise Disabled(f"praw site {self.options.site!r} is read-only (no username and password): it cannot listen or reply")
                self._me = str(account.name)
        return self._me

    def incoming(self, watch: list[str]) -> list[Incoming]:
        """The inbox's newest comments (replies to the bot, mentions of it) and, for ``watch``, the
        newest comments and posts of those subreddits: what the bot has not decided about yet, oldest first.

        Nothing is marked read (see the module's docstring). The bot's own, deleted or removed
        things and those in locked or archived threads are left out: none can be answered.
        """
        me = self.me()
        with self._errors(self._who(), listening=True):
            reddit = self.reddit()
            heard = list(reddit.inbox.all(limit=HEARD, params={"mark": "false"}))
            if watch:
                places = reddit.subreddit("+".join(_sub(name) for name in watch))
                heard += list(places.comments(limit=HEARD))
                heard += list(places.new(limit=HEARD))
        things: dict[str, dict[str, Any]] = {}
        for thing in heard:
            data = vars(thing)
            kind = thing.fullname.partition("_")[0]
            author = getattr(data.get("author"), "name", None)  # praw: None for "[deleted]"
            text = str(data.get("body", "")) if kind == "t1" else str(data.get("title", ""))
            if kind not in ("t1", "t3") or author is None or author.lower() == me.lower() or text.strip() in _GONE:
                continue  # a private message, the bot's own, or gone
            if data.get("locked") or data.get("archived"):
                continue
            things[thing.fullname] = {**data, **things.get(thing.fullname, {})}  # one thing in the inbox and a watched listing
        fresh = self.ledger.unseen(self.bot, things)
        new = {name: data for name, data in things.items() if name in fresh}
        depths = self._depths({name: str(data["parent_id"]) for name, data in new.items() if name.startswith("t1_") and "parent_id" in data})
        items = [self._heard(name, data, me, depths.get(name, 0)) for name, data in new.items()]
        return sorted(items, key=lambda item: item.created_at or datetime.min.replace(tzinfo=UTC))

    def _who(self) -> str:
        """The account, for messages: ``u/NAME`` once known."""
        return f"u/{self._me}" if self._me else f"praw site {self.options.site!r}"

    def _heard(self, name: str, data: dict[str, Any], me: str, depth: int) -> Incoming:
        """One listed comment or post as the bot hears it."""
        created = datetime.fromtimestamp(float(data.get("created_utc", 0.0)), UTC)
        author = str(data["author"].name)
        if name.startswith("t3_"):
            title, body = str(data.get("title", "")), str(data.get("selftext", "")).strip()
            text = f"{title}\n\n{body}" if body and body not in _GONE else title
            permalink = data.get("permalink")
            return Incoming(name, text, author, name, 0, name, url=f"https://www.reddit.com{permalink}" if permalink else None, created_at=created)
        text = _unsummoned(str(data.get("body", "")), me)
        if isinstance(data.get("depth"), int):
            depth = int(data["depth"]) + 1  # a comment tree's depth counts from 0 at the top-level comments
        context = str(data.get("context") or "")
        thread = str(data.get("link_id") or "") or _post_of(context)
        where = data.get("permalink") or context.partition("?")[0]
        return Incoming(name, text, author, thread, depth, name, url=f"https://www.reddit.com{where}" if where else None, created_at=created)

    def _depths(self, parents: dict[str, str]) -> dict[str, int]:
        """How deep each comment of ``parents`` (fullname: its parent's fullname) sits: a top-level comment 1."""

        def look_up(names: set[str]) -> dict[str, str | None]:
            with self._errors(self._who(), listening=True):
                things = self.reddit().info(fullnames=sorted(names))
                found = {thing.fullname: None if thing.fullname.startswith("t3_") else vars(thing).get("parent_id") for thing in things}
            return {**{parent: None for parent in found.values() if parent and parent.startswith("t3_")}, **found}  # posts are roots

        posts = {parent: None for parent in parents.values() if parent.startswith("t3_")}
        return thread_depths(dict(parents), posts, look_up)

    def account(self) -> str:
        """``reddit:USERNAME`` (lowercased) of the praw site: bots posting as one user share its limits.

        Falls back on the site's name when the site cannot be read (readiness says why).
        """
        if not self.options.site:
            return super().account()
        try:
            username = praw_site.read_site(self.options.site).username
        except praw_site.SiteError:
            username = None
        return f"reddit:{username.lower()}" if username else f"reddit:{self.options.site}"

    def reddit(self) -> praw.Reddit:
        """The bot's praw client, made on first use; its settings are praw's own (the praw.ini site)."""
        if self._reddit is None:
            assert self.options.site is not None  # readiness() refused to start without one
            # praw 8 reads the site's `timeout` (its own default: 16 s) but never hands it to
            # prawcore; the requestor applies it, so a request ends well inside the claim's lease.
            config = praw_site.read_site(self.options.site)
            self._reddit = praw_site.client(
                self.options.site,
                f"botkit/{__version__} (bot {self.bot}; run by {self.options.contact})",
                config,
                requestor_class=_requestor_class(),
                requestor_kwargs={"timeout": config.timeout},
            )
        return self._reddit

    def secrets(self) -> list[str]:
        try:
            config = praw_site.read_site(self.options.site or "")
        except praw_site.SiteError:  # no such site: nothing secret to hide (readiness says why)
            return []
        return [str(value) for value in (config.client_secret, config.password) if value]

    def describe(self) -> str:
        where = f"r/{self.options.sub}" if self.options.subreddit else "replies only"
        return f"{where} as praw site {self.options.site}"

    @contextmanager
    def _errors(self, what: str | None = None, *, reply: bool = False, listening: bool = False) -> Iterator[None]:
        """praw's and prawcore's exceptions, sorted into what the bot should do about them.

        ``what`` starts each message (the subreddit by default); ``reply``: Reddit's refusals are
        about the parent (deleted, locked, archived, a subreddit that banned the bot), not the bot,
        so they fail that reply only; ``listening``: reading the inbox and ``reply.watch``.
        """
        from praw.exceptions import PRAWException, RedditAPIException
        from prawcore import exceptions as e

        sub = what or (f"r/{self.options.sub}" if self.options.subreddit else self._who())
        try:
            yield
        except RedditAPIException as exc:
            raise (_reply_error(exc, sub) if reply else _api_error(exc, sub)) from None
        except e.TooManyRequests as exc:
            wait = praw_site.header_wait(exc.response.headers, default=DEFAULT_WAIT_S, least=1.0)
            raise RateLimited(f"{sub}: Reddit answered HTTP 429 (too many requests); waiting {wait:g}s", wait) from None
        except Unanswered as exc:
            raise Transient(f"{sub}: no answer from Reddit to {exc}; it may have gone out, so it is looked up before any retry") from None
        except (e.ServerError, e.RequestException) as exc:
            raise Transient(f"{sub}: Reddit unreachable or failing ({_what(exc)}), after prawcore's own retries") from None
        except (e.Forbidden, e.NotFound) if reply else () as exc:  # a reply's 403 or 404 is about its parent
            raise Rejected(f"{sub}: Reddit refused the reply ({_what(exc)}: the parent is gone, locked, or in a subreddit that banned the bot)") from None
        except (e.OAuthException, e.InvalidToken, e.InsufficientScope, e.Forbidden) as exc:
            raise Disabled(
                f"{sub}: Reddit refused the account of praw site {self.options.site!r} ({_what(exc)}); check its credentials, app type and bans"
                + ("; and that reply.watch names public subreddits" if listening else "")
            ) from None
        except (e.NotFound, e.Redirect):
            key = "reply.watch" if listening else "subreddit:"
            raise Disabled(f"{sub}: no such subreddit, or it is banned; check {key}") from None
        except e.BadRequest as exc:
            raise Rejected(f"{sub}: Reddit refused the {'reply' if reply else 'post'} ({_what(exc)})") from None
        except e.ResponseException as exc:
            if "access_token" in str(getattr(exc.response, "url", "")):
                raise Disabled(f"{sub}: Reddit refused the credentials of praw site {self.options.site!r} ({_what(exc)})") from None
            raise Transient(f"{sub}: unexpected answer from Reddit ({_what(exc)})") from None
        except PRAWException as exc:  # praw's client-side checks (a missing setting...)
            raise Disabled(f"{sub}: praw site {self.options.site!r}: {type(exc).__name__}: {exc}") from None


@functools.cache
def _requestor_class() -> type:
    """A prawcore Requestor under which a request that changes something is never retried.

    prawcore's Session retries a request twice by itself after a 5xx, a timeout or a dropped
    connection, below praw and so below botkit. For a GET that is harmless; for ``POST /api/submit``
    it posts twice whenever Reddit made the post and then failed its answer. praw's public
    ``requestor_class`` hook is the seam that touches nothing private: the Session retries only a
    prawcore RequestException or a response it is handed back with a retry status, so turning
    both into :class:`Unanswered` for unsafe methods surfaces them at once, and the bot's own path
    (claim stays unsure, reconcile by the account's submissions, post again only if not there)
    decides. GETs (reconciliation, listings) keep prawcore's retries.

    Every request also gets the requestor's own timeout (praw's ``timeout`` setting): prawcore's
    Session passes its constant (``PRAWCORE_TIMEOUT``, 16 s) otherwise, whatever praw.ini says.
    Built on first use so that importing this module does not import prawcore.
    """
    from prawcore import RequestException, Requestor, Session

    class SubmitOnce(Requestor):
        def request(self, method: str, url: str, **kwargs: Any) -> Any:  # type: ignore[override]  # prawcore calls it so
            kwargs["timeout"] = self.timeout
            if method.upper() in SAFE_METHODS:
                return super().request(method, url, **kwargs)
            what = f"{method.upper()} {urlsplit(url).path}"
            try:
                response = super().request(method, url, **kwargs)
            except RequestException as exc:
                raise Unanswered(f"{what} ({_what(exc)})") from None
            if response.status_code in Session.RETRY_STATUSES:
                raise Unanswered(f"{what} (HTTP {response.status_code})")
            return response

    return SubmitOnce


def _same(shown: str, ours: str) -> bool:
    """Whether Reddit's copy of a title or body is our text: it trims and collapses whitespace, and
    its JSON may escape ``&``, ``<``, ``>`` as HTML entities (once)."""
    words = ours.split()
    return shown.split() == words or html.unescape(shown).split() == words


def _what(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    original = getattr(exc, "original_exception", None)
    return type(original or exc).__name__


def _api_error(exc: Any, sub: str) -> Exception:
    """A RedditAPIException as RateLimited (RATELIMIT), Disabled (about the bot) or Rejected (about the text)."""
    for item in exc.items:
        if item.error_type == "RATELIMIT":
            wait = _message_wait(item.message)
            return RateLimited(f"{sub}: Reddit says {item.message!r}", wait)
    first = exc.items[0]
    message = f"{sub}: Reddit refused the post: {first.error_message}"
    return Disabled(message) if first.error_type in _BOT_ERRORS else Rejected(message)


def _message_wait(message: str) -> float:
    """Seconds in "Take a break for 9 minutes before trying again" (the form praw also parses)."""
    match = _WAIT.search(message or "")
    if match is None:
        return DEFAULT_WAIT_S
    return int(match.group(1)) * _UNITS[match.group(2)[:5]] + 1.0


def _reply_error(exc: Any, what: str) -> Exception:
    """A RedditAPIException about a reply: RateLimited (RATELIMIT), Disabled (no account), else
    Rejected, the parent's fault (deleted, locked, archived...) or the text's."""
    for item in exc.items:
        if item.error_type == "RATELIMIT":
            return RateLimited(f"{what}: Reddit says {item.message!r}", _message_wait(item.message))
    first = exc.items[0]
    message = f"{what}: Reddit refused the reply: {first.error_type}: {first.message}"
    return Disabled(message) if first.error_type == "USER_REQUIRED" else Rejected(message)


def _sub(name: str) -> str:
    """A subreddit's name as ``r/NAME``, ``/r/NAME`` or ``NAME``."""
    return name.strip().removeprefix("/").removeprefix("r/")


def _post_of(context: str) -> str:
    """The post's fullname in an inbox item's ``context`` (``/r/SUB/comments/POST/slug/COMMENT/?context=3``)."""
    parts = context.partition("?")[0].strip("/").split("/")
    return f"t3_{parts[3]}" if len(parts) > 3 and parts[2] == "comments" else context


def _unsummoned(body: str, me: str) -> str:
    """A comment's body without the ``u/ME`` that summons the bot at its start (what it answers is the rest)."""
    return re.sub(rf"^\s*(?:/?u/{re.escape(me)}\b[\s,:]*)+", "", body, flags=re.IGNORECASE).strip()


def _url_of(thing: Any) -> str | None:
    """A listed comment's or post's web address, from what the listing gave."""
    permalink = vars(thing).get("permalink")
    return f"https://www.reddit.com{permalink}" if permalink else None
