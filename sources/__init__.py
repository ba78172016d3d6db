"""Source plugins: each turns some outside text into :class:`~botkit.corpus.Document` objects.

A source is a class with an ``Options`` model (its flags and config keys, declared once) and a
``documents()`` generator. It registers by name in the ``botkit.sources`` entry-point group::

    [project.entry-points."botkit.sources"]
    mysource = "mypackage.module:MySource"

and then works as ``botkit fetch mysource ...`` and as ``source: mysource`` in config.yaml.
"""

from __future__ import annotations

import glob
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import botkit.options
from botkit.corpus import Document
from botkit.errors import SourceError
from botkit.options import validate
from botkit.plugins import Registry


class Source(ABC):
    """Base class of every source plugin."""

    #: One line for ``botkit sources`` and ``botkit fetch --help``.
    summary: ClassVar[str] = ""
    #: The source's options; subclasses replace it with their own model.
    Options: ClassVar[type[botkit.options.Options]] = botkit.options.Options

    def __init__(self, options: botkit.options.Options) -> None:
        self.options = options

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str, path_prefix: tuple[str, ...] = (), **how: Any) -> Source:
        """Build the source from config keys or parsed flags, validated against ``Options``.

        ``how`` goes to :func:`botkit.options.validate` (``flags``, ``base_dir``, ``secret``).
        """
        return cls(validate(cls.Options, values, where, path_prefix, **how))

    def default_name(self) -> str:
        """A short name for the default output file, ``corpora/<name>.jsonl``."""
        return type(self).__name__.removesuffix("Source").lower()

    @abstractmethod
    def documents(self) -> Iterator[Document]:
        """Yield the documents; raise :class:`~botkit.errors.SourceError` with a clear message on failure."""


def is_glob(path: Path) -> bool:
    return any(ch in str(path) for ch in "*?[")


def expand_paths(
    paths: Iterable[Path],
    in_folder: Callable[[Path], Iterable[Path]],
    what: str = "file",
    order: Callable[[Path], Any] | None = None,
) -> list[Path]:
    """Every file that ``paths`` name, for sources that take files, folders or globs.

    A file is taken as given, a folder contributes what ``in_folder`` picks from it, and a glob is
    expanded; each group is sorted (by ``order`` when given). A path that names nothing is an
    error, so a typo never turns into a silently empty corpus.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            matches = sorted((p for p in in_folder(path) if p.is_file()), key=order)
        elif is_glob(path):
            matches = sorted((Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()), key=order)
        elif path.is_file():
            matches = [path]
        else:
            raise SourceError(f"{path}: no such {what} or folder")
        if not matches:
            raise SourceError(f"{path}: matches no {what}s")
        found.extend(matches)
    return found


SOURCES: Registry[type[Source]] = Registry("source", "botkit.sources")

__all__ = ["SOURCES", "Source", "expand_paths", "is_glob"]
