"""``botkit fetch`` (sources → corpus), ``botkit sources|filters|targets`` (the installed plugins)
and ``botkit corpus stats``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botkit.commands.common import DEFAULT_CONFIG
from botkit.corpus import Normalization, corpus_stats, make_folder
from botkit.errors import BotkitError, ConfigError
from botkit.options import add_arguments, validate
from botkit.plugins import Registry
from botkit.sources import SOURCES
from botkit.terminal import say

if TYPE_CHECKING:
    from botkit.config import Config

log = logging.getLogger("botkit")

# Arguments of `botkit fetch SOURCE` that are not the source's own options.
_FETCH_SHARED = {"output", "source", "config", "corpus", "command", "verbose"}
_PLUGINS = {
    "sources": "list installed source plugins (entry-point group botkit.sources)",
    "filters": "list installed sample filters (entry-point group botkit.filters)",
    "targets": "list installed post targets (entry-point group botkit.targets)",
}


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    fetch = commands.add_parser(
        "fetch",
        parents=[common],
        help="pull text from a source into a corpus (botkit fetch --subreddit NAME is short for botkit fetch reddit ...)",
        description="Pull text from a source into a line-delimited corpus. With no source, fetch every corpus in the config.",
    )
    fetch.add_argument("-c", "--config", help=f"fetch the corpora defined in this config file (default {DEFAULT_CONFIG} when no SOURCE is given)")
    fetch.add_argument("--corpus", action="append", help="with --config: only this corpus (repeatable)")
    per_source = fetch.add_subparsers(dest="source", metavar="SOURCE")
    shared = argparse.ArgumentParser(add_help=False, parents=[common])
    shared.add_argument("-o", "--output", help="corpus file to add to (.jsonl keeps labels; .txt is bare text). Default: corpora/NAME.jsonl")
    add_arguments(Normalization, shared.add_argument_group("clean-up"))
    for name in SOURCES.names():
        try:
            source_cls = SOURCES.get(name)
        except BotkitError as exc:  # one broken third-party plugin must not break the CLI
            log.warning("%s", exc)
            continue
        parser = per_source.add_parser(name, parents=[shared], help=source_cls.summary, description=source_cls.summary)
        add_arguments(source_cls.Options, parser.add_argument_group(f"{name} options"))
    for name, summary in _PLUGINS.items():
        commands.add_parser(name, parents=[common], help=summary, description=summary[0].upper() + summary[1:] + ".")
    corpus = commands.add_parser("corpus", parents=[common], help="inspect corpora", description="Inspect corpora.")
    stats = corpus.add_subparsers(dest="corpus_command", required=True).add_parser(
        "stats",
        parents=[common],
        help="documents, characters, labels, parents and length percentiles",
        description="Documents, characters, distinct characters, labels, parents and length percentiles of a corpus.",
    )
    stats.add_argument("file", type=Path)


def normalize_argv(argv: list[str]) -> list[str]:
    """``botkit fetch --subreddit X`` → ``botkit fetch reddit --subreddit X``: the first thing users type."""
    if len(argv) >= 2 and argv[0] == "fetch" and argv[1].startswith("--subreddit"):
        return ["fetch", "reddit", *argv[1:]]
    return argv


def fetch(args: argparse.Namespace) -> None:
    from botkit.config import load_config
    from botkit.fetch import fetch as fetch_into

    if args.source is None:
        fetch_config_corpora(load_config(args.config or DEFAULT_CONFIG), args.corpus)
        return
    if args.config:
        raise ConfigError("give either a SOURCE or --config, not both")
    values = {k: v for k, v in vars(args).items() if k not in _FETCH_SHARED}
    norm_keys = set(Normalization.model_fields)
    normalization = validate(Normalization, {k: v for k, v in values.items() if k in norm_keys}, "botkit fetch", flags=True)
    source = SOURCES.get(args.source).from_mapping({k: v for k, v in values.items() if k not in norm_keys}, f"botkit fetch {args.source}", flags=True)
    if args.output:
        output = Path(args.output)
    else:
        output = Path("corpora") / f"{source.default_name()}.jsonl"
        make_folder(output)
    print(fetch_into(source, output, normalization, name=args.source).summary())


def fetch_config_corpora(config: Config, only: list[str] | None) -> None:
    """Fetch the config's corpora (``only`` those named, when given)."""
    from botkit.fetch import fetch as fetch_into

    names = list(config.corpora) if only is None else only
    unknown = [n for n in names if n not in config.corpora]
    if unknown:
        raise ConfigError(f"{config.path}: corpora: no corpus named {', '.join(unknown)} (defined: {', '.join(config.corpora) or 'none'})")
    for name in names:
        spec = config.corpora[name]
        make_folder(spec.output)
        print(config.redact(fetch_into(spec.source, spec.output, spec.normalization, name=name).summary()))


def plugins(args: argparse.Namespace) -> None:
    """``botkit sources|filters|targets``: the installed plugins of one kind, built-in or third-party."""
    from botkit.bots.targets import TARGETS
    from botkit.filters import FILTERS

    registries: dict[str, Registry[Any]] = {"sources": SOURCES, "filters": FILTERS, "targets": TARGETS}
    registry = registries[args.command]
    for name in registry.names():
        try:
            summary = registry.get(name).summary
        except BotkitError as exc:
            summary = f"(broken: {exc})"
        print(f"{name:<16} {summary}\n{'':<16} from {registry.origin(name)}")


def corpus(args: argparse.Namespace) -> None:
    say(corpus_stats(args.file).format())  # its labels are the corpus's text: no control character reaches the terminal raw


HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {"fetch": fetch, "sources": plugins, "filters": plugins, "targets": plugins, "corpus": corpus}
