"""Line-delimited corpora: the hand-off between sources and the trainer."""

from botkit.corpus.document import ISO_UTC, REDDIT_GONE, Document, iso_utc, replace_lone_surrogates
from botkit.corpus.io import CorpusWriter, make_folder, read_corpus, read_lines
from botkit.corpus.normalize import Normalization, Normalizer
from botkit.corpus.stats import CorpusStats, corpus_stats

__all__ = [
    "make_folder",
    "ISO_UTC",
    "REDDIT_GONE",
    "iso_utc",
    "CorpusStats",
    "CorpusWriter",
    "Document",
    "Normalization",
    "Normalizer",
    "corpus_stats",
    "read_corpus",
    "read_lines",
    "replace_lone_surrogates",
]
