"""Source plugins: each turns some outside text into :class:`~botkit.corpus.Document` objects.

A source is a class with an ``Options`` model (its flags and config keys, declared once) and a
``documents()`` generator. It registers by name in the ``botkit.sources`` entry-point group::

    [project.entry-points."botkit.sources"]
    mysource = "mypackage.module:MySource"

and then works as ``botkit fetch mysource ...`` and as ``source: mysource`` in config.yaml.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from botkit.corpus import Document
from botkit.options import Options, validate
from botkit.plugins import Registry


class Source(ABC):
    """Base class of every source plugin."""

    #: One line for ``botkit sources`` and ``botkit fetch --help``.
    summary: ClassVar[str] = ""
    #: The source's options; subclasses replace it with their own model.
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options) -> None:
        self.options = options

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        where: str,
        path_prefix: tuple[str, ...] = (),
        *,
        flags: bool = False,
        base_dir: Path | None = None,
        secret: set[tuple[str, ...]] | None = None,
    ) -> Source:
        """Build the source from config keys or parsed flags, validated against ``Options``."""
        return cls(validate(cls.Options, values, where, path_prefix, flags=flags, base_dir=base_dir, secret=secret))

    def default_name(self) -> str:
        """A short name for the default output file, ``corpora/<name>.jsonl``."""
        return type(self).__name__.removesuffix("Source").lower()

    @abstractmethod
    def documents(self) -> Iterator[Document]:
        """Yield the documents; raise :class:`~botkit.errors.SourceError` with a clear message on failure."""


SOURCES: Registry[type[Source]] = Registry("source", "botkit.sources")

__all__ = ["SOURCES", "Source"]
