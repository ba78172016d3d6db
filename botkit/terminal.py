"""Stored text shown on a terminal: control characters made visible, everything else as it is.

Candidates, posts, labels, parents and errors come from models, corpora and remote services, so
they may hold terminal control characters: ``ESC[2J`` clears the reviewer's screen, an OSC
sequence (``ESC]0;...BEL``) sets the window title, a backspace or a carriage return writes over
what was printed before; a bidirectional override (``U+202E``) makes the terminal show the
characters after it in another order than they are ("Trojan Source"). A reviewer must see what
would be posted, not have the terminal obey it.
Every command that prints stored text (``run``, ``status``, ``history``, ``review``, ``demo``)
prints it through :func:`say`, so each such character shows as an escape (``\\x1b``, ``\\r``),
once, in one place (the overrides as ``\\u202e``). Newlines and tabs are layout and stay; so do
non-ASCII letters, emoji and the plain direction marks (``U+200E``, ``U+200F``) that right-to-left
text uses.
"""

from __future__ import annotations

import sys
from typing import TextIO

_KEPT = "\n\t"
#: The C0 controls, DEL and the C1 controls (``\x9b`` is a one-byte CSI to some terminals).
_CONTROLS = [c for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in _KEPT]
#: The bidirectional embeddings, overrides and isolates, which reorder what follows them.
BIDI_CONTROLS = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_VISIBLE = {c: "\\r" if c == 0x0D else f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in BIDI_CONTROLS}


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab, and every bidirectional override, written as its escape."""
    return text.translate(_VISIBLE)


def say(text: object = "", *, file: TextIO | None = None, flush: bool = False) -> None:
    """``print`` for stored text: :func:`printable` first. ``file`` defaults to stdout at call time (as pytest's capsys needs)."""
    print(printable(str(text)), file=file or sys.stdout, flush=flush)
