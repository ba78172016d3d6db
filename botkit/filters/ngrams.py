"""Hashed n-grams in numpy, and sorted sets of them built in bounded memory.

The novelty index holds one 64-bit hash per distinct n-gram of a corpus. Hashes (not strings) keep
it at 8 bytes an n-gram and let numpy do the work: a batch of documents becomes one token array,
every n-gram hash is computed with ``n`` vector operations, and membership is a binary search. With
64-bit hashes a false match needs about 2**64 / (index size) lookups, never in practice.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Odd multiplier of the polynomial rolling hash (64-bit golden ratio); arithmetic wraps mod 2**64.
_P = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.empty(0, dtype=np.uint64)


def ngram_hashes(tokens: np.ndarray, lengths: np.ndarray, n: int, whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hash every run of ``n`` consecutive tokens that lies inside one document.

    ``tokens`` are the token hashes of consecutive documents, ``lengths[i]`` how many belong to
    document ``i``. A document shorter than ``n`` has no run, so where ``whole[i]`` is set (the
    document is complete in this batch) its whole token sequence is hashed instead: a 4-word
    title copied from the corpus is as much a copy as a 7-word run. Returns the hashes and the
    token position where each hashed run starts.
    """
    total = len(tokens)
    starts = np.cumsum(lengths) - lengths
    hashes, positions = [], []
    h = np.zeros(total + 1, dtype=np.uint64)
    for k in range(1, min(n, total) + 1):
        h = h[: total - k + 1] * _P + tokens[k - 1 :]  # h[i] is now the hash of tokens[i : i + k]
        if k < n:
            short = starts[(lengths == k) & whole]
            hashes.append(h[short])
            positions.append(short)
    if total >= n:
        doc = np.repeat(np.arange(len(lengths)), lengths)
        inside = np.flatnonzero(doc[: total - n + 1] == doc[n - 1 :])
        hashes.append(h[inside])
        positions.append(inside)
    if not hashes:
        return _EMPTY, np.empty(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(positions)


class WordHashes:
    """Stable 64-bit hashes of words, cached, since a corpus repeats a small vocabulary endlessly.

    Stable across processes (blake2b, not Python's salted ``hash``) because the index is saved.
    """

    def __init__(self, limit: int = 1 << 21) -> None:
        self._cache: dict[str, int] = {}
        self._limit = limit  # a corpus of typos and names must not grow the cache without bound

    def __call__(self, words: list[str]) -> np.ndarray:
        cache = self._cache
        missing = set(words).difference(cache)
        if len(cache) + len(missing) > self._limit:
            cache.clear()
            missing = set(words)
        for word in missing:
            digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            cache[word] = int.from_bytes(digest, "little")
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))


def char_hashes(text: str) -> np.ndarray:
    """One well-mixed 64-bit value per character (splitmix64 of the code point)."""
    z = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    z += np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def contains(sorted_set: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Which ``queries`` are in ``sorted_set`` (sorted, unique): one binary search each."""
    if not len(sorted_set):
        return np.zeros(len(queries), dtype=bool)
    i = np.searchsorted(sorted_set, queries)
    i[i == len(sorted_set)] = 0
    return sorted_set[i] == queries


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sort in place and drop repeats; the input may be several sorted runs (timsort merges them)."""
    values.sort(kind="stable")
    if len(values) < 2:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


class SortedHashes:
    """A growing set of hashes, held as one sorted unique array plus a few pending sorted runs.

    Pending runs are merged into the main array once they reach a quarter of its size (and at
    least ``merge_at`` values), so the work stays O(n log n) and the memory near three times the
    final set, however large the corpus.
    """

    def __init__(self, merge_at: int = 1 << 22) -> None:
        self._merged = _EMPTY
        self._pending: list[np.ndarray] = []
        self._pending_size = 0
        self._merge_at = merge_at

    def add(self, hashes: np.ndarray) -> None:
        run = np.unique(hashes)
        self._pending.append(run)
        self._pending_size += len(run)
        if self._pending_size >= max(self._merge_at, len(self._merged) // 4):
            self._merge()

    def _merge(self) -> None:
        values = np.concatenate([self._merged, *self._pending])
        self._merged, self._pending, self._pending_size = _EMPTY, [], 0  # free the parts before sorting
        self._merged = _sorted_unique(values)

    def result(self) -> np.ndarray:
        if self._pending:
            self._merge()
        return self._merged
