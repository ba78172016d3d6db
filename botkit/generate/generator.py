"""Batched incremental generation: :class:`Generator` and the options it takes.

B sequences are generated side by side by one compiled TensorFlow function: a ``tf.while_loop``
of :meth:`StepNetwork.step` and the seeded choice of :mod:`botkit.generate.sampling`. A row that
ends its sample (the end-of-document separator, or ``max_length`` tokens) starts the next sample
at once, with a fresh state, so short samples do not leave rows idle while the longest one of a
batch finishes; Python sees one call per ``CALL_BATCHES`` × B samples, not one per token
(measured in ``bench/generate_vs_textgenrnn.py``).

Every sample starts from the document separator, as every training document does, then the
prefix (fed token by token through the same step), then the sampled tokens. Its ``score`` is the
mean log-probability, per sampled token (the closing separator included, the prefix not), under
the model's *untempered*, untruncated distribution: a measure of how typical the text is for the
model whatever temperature wrote it, comparable across samples and runs.

A reply model (see :attr:`~botkit.model.vocab.Vocabulary.conditional`) writes replies: each sample
is forced through ``parent <reply>`` before the prefix, exactly as its training documents begin,
and the parent is context, not text: it is not in the sample and not in its score. The forced part
is per sample (a row that finishes a reply to one parent may start a reply to the next), and
``max_length`` counts the reply only.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from botkit.atomic import atomic_output
from botkit.corpus.io import encode_txt
from botkit.errors import ConfigError
from botkit.generate.sampling import BANNED_IDS, Truncation, ban, check_temperatures, choose, truncate
from botkit.generate.step import NO_LABEL_ROW, Output, StepNetwork
from botkit.model.vocab import PAD_ID, SEP_ID, VocabError, Vocabulary, join_words
from botkit.sample import Sample
from botkit.training import trained_window

DEFAULT_MAX_CHARS = 300
#: Characters per word-level token (words, punctuation, casing marks), measured on the Hacker News,
#: Reddit-titles and tiny-Shakespeare test corpora (3.33-3.48): the default word-level
#: ``max_length`` is the token count that gives about :data:`DEFAULT_MAX_CHARS` characters.
CHARS_PER_WORD_TOKEN = 3.4
DEFAULT_BATCH_SIZE = 500  # rows; short samples favour fewer rows (rows refill), long ones more (bench)
#: Samples per compiled call, in batches: rows refill within a call, so only a call's last samples
#: leave rows idle; more per call means less idling but bigger output arrays and later streaming.
CALL_BATCHES = 4
_FORMATS = (".txt", ".jsonl")

Label = str | None
Parent = str | None
#: "window": keep every prediction's context within the trained window (see :meth:`Generator._compile`);
#: "carry": carry the state from the first token to the last, however long the sample;
#: "sliding": textgenrnn's way, every prediction from exactly the last W tokens, left-padded
#: (W times the work; the default for models imported from textgenrnn, whose distribution it reproduces).
Context = Literal["window", "carry", "sliding"]


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate. Temperatures cycle per sampled token (token i uses ``temperature[i % len]``,
    as textgenrnn does); labels are spread over the samples (sample j gets ``label[j % len]``).
    ``parent`` (a reply model's only): one text, or several, each answered by ``n`` samples in turn."""

    temperature: float | Sequence[float] = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""
    label: Label | Sequence[Label] = None
    max_length: int | None = None  # tokens (= characters for char models); default ~300 characters
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    context: Context | None = None  # None: "sliding" for imported textgenrnn models, else "window"
    parent: Parent | Sequence[str] = None
    repetition_penalty: float | None = None  # transformer models only
    stop: Sequence[str] | None = None  # cut each sample where one of these first appears

    @property
    def temperatures(self) -> list[float]:
        t = self.temperature
        return [float(t)] if isinstance(t, int | float) else [float(x) for x in t]

    @property
    def labels(self) -> list[Label]:
        return [self.label] if self.label is None or isinstance(self.label, str) else list(self.label) or [None]

    @property
    def parents(self) -> list[Parent]:
        return [self.parent] if self.parent is None or isinstance(self.parent, str) else list(self.parent)

    def sample_temperature(self) -> float | None:
        """The temperature a :class:`Sample` records: the value, or None when it cycles."""
        temps = self.temperatures
        return temps[0] if len(set(temps)) == 1 else None


@dataclass
class _Call:
    """One call of the compiled loop: its number in the run, its samples' labels and forced tokens
    (a reply's parent and separator, then the prefix), padded to one width for the whole run."""

    number: int
    labels: list[Label]
    forced: np.ndarray  # (samples, width) int32
    lengths: np.ndarray  # (samples,) forced tokens of each sample
    contexts: np.ndarray  # (samples,) of those, the parent's and its separator's (not counted by max_length)
    parents: list[Parent]  # what each sample answers (None: a post)


class SampleSource(ABC):
    """What every model family's generator offers (``botkit generate``, bots, the console use only
    this): samples batch by batch from :meth:`batches`, and everything else built on it."""

    path: Path | None
    training: dict[str, Any]

    @abstractmethod
    def batches(self, n: int, **options: Any) -> Iterator[list[Sample]]:
        """``n`` samples (or ``n`` replies to each parent) as lists, one per compiled call (filters judge whole lists at once)."""

    @property
    @abstractmethod
    def conditional(self) -> bool:
        """Whether the model writes replies (it was trained on a corpus with parents)."""

    def generate(self, n: int, **options: Any) -> list[Sample]:
        """``n`` samples, or ``n`` replies to each ``parent`` in turn (see :class:`GenerateRequest` for the keywords)."""
        return list(self.stream(n, **options))

    def stream(self, n: int, **options: Any) -> Iterator[Sample]:
        """``n`` samples, yielded batch by batch as each batch finishes."""
        for batch in self.batches(n, **options):
            yield from batch

    def write(self, path: str | Path, n: int, **options: Any) -> int:
        """Generate ``n`` samples into ``path`` (.txt or .jsonl, see :func:`write_samples`); how many."""
        return write_samples(path, self.stream(n, **options))


class Generator(SampleSource):
    """Generates samples from a trained model: one in a model folder with :meth:`load`, or a
    model in memory with the constructor (``botkit train``'s previews build one from the model in
    training; ``training`` is the training part of its config.json, for the window).

    The step network copies the model's weights when the generator is built: it keeps generating
    from those, whatever the model learns afterwards (the previews build a new one each time).
    ``jit`` compiles the loop with XLA; see ``bench/generate_vs_textgenrnn.py`` for what it gains.
    """

    def __init__(self, model: Any, config: Any, vocab: Vocabulary, training: dict[str, Any] | None = None, *, jit: bool = True) -> None:
        self.config, self.vocab, self.training = config, vocab, training or {}
        self.network = StepNetwork(model, config)
        # <reply> is structure, never sampled: it only ever follows a parent.
        self.banned_ids = BANNED_IDS + ((vocab.reply_id,) if vocab.reply_id is not None else ())
        self.jit = jit
        self._loops: dict[tuple[Any, ...], Any] = {}
        self.path: Path | None = None

    @classmethod
    def load(cls, path: str | Path, *, jit: bool = True) -> Generator:
        """The generator of a ``weights/NAME`` folder (missing or corrupt files: a one-line ModelFolderError)."""
        from botkit.model import saving

        saved = saving.load(path)
        generator = cls(saved.model, saved.config, saved.vocab, saved.training, jit=jit)
        generator.path = saved.path
        return generator

    @property
    def conditional(self) -> bool:
        return self.vocab.conditional

    @property
    def window(self) -> int:
        """The context length the model was trained on (tokens); training's default window when unsaid."""
        return trained_window(self.training)

    def default_context(self) -> Context:
        """textgenrnn's sliding window for a model imported from it, else the trained window."""
        return "sliding" if self.training.get("imported_from") else "window"

    def default_max_length(self) -> int:
        if self.vocab.level == "char":
            return DEFAULT_MAX_CHARS
        return round(DEFAULT_MAX_CHARS / CHARS_PER_WORD_TOKEN)

    # -- the public API ---------------------------------------------------------------------------

    def batches(self, n: int, **options: Any) -> Iterator[list[Sample]]:
        """``n`` samples as lists, one per compiled call (filters judge whole lists at once)."""
        opts = self._check(n, GenerateRequest(**options))
        total = n * len(opts.parents)
        per_call = max(min(total, opts.batch_size * CALL_BATCHES), 1)  # one shape for every call: XLA compiles once
        for call in self._calls(n, per_call, opts):
            yield self._run_call(call, opts, rows=min(total, opts.batch_size))

    # -- one call of the compiled loop ----------------------------------------------------------

    def _check(self, n: int, opts: GenerateRequest) -> GenerateRequest:
        if n < 0 or opts.batch_size < 1:
            raise ConfigError(f"-n must be at least 0 and --batch-size at least 1 (got {n} and {opts.batch_size})")
        check_temperatures(opts.temperatures)
        context = opts.context or self.default_context()
        if context not in ("window", "carry", "sliding"):
            raise ConfigError(f"context must be 'window', 'carry' or 'sliding' (got {context!r})")
        Truncation(opts.top_k, opts.top_p).check()
        if opts.repetition_penalty is not None:
            raise ConfigError("--repetition-penalty is for transformer models; an LSTM model takes temperatures, --top-k and --top-p")
        for label in opts.labels:
            self.label_row(label)
        self._check_parents(opts.parents)
        max_length = opts.max_length or self.default_max_length()
        prefix_tokens = len(self.vocab.split(opts.prefix))
        if max_length < 1 or prefix_tokens >= max_length:
            raise ConfigError(f"--max-length must exceed the prefix length ({prefix_tokens} tokens); got {max_length}")
        return replace(opts, max_length=max_length, context=context)

    def _check_parents(self, parents: list[Parent]) -> None:
        """A reply model needs a parent to answer, and only a reply model takes one."""
        where = self.path or "this model"
        if not parents:
            raise ConfigError("give at least one parent to reply to (the list of parents is empty)")
        if self.vocab.conditional and None in parents:
            raise ConfigError(
                f"{where} is a reply model: give --parent TEXT or --parents FILE (--parent '' replies to nothing, as to a document without a parent)"
            )
        if not self.vocab.conditional and parents != [None]:
            raise ConfigError(f"{where} is not a reply model (its corpus had no parents): drop --parent/--parents, or train on a pair corpus")

    def context_ids(self, parent: Parent) -> np.ndarray:
        """The tokens a reply to ``parent`` is forced through: the parent and the reply separator (none for a post)."""
        if parent is None or self.vocab.reply_id is None:
            return np.zeros(0, np.int32)
        return np.append(self.vocab.encode(parent), self.vocab.reply_id).astype(np.int32)

    def label_row(self, label: Label) -> int:
        """The row label for ``label``: NO_LABEL_ROW (label-free output) for None."""
        if label is None:
            return NO_LABEL_ROW
        try:
            return self.vocab.label_id(label)
        except VocabError as exc:
            raise ConfigError(str(exc)) from None

    def _calls(self, n: int, per_call: int, opts: GenerateRequest) -> Iterator[_Call]:
        """The run's calls: sample j has label ``j % labels`` and answers parent ``j // n``."""
        labels, total = opts.labels, n * len(opts.parents)
        prefix = self.vocab.encode(opts.prefix).astype(np.int32)
        contexts = [self.context_ids(parent) for parent in opts.parents]
        width = max(map(len, contexts)) + len(prefix)
        for number, start in enumerate(range(0, total, per_call)):
            samples = range(start, min(total, start + per_call))
            forced = np.zeros((per_call, width), np.int32)  # one shape per run: XLA compiles once
            lengths, context_lengths = np.zeros(per_call, np.int32), np.zeros(per_call, np.int32)
            for row, j in enumerate(samples):
                context = contexts[j // n]
                forced[row, : len(context) + len(prefix)] = np.concatenate([context, prefix])
                lengths[row], context_lengths[row] = len(context) + len(prefix), len(context)
            parents = [opts.parents[j // n] for j in samples]
            yield _Call(number, [labels[j % len(labels)] for j in samples], forced, lengths, context_lengths, parents)

    def output_for(self, label_ids: np.ndarray) -> Output:
        if not self.config.labelled or (label_ids != NO_LABEL_ROW).all():
            return "next"
        return "aux" if (label_ids == NO_LABEL_ROW).all() else "both"

    def _run_call(self, call: _Call, opts: GenerateRequest, rows: int) -> list[Sample]:
        label_ids = np.array([self.label_row(label) for label in call.labels], np.int32)
        assert opts.max_length is not None  # _check settled it
        limits = call.contexts + opts.max_length
        tokens, logps, rows_of, sampled = self._loop_call(call.forced, call.lengths, limits, label_ids, rows, opts, call.number)
        temperature = opts.sample_temperature()
        samples = []
        for (tokens, logps, sampled), label, parent in zip(_by_sample(tokens, logps, rows_of, sampled, len(call.labels)), call.labels, call.parents):
            ids, scored = tokens[sampled], logps[sampled]
            ids = ids[:-1] if len(ids) and ids[-1] == SEP_ID else ids
            samples.append(Sample(cut_at_stop(self.detokenise(opts.prefix, ids), opts.stop), float(scored.mean()), temperature, label, parent))
        return samples

    def score(self, ids: np.ndarray, label: Label = None, context: Context | None = None) -> np.ndarray:
        """log p(``ids[:, t]`` | separator, ``ids[:, :t]``) for every row and t, computed by the
        generation loop itself (the same steps, state and context handling): (rows, T)."""
        ids = np.asarray(ids, np.int32)
        label_ids = np.full(ids.shape[0], self.label_row(label), np.int32)
        lengths = np.full(len(ids), ids.shape[1], np.int32)
        _, logps, _, _ = self._loop_call(ids, lengths, lengths, label_ids, len(ids), GenerateRequest(context=context or self.default_context()), 0)
        return logps[: ids.shape[1]].T

    def _loop_call(
        self, forced: np.ndarray, lengths: np.ndarray, limits: np.ndarray, label_ids: np.ndarray, rows: int, opts: GenerateRequest, number: int
    ) -> tuple[np.ndarray, ...]:
        """Run the compiled loop over ``len(label_ids)`` samples (at most ``len(forced)``) on ``rows`` rows.

        Sample j is forced through ``forced[j, :lengths[j]]`` and ends by ``limits[j]`` tokens.
        Returns (steps, rows) arrays: the token each row chose at each step, its log-probability,
        the sample it belongs to (-1: the row was idle) and whether it was sampled (not forced).
        """
        import tensorflow as tf

        per_call, longest = len(forced), int(limits.max())
        steps = -(-per_call * longest // rows) + longest  # every row busy until the last samples start
        window = self.window if opts.context == "window" and longest > self.window else None
        sliding = self.window if opts.context == "sliding" else None
        loop = self._loop(rows, steps, self.output_for(label_ids), Truncation(opts.top_k, opts.top_p), window, sliding)
        labels = np.zeros(per_call, np.int32)  # one shape per call size: XLA compiles once
        labels[: len(label_ids)] = label_ids
        result = loop(
            tf.constant(forced, tf.int32),
            tf.constant(lengths, tf.int32),
            tf.constant(limits, tf.int32),
            tf.constant(labels),
            tf.constant(len(label_ids), tf.int32),
            tf.constant(opts.temperatures, tf.float32),
            tf.constant([opts.seed, number], tf.int64),
        )
        return tuple(t.numpy() for t in result)

    def detokenise(self, prefix: str, ids: Sequence[int]) -> str:
        """``prefix`` followed by the text of ``ids``; the prefix is kept as typed, even its unknown tokens."""
        if self.vocab.level == "char":
            return prefix + self.vocab.decode(ids)
        return join_words([*self.vocab.split(prefix), *(self.vocab.tokens[i] for i in ids)])

    # -- the compiled loop ------------------------------------------------------------------------

    def _loop(self, rows: int, steps: int, output: Output, truncation: Truncation, window: int | None, sliding: int | None) -> Any:
        """The compiled generation loop for these settings (compiled once, on first use)."""
        key = (rows, steps, output, truncation, window, sliding)
        if key not in self._loops:
            self._loops[key] = self._compile(*key)
        return self._loops[key]

    def _compile(self, rows: int, steps: int, output: Output, truncation: Truncation, window: int | None, sliding: int | None) -> Any:
        """At most ``steps`` steps of ``rows`` rows: every row feeds its token, then takes the next
        one of its sample's forced tokens or samples one; a row whose sample is complete starts the next sample.

        With ``window`` (the trained window W), beyond W tokens every prediction conditions on
        the last W/2..W tokens only, as in training and ``botkit eval``: each row carries a second,
        "shadow" state that restarts from zero every W/2 tokens and replaces the main state W/2
        tokens later, when it holds exactly the last W/2 tokens (twice the LSTM work, no replay).

        With ``sliding`` (W), every prediction is computed afresh from the last W tokens fed,
        left-padded with padding ids, exactly as textgenrnn predicts from its windows.
        """
        import tensorflow as tf

        network = self.network
        spec = tf.TensorSpec
        half = window // 2 if window else 0

        def where_rows(mask: Any, new: Any, old: Any) -> Any:
            """Per row: ``new``'s state where ``mask``, else ``old``'s."""
            return tuple(tf.where(mask[:, None], a, b) for a, b in zip(new, old))

        @tf.function(
            jit_compile=self.jit,
            autograph=False,  # the loop is an explicit tf.while_loop
            input_signature=[
                spec([None, None], tf.int32), spec([None], tf.int32), spec([None], tf.int32),
                spec([None], tf.int32), spec([], tf.int32), spec([None], tf.float32), spec([2], tf.int64),
            ],
        )  # fmt: skip
        def loop(forced: Any, lengths: Any, limits: Any, sample_labels: Any, n: Any, temperatures: Any, seed: Any) -> tuple[Any, ...]:
            forced = tf.concat([forced, tf.fill([tf.shape(forced)[0], 1], SEP_ID)], axis=1)  # non-empty rows
            width = tf.shape(forced)[1]
            forced_flat = tf.reshape(forced, [-1])
            zero = network.initial_state(rows)

            def body(i: Any, token: Any, position: Any, sample: Any, following: Any, state: Any, shadow: Any, recent: Any, out: Any) -> tuple[Any, ...]:
                """``position``: of ``token`` in its sample (0 is the separator it starts with);
                ``sample``: the number of each row's sample (n or more: idle); ``following``: the next number."""
                if window:
                    since = position - (window - half)
                    state = where_rows(tf.logical_and(position >= window, tf.math.floormod(position - window, half) == 0), shadow, state)
                    shadow = network.advance(token, where_rows(tf.logical_and(since >= 0, tf.math.floormod(since, half) == 0), zero, shadow))
                current = tf.minimum(sample, n - 1)
                labels = tf.gather(sample_labels, current)
                prefix_length = tf.gather(lengths, current)
                if sliding:  # ``recent``: the last W tokens fed, oldest first, padding before the sample's start
                    recent = tf.concat([recent[1:], token[None, :]], axis=0)
                    state = tf.while_loop(lambda k, _: k < sliding, lambda k, s: (k + 1, network.advance(recent[k], s)), (0, zero))[1]
                    logits = network.logits(state, labels, output)
                else:
                    logits, state = network.step(token, labels, state, output)
                generated = position - prefix_length  # this choice's index among the sampled tokens
                temperature = tf.gather(temperatures, tf.math.floormod(tf.maximum(generated, 0), tf.shape(temperatures)[0]))[:, None]
                allowed = ban(logits, self.banned_ids)
                # The first sampled token may not end the document: a sample is never empty.
                first = tf.logical_and((generated == 0)[:, None], tf.range(tf.shape(logits)[1])[None, :] == SEP_ID)
                allowed = truncate(tf.where(first, -float("inf"), allowed), temperature, truncation)
                sampled = choose(allowed, temperature, tf.random.experimental.stateless_fold_in(seed, i))
                prefix_token = tf.gather(forced_flat, current * width + tf.minimum(position, width - 1))
                chosen = tf.where(generated >= 0, sampled, prefix_token)
                logp = tf.gather(tf.nn.log_softmax(logits), chosen, batch_dims=1)
                active = sample < n
                out = (
                    out[0].write(i, chosen),
                    out[1].write(i, logp),
                    out[2].write(i, tf.where(active, sample, -1)),
                    out[3].write(i, generated >= 0),
                )
                ended = tf.logical_or(tf.logical_and(generated >= 0, chosen == SEP_ID), position + 1 >= tf.gather(limits, current))
                finished = tf.logical_and(active, ended)
                # A finished row starts the next sample, from scratch; numbers are given in row order.
                count = tf.cast(finished, tf.int32)
                sample = tf.where(finished, following + tf.cumsum(count, exclusive=True), sample)
                state = where_rows(finished, zero, state)
                shadow = where_rows(finished, zero, shadow) if window else shadow
                recent = tf.where(finished[None, :], PAD_ID, recent)
                token = tf.where(finished, SEP_ID, chosen)
                position = tf.where(finished, 0, position + 1)
                return i + 1, token, position, sample, following + tf.reduce_sum(count), state, shadow, recent, out

            def more(i: Any, token: Any, position: Any, sample: Any, *_: Any) -> Any:
                return tf.logical_and(i < steps, tf.reduce_any(sample < n))

            arrays = tuple(tf.TensorArray(dtype, size=steps) for dtype in (tf.int32, tf.float32, tf.int32, tf.bool))
            recent = tf.fill([sliding or 1, rows], PAD_ID)
            start = (tf.constant(0), tf.fill([rows], SEP_ID), tf.zeros([rows], tf.int32), tf.range(rows), rows, zero, zero, recent, arrays)
            last, *_, (tokens, logps, samples, sampled) = tf.while_loop(more, body, start)
            # Steps after an early stop were never written and read as zeros: mark them idle (-1).
            written = (tf.range(steps) < last)[:, None]
            return tokens.stack(), logps.stack(), tf.where(written, samples.stack(), -1), sampled.stack()

        return loop


def cut_at_stop(text: str, stops: Sequence[str] | None) -> str:
    """``text`` up to the first of the ``stops`` strings in it (a stop string itself is not kept)."""
    for stop in stops or ():
        at = text.find(stop) if stop else -1
        if at >= 0:
            text = text[:at]
    return text


def _by_sample(tokens: np.ndarray, logps: np.ndarray, samples: np.ndarray, sampled: np.ndarray, n: int) -> list[tuple[np.ndarray, ...]]:
    """Regroup the loop's (steps, rows) outputs by sample: each sample's tokens, their
    log-probabilities and which were sampled, in order, for samples 0 .. n - 1."""
    flat = samples.ravel()  # step-major: a stable sort by sample keeps each sample's tokens in order
    order = np.argsort(flat, kind="stable")
    order = order[flat[order] >= 0]
    bounds = np.cumsum(np.bincount(flat[order], minlength=n))[:-1]
    parts = (np.split(array.ravel()[order], bounds) for array in (tokens, logps, sampled))
    return list(zip(*parts))


def sample_json(sample: Sample) -> str:
    """One ``.jsonl`` line: text, score, temperature, label (score null when unknown), and a reply's parent."""
    score = sample.score if sample.has_score else None
    line = {"text": sample.text, "score": score, "temperature": sample.temperature, "label": sample.label}
    return json.dumps(line if sample.parent is None else {**line, "parent": sample.parent}, ensure_ascii=False)


def write_samples(path: str | Path, samples: Iterator[Sample] | Sequence[Sample]) -> int:
    """Write samples as they come: ``.txt`` one a line (escaped like corpora), ``.jsonl`` one object a line.

    The samples are written as they are generated, into a temporary file beside ``path`` that is
    renamed over it at the end (:func:`botkit.atomic.atomic_output`), so an interrupted run leaves
    the previous file as it was, and an output that cannot be written (no such folder, read-only,
    disk full) is one error naming it, with no temporary file left.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ConfigError(f"{path}: samples are written as .txt or .jsonl (got {suffix or 'no suffix'!r})")
    line = sample_json if suffix == ".jsonl" else lambda s: encode_txt(s.text)
    count = 0
    with atomic_output(path, what="samples file") as handle:
        for sample in samples:
            handle.write(line(sample) + "\n")
            count += 1
    return count
