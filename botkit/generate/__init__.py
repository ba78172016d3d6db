"""Generation: many samples a second from a trained model, batched and incremental.

Python API::

    from botkit.generate import generate, load

    samples = generate("weights/NAME", 1000, temperature=0.5)      # list[Sample]
    gen = load("weights/NAME")                # an LSTM or a fine-tuned transformer alike
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

from botkit.generate.generator import GenerateRequest, Generator, SampleSource, write_samples
from botkit.model_folder import is_transformer
from botkit.pretrained.sources import is_pretrained
from botkit.sample import Sample


def load(model: str | Path) -> SampleSource:
    """The generator of a model folder, whichever family trained it (an LSTM, or a fine-tuned transformer);
    a pretrained transformer's name, file or folder (``smollm2``) writes zero-shot."""
    if is_transformer(model) or is_pretrained(model):
        from botkit.pretrained.generator import TransformerGenerator

        return TransformerGenerator.load(model)
    return Generator.load(model)


def generate(model: str | Path, n: int, **options: Any) -> list[Sample]:
    """``n`` samples from the model folder ``model`` (keywords: see :class:`GenerateRequest`)."""
    return load(model).generate(n, **options)


__all__ = ["Generator", "GenerateRequest", "Sample", "SampleSource", "generate", "load", "write_samples"]
