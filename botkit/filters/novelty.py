"""``novelty``: reject samples that copy the training corpus verbatim.

A model trained on little data memorises it, and a bot that posts its corpus back is plagiarising.
The filter rejects a sample that contains a run of N consecutive words found in the corpus (case,
punctuation and line breaks ignored), or that is a whole corpus document shorter than N words, and
optionally a run of M characters.

Runs are looked for inside each corpus document, as the model saw them: a document's line breaks
are spaces, and a corpus read as one text (training's ``--single-text``) or holding one document
(``botkit fetch files --single-text``) is one long run of words across all its lines.

N defaults to 7. Against tiny Shakespeare's first 90 %, novel 20-word passages of its last 10 % are
rejected 2.0 % of the time at N=5, 0.3 % at N=6 and never at N=7 (``bench/filter_novelty.py``),
while any copied line of 7 words or more is still caught.

The corpus is indexed once: every distinct n-gram is hashed to 64 bits, and the sorted hashes are
saved (``novelty.idx`` in the model's model folder) with the settings and each corpus file's
size, mtime and blake2b digest, so later runs load it in a fraction of a second, rebuild only when
a corpus or a setting changed, and work from the index alone when the corpus is not at hand. The
build streams the corpus in batches and merges sorted runs, so its memory follows the number of
distinct n-grams (8 bytes each), not the size of the text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from botkit.corpus import read_corpus, read_lines
from botkit.errors import ConfigError, CorpusError
from botkit.filters import Filter, FilterContext
from botkit.filters.ngrams import SortedHashes, WordHashes, char_hashes, contains, ngram_hashes
from botkit.filters.text import words
from botkit.options import Options
from botkit.sample import Sample

log = logging.getLogger(__name__)

INDEX_NAME = "novelty.idx"
_FORMAT = 1
_PIECE_CHARS = 1 << 20  # a huge document is tokenised a slice at a time
_BATCH_WORDS = 1 << 18  # words hashed per numpy batch: bounds the build's working memory


class NoveltyOptions(Options):
    words: int = Field(
        7,
        ge=2,
        le=64,
        description="reject a sample that repeats this many consecutive corpus words (default 7: catches any copied "
        "line or phrase, while 6-word stock phrases such as 'at the end of the day' still pass)",
    )
    chars: int | None = Field(
        None,
        ge=8,
        description="also reject a run of this many characters found in the corpus (off by default; the index then "
        "grows by about 8 bytes per corpus character)",
    )
    corpus: list[Path] = Field(default_factory=list, description="corpora to compare against (default: the ones the model was trained on)")
    single_text: bool | None = Field(
        None, description="read each corpus file as one plain text, as training with --single-text does (default: as the model was trained)"
    )
    index: Path | None = Field(None, description=f"index file (default: {INDEX_NAME} in the model's model folder; kept in memory when there is none)")


@dataclass(frozen=True)
class Settings:
    """What an index is built from and how; an index built otherwise is rebuilt."""

    paths: tuple[Path, ...]
    words: int
    chars: int | None
    single_text: bool

    def to_json(self) -> dict[str, Any]:
        paths = [str(p.resolve()) for p in self.paths]
        return {"format": _FORMAT, "paths": paths, "words": self.words, "chars": self.chars, "single_text": self.single_text}


@dataclass(frozen=True)
class NoveltyIndex:
    """The sorted n-gram hashes of a set of corpora, and what they were built from."""

    meta: dict[str, Any]
    word_hashes: np.ndarray
    char_hashes: np.ndarray

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted save never leaves a half index that looks whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
            try:
                np.savez(tmp, meta=np.array(json.dumps(self.meta)), words=self.word_hashes, chars=self.char_hashes)
            except BaseException:
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, path)

    @classmethod
    def load(cls, path: Path) -> NoveltyIndex | None:
        """The saved index, or None when there is none or it cannot be read (it is then rebuilt)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                index = cls(json.loads(str(data["meta"])), data["words"], data["chars"])
            index.settings()  # a meta without readable settings is as broken as a truncated file
            return index
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable novelty index, rebuilding it (%s)", path, exc)
            return None

    def settings(self) -> Settings:
        s = self.meta["settings"]
        return Settings(tuple(Path(p) for p in s["paths"]), s["words"], s["chars"], s["single_text"])

    def is_fresh(self, settings: Settings) -> bool:
        """Built with ``settings`` from corpora that have not changed since."""
        if self.meta["settings"] != settings.to_json():
            return False
        return all(_unchanged(stored, path) for stored, path in zip(self.meta["corpora"], settings.paths))


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fingerprint(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CorpusError(f"{path}: corpus file not found (the novelty filter compares samples with it)") from None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": _digest(path)}


def _unchanged(stored: dict[str, Any], path: Path) -> bool:
    """Same size and mtime, or (after a copy or a touch) same content; a corpus gone since counts as unchanged."""
    try:
        st = path.stat()
    except FileNotFoundError:
        log.info("%s: corpus not found; using its saved novelty index", path)
        return True
    if st.st_size != stored["size"]:
        return False
    return st.st_mtime_ns == stored["mtime_ns"] or _digest(path) == stored["blake2b"]


def _pieces(text: str, size: int) -> Iterator[str]:
    """``text`` in slices of about ``size`` characters, cut at whitespace so no word is split."""
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


class _Builder:
    """Streams documents into sorted n-gram hash sets, one batch of words at a time.

    A document may span batches: the last words of a cut document are carried into the next batch
    so no run across the cut is lost (runs counted twice are merged away).
    """

    def __init__(self, n_words: int, n_chars: int | None, batch_words: int = _BATCH_WORDS) -> None:
        self.n_words, self.n_chars, self.batch_words = n_words, n_chars, batch_words
        self.hash_words = WordHashes()
        self.word_set, self.char_set = SortedHashes(), SortedHashes()
        self._words: list[str] = []
        self._lengths: list[int] = []
        self._continued = False  # the first document of the batch began in an earlier batch
        self._carry = max(n_words, n_chars or 0) - 1

    def add(self, pieces: Iterable[str]) -> None:
        """Add one document, given as consecutive pieces of text that each end between words."""
        started = False
        for piece in pieces:
            if len(self._words) >= self.batch_words:
                self._flush(open_doc=started)
            if not started:
                self._lengths.append(0)
                started = True
            found = words(piece)
            self._words += found
            self._lengths[-1] += len(found)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if self._words:
            self._flush(open_doc=False)
        return self.word_set.result(), self.char_set.result()

    def _flush(self, open_doc: bool) -> None:
        lengths = np.array(self._lengths, dtype=np.int64)
        whole = np.ones(len(lengths), dtype=bool)
        whole[0] &= not self._continued
        whole[-1] &= not open_doc
        self.word_set.add(ngram_hashes(self.hash_words(self._words), lengths, self.n_words, whole)[0])
        if self.n_chars:
            texts = _doc_texts(self._words, lengths)
            char_lengths = np.array([len(t) for t in texts], dtype=np.int64)
            none_whole = np.zeros(len(texts), dtype=bool)
            self.char_set.add(ngram_hashes(char_hashes("".join(texts)), char_lengths, self.n_chars, none_whole)[0])
        if open_doc:
            self._words = self._words[len(self._words) - min(self._carry, self._lengths[-1]) :]
            self._lengths, self._continued = [len(self._words)], True
        else:
            self._words, self._lengths, self._continued = [], [], False


def _doc_texts(all_words: list[str], lengths: np.ndarray) -> list[str]:
    """Each document as its normalised words joined by single spaces: what character runs compare."""
    ends = np.cumsum(lengths)
    return [" ".join(all_words[end - length : end]) for end, length in zip(ends.tolist(), lengths.tolist())]


def _documents(path: Path, single_text: bool) -> Iterator[Iterable[str]]:
    """Each document of a corpus as pieces of text: a single text is streamed a line at a time."""
    if single_text:
        yield read_lines(path, "corpus")
        return
    for doc in read_corpus(path):
        yield _pieces(doc.text, _PIECE_CHARS)


def build_index(settings: Settings) -> NoveltyIndex:
    """Index every document of the corpora; a single-text corpus is one long run of words."""
    fingerprints = [_fingerprint(p) for p in settings.paths]  # taken first: a corpus edited mid-build is stale next time
    builder = _Builder(settings.words, settings.chars)
    for path in settings.paths:
        for pieces in _documents(path, settings.single_text):
            builder.add(pieces)
    word_set, char_set = builder.finish()
    return NoveltyIndex({"settings": settings.to_json(), "corpora": fingerprints}, word_set, char_set)


def open_index(settings: Settings, path: Path | None, saved: NoveltyIndex | None = None) -> NoveltyIndex:
    """The saved index (at ``path``, or ``saved``) when it is fresh, else a new one, saved when there is a path."""
    if saved is None and path is not None:
        saved = NoveltyIndex.load(path)
    if saved is not None and saved.is_fresh(settings):
        log.info("%s: novelty index loaded (%s word runs)", path, f"{len(saved.word_hashes):,}")
        return saved
    started = time.perf_counter()
    index = build_index(settings)
    log.info(
        "novelty index of %s built in %.1f s (%s word runs)",
        ", ".join(map(str, settings.paths)),
        time.perf_counter() - started,
        f"{len(index.word_hashes):,}",
    )
    if path is not None:
        try:
            index.save(path)
        except OSError as exc:  # the index is a cache: a read-only model folder costs a rebuild next time
            log.warning("%s: cannot save the novelty index (%s); it will be built again next time", path, exc)
    return index


def _index_path(options: NoveltyOptions, context: FilterContext) -> Path | None:
    return options.index or (context.weights_dir / INDEX_NAME if context.weights_dir else None)


class NoveltyFilter(Filter):
    summary = "reject samples that repeat a run of words (or characters) of the training corpus verbatim"
    Options = NoveltyOptions
    options: NoveltyOptions

    @classmethod
    def available(cls, context: FilterContext) -> bool:
        """With a corpus to compare against, or an index saved in the model folder."""
        return bool(context.corpus_paths) or (context.weights_dir is not None and (context.weights_dir / INDEX_NAME).is_file())

    def __init__(self, options: NoveltyOptions, context: FilterContext) -> None:
        super().__init__(options, context)
        path = _index_path(options, context)
        paths = tuple(options.corpus or context.corpus_paths)
        single_text = context.single_text if options.single_text is None else options.single_text
        saved = None
        if not paths:  # an index saved beside the weights knows its corpora
            saved = NoveltyIndex.load(path) if path is not None else None
            if saved is None:
                raise ConfigError("needs the training corpus: give corpus: PATH, or use it with a model whose corpus is known")
            paths = saved.settings().paths
            single_text = saved.settings().single_text if options.single_text is None else options.single_text
        self.index = open_index(Settings(paths, options.words, options.chars, single_text), path, saved)
        self.hash_words = WordHashes()

    def check(self, samples: Sequence[Sample]) -> list[str | None]:
        per_sample = [words(s.text) for s in samples]
        verdicts = self._word_runs(per_sample)
        if self.options.chars:
            verdicts = [v or c for v, c in zip(verdicts, self._char_runs(per_sample))]
        return verdicts

    def _word_runs(self, per_sample: list[list[str]]) -> list[str | None]:
        n = self.options.words
        flat = [w for ws in per_sample for w in ws]
        lengths = np.array([len(ws) for ws in per_sample], dtype=np.int64)
        whole = np.ones(len(lengths), dtype=bool)
        hashes, positions = ngram_hashes(self.hash_words(flat), lengths, n, whole)
        verdicts: list[str | None] = [None] * len(per_sample)
        for sample, start in _first_hits(contains(self.index.word_hashes, hashes), positions, lengths):
            if lengths[sample] < n:
                verdicts[sample] = f'is a corpus document verbatim: "{" ".join(per_sample[sample])}"'
            else:
                verdicts[sample] = f'repeats {n} words of the corpus verbatim: "{" ".join(flat[start : start + n])}"'
        return verdicts

    def _char_runs(self, per_sample: list[list[str]]) -> list[str | None]:
        m = self.options.chars
        assert m is not None
        texts = [" ".join(ws) for ws in per_sample]
        flat = "".join(texts)
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        hashes, positions = ngram_hashes(char_hashes(flat), lengths, m, np.zeros(len(texts), dtype=bool))
        verdicts: list[str | None] = [None] * len(per_sample)
        for sample, start in _first_hits(contains(self.index.char_hashes, hashes), positions, lengths):
            verdicts[sample] = f'repeats {m} characters of the corpus verbatim: "{flat[start : start + m]}"'
        return verdicts


def _first_hits(found: np.ndarray, positions: np.ndarray, lengths: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(sample, position)`` of the first matching run of each sample that has one."""
    hit_positions = positions[found]
    samples = np.searchsorted(np.cumsum(lengths), hit_positions, side="right")
    order = np.lexsort((hit_positions, samples))
    unique, first = np.unique(samples[order], return_index=True)
    return zip(unique.tolist(), hit_positions[order][first].tolist())
