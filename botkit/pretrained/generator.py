"""Batched sampling from a fine-tuned transformer, behind the same API as the LSTM's
:class:`~botkit.generate.Generator` (``generate``, ``stream``, ``batches``, ``write``, the same
keywords), so ``botkit generate``, filters, bots and the console use either family alike.

One compiled TensorFlow step, driven token by token from Python: it feeds every row's token at
one position through the model with its key/value cache (:mod:`botkit.pretrained.decode`) and chooses the next:
the row's forced token while its context lasts (separator, label, a reply's parent, the prefix),
else a sample by the LSTM's own seeded choice (:mod:`botkit.generate.sampling`: temperatures cycled per
token, top-k, top-p), after a repetition penalty (CTRL's: a seen token's logit divided by the
penalty when positive, multiplied when negative). Control tokens (chat markers such as ``<|im_start|>``) are never sampled. A row ends at the model's end-of-text token
(never as its first token) or at ``max_length``; the loop ends when every row has. The step is
the only graph built (one token through the blocks): a whole-loop graph took minutes to build
on a 2-core CPU, longer than the samples take. A ``stop``
string cuts a sample where it first appears. Each sample's ``score`` is its mean log-probability
per sampled token (the end marker included) under the untempered distribution, as for the LSTM.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from botkit.errors import ConfigError
from botkit.generate.generator import DEFAULT_BATCH_SIZE, DEFAULT_MAX_CHARS, GenerateRequest, SampleSource, cut_at_stop
from botkit.generate.sampling import Truncation, check_temperatures, choose, truncate
from botkit.pretrained.decode import decoder_for
from botkit.pretrained.model import Loaded, load
from botkit.sample import Sample

#: Characters per token of a byte-level BPE on English posts (SmolLM2's tokenizer on the shipped
#: titles: 4.2); the default max_length is the token count of about DEFAULT_MAX_CHARS characters.
CHARS_PER_TOKEN = 4.0
#: Rows per batch unless --batch-size says otherwise: the key/value cache is rows × layers × length
#: × 2 × the key/value width (32 rows of SmolLM2 at 128 tokens: 190 MB).
DEFAULT_ROWS = 32


class TransformerGenerator(SampleSource):
    """Generates samples from a fine-tuned transformer folder (see :func:`botkit.pretrained.model.load`)."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded, self.lm, self.tokens, self.tune = loaded, loaded.lm, loaded.tokens, loaded.tune
        self.path: Path | None = loaded.path
        self.training = loaded.tune.training
        self._steps: dict[Truncation, Any] = {}
        self.decoder = decoder_for(self.lm)

    @classmethod
    def load(cls, path: str | Path) -> TransformerGenerator:
        return cls(load(path))

    @property
    def conditional(self) -> bool:
        return self.tune.conditional

    def default_max_length(self) -> int:
        return round(DEFAULT_MAX_CHARS / CHARS_PER_TOKEN)

    # -- the public API: SampleSource's, built on batches() ----------------------------------------

    def batches(self, n: int, **options: Any) -> Iterator[list[Sample]]:
        opts = self._check(n, GenerateRequest(**options))
        rows = DEFAULT_ROWS if opts.batch_size == DEFAULT_BATCH_SIZE else opts.batch_size
        labels, parents = opts.labels, opts.parents
        prefix = self.tokens.encode(opts.prefix)
        total = n * len(parents)
        for number, start in enumerate(range(0, total, rows)):
            js = range(start, min(total, start + rows))
            batch_labels = [labels[j % len(labels)] for j in js]
            batch_parents = [parents[j // n] for j in js]
            yield self._batch(number, batch_labels, batch_parents, prefix, opts)

    # -- one batch --------------------------------------------------------------------------------

    def _check(self, n: int, opts: GenerateRequest) -> GenerateRequest:
        if n < 0 or opts.batch_size < 1:
            raise ConfigError(f"-n must be at least 0 and --batch-size at least 1 (got {n} and {opts.batch_size})")
        check_temperatures(opts.temperatures)
        Truncation(opts.top_k, opts.top_p).check()
        if opts.repetition_penalty is not None and not opts.repetition_penalty > 0:
            raise ConfigError(f"--repetition-penalty must be above 0 (1 is none); got {opts.repetition_penalty}")
        for label in opts.labels:
            if label is not None and label not in self.tune.labels:
                known = ", ".join(self.tune.labels) or "none: the model was trained without labels"
                raise ConfigError(f"unknown label {label!r} (the model's labels: {known})")
        where = self.path or "this model"
        if not opts.parents:
            raise ConfigError("give at least one parent to reply to (the list of parents is empty)")
        if self.conditional and None in opts.parents:
            raise ConfigError(f"{where} is a reply model: give --parent TEXT or --parents FILE")
        if not self.conditional and opts.parents != [None]:
            raise ConfigError(f"{where} is not a reply model (its corpus had no parents): drop --parent/--parents")
        max_length = opts.max_length or self.default_max_length()
        prefix_tokens = len(self.tokens.encode(opts.prefix))
        if prefix_tokens >= max_length:
            raise ConfigError(f"--max-length must exceed the prefix length ({prefix_tokens} tokens); got {max_length}")
        return replace(opts, max_length=max_length)

    def _batch(self, number: int, labels: list[str | None], parents: list[str | None], prefix: list[int], opts: GenerateRequest) -> list[Sample]:
        framing = self.tune.framing
        forced = [framing.context(self.tokens, label, parent) + prefix for label, parent in zip(labels, parents)]
        lengths = np.array([len(f) for f in forced], np.int32)
        assert opts.max_length is not None
        new = opts.max_length - len(prefix)
        total = int(lengths.max()) + new
        tokens = np.full((len(forced), total), framing.sep, np.int32)
        for row, f in enumerate(forced):
            tokens[row, : len(f)] = f
        logps = np.zeros((len(forced), total), np.float32)
        step = self._step(Truncation(opts.top_k, opts.top_p))
        rows = len(forced)
        cache = self.decoder.empty_cache(rows, total)
        vocab = int(self.lm.backbone.token_embedding.embeddings.shape[0])
        seen = tf.zeros([rows, vocab], tf.bool)
        done = tf.zeros([rows], tf.bool)
        banned = np.zeros(vocab, bool)
        banned[[i for i in self.tokens.special if i != framing.sep and i < vocab]] = True
        fixed = (
            tf.constant(lengths), tf.constant(new, tf.int32), tf.constant(opts.temperatures, tf.float32),
            tf.constant(opts.repetition_penalty or 1.0, tf.float32), tf.constant(banned),
        )  # fmt: skip
        seed = tf.constant([opts.seed, number], tf.int64)
        for i in range(total - 1):
            chosen, logp, cache, seen, done = step(tf.constant(tokens[:, i : i + 1]), tf.constant(tokens[:, i + 1]), cache, tf.constant(i, tf.int32), seen, done, seed, *fixed)
            tokens[:, i + 1], logps[:, i + 1] = chosen.numpy(), logp.numpy()
            if i + 1 >= lengths.min() and bool(tf.reduce_all(done)):
                break
        samples = []
        temperature = opts.sample_temperature()
        for row, (label, parent) in enumerate(zip(labels, parents)):
            sampled = tokens[row, lengths[row] : lengths[row] + new]
            scores = logps[row, lengths[row] : lengths[row] + new]
            ends = np.flatnonzero(sampled == framing.sep)
            stop = int(ends[0]) if len(ends) else len(sampled)
            score = float(scores[: stop + 1].mean()) if len(scores) else float("nan")
            text = cut_at_stop(opts.prefix + self.tokens.decode(sampled[:stop]), opts.stop)
            samples.append(Sample(text, score, temperature, label, parent))
        return samples

    def _step(self, truncation: Truncation) -> Any:
        """The compiled step for these truncation settings (built once; the row count and length may vary)."""
        if truncation not in self._steps:
            self._steps[truncation] = tf.function(functools.partial(self._one_step, truncation=truncation), reduce_retracing=True)
        return self._steps[truncation]

    def _one_step(
        self, token: Any, forced_next: Any, cache: Any, i: Any, seen: Any, done: Any, seed: Any,
        lengths: Any, new: Any, temperatures: Any, penalty: Any, banned: Any, *, truncation: Truncation,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Feed position ``i`` of every row and choose position ``i + 1``: the forced token while the row's
        context and prefix last, else a sample. Returns the choice, its log-probability, and the new state."""
        sep = self.tune.framing.sep
        logits, cache = self.decoder.step(token, cache, i)
        logits = tf.cast(logits[:, 0, :], tf.float32)
        vocab = tf.shape(logits)[1]
        not_sep = tf.range(vocab)[None, :] != sep
        generated = i + 1 - lengths  # the index of the chosen token among the row's sampled ones
        temperature = tf.gather(temperatures, tf.math.floormod(tf.maximum(generated, 0), tf.shape(temperatures)[0]))[:, None]
        penalised = tf.where(seen, tf.where(logits > 0, logits / penalty, logits * penalty), logits)
        first = tf.logical_and((generated == 0)[:, None], tf.logical_not(not_sep))  # never an empty sample
        allowed = truncate(tf.where(tf.logical_or(first, banned[None, :]), -float("inf"), penalised), temperature, truncation)
        chosen = choose(allowed, temperature, tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64)))
        chosen = tf.where(tf.logical_or(generated < 0, done), forced_next, chosen)
        logp = tf.gather(tf.nn.log_softmax(logits), chosen, batch_dims=1)
        fed = tf.logical_and(tf.one_hot(token[:, 0], vocab, on_value=True, off_value=False, dtype=tf.bool), not_sep)
        seen = tf.logical_or(seen, fed)
        done = tf.logical_or(done, tf.logical_and(generated >= 0, tf.logical_or(chosen == sep, generated + 1 >= new)))
        return chosen, logp, cache, seen, done

