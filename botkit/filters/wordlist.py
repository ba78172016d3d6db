"""Banned-word matching that sees through leetspeak and stretched letters but respects word edges.

Matching is by whole words, never substrings, so "classic" does not contain "ass" (the Scunthorpe
problem). Each word of a text is folded to a canonical form: accents dropped, case folded, leet
digits and symbols read as letters (``4``/``@`` → a, ``$`` → s, ``0`` → o, ...; ``1``, ``!`` and ``|``
may be i or l, so both readings are tried), and runs of one letter squashed to a single letter with
their lengths kept. A word matches a banned word when the squashed letters are equal and every run
is at least as long as the banned word's ("fuuuck" matches "fuck"; "as" does not match "ass").
A banned entry ending in ``*`` matches any word starting with it ("fuck*" matches "fucking");
an entry of several words matches those words in a row.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_LEET = str.maketrans({"0": "o", "3": "e", "4": "a", "@": "a", "5": "s", "$": "s", "7": "t", "+": "t", "8": "b", "9": "g"})
_AMBIGUOUS = {"1": "il", "!": "il", "|": "il"}
_FIRST_READING = str.maketrans({c: letters[0] for c, letters in _AMBIGUOUS.items()})
_AMBIGUOUS_RE = re.compile("[" + re.escape("".join(_AMBIGUOUS)) + "]")
_MAX_AMBIGUOUS = 4  # "1111111" would make 128 readings; past this, read them all as i
_TOKEN = re.compile(r"(?:[^\W_]|[@$!|+])+")
_EDGE_PUNCTUATION = "!|+"  # "shit!" ends a sentence; "sh!t" hides an i
_REPEATS = re.compile(r"(.)\1+")
_RUNS = re.compile(r"(.)\1*")
_CACHE_LIMIT = 1 << 16

Reading = tuple[str, str]  # (letters with repeats squashed, the full reading)


def _runs(reading: str) -> tuple[int, ...]:
    return tuple(len(m.group()) for m in _RUNS.finditer(reading))


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(token: str) -> list[Reading]:
    """Every canonical reading of one word (usually one)."""
    word = token.strip(_EDGE_PUNCTUATION) or token
    word = _strip_accents(word).casefold().translate(_LEET)
    spots = [m.start() for m in _AMBIGUOUS_RE.finditer(word)]
    if not spots or len(spots) > _MAX_AMBIGUOUS:
        readings = [word.translate(_FIRST_READING)]
    else:
        readings = []
        for choice in itertools.product(*(_AMBIGUOUS[word[i]] for i in spots)):
            chars = list(word)
            for i, c in zip(spots, choice):
                chars[i] = c
            readings.append("".join(chars))
    return [(_REPEATS.sub(r"\1", r), r) for r in readings]


@dataclass(frozen=True)
class _Word:
    letters: str
    runs: tuple[int, ...]
    prefix: bool

    def matches(self, readings: list[Reading]) -> bool:
        """Same letters (or, for a prefix, starting with them), each run at least as long."""
        for letters, reading in readings:
            same = letters.startswith(self.letters) if self.prefix else letters == self.letters
            if same and all(a >= b for a, b in zip(_runs(reading), self.runs)):
                return True
        return False


@dataclass(frozen=True)
class _Entry:
    text: str
    words: tuple[_Word, ...]


class BannedWords:
    """A list of banned words and phrases, matched against texts word by word."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._exact: dict[str, list[_Entry]] = {}
        self._prefix: dict[str, list[_Entry]] = {}
        self._cache: dict[str, list[Reading]] = {}
        for text in entries:
            self._add(text)
        self._prefix_lengths = sorted({len(k) for k in self._prefix})
        # Most words share not even their first letters with any entry: one set lookup rules them out.
        keys = [*self._exact, *self._prefix]
        self._shortest = min(map(len, keys), default=0)
        self._starts = {k[: self._shortest] for k in keys}

    def _add(self, text: str) -> None:
        parts = text.split()
        if not parts:
            return
        per_part = []
        for i, part in enumerate(parts):
            prefix = i == len(parts) - 1 and part.endswith("*")
            per_part.append([_Word(letters, _runs(reading), prefix) for letters, reading in fold(part.rstrip("*"))])
        # An entry with an ambiguous letter ("h1t") stands for each of its readings.
        for words in itertools.product(*per_part):
            table = self._prefix if words[0].prefix else self._exact
            table.setdefault(words[0].letters, []).append(_Entry(text, words))

    def _readings(self, token: str) -> list[Reading]:
        found = self._cache.get(token)
        if found is None:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[token] = fold(token)
        return found

    def find(self, text: str) -> tuple[str, str] | None:
        """The first banned entry in ``text`` and the words that matched it, or None."""
        tokens = _TOKEN.findall(text)
        readings = [self._readings(t) for t in tokens]
        for i, here in enumerate(readings):
            for letters, _ in here:
                if letters[: self._shortest] not in self._starts:
                    continue
                for entry in self._candidates(letters):
                    span = readings[i : i + len(entry.words)]
                    if len(span) == len(entry.words) and all(w.matches(r) for w, r in zip(entry.words, span)):
                        return entry.text, " ".join(t.strip(_EDGE_PUNCTUATION) or t for t in tokens[i : i + len(entry.words)])
        return None

    def _candidates(self, letters: str) -> Iterable[_Entry]:
        yield from self._exact.get(letters, ())
        for n in self._prefix_lengths:
            if n > len(letters):
                break
            yield from self._prefix.get(letters[:n], ())
