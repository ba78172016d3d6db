"""Batched sampling from a fine-tuned transformer, behind the same API as the LSTM's
:class:`~botkit.generate.Generator` (``generate``, ``stream``, ``batches``, ``write``, the same
keywords), so ``botkit generate``, filters, bots and the console use either family alike.

One compiled TensorFlow step, driven token by token from Python: it feeds every row's token at
one position through the model with its key/value cache (:mod:`botkit.pretrained.decode`) and chooses the next:
the row's forced token while its context lasts (separator, label, a reply's parent, the prefix),
else a sample by the LSTM's own seeded choice (:mod:`botkit.generate.sampling`: temperatures cycled per
token, top-k, top-p), after a repetition penalty (CTRL's: a seen token's logit divided by the
penalty when positive, multiplied when negative). Control tokens (chat markers such as ``<|im_start|>``) are never sampled. A row ends at the model's end-of-text token
(never as its first token) or at ``max_length``. Short posts end at very different lengths (on
titles, a batch of 32 spent three quarters of its row-steps on rows already ended), so a row
whose sample ended takes the next sample at once, from its own position 0, while the others go
on; once none is left the rows still running are packed together. (keras-hub's families other
than Llama move all rows in step: they get the packing, not the refill.) The step is the only
graph built (one token through the blocks, for any row count and length): a whole-loop graph
took minutes to build on a 2-core CPU, longer than the samples take. A ``stop``
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
#: Rows per batch unless --batch-size says otherwise. A step's fixed cost (some 900 small ops) is
#: shared by more rows: 256 titles took 12% less time at 64 rows than at 32 (bench). The key/value
#: cache is rows × layers × length × 2 × the key/value width (64 rows of SmolLM2 at 128 tokens: 380 MB).
DEFAULT_ROWS = 64


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
        total = n * len(parents)
        jobs = [(labels[j % len(labels)], parents[j // n]) for j in range(total)]
        if self.decoder.per_row_positions:
            yield from self._run(jobs, rows, opts)
            return
        for start in range(0, total, rows):  # rows move in step: a batch runs until its last row ends
            yield [sample for ready in self._run(jobs[start : start + rows], rows, opts, number=start // rows) for sample in ready]

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

    def _run(self, jobs: list[tuple[str | None, str | None]], rows: int, opts: GenerateRequest, number: int = 0) -> Iterator[list[Sample]]:
        """The samples of ``jobs`` in order, ``rows`` at a time, each list as soon as its samples and all
        before them have ended (a stream's first sample comes when it ends, not with its batch): a row
        whose sample ends takes the next job at once (its own positions from 0) while the others go
        on, and once no job is left the rows still running are packed together, so no step is spent
        on finished rows."""
        if not jobs:
            return
        framing = self.tune.framing
        prefix = self.tokens.encode(opts.prefix)
        forced = [framing.context(self.tokens, label, parent) + prefix for label, parent in jobs]
        assert opts.max_length is not None
        new = opts.max_length - len(prefix)
        width = max(len(f) for f in forced) + new
        slots = _Slots(min(rows, len(jobs)), width, framing.sep)
        step = self._step(Truncation(opts.top_k, opts.top_p))
        vocab = int(self.lm.backbone.token_embedding.embeddings.shape[0])
        banned = np.zeros(vocab, bool)
        banned[[i for i in self.tokens.special if i != framing.sep and i < vocab]] = True
        fixed = (tf.constant(new, tf.int32), tf.constant(opts.temperatures, tf.float32), tf.constant(opts.repetition_penalty or 1.0, tf.float32), tf.constant(banned))
        seed = tf.constant([opts.seed, number], tf.int64)
        cache = self.decoder.empty_cache(slots.rows, width)
        seen, done = tf.zeros([slots.rows, vocab], tf.bool), tf.zeros([slots.rows], tf.bool)
        queue = iter(enumerate(forced))
        for row in range(slots.rows):
            slots.start(row, *next(queue))
        slots.fresh()  # the state above is already clear
        finished: dict[int, Sample] = {}
        following, counter, exhausted = 0, 0, False
        temperature = opts.sample_temperature()
        while slots.rows:
            token, forced_next = slots.feed()
            chosen, logp, cache, seen, done = step(token, forced_next, cache, tf.constant(slots.position), seen, done, tf.cast(tf.random.experimental.stateless_fold_in(seed, counter), tf.int64), tf.constant(slots.length), *fixed)
            counter += 1
            slots.record(chosen.numpy(), logp.numpy())
            ended = np.flatnonzero(done.numpy())
            if not len(ended):
                continue
            for slot in ended.tolist():
                job, sampled, scores = slots.result(slot, new)
                finished[job] = self._sample(sampled, scores, opts, temperature, *jobs[job])
                taken = None if exhausted else next(queue, None)
                if taken is not None:
                    slots.start(slot, *taken)
                exhausted = taken is None
            fresh = slots.fresh()
            if fresh.any():
                seen, done = tf.where(fresh[:, None], False, seen), tf.where(fresh, False, done)
            if exhausted:  # the rows that ended stay ended: pack the others together
                keep = np.flatnonzero(~done.numpy()).astype(np.int32)
                slots.keep(keep)
                cache = tf.nest.map_structure(lambda part: tf.gather(part, keep), cache)
                seen, done = tf.gather(seen, keep), tf.gather(done, keep)
            ready = []
            while following in finished:
                ready.append(finished.pop(following))
                following += 1
            if ready:
                yield ready

    def _sample(self, sampled: np.ndarray, scores: np.ndarray, opts: GenerateRequest, temperature: float | None, label: str | None, parent: str | None) -> Sample:
        """A row's sample from what it sampled (up to its end marker) and the log-probabilities: the
        text after the prefix, cut at a stop string, and the mean log-probability, the end marker included."""
        ends = np.flatnonzero(sampled == self.tune.framing.sep)
        stop = int(ends[0]) if len(ends) else len(sampled)
        score = float(scores[: stop + 1].mean()) if len(scores) else float("nan")
        return Sample(cut_at_stop(opts.prefix + self.tokens.decode(sampled[:stop]), opts.stop), score, temperature, label, parent)

    def _step(self, truncation: Truncation) -> Any:
        """The compiled step for these truncation settings (built once; the row count and length may vary)."""
        if truncation not in self._steps:
            rows, scalar = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)
            signature = [
                tf.TensorSpec([None, 1], tf.int32), rows, self.decoder.cache_spec(), rows, tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([None], tf.bool),
                tf.TensorSpec([2], tf.int64), rows, scalar, tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.float32), tf.TensorSpec([None], tf.bool),
            ]  # fmt: skip
            self._steps[truncation] = tf.function(functools.partial(self._one_step, truncation=truncation), input_signature=signature)
        return self._steps[truncation]

    def _one_step(
        self, token: Any, forced_next: Any, cache: Any, positions: Any, seen: Any, done: Any, seed: Any,
        lengths: Any, new: Any, temperatures: Any, penalty: Any, banned: Any, *, truncation: Truncation,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Feed every row's token at its position and choose the next: the forced token while the row's
        context and prefix last, else a sample. Returns the choice, its log-probability, and the new state."""
        sep = self.tune.framing.sep
        logits, cache = self.decoder.step(token, cache, positions)
        logits = tf.cast(logits[:, 0, :], tf.float32)
        vocab = tf.shape(logits)[1]
        not_sep = tf.range(vocab)[None, :] != sep
        generated = positions + 1 - lengths  # the index of the chosen token among the row's sampled ones
        temperature = tf.gather(temperatures, tf.math.floormod(tf.maximum(generated, 0), tf.shape(temperatures)[0]))[:, None]
        penalised = tf.where(seen, tf.where(logits > 0, logits / penalty, logits * penalty), logits)
        first = tf.logical_and((generated == 0)[:, None], tf.logical_not(not_sep))  # never an empty sample
        allowed = truncate(tf.where(tf.logical_or(first, banned[None, :]), -float("inf"), penalised), temperature, truncation)
        chosen = choose(allowed, temperature, seed)
        chosen = tf.where(tf.logical_or(generated < 0, done), forced_next, chosen)
        logp = tf.gather(tf.nn.log_softmax(logits), chosen, batch_dims=1)
        fed = tf.logical_and(tf.one_hot(token[:, 0], vocab, on_value=True, off_value=False, dtype=tf.bool), not_sep)
        seen = tf.logical_or(seen, fed)
        done = tf.logical_or(done, tf.logical_and(generated >= 0, tf.logical_or(chosen == sep, generated + 1 >= new)))
        return chosen, logp, cache, seen, done


class _Slots:
    """The rows of a running batch, on the host: each row's tokens so far (its context, then what was
    sampled), their log-probabilities, its position, its context length and the job it is doing."""

    def __init__(self, rows: int, width: int, filler: int) -> None:
        self.filler = filler
        self.tokens = np.full((rows, width), filler, np.int32)
        self.logps = np.zeros((rows, width), np.float32)
        self.position = np.zeros(rows, np.int32)
        self.length = np.zeros(rows, np.int32)
        self.job = np.zeros(rows, np.int64)
        self._fresh = np.zeros(rows, bool)

    @property
    def rows(self) -> int:
        return len(self.position)

    def start(self, row: int, job: int, forced: list[int]) -> None:
        """Give ``row`` the job ``job``, whose context and prefix are ``forced``, from position 0."""
        self.tokens[row] = self.filler
        self.tokens[row, : len(forced)] = forced
        self.logps[row] = 0.0
        self.position[row], self.length[row], self.job[row], self._fresh[row] = 0, len(forced), job, True

    def fresh(self) -> np.ndarray:
        """Which rows started a job since the last call (their sampling state must be cleared)."""
        fresh, self._fresh = self._fresh, np.zeros(self.rows, bool)
        return fresh

    def feed(self) -> tuple[Any, Any]:
        """Every row's token at its position (rows, 1), and the token at the next (forced while the context lasts)."""
        at = np.arange(self.rows)
        return tf.constant(self.tokens[at, self.position][:, None]), tf.constant(self.tokens[at, self.position + 1])

    def record(self, chosen: np.ndarray, logp: np.ndarray) -> None:
        at, self.position = np.arange(self.rows), self.position + 1
        self.tokens[at, self.position], self.logps[at, self.position] = chosen, logp

    def result(self, row: int, new: int) -> tuple[int, np.ndarray, np.ndarray]:
        """The job of ``row`` and what it sampled, with the log-probabilities."""
        begin = int(self.length[row])
        return int(self.job[row]), self.tokens[row, begin : begin + new], self.logps[row, begin : begin + new]

    def keep(self, rows: np.ndarray) -> None:
        self.tokens, self.logps, self.position, self.length, self.job, self._fresh = (
            self.tokens[rows], self.logps[rows], self.position[rows], self.length[rows], self.job[rows], self._fresh[rows],
        )  # fmt: skip

