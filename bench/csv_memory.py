"""Peak memory of ``botkit fetch csv`` on a 1,000,000-line chat CSV: a fresh corpus, then again.

The CSV source promises bounded memory on big files (chunked reads). What is not bounded is the
corpus writer's set of keys for deduplication, one per document, which an incremental run must
also rebuild from the existing corpus. This measures both, through the real CLI in a child
process, and reads the child's own peak RSS from ``os.wait4`` (``RUSAGE_CHILDREN`` would mix runs).

    .venv/bin/python bench/csv_memory.py [--rows 1000000] [--chunk-size N] [--out-dir bench/out]

Exits 1 when a run fails or peaks over the target.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_MB = 500
WORDS = (
    "the a to and is it in you that for on this with i have do not was but be can what how are my just so if "
    "function var return array loop help anyone know why error code challenge bonfire javascript css html jquery "
    "thanks lol yeah works now tried console log object string undefined null index github pair program camper"
).split()


@dataclass(frozen=True)
class Run:
    name: str
    peak_mb: float
    wall_s: float
    fetched: int
    added: int

    def row(self) -> str:
        rate = f"{self.fetched / self.wall_s:>10,.0f}" if self.fetched else f"{'-':>10}"
        return f"{self.name:<24} {self.peak_mb:>9,.0f} {self.wall_s:>8.1f} {rate} {self.added:>10,}"


def message(rng: random.Random) -> str:
    """A chat-like line of 60 to 120 characters."""
    target = rng.randint(60, 120)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < target:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:target].rstrip()


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A Kaggle-Gitter-shaped CSV (leading index column); about 5% of texts repeat an earlier one."""
    rng = random.Random(seed)
    users = [f"camper{n:04d}" for n in range(2000)] + ["camperbot"]
    start = datetime(2015, 7, 29, tzinfo=UTC)
    recent: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["", "id", "fromUser.username", "text", "sent"])
        for i in range(rows):
            text = rng.choice(recent) if recent and rng.random() < 0.05 else message(rng)
            recent = (recent + [text])[-1000:] if i % 10 == 0 else recent
            sent = (start + timedelta(seconds=7 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            out.writerow([i, f"{i:024x}", rng.choice(users), text, sent])


def measure(name: str, command: list[str], log: Path) -> Run:
    """Run ``command`` to completion; its own peak RSS (Linux reports KiB) and wall time.

    The child is reaped with ``os.wait4`` rather than by ``subprocess``, which is what gives its
    rusage alone; its output goes to ``log`` so no pipe needs draining meanwhile.
    """
    with log.open("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    if child.returncode != 0:
        sys.exit(f"{name} failed (exit {child.returncode}):\n{output}")
    summary = re.search(r"added ([\d,]+) new document\(s\) \(fetched ([\d,]+)", output)
    added, fetched = (int(g.replace(",", "")) for g in summary.groups()) if summary else (0, 0)
    return Run(name, usage.ru_maxrss / 1024, wall, fetched, added)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows to generate (default 1,000,000)")
    parser.add_argument("--chunk-size", type=int, help="pass --chunk-size to the csv source (default: its own)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "out", help="where the CSV and corpus go")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data, corpus = args.out_dir / f"chat_{args.rows}.csv", args.out_dir / f"chat_{args.rows}.jsonl"
    if not data.exists():
        started = time.perf_counter()
        generate(data, args.rows)
        print(f"generated {data} ({data.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - started:.0f} s")
    corpus.unlink(missing_ok=True)
    botkit = [sys.executable, "-m", "botkit"]
    fetch = [*botkit, "fetch", "csv", str(data), "--text-column", "text", "--label-column", "fromUser.username", "-o", str(corpus)]
    fetch += ["--chunk-size", str(args.chunk_size)] if args.chunk_size else []
    log = args.out_dir / "run.log"
    runs = [
        measure("botkit --version", [*botkit, "--version"], log),
        measure("fetch csv (new corpus)", fetch, log),
        measure("fetch csv (incremental)", fetch, log),
    ]
    print(f"{'run':<24} {'peak MiB':>9} {'wall s':>8} {'docs/s':>10} {'added':>10}")
    for run in runs:
        print(run.row())
    worst = max(run.peak_mb for run in runs)
    print(f"target: peak RSS < {TARGET_MB} MiB: {'met' if worst < TARGET_MB else 'MISSED'} (worst {worst:,.0f} MiB)")
    return 0 if worst < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
