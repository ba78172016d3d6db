"""``reddit``: the top posts of subreddits through Reddit's API (praw), SubredditNN style.

Credentials and endpoints come only from praw's own configuration (a praw.ini site, or the
``praw_*`` environment variables), never from botkit's flags or config.yaml: secrets then stay in
the one place Reddit users already keep them, and every praw setting works as praw documents it.

Reddit lists at most about 1000 posts per (subreddit, time filter); ``--time all-filters`` takes
the union over the six time filters to get past that cap.

``--comments`` makes a pair corpus instead: the comments of those posts, each with the text it
answers as its ``parent`` (the comment above it, or the post's title for a top-level comment).
One request per post fetches its comment forest; the "load more comments" stubs are dropped
rather than followed (``replace_more(limit=0)``), since each would cost another request and the
comments Reddit sends first are its best ones anyway.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from botkit import __version__, praw_site
from botkit.corpus import REDDIT_GONE, Document, iso_utc
from botkit.errors import SourceError
from botkit.options import Options
from botkit.sources import Source

if TYPE_CHECKING:
    import praw
    from praw.models import Submission

log = logging.getLogger(__name__)

TIME_FILTERS = ("all", "year", "month", "week", "day", "hour")  # broadest first: most posts early
ALL_FILTERS = "all-filters"
USER_AGENT = f"botkit/{__version__} (corpus fetcher)"
TOKEN_PATH = "/api/v1/access_token"
CREDENTIALS_HELP = (
    "put client_id and client_secret (plus username and password for a script app) in a praw.ini "
    "section (~/.config/praw.ini) chosen with --site, or set praw_client_id and praw_client_secret "
    "in the environment; create the app at https://www.reddit.com/prefs/apps"
)
# prawcore retries 5xx and dropped connections itself, but not 429: that is ours to wait out.
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_MAX_WAIT = 60.0  # seconds; a server asking for longer gets retried sooner, then an error
RATE_LIMIT_DEFAULT_WAIT = 10.0  # when a 429 says nothing about how long to wait
_SUBREDDIT = re.compile(r"[A-Za-z0-9_]{2,21}")


class RedditOptions(Options):
    subreddit: list[str] = Field(
        min_length=1, description="subreddit to take top posts from, as NAME or r/NAME (repeatable)"
    )
    time: Literal["hour", "day", "week", "month", "year", "all", "all-filters"] = Field(
        "all",
        description="top posts of the past hour, day, week, month or year, or of all time (all, the default); "
        "all-filters takes the union of all six, past Reddit's ~1000-post cap per listing",
    )
    limit: int | None = Field(
        1000, ge=1, description="posts to read per subreddit and time filter (default 1000; 'none' = all Reddit lists)"
    )
    site: str | None = Field(
        None, description="praw.ini site (section) holding the Reddit app's credentials (default: $praw_site, else DEFAULT)"
    )
    selftext: bool = Field(False, description="add a self post's body after its title, separated by a blank line")
    min_score: int | None = Field(None, description="skip posts that score below this")
    over_18: bool = Field(False, description="include NSFW posts (skipped by default)")
    comments: bool = Field(
        False,
        description="fetch the posts' comments instead of the posts: a pair corpus, each comment with the comment "
        "or post title it answers as parent",
    )
    comment_depth: int = Field(
        3, ge=1, description="with --comments: reply levels to read, 1 = top-level comments only (default 3)"
    )
    comments_per_post: int = Field(
        100, ge=1, description="with --comments: most comments taken from one post, shallowest first (default 100)"
    )

    @field_validator("subreddit")
    @classmethod
    def _bare_names(cls, names: list[str]) -> list[str]:
        """Accept what users paste (``r/name``, ``/r/name/``) and reject what Reddit would 404 on."""
        bare = []
        for name in names:
            stripped = re.sub(r"^/?r/", "", name.strip()).strip("/")
            if not _SUBREDDIT.fullmatch(stripped):
                raise PydanticCustomError(
                    "subreddit_name", "{name} is not a subreddit name (2-21 letters, digits or _)", {"name": repr(name)}
                )
            bare.append(stripped)
        return bare

    @field_validator("limit", mode="before")
    @classmethod
    def _none_word(cls, value: Any) -> Any:
        """``--limit none`` on the command line means what ``limit: null`` means in YAML."""
        return None if isinstance(value, str) and value.strip().lower() == "none" else value


class RedditSource(Source):
    summary = "top posts of subreddits via Reddit's API (praw; credentials from praw.ini or praw_* env)"
    Options = RedditOptions
    options: RedditOptions

    def default_name(self) -> str:
        names = self.options.subreddit
        return names[0].lower() if len(names) == 1 else "reddit"

    def site(self) -> str:
        """The praw.ini section praw will read, named in messages (its values never are)."""
        return self.options.site or os.getenv("praw_site") or "DEFAULT"

    def time_filters(self) -> tuple[str, ...]:
        return TIME_FILTERS if self.options.time == ALL_FILTERS else (self.options.time,)

    def documents(self) -> Iterator[Document]:
        site = self.site()
        reddit = connect(site)
        seen: set[str] = set()  # time filters overlap (and r/all overlaps any subreddit): each post once
        for name in self.options.subreddit:
            with reddit_errors(site, name):
                for post in self.top_posts(reddit, name):
                    if post.id in seen:
                        continue
                    seen.add(post.id)
                    doc = self.document(post)
                    if doc is not None:
                        yield from self.replies(post, doc.text) if self.options.comments else [doc]

    def top_posts(self, reddit: praw.Reddit, name: str) -> Iterator[Submission]:
        """r/name's top posts for each time filter asked for, in Reddit's order."""
        for time_filter in self.time_filters():
            yield from patient(reddit.subreddit(name).top(time_filter=time_filter, limit=self.options.limit), name)

    def document(self, post: Submission) -> Document | None:
        """The post as a document, or None for what would only add noise to a corpus."""
        o = self.options
        if post.stickied or post.title in REDDIT_GONE or post.selftext in REDDIT_GONE:
            return None  # stickies are mod announcements; [removed] and [deleted] are not text
        if (post.over_18 and not o.over_18) or (o.min_score is not None and post.score < o.min_score):
            return None
        text = f"{post.title}\n\n{post.selftext}" if o.selftext and post.selftext else post.title
        return Document(text, label=post.subreddit.display_name, id=post.id, source="reddit", created=iso_utc(post.created_utc))


    def replies(self, post: Submission, title: str) -> Iterator[Document]:
        """The post's comments, level by level, each with the text it answers as parent.

        Breadth first, so a per-post limit keeps the top-level comments, which are the most read;
        a comment whose parent is gone ([deleted]) is skipped, since it answers nothing we have.
        """
        from praw.models import Comment

        o = self.options
        post.comments.replace_more(limit=0)
        texts = {f"t3_{post.id}": title}
        depths = {f"t3_{post.id}": 0}
        taken = 0
        for comment in post.comments.list():  # breadth first: a parent always comes before its replies
            if not isinstance(comment, Comment):  # "load more" stubs: replace_more(limit=0) removed them
                continue
            depth = depths[f"t1_{comment.id}"] = depths.get(comment.parent_id, 0) + 1
            if depth > o.comment_depth or taken >= o.comments_per_post:
                return
            if comment.body in REDDIT_GONE or comment.stickied:
                continue
            parent = texts.get(comment.parent_id)
            texts[f"t1_{comment.id}"] = comment.body
            if parent is None:
                continue
            yield Document(
                comment.body,
                label=post.subreddit.display_name,
                id=f"t1_{comment.id}",
                source="reddit",
                created=iso_utc(comment.created_utc),
                parent=parent,
            )
            taken += 1


def connect(site: str) -> praw.Reddit:
    """A read-capable praw client for ``site``, or a SourceError saying what to configure.

    praw is asked first what the site holds, so botkit's user agent is added only where the
    config has none, and missing credentials are reported before any request is made.
    """
    try:
        config = praw_site.read_site(site)
    except praw_site.SiteError as exc:
        hint = "; add that section or pick another with --site" if "has no [" in str(exc) else ""
        raise SourceError(f"{exc}{hint}") from None
    if not config.client_id:
        raise SourceError(f"no Reddit API credentials in praw site {site!r}: {CREDENTIALS_HELP}")
    if not config.client_secret:
        raise SourceError(f"praw site {site!r} has a client_id but no client_secret: {CREDENTIALS_HELP}")
    return praw_site.client(site, USER_AGENT, config)


def patient(listing: Iterator[Submission], subreddit: str) -> Iterator[Submission]:
    """The listing's posts, waiting out HTTP 429 as long as Reddit asks (capped), a few times.

    A praw listing that raised keeps its place (the failed page is asked for again), so the
    wait resumes the listing rather than restarting it.
    """
    from prawcore.exceptions import TooManyRequests

    refusals = 0
    while True:
        try:
            post = next(listing)
        except StopIteration:
            return
        except TooManyRequests as exc:
            refusals += 1
            if refusals > RATE_LIMIT_RETRIES:
                raise
            wait = praw_site.header_wait(exc.response.headers, default=RATE_LIMIT_DEFAULT_WAIT, most=RATE_LIMIT_MAX_WAIT)
            log.warning(
                "r/%s: Reddit asks to slow down (HTTP 429); waiting %.1f s (%d/%d)", subreddit, wait, refusals, RATE_LIMIT_RETRIES
            )
            time.sleep(wait)
            continue
        refusals = 0
        yield post


@contextmanager
def reddit_errors(site: str, subreddit: str) -> Iterator[None]:
    """Turn praw/prawcore failures into one-line SourceErrors that name the site or subreddit."""
    from prawcore.exceptions import PrawcoreException

    try:
        yield
    except PrawcoreException as exc:
        raise SourceError(explain(exc, site, subreddit)) from None


def explain(exc: Exception, site: str, subreddit: str) -> str:
    """The user's version of a prawcore exception; never the credentials, only where they live."""
    from prawcore import exceptions as e

    sub = f"r/{subreddit}"
    if isinstance(exc, e.Redirect):
        return f"{sub}: no such subreddit (Reddit redirected to {exc.path}); check the name"
    if isinstance(exc, e.NotFound):
        return f"{sub}: no such subreddit (HTTP 404: it does not exist or was banned); check the name"
    if isinstance(exc, e.Forbidden):
        return f"{sub}: access denied (HTTP 403: the subreddit is private or quarantined)"
    if isinstance(exc, e.TooManyRequests):
        return f"{sub}: Reddit still refuses with HTTP 429 (too many requests) after {RATE_LIMIT_RETRIES} waits; try again later"
    if isinstance(exc, e.OAuthException) or (isinstance(exc, e.ResponseException) and _is_token_request(exc.response.url)):
        why = exc.error if isinstance(exc, e.OAuthException) else f"HTTP {exc.response.status_code}"
        return (
            f"Reddit refused the credentials of praw site {site!r} ({why}); check its client_id and client_secret "
            "(and username and password for a script app), and any praw_* environment variables overriding them"
        )
    if isinstance(exc, (e.InvalidToken, e.InsufficientScope)):
        return f"{sub}: Reddit rejects the access token of praw site {site!r} even after renewing it; check that app's type and credentials"
    if isinstance(exc, e.ServerError):
        return f"{sub}: Reddit's servers failed (HTTP {exc.response.status_code}) even after retries; try again later"
    if isinstance(exc, e.RequestException):
        host = urlsplit(str(exc.request_args[1])).netloc if len(exc.request_args) > 1 else "Reddit"
        return (
            f"cannot reach {host} ({type(exc.original_exception).__name__}, after retries); "
            f"check the network, or oauth_url/reddit_url in praw site {site!r}"
        )
    if isinstance(exc, e.ResponseException):
        return f"{sub}: Reddit answered HTTP {exc.response.status_code} to {urlsplit(exc.response.url).path}"
    return f"{sub}: Reddit API error: {exc}"


def _is_token_request(url: str | None) -> bool:
    return urlsplit(url or "").path.endswith(TOKEN_PATH)
