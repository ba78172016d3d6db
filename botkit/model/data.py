"""Corpus → token file on disk → ``tf.data`` windows.

A corpus is encoded once into a flat token stream, ``<sep> doc1 <sep> doc2 ... <sep>``, written as
a uint16/uint32 file (plus a per-token label file when the corpus has labels) and read back as a
memory map. Training samples long windows at random offsets from that map, so memory does not
grow with the corpus: a 100 MB corpus costs its token file's page cache, not Python objects.

The encoded files are cached under a key made of the input files (path, size, mtime) and the
vocabulary, so a second run (``--resume``, another budget) starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from botkit.corpus import read_corpus, read_lines
from botkit.corpus.io import FORMATS
from botkit.errors import CorpusError
from botkit.model.vocab import SEP_ID, UNK_ID, Level, Vocabulary, VocabularyBuilder

_FLUSH_TOKENS = 1 << 20  # write the token file in ~1M-token chunks


@dataclass(frozen=True)
class Segment:
    """A piece of text to encode; ``starts_document`` puts a separator before it."""

    text: str
    label: str | None
    starts_document: bool


def segments(paths: Sequence[Path], single_text: bool) -> Iterator[Segment]:
    """The text of ``paths`` in stream order, one corpus document (or one line of a plain text) at a time.

    A single text is read line by line so a large novel never sits in memory as one string.
    """
    for path in paths:
        if single_text:
            for number, line in enumerate(read_lines(path, "text")):
                yield Segment(line, None, number == 0)
            continue
        if path.suffix.lower() not in FORMATS:
            raise CorpusError(f"{path}: not a corpus (.jsonl or .txt); to train on a plain text file as one stream, add --single-text")
        for doc in read_corpus(path):
            yield Segment(doc.text, doc.label, True)


def count_vocabulary(paths: Sequence[Path], level: Level, single_text: bool, max_words: int | None) -> VocabularyBuilder:
    """One streaming pass over the inputs, counting tokens and labels."""
    builder = VocabularyBuilder(level, max_words)
    for segment in segments(paths, single_text):
        builder.add(segment.text, segment.label)
    return builder


@dataclass(frozen=True)
class TokenStream:
    """An encoded corpus: token ids and, for labelled corpora, the label id of every token."""

    tokens: np.ndarray
    labels: np.ndarray | None
    unknown: int = 0  # tokens that became <unk>
    documents: int = 0

    def __len__(self) -> int:
        return len(self.tokens)


def _cache_key(paths: Sequence[Path], single_text: bool, vocab: Vocabulary) -> str:
    inputs = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise CorpusError(f"{path}: corpus file not found") from None
        inputs.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    blob = json.dumps({"inputs": inputs, "single_text": single_text, "vocab": vocab.to_json()}, ensure_ascii=False)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=12).hexdigest()


def encode(paths: Sequence[Path], vocab: Vocabulary, single_text: bool, cache_dir: Path, purpose: str = "train on") -> TokenStream:
    """The token stream of ``paths``, from the cache when the inputs and vocabulary are unchanged.

    ``purpose`` completes "no text to ..." when the inputs hold no text (training or evaluating).
    """
    key = _cache_key(paths, single_text, vocab)
    meta_path = cache_dir / f"{key}.json"
    if not meta_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_stream(paths, vocab, single_text, cache_dir / key, meta_path)
    meta = json.loads(meta_path.read_text())
    if meta["documents"] == 0 or meta["tokens"] <= meta["documents"] + 1:
        names = ", ".join(str(p) for p in paths)
        raise CorpusError(f"{names}: no text to {purpose} (empty corpus?)")
    dtype = np.dtype(meta["dtype"])
    tokens = np.memmap(cache_dir / f"{key}.tokens", dtype=dtype, mode="r", shape=(meta["tokens"],))
    labels = np.memmap(cache_dir / f"{key}.labels", dtype=dtype, mode="r", shape=(meta["tokens"],)) if meta["labelled"] else None
    return TokenStream(tokens, labels, meta["unknown"], meta["documents"])


def _write_stream(paths: Sequence[Path], vocab: Vocabulary, single_text: bool, base: Path, meta_path: Path) -> None:
    """Encode into temporary files, then rename: an interrupted run never leaves a half cache."""
    dtype = vocab.dtype
    tmp_tokens, tmp_labels = base.with_suffix(".tokens.tmp"), base.with_suffix(".labels.tmp")
    count = documents = unknown = 0
    label = 0
    chunks: list[np.ndarray] = []
    label_chunks: list[np.ndarray] = []
    pending = 0
    with open(tmp_tokens, "wb") as token_file, open(tmp_labels, "wb") as label_file:

        def flush() -> None:
            nonlocal pending
            if chunks:
                np.concatenate(chunks).tofile(token_file)
                np.concatenate(label_chunks).tofile(label_file)
            chunks.clear()
            label_chunks.clear()
            pending = 0

        def add(ids: np.ndarray) -> None:
            nonlocal pending, count
            chunks.append(ids)
            label_chunks.append(np.full(len(ids), label, dtype=dtype))
            pending += len(ids)
            count += len(ids)
            if pending >= _FLUSH_TOKENS:
                flush()

        for segment in segments(paths, single_text):
            if segment.starts_document:
                documents += 1
                label = vocab.known_label_id(segment.label)
                add(np.array([SEP_ID], dtype=dtype))
            ids = vocab.encode(segment.text)
            unknown += int(np.count_nonzero(ids == UNK_ID))
            add(ids.astype(dtype, copy=False))
        if documents:
            add(np.array([SEP_ID], dtype=dtype))
        flush()
    os.replace(tmp_tokens, base.with_suffix(".tokens"))
    if vocab.labelled:
        os.replace(tmp_labels, base.with_suffix(".labels"))
    else:
        tmp_labels.unlink()
    meta = {"tokens": count, "documents": documents, "unknown": unknown, "dtype": np.dtype(dtype).name, "labelled": vocab.labelled}
    meta_path.write_text(json.dumps(meta))


@dataclass(frozen=True)
class Split:
    """A contiguous part of a token stream, [start, stop).

    ``framed``: scored after a separator that is not in the stream, as ``botkit eval`` reads the
    same text from a file of its own (see :func:`split_stream`).
    """

    stream: TokenStream
    start: int
    stop: int
    framed: bool = False

    def __len__(self) -> int:
        return self.stop - self.start + self.framed

    def tokens(self) -> np.ndarray:
        tokens = self.stream.tokens[self.start : self.stop]
        return np.concatenate([np.array([SEP_ID], tokens.dtype), tokens]) if self.framed else tokens

    def labels(self) -> np.ndarray | None:
        if self.stream.labels is None:
            return None
        labels = self.stream.labels[self.start : self.stop]
        return np.concatenate([labels[:1], labels]) if self.framed else labels


def split_stream(stream: TokenStream, train_size: float) -> tuple[Split, Split | None]:
    """First ``train_size`` of the stream for training, the rest (contiguous) for validation.

    The validation part is cut where ``botkit eval`` of the held-out text would begin, so that
    eval of that text gives the validation loss exactly: at the next document of a corpus, or,
    when no document starts after the cut (one stream of text), mid-text with a separator put
    before it, as a held-out text file is read.
    """
    if train_size >= 1:
        return Split(stream, 0, len(stream)), None
    cut = int(len(stream) * train_size)
    later = np.flatnonzero(np.asarray(stream.tokens[cut:-1]) == SEP_ID)
    if len(later):
        cut += int(later[0])
        return Split(stream, 0, cut), Split(stream, cut, len(stream))
    return Split(stream, 0, cut), Split(stream, cut, len(stream), framed=True)


def window_batches(split: Split, window: int, batch_size: int, seed: int, first_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Endless batches of ``window + 1``-token windows at random offsets (and their labels).

    Step ``s`` draws its offsets from a generator seeded with ``(seed, s)``: a resumed run sees
    exactly the windows the uninterrupted run would have seen.
    """
    span = np.arange(window + 1)
    last_offset = len(split) - window - 1
    step = first_step
    while True:
        offsets = split.start + np.random.default_rng([seed, step]).integers(0, last_offset + 1, size=batch_size)
        index = offsets[:, None] + span
        labels = None if split.stream.labels is None else np.asarray(split.stream.labels[index], dtype=np.int32)
        yield np.asarray(split.stream.tokens[index], dtype=np.int32), labels
        step += 1


def training_dataset(split: Split, window: int, batch_size: int, seed: int, first_step: int, labelled: bool):  # noqa: ANN201 - tf.data.Dataset, imported lazily
    """``tf.data`` pipeline of (inputs, targets) for ``model.fit``: every position is a target."""
    import tensorflow as tf

    def generate() -> Iterator[tuple[object, object]]:
        for batch, labels in window_batches(split, window, batch_size, seed, first_step):
            targets = batch[:, 1:]
            if labelled:
                assert labels is not None  # a labelled split has them
                yield {"tokens": batch[:, :-1], "labels": labels[:, :-1]}, {"next": targets, "aux": targets}
            else:
                yield batch[:, :-1], {"next": targets}

    spec = tf.TensorSpec((batch_size, window), tf.int32)
    inputs = {"tokens": spec, "labels": spec} if labelled else spec
    targets = {"next": spec, "aux": spec} if labelled else {"next": spec}
    return tf.data.Dataset.from_generator(generate, output_signature=(inputs, targets)).prefetch(4)
