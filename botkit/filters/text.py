"""How the word-level filters see a text: lowercased words, punctuation and spacing ignored.

Dedupe, novelty and repetition must agree on what a "word" is, or a sample could pass one check
and fail another for reasons of tokenisation alone; they all use :func:`words`.
"""

from __future__ import annotations

import re

# A word: letters/digits, with inner apostrophes kept ("don't" is one word, not "don" + "t").
_WORD = re.compile(r"\w+(?:'\w+)*")


def words(text: str) -> list[str]:
    """The case-folded words of ``text``; typographic apostrophes count as plain ones."""
    return _WORD.findall(text.casefold().replace("\u2019", "'"))
