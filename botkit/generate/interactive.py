"""Interactive generation, as textgenrnn's ``interactive=True``: the user picks every next token.

At each step the text so far and the ``top_n`` likeliest next tokens (with their probabilities
under the untempered model) are shown; the user answers with

* a number: take that token;
* Enter: let the model choose (at the given temperature);
* ``x``: take back the last token;
* ``s`` (or end of input): stop;
* anything else: that text is added (a leading backslash makes ``\\s``, ``\\x`` or ``\\2`` literal).

A word model's casing marks (``<cap>``, ``<upper>``) and spacing tokens show nothing on their own,
so they are never offered: a mark is folded into the word after it ("Word" is offered with the
probability of ``<cap>`` times that of "word" after it), and a mark the model samples takes its
word with it.

The state is carried token by token with the same step the batch generator compiles, one row,
from the separator to the last token (the "carry" context: an interactive text rarely outgrows
the trained window, and a take-back replays the text from the start anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from botkit.generate.generator import Generator, Label
from botkit.model.vocab import CAP, SEP, SEP_ID, UPPER, is_spacing, join_words

END = "<end>"  # how the document separator is shown: choosing it ends the text

Choice = tuple[tuple[int, ...], float]  # the ids one answer adds (marks and their word, or one token), and their probability
_FOLD_DEPTH = 2  # marks before a word: a spacing token, then a casing mark


@dataclass
class _Text:
    """The tokens typed or chosen so far: ids for the model, strings for display (as typed)."""

    ids: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)


class Session:
    """One interactive text; :meth:`run` drives it with ``read``/``write`` (input/print by default)."""

    def __init__(
        self,
        generator: Generator,
        *,
        top_n: int = 3,
        temperature: float = 1.0,
        label: Label = None,
        max_length: int | None = None,
        seed: int = 0,
        prefix: str = "",
    ) -> None:
        import tensorflow as tf

        self.generator, self.top_n, self.temperature = generator, top_n, temperature
        self.max_length = max_length or generator.default_max_length()
        row = generator.label_row(label)
        self.labels = tf.constant([row], tf.int32)
        output = generator.output_for(np.array([row]))
        network = generator.network
        self._step = tf.function(lambda token, state: network.step(token, self.labels, state, output), autograph=False)
        self.rng = np.random.default_rng(seed)
        self.marks = [i for i, token in enumerate(generator.vocab.tokens) if token in (CAP, UPPER) or generator.vocab.level == "word" and is_spacing(token)]
        self.text = _Text()
        self._restart()
        self.add([int(i) for i in generator.vocab.encode(prefix)], generator.vocab.split(prefix))

    def _restart(self) -> None:
        """State after the separator and the current tokens (after a take-back, from scratch)."""
        self.state = self.generator.network.initial_state(1)
        self.probs = self._feed(SEP_ID)
        for token in self.text.ids:
            self.probs = self._feed(token)

    def _feed(self, token: int) -> np.ndarray:
        probs, self.state = self._after(token)
        return probs

    def _after(self, token: int, state: Any = None) -> tuple[np.ndarray, Any]:
        """The next-token probabilities after ``token`` (from ``state``, else the session's), and the new state, uncommitted."""
        import tensorflow as tf

        logits, state = self._step(tf.constant([token], tf.int32), self.state if state is None else state)
        logits = np.asarray(logits, np.float64)[0]
        probs = np.exp(logits - logits.max())
        return probs / probs.sum(), state

    def _allowed(self, probs: np.ndarray, marks_before: int = 0) -> np.ndarray:
        """``probs`` with what may not be chosen at zero: never padding or ``<unk>``; after a mark not
        the end; after ``_FOLD_DEPTH`` marks no further mark."""
        probs = probs.copy()
        probs[list(self.generator.banned_ids)] = 0.0
        if marks_before:
            probs[SEP_ID] = 0.0
        if marks_before >= _FOLD_DEPTH:
            probs[self.marks] = 0.0
        return probs

    def add(self, ids: list[int], pieces: list[str]) -> None:
        for token, piece in zip(ids, pieces):
            self.text.ids.append(token)
            self.text.pieces.append(piece)
            self.probs = self._feed(token)

    def take_back(self) -> None:
        """Remove the last token, and the marks of a word with it."""
        if self.text.ids:
            self.text.ids.pop()
            self.text.pieces.pop()
            while self.text.ids and self.text.ids[-1] in self.marks:
                self.text.ids.pop()
                self.text.pieces.pop()
            self._restart()

    def shown(self) -> str:
        return self._text(self.text.pieces)

    def _text(self, pieces: list[str]) -> str:
        return "".join(pieces) if self.generator.vocab.level == "char" else join_words(pieces)

    def _top(self, probs: np.ndarray) -> list[Choice]:
        order = np.argsort(-probs, kind="stable")[: self.top_n]
        return [((int(i),), float(probs[i])) for i in order if probs[i] > 0]

    def choices(self) -> list[Choice]:
        """The ``top_n`` likeliest answers and their probabilities; a mark comes with its word."""
        return self._folded(self.probs, self.state, (), 1.0)

    def _folded(self, probs: np.ndarray, state: Any, marks: tuple[int, ...], p: float) -> list[Choice]:
        """The likeliest answers after ``marks`` (probability ``p``), each mark followed into its word.

        A mark is only followed when it could still make the list: what follows it is never more
        likely than the mark itself.
        """
        probs = self._allowed(probs, len(marks))
        found = [((*marks, *ids), p * q) for ids, q in self._top(probs) if ids[0] not in self.marks]
        for mark in self.marks:
            floor = sorted((q for _, q in found), reverse=True)[self.top_n - 1] if len(found) >= self.top_n else 0.0
            if p * probs[mark] > floor:
                after, after_state = self._after(mark, state)
                found += self._folded(after, after_state, (*marks, mark), p * probs[mark])
        return sorted(found, key=lambda choice: -choice[1])[: self.top_n]

    def _sample(self, probs: np.ndarray) -> int:
        if self.temperature == 0:
            return int(np.argmax(probs))
        tempered = np.where(probs > 0, np.exp(np.log(np.maximum(probs, 1e-300)) / self.temperature), 0.0)
        return int(self.rng.choice(len(probs), p=tempered / tempered.sum()))

    def sampled(self) -> tuple[int, ...]:
        """The model's choice at the session's temperature: a token, or marks and their word."""
        ids: list[int] = []
        probs, state = self.probs, self.state
        while True:
            ids.append(self._sample(self._allowed(probs, len(ids))))
            if ids[-1] not in self.marks:
                return tuple(ids)
            probs, state = self._after(ids[-1], state)

    def choice_name(self, ids: tuple[int, ...]) -> str:
        tokens = [self.generator.vocab.tokens[i] for i in ids]
        return END if tokens == [SEP] else repr(self._text(tokens))

    def run(self, read: Callable[[str], str] = input, write: Callable[[str], Any] = print) -> str:
        """Ask for tokens until the user stops, chooses the end, or the text is ``max_length`` tokens long."""
        write("choose a number, Enter to let the model choose, type text to add it, x to take back, s to stop")
        while len(self.text.ids) < self.max_length:
            choices = self.choices()
            write(f"\n{self.shown()}")
            write("  ".join(f"{n}: {self.choice_name(ids)} {p:.1%}" for n, (ids, p) in enumerate(choices, 1)))
            try:
                answer = read("> ")
            except EOFError:
                break
            if answer == "s":
                break
            if answer == "x":
                self.take_back()
                continue
            ids = self._answer_ids(answer, choices)
            if ids == (SEP_ID,):
                break
            if ids is not None:
                self.add(list(ids), [self.generator.vocab.tokens[i] for i in ids])
        text = self.shown()
        write(f"\n{text}")
        return text

    def _answer_ids(self, answer: str, choices: list[Choice]) -> tuple[int, ...] | None:
        """The ids an answer picks, or None after adding typed text (or for a number out of range)."""
        if answer == "":
            return self.sampled()
        if answer.isdigit():
            number = int(answer)
            return choices[number - 1][0] if 1 <= number <= len(choices) else None
        typed = answer[1:] if answer.startswith("\\") else answer
        vocab = self.generator.vocab
        self.add([int(i) for i in vocab.encode(typed)], vocab.split(typed))
        return None
