"""Secrets out of every message: one place that decides what a log line, an error, ``botkit status``,
the console or the ledger may show.

Two kinds of secret, two ways to hide them:

* **by shape**, in any text, whoever wrote it (a library's error message included): the password
  of a URL's userinfo (``scheme://user:***@host``) and the value of every credential-like
  ``name=value`` pair, in a URL's query or fragment or in a DSN (``?access_token=***``,
  ``password=***``), see :func:`is_credential_key`;
* **by value**, with a :class:`Redactor` that knows them: every value that came from the
  environment (``${VAR}`` in config.yaml), a target's credentials, the ledger URL's password.
  A URL among them is kept readable (its host tells the user which service failed) and only its
  credentials are hidden, wherever they show up alone too; a URL from the environment has its path
  hidden as well (a webhook's token is a path segment).

Redaction happens where a message is made or stored, not only where it is printed, so the ledger
(``last_error``, reasons, history) never holds a secret that a later ``botkit status`` or the
console could show; the CLI and the console pass what they show through it again, as a last net.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

MASK = "***"
#: A secret shorter than this is hidden only as a whole word: masking every "en" or "30s" inside
#: other words would garble messages without hiding anything (such values are no credentials).
SHORT = 4

#: Names of ``name=value`` pairs whose value is a credential, compared without case, ``-``, ``_``, ``.``...
CREDENTIAL_NAMES = frozenset({"sid", "session", "sessionid", "jwt", "bearer", "cookie", "codeverifier"})
#: ... and the endings that make a name one (``access_token``, ``client_secret``, ``api_key``,
#: ``db_password``, ``x-amz-signature``): a harmless name that ends so (``bypass``) is hidden too.
CREDENTIAL_ENDINGS = (
    "pass",
    "passwd",
    "password",
    "passphrase",
    "pw",
    "pwd",
    "token",
    "secret",
    "key",
    "sig",
    "signature",
    "auth",
    "authorization",
    "credential",
    "credentials",
)

# A URL in free text: a scheme, then everything up to the next whitespace (a password may hold
# any other character unquoted).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_SCHEME = re.compile(r"[^:/]+://")
_PLAIN_HOST = re.compile(r"(\[[^\]]*\]|[^:@\[\]]*)(:\d*)?")  # host, [IPv6] host, with or without :port
# name=value anywhere: in a query (?a=b&c=d), a fragment (#access_token=...), a DSN (password=x host=y).
_PAIR = re.compile(r"(?<![\w.\-])(?P<name>[A-Za-z][\w.\-]*)=(?P<value>[^\s&#]*)")


def is_credential_key(name: str) -> bool:
    """Whether a ``name=value`` pair holds a credential: password, pass, pwd, token, access_token,
    key, api_key, apikey, secret, client_secret, auth, sig, signature and their kin."""
    plain = re.sub(r"[\-_.]", "", name.lower())
    return plain in CREDENTIAL_NAMES or plain.endswith(CREDENTIAL_ENDINGS)


def _mask_pair(match: re.Match[str]) -> str:
    """A value runs to the next space, ``&`` or ``#`` (a secret may end in any other character),
    so text glued to a value hidden before (``?password=***: failed``) is left as it is: every
    layer may redact again without eating what follows."""
    value = match["value"]
    return f"{match['name']}={MASK}" if is_credential_key(match["name"]) and value and not value.startswith(MASK) else match[0]


def _userinfo_end(rest: str) -> int:
    """Where the userinfo of ``rest`` (a URL after its ``scheme://``) ends: the index of its ``@``, or -1.

    A password may hold ``@``, ``:`` and ``/`` unquoted, so the userinfo runs past the first ``/``
    whenever the part before it is not a plain ``host[:port]`` or holds an ``@`` itself: to the last
    ``@`` that does not start a path segment (``https://host/@user`` is a profile link), or to the
    last ``@`` of all when every one does (a password that ends in ``/``). After a plain host, only
    such an ``@`` before the query counts (``?email=a@b`` is a parameter).
    """
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority = rest[:cut]
    query = min((i for i in (rest.find(c, cut) for c in "?#") if i >= 0), default=len(rest))
    plain = "@" not in authority and _PLAIN_HOST.fullmatch(authority) is not None
    ats = [i for i in range(query if plain else len(rest)) if rest[i] == "@" and (i == 0 or rest[i - 1] != "/")]
    if ats:
        return ats[-1]
    return -1 if plain else rest.rfind("@")


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without its userinfo, user, password)``, as written (not unquoted); the user name ends
    at the first ``:``, the password at the last ``@`` (see :func:`_userinfo_end`), so neither needs
    quoting. ``(url, None, None)`` for a URL without userinfo."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url, None, None
    rest = url[scheme.end() :]
    end = _userinfo_end(rest)
    if end < 0:
        return url, None, None
    user, colon, password = rest[:end].partition(":")
    return scheme[0] + rest[end + 1 :], user, password if colon else None


def redact_url(url: str) -> str:
    """The URL with its userinfo password and its credential-like parameters hidden: everything
    between the user name and the last ``@`` (a password with ``@``, ``:`` or ``/`` in it, quoted
    or not, never shows in whole or in part) and the value of ``password=``, ``access_token=``..."""
    bare, user, password = split_userinfo(url)
    if user is not None:
        scheme, _, rest = bare.partition("://")
        url = f"{scheme}://{user}{'' if password is None else ':' + MASK}@{rest}"
    return _PAIR.sub(_mask_pair, url)


def redact_text(text: str) -> str:
    """``text`` with every URL's credentials and every credential-like ``name=value`` hidden (by shape: no secret needs to be known)."""
    return _PAIR.sub(_mask_pair, _URL.sub(lambda m: redact_url(m[0]), text))


def url_secrets(url: str) -> set[str]:
    """The credentials in a URL, as written and percent-decoded: what must not show even alone."""
    bare, _, password = split_userinfo(url)
    found = {m["value"] for m in _PAIR.finditer(bare) if is_credential_key(m["name"])} | {password or ""}
    return {form for value in found for form in (value, unquote(value), unquote_plus(value)) if form}


def _forms(value: str) -> set[str]:
    """What a secret value may look like in a message: as it is, or quoted into a URL or a form."""
    return {value, quote(value, safe=""), quote_plus(value)}


@dataclass(frozen=True)
class Redactor:
    """Hides known secrets (and, by shape, any URL credentials) in a message: ``redact(text)``.

    Made with :meth:`of` from the values to hide; ``a | b`` hides both's. Immutable, so a config,
    a bot spec and the ledger can share one.
    """

    secrets: frozenset[str] = frozenset()

    @classmethod
    def of(cls, values: Iterable[str | None], *, url_paths: bool = False) -> Redactor:
        """A redactor for these values: a URL's credentials (its host stays readable), any other value whole.

        With ``url_paths`` (values from the environment), a URL's path is hidden too: a webhook or a
        capability URL carries its token as a path segment, which no name marks as a credential.
        """
        found: set[str] = set()
        for value in values:
            if not value:
                continue
            if _URL.fullmatch(value.strip()):
                found |= url_secrets(value.strip())
                path = urlsplit(split_userinfo(value.strip())[0]).path
                if url_paths and len(path.strip("/")) >= SHORT:
                    found |= _forms(path)
            else:
                found |= _forms(value)
        return cls(frozenset(found))

    def __or__(self, other: Redactor) -> Redactor:
        return Redactor(self.secrets | other.secrets)

    @cached_property
    def _known(self) -> re.Pattern[str] | None:
        """One pattern for every secret, longest first (a secret inside another is hidden with it)."""
        parts = [
            re.escape(s) if len(s) >= SHORT else rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])" for s in sorted(self.secrets, key=lambda s: (-len(s), s))
        ]
        return re.compile("|".join(parts)) if parts else None

    def __call__(self, text: str) -> str:
        """``text`` with every URL credential and every known secret replaced by ``***``."""
        text = redact_text(text)
        return text if self._known is None else self._known.sub(MASK, text)
