"""The console's numeric form, query and path fields, checked in one place.

A field is typed by whoever sends the request, so it is untrusted: ``str.isdigit`` accepts
``"²"`` and ``"٣"`` (which ``int`` refuses, or reads as a digit no reviewer typed), ``int`` refuses
strings over 4300 digits, and the ledger's SQLite refuses numbers past 64 bits. Each of those
was a 500 with a server traceback; here each is a :class:`BadField`, which the app answers with
400 and one line naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botkit.errors import BotkitError

#: The largest integer SQLite stores (a signed 64-bit row id): no candidate id can be larger.
SQLITE_MAX = 2**63 - 1
_MAX_DIGITS = len(str(SQLITE_MAX))
_SHOWN = 40  # characters of a bad value quoted back: a 5000-digit field is not echoed whole


class BadField(BotkitError):
    """A request field is not the number it must be; the app answers 400 with this message."""


def whole_number(value: Any, field: str, *, low: int = 0, high: int = SQLITE_MAX) -> int:
    """``value`` as an int from ``low`` to ``high``, if it is ASCII digits only; else :class:`BadField`.

    The digits are counted before ``int`` reads them, so no length of input costs more than a
    string comparison, and no digit but 0-9 (superscripts, other scripts' digits) is taken.
    """
    text = str(value).strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS or not low <= int(text) <= high:
        shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
        raise BadField(f"{field} must be a whole number from {low} to {high} (got {shown!r})")
    return int(text)


def whole_numbers(values: Iterable[Any], field: str, *, low: int = 0, high: int = SQLITE_MAX) -> list[int]:
    """Every value of a repeated field, each checked by :func:`whole_number`: one bad value refuses them all."""
    return [whole_number(value, field, low=low, high=high) for value in values]
