"""``botkit corpus stats``: what is in a corpus, in one streaming pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from botkit.corpus.io import read_corpus

PERCENTILES = (5, 25, 50, 75, 95, 100)


@dataclass
class CorpusStats:
    path: Path
    documents: int = 0
    characters: int = 0
    charset: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    parents: int = 0  # documents that answer a parent: a pair corpus, for a reply model
    lengths: list[int] = field(default_factory=list)

    def percentiles(self) -> dict[int, int]:
        if not self.lengths:
            return {}
        values = np.percentile(np.asarray(self.lengths), PERCENTILES, method="nearest")
        return {p: int(v) for p, v in zip(PERCENTILES, values)}

    def format(self, top_labels: int = 20) -> str:
        lines = [
            f"corpus:              {self.path}",
            f"documents:           {self.documents:,}",
            f"characters:          {self.characters:,}",
            f"distinct characters: {len(self.charset):,}",
        ]
        pct = self.percentiles()
        if pct:
            lines.append("length (chars):      " + "  ".join(f"p{p}={v:,}" for p, v in pct.items() if p != 100) + f"  max={pct[100]:,}")
        if self.labels:
            unlabelled = self.documents - sum(self.labels.values())
            lines.append(f"labels:              {len(self.labels):,}" + (f" ({unlabelled:,} documents unlabelled)" if unlabelled else ""))
            for label, count in self.labels.most_common(top_labels):
                lines.append(f"  {count:>10,}  {label}")
            if len(self.labels) > top_labels:
                lines.append(f"  ... and {len(self.labels) - top_labels:,} more")
        else:
            lines.append("labels:              none")
        share = f" ({self.parents / self.documents:.0%} of documents)" if self.parents else ""
        lines.append(f"with parents:        {self.parents:,}{share}")
        return "\n".join(lines)


def corpus_stats(path: str | Path) -> CorpusStats:
    stats = CorpusStats(Path(path))
    for doc in read_corpus(path):
        stats.documents += 1
        stats.characters += len(doc.text)
        stats.charset.update(doc.text)
        stats.lengths.append(len(doc.text))
        if doc.label is not None:
            stats.labels[doc.label] += 1
        stats.parents += doc.parent is not None
    return stats
