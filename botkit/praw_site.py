"""praw's own configuration, shared by the ``reddit`` source and the ``reddit`` target.

botkit never takes Reddit credentials itself: a praw.ini site (or praw's ``praw_*`` environment
variables) holds them. This module is the one place that reads such a site, turns its failures
into messages that never quote a line of the file (a line may hold a password), makes the praw
client, and reads how long Reddit asks a client to wait.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botkit.errors import BotkitError

if TYPE_CHECKING:
    import praw
    from praw.config import Config

#: Where praw looks for its configuration, for messages.
WHERE = "praw reads $XDG_CONFIG_HOME/praw.ini or ~/.config/praw.ini, then ./praw.ini"


class SiteError(BotkitError):
    """A praw.ini site that is missing or cannot be read. The message names the file or site only."""


def read_site(site: str) -> Config:
    """praw's settings for ``site`` (praw.ini merged with ``praw_*`` variables), or a :class:`SiteError`."""
    from praw.config import Config

    try:
        return Config(site)
    except configparser.NoSectionError:
        raise SiteError(f"praw.ini has no [{site}] site ({WHERE})") from None
    except configparser.Error as exc:  # its text may quote a line, and a line may hold a password
        where = getattr(exc, "source", None) or "a praw.ini file"
        raise SiteError(f"{where}: malformed praw.ini ({type(exc).__name__}); each setting must be 'key = value' under a [site] header") from None
    except ValueError as exc:  # praw's message names the option and its bad value (a number)
        raise SiteError(f"praw site {site!r}: {exc}") from None


def client(site: str, user_agent: str, config: Config | None = None, **settings: Any) -> praw.Reddit:
    """A praw client for ``site`` (its settings ``config`` when the caller has read them already);
    ``user_agent`` is used only where the site sets none."""
    import praw

    if not (config or read_site(site)).user_agent:
        settings["user_agent"] = user_agent
    return praw.Reddit(site, check_for_updates=False, **settings)


def header_wait(headers: Mapping[str, str], *, default: float, least: float = 0.0, most: float = float("inf")) -> float:
    """Seconds an HTTP 429 asks a client to wait: ``retry-after``, else ``x-ratelimit-reset``.

    Either may be absent or an HTTP date (not seconds); then ``default``. Kept within [least, most].
    """
    for key in ("retry-after", "x-ratelimit-reset"):
        try:
            return min(max(float(headers[key]), least), most)
        except (KeyError, TypeError, ValueError):
            continue
    return default
