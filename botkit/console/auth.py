"""The console's one secret: an access token, and what is derived from it.

The console can post to live accounts, so every request needs the token: as ``Authorization:
Bearer TOKEN`` (scripts, monitoring) or as the session cookie the login form sets. The cookie and
the CSRF token are HMACs of the token, not the token itself: nothing stored in the browser or
written into a page reveals it, and changing the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from botkit.errors import BotkitError

TOKEN_ENV = "BOTKIT_CONSOLE_TOKEN"
TOKEN_SUFFIX = ".console-token"
_MIN_LENGTH = 16


@dataclass(frozen=True)
class Token:
    """The access token and where it came from; ``new``: generated just now (print it once)."""

    value: str
    source: str
    new: bool = False

    def _derive(self, purpose: str) -> str:
        return hmac.new(self.value.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The session cookie's value."""
        return self._derive("botkit console session")

    @property
    def csrf(self) -> str:
        """The CSRF token every form carries: only a page served to a logged-in browser has it."""
        return self._derive("botkit console csrf")

    def matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.value.encode())

    def session_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.session.encode())

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def token_file(ledger_url: str, config_dir: Path) -> Path:
    """Beside a SQLite ledger (``botkit.db.console-token``); beside the config for a database server."""
    if ledger_url.startswith("sqlite:///"):
        return Path(ledger_url.removeprefix("sqlite:///").partition("?")[0] + TOKEN_SUFFIX)
    return config_dir / f"botkit{TOKEN_SUFFIX}"


def load_token(path: Path) -> Token:
    """``$BOTKIT_CONSOLE_TOKEN`` when set; else the token in ``path``, created (mode 0600) on first use."""
    value = os.environ.get(TOKEN_ENV)
    if value is not None:
        if len(value) < _MIN_LENGTH:
            raise BotkitError(f"${TOKEN_ENV} is too short to guard a console that posts: use at least {_MIN_LENGTH} characters")
        return Token(value, f"${TOKEN_ENV}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    except OSError as exc:
        raise BotkitError(f"{path}: cannot create the console token file ({exc.strerror})") from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return Token(value, str(path), new=True)


def _read_token(path: Path) -> Token:
    """The stored token, refused when others may read it (then it may be known already)."""
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BotkitError(f"{path}: cannot read the console token file ({getattr(exc, 'strerror', None) or exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BotkitError(f"{path}: the console token file is readable by others; run chmod 600 {path}, or delete it for a new token")
    if len(value) < _MIN_LENGTH:
        raise BotkitError(f"{path}: the console token file holds no usable token; delete it and a new one is made at the next start")
    return Token(value, str(path))
