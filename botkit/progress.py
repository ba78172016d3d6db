"""Progress for long-running loops: items and rate on a terminal, silence elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "doc", total: int | None = None) -> Iterator[T]:
    """Wrap ``items`` in a progress bar on stderr; ``disable=None`` turns it off when not a TTY."""
    yield from tqdm(items, desc=desc, unit=unit, total=total, disable=None, dynamic_ncols=True, mininterval=0.5, leave=False)
