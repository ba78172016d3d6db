"""Generation: many samples a second from a trained model, batched and incremental.

Python API::

    from botkit.generate import Generator, generate

    samples = generate("weights/NAME", 1000, temperature=0.5)      # list[Sample]
    gen = Generator.load("weights/NAME")
    for sample in gen.stream(10_000, temperature=[0.2, 0.5, 1.0], label="politics"):
        ...
    gen.write("out.jsonl", 1000, top_p=0.9, seed=1)
    replies = Generator.load("weights/REPLY_MODEL").generate(3, parent=["hi there", "what's up?"])  # 3 replies each

:mod:`~botkit.generate.step` is the network as a one-token step, :mod:`~botkit.generate.sampling`
the seeded choice, :mod:`~botkit.generate.generator` the compiled loop and the API,
:mod:`~botkit.generate.interactive` textgenrnn's pick-the-next-token mode.
TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botkit.generate.generator import GenerateRequest, Generator, write_samples
from botkit.sample import Sample


def generate(model: str | Path, n: int, **options: Any) -> list[Sample]:
    """``n`` samples from the model folder ``model`` (keywords: see :class:`GenerateRequest`)."""
    return Generator.load(model).generate(n, **options)


__all__ = ["Generator", "GenerateRequest", "Sample", "generate", "write_samples"]
