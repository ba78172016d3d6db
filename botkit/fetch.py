"""The source → corpus step: run a source, clean its documents, add them to a corpus file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from botkit.corpus import CorpusWriter, Normalization, Normalizer
from botkit.errors import SourceError
from botkit.progress import progress
from botkit.sources import Source


@dataclass(frozen=True)
class FetchReport:
    output: Path
    fetched: int  # documents the source yielded
    dropped: int  # removed by normalisation (too short, too long, empty)
    duplicates: int  # already in the corpus, or repeated within this fetch
    added: int
    existing: int  # documents the corpus held before
    surrogates: int = 0  # lone surrogates (invalid Unicode from JSON escapes) replaced with U+FFFD

    def summary(self) -> str:
        replaced = f", {self.surrogates:,} lone surrogate(s) replaced with U+FFFD" if self.surrogates else ""
        return (
            f"{self.output}: added {self.added:,} new document(s) "
            f"(fetched {self.fetched:,}, {self.duplicates:,} already there or repeated, "
            f"{self.dropped:,} dropped by clean-up{replaced}; {self.existing + self.added:,} in total)"
        )


def fetch(source: Source, output: str | Path, normalization: Normalization | None = None, *, name: str = "fetch") -> FetchReport:
    """Add ``source``'s documents to the corpus at ``output``; atomic, incremental, never empty.

    A source that yields nothing, or whose every document is dropped by clean-up when the corpus
    does not exist yet, is an error: an empty corpus is never what the user wanted.
    """
    output = Path(output)
    normalization = normalization or Normalization()
    normalize = Normalizer(normalization)
    fetched = dropped = 0
    with CorpusWriter(output, dedupe_text=normalization.dedupe) as writer:
        for doc in progress(source.documents(), desc=name):
            fetched += 1
            clean = normalize(doc)
            if clean is None:
                dropped += 1
            else:
                writer.add(clean)
        if fetched == 0:
            raise SourceError(f"{name}: the source gave no documents (empty input?); nothing written")
        if writer.added == 0 and writer.existing == 0:
            raise SourceError(
                f"{name}: all {fetched:,} document(s) were dropped by clean-up "
                f"(min_length={normalization.min_length}, max_length={normalization.max_length}); nothing written"
            )
    return FetchReport(output, fetched, dropped, writer.skipped, writer.added, writer.existing, writer.surrogates)
