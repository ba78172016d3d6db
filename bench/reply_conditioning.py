"""Does a reply model really condition on the parent? Held-out replies scored after their true parents vs shuffled ones.

A reply model that ignored its parent would score a reply the same after any parent; one that
conditions scores the true replies better (fewer nats per reply token) after their own parents
than after the parents of other pairs. :func:`conditioning` measures both on a held-out pair
corpus with ``botkit eval``'s scorer (only reply tokens count), the parents shuffled by a seeded
permutation. The command trains a model on the first 90 % of a pair corpus and measures on the
rest; without a corpus it makes a synthetic one, where each reply is a fixed function of its
parent (the parent's words through a fixed table, in reverse order), so the gap is large::

    .venv/bin/python bench/reply_conditioning.py                          # synthetic, 2 minutes of training
    .venv/bin/python bench/reply_conditioning.py pairs.jsonl --minutes 10 --word
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from botkit.corpus import Document, read_corpus
from botkit.model.evaluate import Score, evaluate_file

OUT = Path(__file__).resolve().parent / "out" / "reply_conditioning"


@dataclass(frozen=True)
class Conditioning:
    """Mean nats per reply token after the true parents and after shuffled ones (higher: worse)."""

    true: Score
    shuffled: Score

    @property
    def gap(self) -> float:
        return self.shuffled.mean - self.true.mean

    def summary(self, unit: str = "token") -> str:
        return f"true parents {self.true.mean:.4f}, shuffled parents {self.shuffled.mean:.4f} nats/{unit} (gap {self.gap:.4f}; {self.true.targets:,} {unit}s)"


def write_pairs(path: Path, docs: list[Document]) -> None:
    path.write_text("".join(json.dumps(doc.to_json(), ensure_ascii=False) + "\n" for doc in docs), encoding="utf-8")


def conditioning(weights: Path, pairs: Path, seed: int = 0) -> Conditioning:
    """Score the replies of ``pairs`` (a corpus whose documents have parents) under ``weights``,
    after their own parents and after the parents shuffled among the pairs."""
    docs = [doc for doc in read_corpus(pairs) if doc.parent is not None]
    parents = [doc.parent for doc in docs]
    random.Random(seed).shuffle(parents)
    with tempfile.TemporaryDirectory(prefix="botkit-reply-") as tmp:
        true, shuffled = Path(tmp) / "true.jsonl", Path(tmp) / "shuffled.jsonl"
        write_pairs(true, docs)
        write_pairs(shuffled, [Document(doc.text, doc.label, parent=parent) for doc, parent in zip(docs, parents)])
        return Conditioning(evaluate_file(weights, true).score, evaluate_file(weights, shuffled).score)


def synthetic_pairs(count: int, seed: int = 0, words: int = 60) -> list[Document]:
    """Pairs whose reply is a fixed function of the parent: its words through a table, reversed."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(3, 7))) for _ in range(words)})
    table = dict(zip(vocabulary, rng.sample(vocabulary, len(vocabulary))))
    pairs = []
    for _ in range(count):
        parent = [rng.choice(vocabulary) for _ in range(rng.randint(1, 4))]
        pairs.append(Document(" ".join(table[w] for w in reversed(parent)), parent=" ".join(parent)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, help="pair corpus (.jsonl with parents); default: a synthetic one")
    parser.add_argument("--pairs", type=int, default=20_000, help="synthetic pairs to make (default 20,000)")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget (default 2)")
    parser.add_argument("--word", action="store_true", help="a word-level model (default char)")
    args = parser.parse_args()

    from botkit.model.train import train
    from botkit.training import TrainConfig

    OUT.mkdir(parents=True, exist_ok=True)
    docs = list(read_corpus(args.corpus)) if args.corpus else synthetic_pairs(args.pairs)
    cut = int(len(docs) * 0.9)
    train_file, held_out = OUT / "train.jsonl", OUT / "held_out.jsonl"
    write_pairs(train_file, docs[:cut])
    write_pairs(held_out, [doc for doc in docs[cut:] if doc.parent is not None])
    level = "word" if args.word else "char"
    config = TrainConfig(level=level, minutes=args.minutes, sample_every=0)
    report = train([train_file], OUT / f"weights-{level}", config)
    print(report.summary())
    result = conditioning(OUT / f"weights-{level}", held_out)
    print(f"{held_out}: {result.summary('char' if level == 'char' else 'token')}")


if __name__ == "__main__":
    main()
