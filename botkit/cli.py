"""The ``botkit`` command line: argument parsing and printing only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from botkit import __version__
from botkit.corpus import Normalization, corpus_stats
from botkit.errors import BotkitError, ConfigError
from botkit.options import add_arguments, validate
from botkit.sources import SOURCES

log = logging.getLogger("botkit")

DEFAULT_CONFIG = "config.yaml"
_FETCH_SHARED = {"output", "source", "config", "corpus", "command", "verbose"}


def _fetch_parser(commands: argparse._SubParsersAction) -> None:
    fetch = commands.add_parser(
        "fetch",
        help="pull text from a source into a corpus (botkit fetch --subreddit NAME is short for botkit fetch reddit ...)",
        description="Pull text from a source into a line-delimited corpus. With no source, fetch every corpus in the config.",
    )
    fetch.add_argument("-c", "--config", help="fetch the corpora defined in this config file")
    fetch.add_argument("--corpus", action="append", help="with --config: only this corpus (repeatable)")
    per_source = fetch.add_subparsers(dest="source", metavar="SOURCE")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", help="corpus file to add to (.jsonl keeps labels; .txt is bare text). Default: corpora/NAME.jsonl")
    clean = common.add_argument_group("clean-up")
    add_arguments(Normalization, clean)
    for name in SOURCES.names():
        try:
            source_cls = SOURCES.get(name)
        except BotkitError as exc:  # one broken third-party plugin must not break the CLI
            log.warning("%s", exc)
            continue
        parser = per_source.add_parser(name, parents=[common], help=source_cls.summary, description=source_cls.summary)
        add_arguments(source_cls.Options, parser.add_argument_group(f"{name} options"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botkit", description="Train text-generating networks and run bots that post what they write.")
    parser.add_argument("--version", action="version", version=f"botkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _fetch_parser(commands)
    commands.add_parser("sources", help="list installed source plugins")
    corpus = commands.add_parser("corpus", help="inspect corpora").add_subparsers(dest="corpus_command", required=True)
    corpus.add_parser("stats", help="documents, characters, labels and length percentiles").add_argument("file", type=Path)
    demo = commands.add_parser("demo", help="run the main job end to end on the example config (no network, no accounts)")
    demo.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    return parser


def _normalize_argv(argv: list[str]) -> list[str]:
    """``botkit fetch --subreddit X`` → ``botkit fetch reddit --subreddit X``: the first thing users type."""
    if len(argv) >= 2 and argv[0] == "fetch" and argv[1].startswith("--subreddit"):
        return ["fetch", "reddit", *argv[1:]]
    return argv


def cmd_fetch(args: argparse.Namespace) -> None:
    from botkit.config import load_config
    from botkit.fetch import fetch

    if args.source is None:
        config = load_config(args.config or DEFAULT_CONFIG)
        _fetch_config_corpora(config, args.corpus)
        return
    if args.config:
        raise ConfigError("give either a SOURCE or --config, not both")
    values = {k: v for k, v in vars(args).items() if k not in _FETCH_SHARED}
    norm_keys = set(Normalization.model_fields)
    normalization = validate(Normalization, {k: v for k, v in values.items() if k in norm_keys}, "botkit fetch", flags=True)
    source = SOURCES.get(args.source).from_mapping(
        {k: v for k, v in values.items() if k not in norm_keys}, f"botkit fetch {args.source}", flags=True
    )
    if args.output:
        output = Path(args.output)
    else:
        output = Path("corpora") / f"{source.default_name()}.jsonl"
        output.parent.mkdir(parents=True, exist_ok=True)
    print(fetch(source, output, normalization, name=args.source).summary())


def _fetch_config_corpora(config, only: list[str] | None) -> None:  # noqa: ANN001 - Config, imported lazily
    from botkit.fetch import fetch

    names = only or list(config.corpora)
    unknown = [n for n in names if n not in config.corpora]
    if unknown:
        raise ConfigError(f"{config.path}: corpora: no corpus named {', '.join(unknown)} (defined: {', '.join(config.corpora) or 'none'})")
    for name in names:
        spec = config.corpora[name]
        spec.output.parent.mkdir(parents=True, exist_ok=True)
        print(fetch(spec.source, spec.output, spec.normalization, name=name).summary())


def cmd_sources(args: argparse.Namespace) -> None:
    for name in SOURCES.names():
        try:
            summary = SOURCES.get(name).summary
        except BotkitError as exc:
            summary = f"(broken: {exc})"
        print(f"{name:<16} {summary}\n{'':<16} from {SOURCES.origin(name)}")


def cmd_corpus(args: argparse.Namespace) -> None:
    print(corpus_stats(args.file).format())


def cmd_demo(args: argparse.Namespace) -> None:
    from botkit.config import load_config

    config = load_config(args.config)
    print(f"== fetch: the corpora of {config.path}")
    _fetch_config_corpora(config, None)
    for spec in config.corpora.values():
        print(f"\n== corpus stats: {spec.name}")
        print(corpus_stats(spec.output).format())


COMMANDS = {"fetch": cmd_fetch, "sources": cmd_sources, "corpus": cmd_corpus, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    argv = _normalize_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="botkit: %(levelname)s: %(message)s", level=logging.INFO if args.verbose else logging.WARNING)
    try:
        COMMANDS[args.command](args)
    except BotkitError as exc:
        print(f"botkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("botkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
