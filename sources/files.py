"""``files``: plain text files, a folder, or a glob, in line mode or single-text mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from botkit.corpus import Document, read_lines
from botkit.options import Options
from botkit.sources import Source, expand_paths


class FilesOptions(Options):
    paths: list[Path] = Field(
        description="text files, folders (searched for --pattern) or globs such as 'logs/*.txt'",
        json_schema_extra={"positional": True},
        min_length=1,
    )
    single_text: bool = Field(
        False, description="treat each whole file as one document (char-rnn style: tiny Shakespeare, a novel)"
    )
    pattern: str = Field("**/*.txt", description="files to take from a folder (default **/*.txt)")
    skip_header: bool = Field(False, description="skip the first line of each file (a column header such as 'title')")
    label: str | None = Field(None, description="context label for every document")
    label_from_filename: bool = Field(False, description="label each document with its file's name (without suffix)")


class FilesSource(Source):
    summary = "plain text files, folders or globs; one document a line, or --single-text"
    Options = FilesOptions
    options: FilesOptions

    def default_name(self) -> str:
        return self.options.paths[0].stem if len(self.options.paths) == 1 else "files"

    def files(self) -> list[Path]:
        return expand_paths(self.options.paths, lambda folder: folder.glob(self.options.pattern))

    def documents(self) -> Iterator[Document]:
        o = self.options
        for path in self.files():
            label = path.stem if o.label_from_filename else o.label
            lines = read_lines(path, "text")
            if o.skip_header:
                next(lines, None)
            if o.single_text:
                yield Document("".join(lines), label=label, source=f"files:{path}")
                continue
            for line in lines:
                yield Document(line.rstrip("\r\n"), label=label, source=f"files:{path}")
