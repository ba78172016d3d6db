"""Make ``botkit/data/shakespeare_dialogue.csv``: tiny Shakespeare's speeches as (parent, reply) pairs.

Each speech of 160 characters or fewer becomes a row ``speaker,text,parent``; its parent is the
speech just before it when another character spoke it (240 characters at most), else empty (a
post). Deterministic: run it again and the file is the same. Used by ``examples/subsimulator.yaml``::

    python examples/shakespeare_dialogue.py
"""

from __future__ import annotations

import csv
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "botkit" / "data"
MAX_TEXT, MAX_PARENT = 160, 240


def speeches(text: str) -> list[tuple[str, str]]:
    """(speaker, speech) in order: a block is ``NAME:`` and the lines spoken, blocks apart by a blank line."""
    found = []
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        if len(lines) > 1 and lines[0].endswith(":"):
            found.append((lines[0][:-1], " ".join(line.strip() for line in lines[1:])))
    return found


def main() -> None:
    spoken = speeches((DATA / "tinyshakespeare.txt").read_text(encoding="utf-8"))
    with open(DATA / "shakespeare_dialogue.csv", "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["speaker", "text", "parent"])
        previous: tuple[str, str] | None = None
        for speaker, text in spoken:
            if len(text) <= MAX_TEXT:
                answers = previous is not None and previous[0] != speaker and len(previous[1]) <= MAX_PARENT
                out.writerow([speaker, text, previous[1] if answers and previous else ""])
            previous = (speaker, text)


if __name__ == "__main__":
    main()
