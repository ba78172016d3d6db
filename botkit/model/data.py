"""Corpus → token file on disk → ``tf.data`` windows.

A corpus is encoded once into a flat token stream, ``<sep> doc1 <sep> doc2 ... <sep>``, written as
a uint16/uint32 file (plus a per-token label file when the corpus has labels) and read back as a
memory map. Training samples long windows at random offsets from that map, so memory does not
grow with the corpus: a 100 MB corpus costs its token file's page cache, not Python objects.

The encoded files are cached under a key made of the input files (path, size, mtime) and the
vocabulary, so a second run (``--resume``, another budget) starts at once.

A reply model (a vocabulary with :data:`~botkit.model.vocab.REPLY`, built from a corpus whose
documents have parents) encodes each document as ``<sep> parent <reply> reply``, a document
without a parent as a reply to an empty one, and writes a third file: one byte per token, 1 where
the token is a target the model is trained and scored on (the reply's tokens and the separator that
ends it), 0 on the parent and the ``<reply>`` after it, which are context that the model is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from botkit.atomic import atomic_output, cannot_write, ensure_folder
from botkit.corpus import read_corpus, read_lines
from botkit.corpus.io import FORMATS
from botkit.errors import CorpusError
from botkit.model.vocab import SEP_ID, UNK_ID, Level, Vocabulary, VocabularyBuilder

_FLUSH_TOKENS = 1 << 20  # write the token file in ~1M-token chunks


@dataclass(frozen=True)
class Segment:
    """A piece of text to encode; ``starts_document`` puts a separator before it; ``parent``: what it replies to."""

    text: str
    label: str | None
    starts_document: bool
    parent: str | None = None


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
            yield Segment(doc.text, doc.label, True, doc.parent)


def count_vocabulary(paths: Sequence[Path], level: Level, single_text: bool, max_words: int | None) -> VocabularyBuilder:
    """One streaming pass over the inputs, counting tokens and labels."""
    builder = VocabularyBuilder(level, max_words)
    for segment in segments(paths, single_text):
        builder.add(segment.text, segment.label, segment.parent)
    return builder


@dataclass(frozen=True)
class TokenStream:
    """An encoded corpus: token ids and, for labelled corpora, the label id of every token;
    for a reply model, ``replies``: 1 where the token is a reply's (a target), 0 in a parent."""

    tokens: np.ndarray
    labels: np.ndarray | None
    unknown: int = 0  # tokens that became <unk>
    documents: int = 0
    replies: np.ndarray | None = None

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
        ensure_folder(cache_dir, "token cache folder")
        _write_stream(paths, vocab, single_text, cache_dir / key, meta_path)
    meta = json.loads(meta_path.read_text())
    if meta["documents"] == 0 or meta["tokens"] <= meta["documents"] * (1 + meta.get("conditional", False)) + 1:
        names = ", ".join(str(p) for p in paths)
        raise CorpusError(f"{names}: no text to {purpose} (empty corpus?)")
    dtype = np.dtype(meta["dtype"])
    tokens = np.memmap(cache_dir / f"{key}.tokens", dtype=dtype, mode="r", shape=(meta["tokens"],))
    labels = np.memmap(cache_dir / f"{key}.labels", dtype=dtype, mode="r", shape=(meta["tokens"],)) if meta["labelled"] else None
    replies = np.memmap(cache_dir / f"{key}.replies", dtype=np.uint8, mode="r", shape=(meta["tokens"],)) if meta.get("conditional") else None
    return TokenStream(tokens, labels, meta["unknown"], meta["documents"], replies)


def _write_stream(paths: Sequence[Path], vocab: Vocabulary, single_text: bool, base: Path, meta_path: Path) -> None:
    """Encode into temporary files, then rename: an interrupted run never leaves a half cache, and
    a failed write (disk full, read-only folder) is one error naming the cache, its files removed."""
    tmp = {name: base.with_suffix(f".{name}.tmp") for name in ("tokens", "labels", "replies")}
    try:
        _encode_into(paths, vocab, single_text, base, meta_path, tmp)
    except OSError as exc:
        raise cannot_write(base.with_suffix(".tokens"), exc, "token cache", existed=False) from None
    finally:
        for path in tmp.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _encode_into(paths: Sequence[Path], vocab: Vocabulary, single_text: bool, base: Path, meta_path: Path, tmp: dict[str, Path]) -> None:
    dtype = vocab.dtype
    names = tuple(tmp)
    count = documents = unknown = 0
    label = 0
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    pending = 0
    with contextlib.ExitStack() as stack:
        files = {name: stack.enter_context(open(path, "wb")) for name, path in tmp.items()}

        def flush() -> None:
            nonlocal pending
            for name, parts in chunks.items():
                if parts:
                    np.concatenate(parts).tofile(files[name])
                parts.clear()
            pending = 0

        def add(ids: np.ndarray, target: bool = True) -> None:
            nonlocal pending, count
            chunks["tokens"].append(ids)
            chunks["labels"].append(np.full(len(ids), label, dtype=dtype))
            chunks["replies"].append(np.full(len(ids), target, dtype=np.uint8))
            pending += len(ids)
            count += len(ids)
            if pending >= _FLUSH_TOKENS:
                flush()

        def encoded(text: str) -> np.ndarray:
            nonlocal unknown
            ids = vocab.encode(text)
            unknown += int(np.count_nonzero(ids == UNK_ID))
            return ids.astype(dtype, copy=False)

        for segment in segments(paths, single_text):
            if segment.starts_document:
                documents += 1
                label = vocab.known_label_id(segment.label)
                add(np.array([SEP_ID], dtype=dtype), target=documents > 1)  # the end of the reply before
                if vocab.reply_id is not None:
                    add(encoded(segment.parent or ""), target=False)
                    add(np.array([vocab.reply_id], dtype=dtype), target=False)
            add(encoded(segment.text))
        if documents:
            add(np.array([SEP_ID], dtype=dtype))
        flush()
    kept = ("tokens", *(("labels",) if vocab.labelled else ()), *(("replies",) if vocab.conditional else ()))
    for name in kept:
        os.replace(tmp[name], base.with_suffix(f".{name}"))
    meta = {
        "tokens": count, "documents": documents, "unknown": unknown, "dtype": np.dtype(dtype).name,
        "labelled": vocab.labelled, "conditional": vocab.conditional,
    }  # fmt: skip
    with atomic_output(meta_path, what="token cache") as handle:  # last: its presence says the cache is whole
        handle.write(json.dumps(meta))


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

    def targets(self) -> np.ndarray:
        """1.0 where a token is a target (scored), 0.0 where it is context: a reply model's parents."""
        if self.stream.replies is None:
            return np.ones(len(self), np.float32)
        replies = np.asarray(self.stream.replies[self.start : self.stop], np.float32)
        return np.concatenate([np.zeros(1, np.float32), replies]) if self.framed else replies


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


def window_batches(
    split: Split, window: int, batch_size: int, seed: int, first_step: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Endless batches of ``window + 1``-token windows at random offsets (and their labels and, for a reply model, target weights).

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
        replies = None if split.stream.replies is None else np.asarray(split.stream.replies[index], dtype=np.float32)
        yield np.asarray(split.stream.tokens[index], dtype=np.int32), labels, replies
        step += 1


def training_dataset(split: Split, window: int, batch_size: int, seed: int, first_step: int, labelled: bool) -> tf.data.Dataset:
    """``tf.data`` pipeline of (inputs, targets) for ``model.fit``: every position is a target, or,
    for a reply model, (inputs, targets, sample weights) with weight 0 on the parents' positions."""

    outputs = ("next", "aux") if labelled else ("next",)
    conditional = split.stream.replies is not None

    def generate() -> Iterator[tuple[object, ...]]:
        for batch, labels, replies in window_batches(split, window, batch_size, seed, first_step):
            targets = batch[:, 1:]
            inputs: object = batch[:, :-1]
            if labelled:
                assert labels is not None  # a labelled split has them
                inputs = {"tokens": batch[:, :-1], "labels": labels[:, :-1]}
            both = (inputs, dict.fromkeys(outputs, targets))
            yield (*both, dict.fromkeys(outputs, replies[:, 1:])) if replies is not None else both

    spec = tf.TensorSpec((batch_size, window), tf.int32)
    signature: tuple[object, ...] = ({"tokens": spec, "labels": spec} if labelled else spec, dict.fromkeys(outputs, spec))
    if conditional:
        signature += (dict.fromkeys(outputs, tf.TensorSpec((batch_size, window), tf.float32)),)
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)
