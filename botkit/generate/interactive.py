"""Interactive generation, as textgenrnn's ``interactive=True``: the user picks every next token.

At each step the text so far and the ``top_n`` likeliest next tokens (with their probabilities
under the untempered model) are shown; the user answers with

* a number: take that token;
* Enter: let the model choose (at the given temperature);
* ``x``: take back the last token;
* ``s`` (or end of input): stop;
* anything else: that text is added (a leading backslash makes ``\\s``, ``\\x`` or ``\\2`` literal).

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
from botkit.generate.sampling import BANNED_IDS
from botkit.model.vocab import SEP, SEP_ID, join_words

END = "<end>"  # how the document separator is shown: choosing it ends the text


@dataclass
class _Text:
    """The tokens typed or chosen so far: ids for the model, strings for display (as typed)."""

    ids: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)


class Session:
    """One interactive text; :meth:`run` drives it with ``read``/``write`` (input/print by default)."""

    def __init__(self, generator: Generator, *, top_n: int = 3, temperature: float = 1.0, label: Label = None, max_length: int | None = None, seed: int = 0, prefix: str = "") -> None:
        import tensorflow as tf

        self.generator, self.top_n, self.temperature = generator, top_n, temperature
        self.max_length = max_length or generator.default_max_length()
        row = generator.label_row(label)
        self.labels = tf.constant([row], tf.int32)
        output = generator.output_for(np.array([row]))
        network = generator.network
        self._step = tf.function(lambda token, state: network.step(token, self.labels, state, output), autograph=False)
        self.rng = np.random.default_rng(seed)
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
        import tensorflow as tf

        logits, self.state = self._step(tf.constant([token], tf.int32), self.state)
        logits = np.asarray(logits, np.float64)[0]
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    def add(self, ids: list[int], pieces: list[str]) -> None:
        for token, piece in zip(ids, pieces):
            self.text.ids.append(token)
            self.text.pieces.append(piece)
            self.probs = self._feed(token)

    def take_back(self) -> None:
        if self.text.ids:
            self.text.ids.pop()
            self.text.pieces.pop()
            self._restart()

    def shown(self) -> str:
        pieces = self.text.pieces
        return "".join(pieces) if self.generator.vocab.level == "char" else join_words(pieces)

    def choices(self) -> list[tuple[int, float]]:
        """The ``top_n`` likeliest allowed next tokens and their probabilities."""
        probs = self.probs.copy()
        probs[list(BANNED_IDS)] = 0.0
        order = np.argsort(-probs, kind="stable")[: self.top_n]
        return [(int(i), float(probs[i])) for i in order]

    def sampled(self) -> int:
        probs = self.probs.copy()
        probs[list(BANNED_IDS)] = 0.0
        if self.temperature == 0:
            return int(np.argmax(probs))
        tempered = np.where(probs > 0, np.exp(np.log(np.maximum(probs, 1e-300)) / self.temperature), 0.0)
        return int(self.rng.choice(len(probs), p=tempered / tempered.sum()))

    def token_name(self, token: int) -> str:
        name = self.generator.vocab.tokens[token]
        return END if name == SEP else repr(name)

    def run(self, read: Callable[[str], str] = input, write: Callable[[str], Any] = print) -> str:
        """Ask for tokens until the user stops, chooses the end, or the text is ``max_length`` tokens long."""
        write("choose a number, Enter to let the model choose, type text to add it, x to take back, s to stop")
        while len(self.text.ids) < self.max_length:
            choices = self.choices()
            write(f"\n{self.shown()}")
            write("  ".join(f"{n}: {self.token_name(t)} {p:.1%}" for n, (t, p) in enumerate(choices, 1)))
            try:
                answer = read("> ")
            except EOFError:
                break
            if answer == "s":
                break
            if answer == "x":
                self.take_back()
                continue
            token = self._answer_token(answer, choices)
            if token == SEP_ID:
                break
            if token is not None:
                self.add([token], [self.generator.vocab.tokens[token]])
        text = self.shown()
        write(f"\n{text}")
        return text

    def _answer_token(self, answer: str, choices: list[tuple[int, float]]) -> int | None:
        """The token an answer picks, or None after adding typed text (or for a number out of range)."""
        if answer == "":
            return self.sampled()
        if answer.isdigit():
            number = int(answer)
            return choices[number - 1][0] if 1 <= number <= len(choices) else None
        typed = answer[1:] if answer.startswith("\\") else answer
        vocab = self.generator.vocab
        self.add([int(i) for i in vocab.encode(typed)], vocab.split(typed))
        return None
