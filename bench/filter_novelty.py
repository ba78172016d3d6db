"""Benchmark the novelty index and the default filter chain.

    python bench/filter_novelty.py [--corpus PATH] [--samples 10000] [--big-mb 100] [--single-text]

1. Builds the novelty index of tiny Shakespeare read as one text (as ``botkit train --single-text``
   reads it), in a child process, and prints the time and the child's peak RSS.
2. Filters synthetic samples through the default chain (length, charset, repetition, dedupe,
   novelty): half random recombinations of corpus words, a fifth verbatim runs of the corpus, the
   rest random letters. Prints samples/s, the time of each filter alone, and the report.
3. Prints how often held-out Shakespeare (the last 10 %, never indexed) is rejected for N = 5..8
   words: the false-positive rate that sets the default N.
4. Builds the index of a ~100 MB .txt corpus of shuffled Shakespeare words, one document a line
   (or, with --single-text, read as one text), in a child process: time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SHARED = Path("/work/shared/data/tinyshakespeare.txt")
DEFAULT_CORPUS = _SHARED if _SHARED.is_file() else Path(__file__).resolve().parents[1] / "botkit" / "data" / "tinyshakespeare.txt"
HELD_OUT_FROM = 1_003_854  # the standard 90/10 split of tiny Shakespeare, in characters


def child_build(corpus: Path, single_text: bool) -> None:
    """Run in a fresh process, so its peak RSS is the build's alone."""
    from botkit.filters.novelty import Settings, build_index

    started = time.perf_counter()
    index = build_index(Settings((corpus,), 7, None, single_text))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"seconds": seconds, "runs": len(index.word_hashes), "peak_rss_mb": peak_mb}))


def timed_build(corpus: Path, single_text: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child-build", str(corpus)] + (["--single-text"] if single_text else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def synthesise(text: str, count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    words = text.split()
    samples = []
    for i in range(count):
        length = rng.randint(6, 30)
        if i % 10 < 5:  # random recombination of corpus words
            samples.append(" ".join(rng.choice(words) for _ in range(length)))
        elif i % 10 < 7:  # a verbatim run of the corpus, across lines
            start = rng.randrange(len(words) - length)
            samples.append(" ".join(words[start : start + length]))
        else:  # random letters
            letters = "abcdefghijklmnopqrstuvwxyz"
            samples.append(" ".join("".join(rng.choices(letters, k=rng.randint(1, 9))) for _ in range(length)))
    return samples


def bench_chain(corpus: Path, texts: list[str], weights: Path) -> None:
    from botkit.filters import FilterContext, build_chain
    from botkit.sample import Sample

    context = FilterContext(corpus_paths=(corpus,), single_text=True, weights_dir=weights)
    started = time.perf_counter()
    chain = build_chain("default", context)
    print(f"default chain {chain.names}: built in {time.perf_counter() - started:.2f} s (index loaded from {weights})")
    samples = [Sample(t) for t in texts]
    started = time.perf_counter()
    result = chain.apply(samples)
    seconds = time.perf_counter() - started
    print(f"filtered {len(samples):,} samples in {seconds:.3f} s: {len(samples) / seconds:,.0f} samples/s, kept {len(result.kept):,}")
    for name, filt in build_chain("default", context).filters:
        started = time.perf_counter()
        filt.check(samples)
        print(f"  {name:<11} alone on all {len(samples):,}: {time.perf_counter() - started:.3f} s")
    print(chain.report.format())


def bench_held_out(text: str, tmp: Path) -> None:
    from botkit.filters import FilterContext
    from botkit.filters.novelty import NoveltyFilter, NoveltyOptions
    from botkit.sample import Sample

    train = tmp / "train.txt"
    train.write_text(text[:HELD_OUT_FROM], encoding="utf-8")
    held = text[HELD_OUT_FROM:].split()
    chunks = [Sample(" ".join(held[i : i + 20])) for i in range(0, len(held) - 20, 20)]
    rates = []
    for n in (5, 6, 7, 8):
        novelty = NoveltyFilter(NoveltyOptions(words=n), FilterContext(corpus_paths=(train,), single_text=True))
        rejected = sum(v is not None for v in novelty.check(chunks))
        rates.append(f"N={n}: {100 * rejected / len(chunks):.1f}%")
    print(f"held-out Shakespeare, {len(chunks):,} chunks of 20 words, rejected by novelty: " + ", ".join(rates))


def write_big_corpus(text: str, megabytes: int, path: Path) -> None:
    rng = random.Random(2)
    words = text.split()
    target = megabytes * 1_000_000
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            line = " ".join(rng.choices(words, k=rng.randint(5, 25))) + "\n"
            out.write(line)
            written += len(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=100, help="size of the large corpus (0 skips it)")
    parser.add_argument("--single-text", action="store_true", help="read the large corpus as one text")
    parser.add_argument("--child-build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build:
        child_build(args.child_build, args.single_text)
        return
    if not args.corpus.is_file():
        sys.exit(f"{args.corpus}: not found (give --corpus PATH to tiny Shakespeare)")
    text = args.corpus.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = args.corpus
        stats = timed_build(corpus, True)
        print(f"tiny Shakespeare index (single text, N=7): {stats['runs']:,} word runs in {stats['seconds']:.2f} s, peak RSS {stats['peak_rss_mb']:.0f} MB")
        from botkit.filters.novelty import INDEX_NAME, Settings, open_index

        weights = tmp / "weights"
        open_index(Settings((corpus,), 7, None, True), weights / INDEX_NAME)  # saved once, as in a model's folder
        bench_chain(corpus, synthesise(text, args.samples), weights)
        bench_held_out(text, tmp)
        if args.big_mb:
            big = tmp / "big.txt"
            write_big_corpus(text, args.big_mb, big)
            stats = timed_build(big, args.single_text)
            kind = "read as one text" if args.single_text else "one document a line"
            print(
                f"{big.stat().st_size / 1e6:.0f} MB corpus ({kind}): {stats['runs']:,} word runs in {stats['seconds']:.1f} s, "
                f"peak RSS {stats['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
