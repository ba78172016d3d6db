"""Finding texts that are the same or nearly the same as texts seen before.

Two texts are the same when their words (:func:`botkit.filters.text.words`: case, punctuation
and spacing ignored) are; nearly the same when the Jaccard similarity of their word 3-gram sets
reaches a threshold. Comparing a new text with every stored one would cost O(history) each, so
candidates come from MinHash locality-sensitive hashing (32 hash functions cut into bands; two
texts that agree on a whole band are candidates), and each candidate is then checked exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from botkit.filters.text import words

SHINGLE_WORDS = 3
_HASHES = 32
_rng = np.random.default_rng(0x5EED)  # fixed: the same text always gets the same signature
_A = _rng.integers(1, 1 << 63, _HASHES, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd multipliers
_B = _rng.integers(0, 1 << 63, _HASHES, dtype=np.uint64)
_BAND_MIX = _rng.integers(1, 1 << 63, _HASHES, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_CHUNK = 256  # texts whose signatures are computed at once: keeps the (shingles x hashes) matrix in cache


def _rows_per_band(threshold: float) -> int:
    """The widest band that still makes a pair at the threshold a candidate with probability >= 98 %.

    Wider bands mean fewer false candidates to check; too wide and true near-twins are missed.
    """
    for rows in range(8, 1, -1):
        if 1 - (1 - threshold**rows) ** (_HASHES // rows) >= 0.98:
            return rows
    return 1


@dataclass(frozen=True, slots=True)
class Features:
    """What one text is compared by."""

    key: int  # its normalised words, hashed: equal keys are exact duplicates
    shingles: frozenset[int]
    bands: tuple[int, ...]


_GONE = Features(0, frozenset(), ())


def _shingles(ws: list[str]) -> frozenset[int]:
    """Hashes of the word 3-grams (of the whole text when shorter)."""
    if len(ws) < SHINGLE_WORDS:
        return frozenset({hash(tuple(ws))}) if ws else frozenset()
    return frozenset(map(hash, zip(*(ws[i:] for i in range(SHINGLE_WORDS)))))


class SimilarTexts:
    """A store of texts that answers: is this new text the same as, or close to, one of them?

    Hashes are Python's own (salted per process): nothing here is saved, so they need not be stable.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.rows = _rows_per_band(threshold)
        self._exact: dict[int, int] = {}
        self._buckets: dict[int, list[int]] = {}
        self._entries: list[Features] = []
        self._what: list[str] = []

    def features(self, texts: Sequence[str]) -> list[Features]:
        per_text = [words(t) for t in texts]
        shingles = [_shingles(ws) for ws in per_text]
        bands = self._band_keys(shingles) if self.threshold < 1 else [()] * len(texts)
        return [Features(hash(" ".join(ws)), s, b) for ws, s, b in zip(per_text, shingles, bands)]

    def _band_keys(self, shingles: list[frozenset[int]]) -> list[tuple[int, ...]]:
        """The LSH band keys of each shingle set (none for a text without words)."""
        out: list[tuple[int, ...]] = []
        for start in range(0, len(shingles), _CHUNK):
            chunk = shingles[start : start + _CHUNK]
            sizes = np.array([len(s) for s in chunk])
            nonempty = sizes > 0
            keys = [()] * len(chunk)
            if nonempty.any():
                values = np.fromiter((h for s in chunk for h in s), dtype=np.int64, count=int(sizes.sum())).view(np.uint64)
                hashed = values[:, None] * _A[None, :] + _B[None, :]
                offsets = (np.cumsum(sizes) - sizes)[nonempty]
                signatures = np.minimum.reduceat(hashed, offsets, axis=0)
                bands = _HASHES // self.rows  # a few signature values may go unused
                mixed = (signatures * _BAND_MIX)[:, : bands * self.rows]
                banded = mixed.reshape(len(offsets), bands, self.rows).sum(axis=2)
                banded += np.arange(banded.shape[1], dtype=np.uint64)  # the same values in two bands are different keys
                for i, row in zip(np.flatnonzero(nonempty).tolist(), banded.tolist()):
                    keys[i] = tuple(row)
            out += keys
        return out

    def match(self, f: Features) -> str | None:
        """How ``f`` resembles a stored text (``'a duplicate of X'``), or None when it is new."""
        if f.key in self._exact:
            return f"a duplicate of {self._what[self._exact[f.key]]}"
        candidates = {i for band in f.bands for i in self._buckets.get(band, ())}
        best, best_id = 0.0, -1
        for i in candidates:
            other = self._entries[i].shingles
            similarity = len(f.shingles & other) / len(f.shingles | other)
            if similarity > best:
                best, best_id = similarity, i
        if best >= self.threshold:
            return f"a near duplicate (similarity {best:.2f}) of {self._what[best_id]}"
        return None

    def add(self, f: Features, what: str) -> int:
        """Store a text; ``what`` names it in later matches (``'a text posted before: "..."'``).

        Returns its entry number, for :meth:`remove`.
        """
        i = len(self._what)
        self._what.append(what)
        self._entries.append(f)
        self._exact.setdefault(f.key, i)
        for band in f.bands:
            self._buckets.setdefault(band, []).append(i)
        return i

    def remove(self, i: int) -> None:
        """Forget entry ``i``; its slot stays, empty, so other entry numbers do not move."""
        f = self._entries[i]
        for band in f.bands:
            self._buckets[band].remove(i)
        if self._exact.get(f.key) == i:
            del self._exact[f.key]
        self._entries[i], self._what[i] = _GONE, ""
