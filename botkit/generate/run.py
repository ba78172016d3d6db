"""``botkit generate``: generate, filter batch by batch, write or print, report.

The filters judge each batch as it comes out of the generator, so memory holds one batch, and a
long run writes its survivors as it goes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from botkit.corpus.io import encode_txt
from botkit.generate.generator import GenerateRequest, write_samples
from botkit.sample import Sample

if TYPE_CHECKING:
    from botkit.generate import SampleSource

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: the chain (with its report) and how many samples were kept."""

    chain: Any  # botkit.filters.FilterChain
    kept: int


def filter_context(generator: SampleSource) -> Any:
    """What the filters know about the model: its folder, and its training corpus when recorded."""
    from botkit.filters import FilterContext

    context = FilterContext.for_model(generator.path, generator.training)
    if not context.corpus_paths:
        log.info("%s records no training corpus: the novelty filter can only use a saved index", generator.path)
    return context


def run(generator: SampleSource, n: int, options: GenerateRequest, filters: str, output: Path | None, stdout: TextIO | None = None) -> RunResult:
    """Generate ``n`` samples, keep those the ``filters`` chain passes, write them to ``output`` or ``stdout``."""
    from botkit.filters import build_chain

    chain = build_chain(filters, filter_context(generator))

    def survivors() -> Iterator[Sample]:
        for batch in generator.batches(n, **asdict(options)):
            yield from chain.apply(batch).kept

    if output is not None:
        kept = write_samples(output, survivors())
    else:
        kept, stdout = 0, stdout or sys.stdout  # looked up now: tests and callers may have replaced it
        for sample in survivors():
            stdout.write(encode_txt(sample.text) + "\n")
            kept += 1
    return RunResult(chain, kept)
