"""``csv``: one document a row of any CSV or TSV file (chat logs, title lists, Kaggle dumps).

The file is read with pandas in chunks of ``--chunk-size`` rows and only the columns in use, so a
multi-gigabyte chat log streams in bounded memory. Every cell is read as a string (no type
guessing, no "NA" turned into NaN); invalid UTF-8 bytes become U+FFFD instead of stopping the run,
and how many is reported at the end.

Unnamed columns (the pandas index that Kaggle files start with, read as ``Unnamed: 0``) are never
read and never taken as the default text column, so such files need no extra flag.

Pairs: ``--parent-column`` names a column holding the text each row answers (prompt/response
datasets); with ``--reply-gap``, a row without one gets the previous row as parent when another
author (``--author-column``, else ``--label-column``) wrote it at most that many seconds earlier
(``--created-column``). Only the previous row is kept for that, so streaming stays bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationInfo, field_validator

from botkit.corpus import ISO_UTC, Document
from botkit.corpus.io import REPLACE_AND_COUNT, counting_replaced, warn_replaced
from botkit.errors import SourceError
from botkit.options import Options
from botkit.sources import Source
from botkit.sources.pairs import PreviousTurn

if TYPE_CHECKING:
    import pandas as pd

#: Columns tried, in order, when no --text-column is given.
DEFAULT_TEXT_COLUMNS = ("text", "title")
_UNNAMED = re.compile(r"^Unnamed: \d+(\.\d+)?$")
_SEP_ALIASES = {"\\t": "\t", "tab": "\t"}


def parse_conditions(items: list[str]) -> dict[str, set[str]]:
    """``["user=bot", "user=spam", "room=x"]`` → ``{"user": {"bot", "spam"}, "room": {"x"}}``.

    Values for one column are OR-ed; the split is at the first ``=`` so values may contain ``=``.
    """
    conditions: dict[str, set[str]] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ValueError(f"{item!r} is not COLUMN=VALUE (such as fromUser.username=camperbot)")
        conditions.setdefault(column, set()).add(value)
    return conditions


class CsvOptions(Options):
    path: Path = Field(description="the CSV (or TSV) file", json_schema_extra={"positional": True})
    text_column: str | None = Field(
        None, description="column holding the text (default: 'text', else 'title', else the only named column)"
    )
    label_column: str | None = Field(
        None, description="column used as the context label, e.g. fromUser.username or context_label"
    )
    id_column: str | None = Field(
        None, description="column holding a unique id per row (incremental fetches then skip rows already added by id)"
    )
    created_column: str | None = Field(
        None, description="column holding the creation time (ISO-8601 or Unix seconds/milliseconds), kept as UTC"
    )
    parent_column: str | None = Field(
        None, description="column holding the text each row answers (its parent), for pair corpora"
    )
    author_column: str | None = Field(
        None, description="column naming each row's author, for --reply-gap (default: the --label-column)"
    )
    reply_gap: float | None = Field(
        None,
        ge=0,
        description="a row with no parent gets the previous row as parent when another author wrote it at most "
        "this many seconds before (needs --created-column and an author; default off: a guess, not data)",
    )
    include: list[str] = Field(
        [],
        description="keep only rows where COLUMN=VALUE (repeatable; several values for one column are OR-ed)",
        json_schema_extra={"metavar": "COLUMN=VALUE"},
    )
    exclude: list[str] = Field(
        [],
        description="drop rows where COLUMN=VALUE, e.g. fromUser.username=camperbot (repeatable)",
        json_schema_extra={"metavar": "COLUMN=VALUE"},
    )
    sep: str = Field(",", description="field separator: one character; '\\t' or 'tab' for TSV (default ',')")
    chunk_size: int = Field(100_000, ge=1, description="rows read at a time; lower it to use less memory (default 100000)")

    @field_validator("include", "exclude")
    @classmethod
    def _check_conditions(cls, items: list[str]) -> list[str]:
        parse_conditions(items)
        return items

    @field_validator("reply_gap")
    @classmethod
    def _gap_needs_times_and_authors(cls, gap: float | None, info: ValidationInfo) -> float | None:
        """Refuse a gap that could pair nothing, rather than fetch a corpus without pairs."""
        columns = info.data
        if gap is not None and (columns.get("created_column") is None or (columns.get("author_column") or columns.get("label_column")) is None):
            raise ValueError("needs created_column and author_column (or label_column): who wrote each row, and when")
        return gap

    @field_validator("sep")
    @classmethod
    def _check_sep(cls, sep: str) -> str:
        sep = _SEP_ALIASES.get(sep.lower(), sep)
        if len(sep) != 1:
            raise ValueError("the separator must be one character, such as ',' ';' or '\\t'")
        return sep


class CsvSource(Source):
    summary = "rows of a CSV/TSV file (chat logs, Kaggle dumps), streamed in chunks; --text-column, --label-column"
    Options = CsvOptions
    options: CsvOptions

    def __init__(self, options: CsvOptions) -> None:
        super().__init__(options)
        self.include = parse_conditions(options.include)
        self.exclude = parse_conditions(options.exclude)

    def default_name(self) -> str:
        return self.options.path.stem

    def documents(self) -> Iterator[Document]:
        roles = self._roles(self._header())
        usecols = list(dict.fromkeys([*roles.values(), *self.include, *self.exclude]))
        source = f"csv:{self.options.path}"
        turns = PreviousTurn(self.options.reply_gap)
        with self._csv_errors():
            # pandas decodes as it reads: count the bad bytes around each step, not around the yields.
            chunks, invalid = counting_replaced(lambda: self._read(usecols=usecols, chunksize=self.options.chunk_size))
            with chunks:
                while True:
                    chunk, bad = counting_replaced(lambda: next(chunks, None))
                    invalid += bad
                    if chunk is None:
                        break
                    chunk = chunk[chunk[roles["text"]] != ""]
                    # Paired before --include/--exclude, so a reply to a dropped bot still answers what it said.
                    docs = self._rows(chunk, roles, source, turns)
                    yield from (doc for doc, keep in zip(docs, self._keep(chunk).tolist()) if keep)
        warn_replaced(self.options.path, invalid_utf8=invalid)

    @contextmanager
    def _csv_errors(self) -> Iterator[None]:
        """pandas' empty-file and parse errors as one line naming the file (and line, when known)."""
        import pandas as pd

        path = self.options.path
        try:
            yield
        except pd.errors.EmptyDataError:
            raise SourceError(f"{path}: the file is empty (a CSV needs a header row naming its columns)") from None
        except pd.errors.ParserError as exc:
            detail = " ".join(str(exc).split()).removeprefix("Error tokenizing data. ")
            raise SourceError(f"{path}: not valid CSV ({detail}); check --sep and that fields holding it are quoted") from None

    def _read(self, **kwargs: Any) -> Any:
        """``pd.read_csv`` with the settings every read shares: strings only, bad bytes replaced."""
        import pandas as pd

        return pd.read_csv(
            self.options.path, sep=self.options.sep, dtype=str, na_filter=False, encoding_errors=REPLACE_AND_COUNT, **kwargs
        )

    def _header(self) -> list[str]:
        path = self.options.path
        if not path.is_file():
            raise SourceError(f"{path}: {'is a folder, expected a CSV file' if path.is_dir() else 'CSV file not found'}")
        with self._csv_errors():
            return [str(c) for c in self._read(nrows=0).columns]

    def _roles(self, header: list[str]) -> dict[str, str]:
        """The file's column for each role (text, label, id, created, parent, author), checked against the header."""
        o = self.options
        named = [c for c in header if not _UNNAMED.match(c)]
        listing = f"the file's columns: {', '.join(named) or '(none)'}"
        text = o.text_column or next((c for c in DEFAULT_TEXT_COLUMNS if c in header), None)
        if text is None and len(named) == 1:
            text = named[0]
        if text is None:
            raise SourceError(f"{o.path}: no 'text' or 'title' column; choose one with --text-column ({listing})")
        roles = {
            "text": text,
            "label": o.label_column,
            "id": o.id_column,
            "created": o.created_column,
            "parent": o.parent_column,
            "author": (o.author_column or o.label_column) if o.reply_gap is not None else o.author_column,
        }
        used = [(f"--{role}-column", column) for role, column in roles.items() if column is not None]
        used += [("--include", c) for c in self.include] + [("--exclude", c) for c in self.exclude]
        for flag, column in used:
            if column not in header:
                raise SourceError(f"{o.path}: no column {column!r} (from {flag}); {listing}")
        return {role: column for role, column in roles.items() if column is not None}

    def _keep(self, chunk: pd.DataFrame) -> pd.Series:
        """Which rows pass --include (every column named) and --exclude (any column named)."""
        import pandas as pd

        mask = pd.Series(True, index=chunk.index)
        for column, values in self.include.items():
            mask &= chunk[column].isin(values)
        for column, values in self.exclude.items():
            mask &= ~chunk[column].isin(values)
        return mask

    @staticmethod
    def _rows(chunk: pd.DataFrame, roles: dict[str, str], source: str, turns: PreviousTurn) -> Iterator[Document]:
        # Whole columns to lists first: per-row pandas access would cost more than the rest of the fetch.
        missing = [None] * len(chunk)
        labels, ids, parents, authors = (_cells(chunk[roles[r]]) if r in roles else missing for r in ("label", "id", "parent", "author"))
        times = iso_utc(chunk[roles["created"]]) if "created" in roles else missing
        for text, label, id_, created, parent, author in zip(chunk[roles["text"]].tolist(), labels, ids, times, parents, authors):
            guess = turns.parent(author, created, text)
            yield Document(text, label=label, id=id_, source=source, created=created, parent=parent or guess)


def _cells(column: pd.Series) -> list[str | None]:
    """Cell values with empty cells as None (no label / no id rather than an empty one)."""
    return [value or None for value in column.tolist()]


def iso_utc(column: pd.Series) -> list[str | None]:
    """Times as ISO-8601 UTC strings; None where a cell is empty or unreadable.

    All-digit columns are Unix times: seconds, or milliseconds when too large to be seconds
    (as in Matrix or JavaScript exports). Anything else is read as ISO-8601; a time without a zone
    is taken as UTC.
    """
    import pandas as pd

    present = column.where(column != "")
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().any() and numbers.notna().sum() == present.notna().sum():
        unit = "ms" if numbers.abs().max() >= 1e11 else "s"
        times = pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce")
    else:
        times = pd.to_datetime(present, format="ISO8601", utc=True, errors="coerce")
    return [value if isinstance(value, str) else None for value in times.dt.strftime(ISO_UTC).tolist()]
