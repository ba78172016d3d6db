"""What several commands share: the config file argument, the ledger URL, opening the ledger."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from botkit.errors import ConfigError

if TYPE_CHECKING:
    from botkit.bots.ledger import Ledger
    from botkit.config import Checks, Config

DEFAULT_CONFIG = "config.yaml"
DB_ENV = "BOTKIT_DB"


def add_config(parser: argparse.ArgumentParser) -> None:
    """The config file, as an optional positional argument or with ``-c``: every command takes both."""
    parser.add_argument("config_file", nargs="?", metavar="CONFIG", help=f"config file (default {DEFAULT_CONFIG}; or -c CONFIG)")
    parser.add_argument("-c", "--config", dest="config_flag", metavar="CONFIG", help="the config file, as a flag")


def config_given(args: argparse.Namespace) -> Path | None:
    """The config file the command line names, if it names one (twice only if the same)."""
    given = {value for value in (args.config_file, args.config_flag) if value}
    if len(given) > 1:
        raise ConfigError(f"two config files given ({' and '.join(sorted(given))}): give CONFIG or -c CONFIG, once")
    return Path(given.pop()) if given else None


def config_path(args: argparse.Namespace) -> Path:
    return config_given(args) or Path(DEFAULT_CONFIG)


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", default=None,
        help=f"ledger as a SQLAlchemy URL (e.g. postgresql+psycopg://...), instead of the config's store:; default ${DB_ENV} when set (keeps a password out of ps and crontabs)",
    )  # fmt: skip


def db_url(args: argparse.Namespace | None) -> str | None:
    """``--db URL``, else ``$BOTKIT_DB``, else None (the config's ``store:``); None without a command
    line (the demo always uses its own config's ledger)."""
    if args is None:
        return None
    return args.db or os.environ.get(DB_ENV) or None


def bots_config(args: argparse.Namespace, *, also: Checks | None = None) -> Config:
    """The config the bot commands read; with a ledger URL and no config file, an empty one (status, history).

    ``also``: the command's own checks, listed with the config's own problems (see :func:`load_config`).
    """
    from botkit.config import Config, load_config

    path = config_path(args)
    if db_url(args) and config_given(args) is None and not path.exists():
        return Config(path, "", {})
    return load_config(path, also=also)


def open_ledger(config: Config, args: argparse.Namespace | None) -> Ledger:
    """The ledger of ``config`` (``store:``), or the one ``--db`` / ``$BOTKIT_DB`` names."""
    from botkit.bots.ledger import open_ledger as open_store

    return open_store(config.store, config.base_dir, db_url(args), lease=config.lease)
