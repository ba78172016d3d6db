"""Line-delimited corpora: the hand-off between sources and the trainer."""

from botkit.corpus.document import Document
from botkit.corpus.io import CorpusWriter, read_corpus, read_lines
from botkit.corpus.normalize import Normalization, Normalizer
from botkit.corpus.stats import CorpusStats, corpus_stats

__all__ = [
    "CorpusStats",
    "CorpusWriter",
    "Document",
    "Normalization",
    "Normalizer",
    "corpus_stats",
    "read_corpus",
    "read_lines",
]
