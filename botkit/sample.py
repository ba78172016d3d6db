"""The unit generation produces and the filters judge."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated text.

    ``score`` is the mean log-probability per token under the model that wrote it (higher is
    better); it is None or NaN when unknown, e.g. for text that did not come from a model.
    ``label`` is the context label the model was conditioned on, if any; ``parent`` the text a reply
    model answered with it (not part of ``text``).
    """

    text: str
    score: float | None = None
    temperature: float | None = None
    label: str | None = None
    parent: str | None = None

    @property
    def has_score(self) -> bool:
        """Whether ``score`` holds a real number (generation may leave it None or NaN)."""
        return self.score is not None and not math.isnan(self.score)
