"""A bot's candidates from a model: the ``CandidateSupplier`` protocol of ``botkit.bots.supply``.

A bot asks for ``n`` candidates at a time, filters them and keeps the survivors in its ledger;
each refill draws a fresh seed, so a bot never posts the same batch twice. The bot's settings
give the longest post in characters; a word model's token count is derived from it (the length
filter then holds the exact limit).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from pathlib import Path

from botkit.generate.generator import CHARS_PER_WORD_TOKEN, Generator, Label
from botkit.sample import Sample


class ModelSupplier:
    """Generates a bot's candidates from the model in ``weights`` (loaded once, compiled on first use)."""

    def __init__(
        self,
        weights: str | Path,
        *,
        temperature: float | Sequence[float] = 1.0,
        max_chars: int | None = None,
        label: Label = None,
        prefix: str | None = None,
    ) -> None:
        self.generator = Generator.load(weights)
        self.options = {"temperature": temperature, "label": label, "prefix": prefix or "", "max_length": self._tokens(max_chars)}

    def _tokens(self, max_chars: int | None) -> int | None:
        if max_chars is None or self.generator.vocab.level == "char":
            return max_chars
        return math.ceil(max_chars / CHARS_PER_WORD_TOKEN)

    def candidates(self, n: int) -> list[Sample]:
        return self.generator.generate(n, seed=secrets.randbits(31), **self.options)
