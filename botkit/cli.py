"""The ``botkit`` command line: argument parsing and printing only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from botkit import __version__
from botkit.console.commands import add_report_parser, add_serve_parser, run_report, run_serve
from botkit.corpus import Normalization, corpus_stats, make_folder
from botkit.errors import BotkitError, ConfigError
from botkit.options import add_arguments, validate
from botkit.sources import SOURCES

log = logging.getLogger("botkit")

DEFAULT_CONFIG = "config.yaml"
DB_ENV = "BOTKIT_DB"
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


def _train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a char- or word-level model on corpora into weights/NAME",
        description="Train a textgenrnn-class model (embedding, stacked LSTMs, attention over the skip connections) "
        "on corpora (.jsonl/.txt, one document a line) or, with --single-text, on plain text files read as one stream.",
    )
    train.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS", help="corpus file(s), or text file(s) with --single-text")
    train.add_argument("-o", "--output", type=Path, required=True, help="model folder to write, e.g. weights/NAME")
    level = train.add_mutually_exclusive_group()
    level.add_argument("--char", dest="level", action="store_const", const="char", help="character-level model (default)")
    level.add_argument("--word", dest="level", action="store_const", const="word", help="word-level model (punctuation and casing are tokens)")
    train.add_argument("--single-text", action="store_true", help="read each input as one plain-text stream (tiny Shakespeare, a novel)")
    train.add_argument("--max-words", type=int, help="word level: vocabulary size cap; rarer words become <unk> (default 10000)")
    budget = train.add_argument_group("budget and schedule")
    budget.add_argument("--epochs", type=int, help="passes over the training tokens (default 10 unless --minutes; with --resume: the total)")
    budget.add_argument("--minutes", type=float, help="wall-clock training budget; the learning rate decays to 0 at its end (with --resume: minutes more)")
    budget.add_argument("--batch-size", type=int, help="windows per step (default 32)")
    budget.add_argument("--window", type=int, help="tokens per training window, also the context eval uses (default 128)")
    budget.add_argument("--train-size", type=float, help="share of the token stream to train on; the rest (the end) is validation (default 0.9)")
    budget.add_argument("--lr", type=float, help="peak learning rate of Adam (default 0.008), decayed linearly to 0")
    budget.add_argument("--warmup", type=int, dest="warmup_steps", help="linear warmup steps (default 0)")
    budget.add_argument("--patience", type=int, help="stop after this many epochs without a better val loss; 0 never stops (default 5)")
    budget.add_argument("--seed", type=int, help="random seed of initialisation and window order (default 0)")
    shape = train.add_argument_group("model shape (ignored by --resume; fixed by the base model with --from)")
    shape.add_argument("--rnn-layers", type=int, help="stacked LSTM layers (default 2)")
    shape.add_argument("--rnn-size", type=int, help="units per LSTM layer (default 128)")
    shape.add_argument("--embedding-size", type=int, help="token embedding size (default 100)")
    shape.add_argument("--dropout", type=float, help="dropout after the embedding and each LSTM (default 0)")
    shape.add_argument("--head", choices=["attention", "attention+last"], help="output head: textgenrnn's attention average, or that plus the last LSTM output (default)")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue training OUTPUT with its optimizer state and schedule position")
    start.add_argument("--from", dest="base", type=Path, metavar="WEIGHTS", help="fine-tune from another model folder; new tokens extend its vocabulary")
    extra = train.add_argument_group("monitoring")
    extra.add_argument("--sample-every", type=int, help="print sample texts every N epochs; 0 turns them off (default 10)")
    extra.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard logs to DIR")
    extra.add_argument("--mixed-precision", action="store_true", default=None, help="float16 compute on a GPU (softmax stays float32)")
    extra.add_argument(
        "--distribute", choices=["mirrored", "multi-worker"],
        help="tf.distribute: mirrored over this machine's GPUs, or multi-worker across the machines in TF_CONFIG (--batch-size is the global batch)",
    )


_MODEL_FLAGS = ("rnn_layers", "rnn_size", "embedding_size", "dropout", "head")
_TRAIN_FLAGS = (
    "level", "single_text", "max_words", "epochs", "minutes", "batch_size", "window", "train_size", "lr",
    "warmup_steps", "patience", "seed", "sample_every", "tensorboard", "mixed_precision", "distribute",
)


def _eval_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="cross-entropy of a text under a model (nats and bits per token)",
        description="Mean cross-entropy of FILE under a model, in windows of the trained length (overlapping by half), "
        "the number training reports as val loss. FILE is read the way the model was trained: a .txt file as one stream "
        "for a model trained with --single-text, else one document a line; a .jsonl corpus document by document, with its labels; "
        "any other file as one stream. Models imported from textgenrnn are scored as textgenrnn frames its texts.",
    )
    evaluate.add_argument("weights", type=Path, metavar="WEIGHTS", help="model folder, e.g. weights/NAME")
    evaluate.add_argument("file", type=Path, metavar="FILE", help="text file or corpus to score")
    read = evaluate.add_mutually_exclusive_group()
    read.add_argument(
        "--as",
        dest="read_as",
        choices=["stream", "documents"],
        help="read FILE as one stream, or as a corpus one document a line (default: as the model was trained)",
    )
    read.add_argument("--single-text", dest="read_as", action="store_const", const="stream", help="same as --as stream (the flag botkit train uses)")


def _generate_parser(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate",
        help="generate samples from a model, batched; filter them; print or write .txt/.jsonl",
        description="Generate samples from a trained model (many in parallel, state carried token to token), "
        "keep those the filters pass, and print them (one a line, escaped like .txt corpora) or write them with -o.",
    )
    generate.add_argument("weights", type=Path, metavar="WEIGHTS", help="model folder, e.g. weights/NAME")
    generate.add_argument("-n", type=int, default=10, help="samples to generate (default 10); filters may keep fewer")
    generate.add_argument("-t", "--temperature", type=float, action="append", help="sampling temperature, 0 is greedy (default 1.0); repeat to cycle per token, as textgenrnn does")
    generate.add_argument("--top-k", type=int, help="sample only among the K likeliest tokens")
    generate.add_argument("--top-p", type=float, help="sample only among the likeliest tokens holding P of the probability (nucleus)")
    generate.add_argument("--prefix", default="", help="text every sample starts with")
    generate.add_argument("--label", action="append", help="context label (a trained one); repeat to spread several over the samples (default: none, the label-free output)")
    generate.add_argument("--max-length", type=int, help="longest sample in tokens, prefix included (default: 300 characters' worth)")
    generate.add_argument("--seed", type=int, default=0, help="random seed: the same seed and settings give the same samples (default 0)")
    generate.add_argument("--batch-size", type=int, help="sequences generated in parallel; a row that ends a sample starts the next (default 500)")
    generate.add_argument(
        "--context", choices=["window", "carry", "sliding"],
        help="window: beyond the trained window W, condition on the last W/2..W tokens, as training and eval do (default); "
        "carry: on everything; sliding: on exactly the last W, as textgenrnn does (W times slower; default for imported textgenrnn models)",
    )
    generate.add_argument("--filters", default="default", help="filter chain: default, none, or names such as length,dedupe,novelty (default: default)")
    generate.add_argument("--report", action="store_true", help="print how many samples each filter rejected")
    generate.add_argument("-o", "--output", type=Path, help="write the kept samples to a .txt (one a line) or .jsonl (text, score, temperature, label) file")
    generate.add_argument("--interactive", action="store_true", help="pick every next token yourself from the model's top choices")
    generate.add_argument("--top-n", type=int, default=3, help="with --interactive: choices shown per token (default 3)")


def _bots_parser(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run",
        help="run the bots of a config: a daemon until SIGTERM/Ctrl-C, or one tick of each with --once",
        description="Run every bot under bots: in the config on its schedule (APScheduler), posting to its target. "
        "A target not marked live: true posts to the local outbox instead.",
    )
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    run.add_argument("--once", action="store_true", help="one tick of every bot, then exit (for cron and the demo)")
    ledger = argparse.ArgumentParser(add_help=False)
    ledger.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    for parser in (run, ledger):
        parser.add_argument(
            "--db", metavar="URL", default=None,
            help=f"ledger as a SQLAlchemy URL (e.g. postgresql+psycopg://...), instead of the config's store:; default ${DB_ENV} when set (keeps a password out of ps and crontabs)",
        )
    commands.add_parser("status", parents=[ledger], help="each bot's last post, next run, queue size and last error")
    history = commands.add_parser("history", parents=[ledger], help="a bot's posts, newest first: time, target, remote id, text")
    history.add_argument("bot", metavar="BOT")
    history.add_argument("-n", "--limit", type=int, default=50, help="at most this many posts (default 50; 0 for all)")
    review = commands.add_parser("review", parents=[ledger], help="approve or reject a bot's queued candidates (bots with review: true)")
    review.add_argument("bot", metavar="BOT")
    farm = commands.add_parser("farm", help="build every bot's model").add_subparsers(dest="farm_command", required=True)
    build = farm.add_parser("build", help="fetch each bot's corpus and train its model, skipping what is up to date")
    build.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    build.add_argument("--dry-run", action="store_true", help="only say what would be fetched and trained")


def _import_parser(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser(
        "import-textgenrnn",
        help="convert a textgenrnn model (weights .hdf5, vocab .json, config .json) into weights/NAME",
        description="Convert a textgenrnn model into a botkit model with the same next-token probabilities on textgenrnn's 40-token windows.",
    )
    imp.add_argument("weights", type=Path, metavar="WEIGHTS.hdf5", help="textgenrnn weights file")
    imp.add_argument("vocab", type=Path, metavar="VOCAB.json", help="textgenrnn vocab file")
    imp.add_argument("config", type=Path, nargs="?", metavar="CONFIG.json", help="textgenrnn config file (default: textgenrnn's default config)")
    imp.add_argument("-o", "--output", type=Path, required=True, help="model folder to write, e.g. weights/NAME")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botkit", description="Train text-generating networks and run bots that post what they write.")
    parser.add_argument("--version", action="version", version=f"botkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _fetch_parser(commands)
    commands.add_parser("sources", help="list installed source plugins (entry-point group botkit.sources)")
    commands.add_parser("filters", help="list installed sample filters (entry-point group botkit.filters)")
    commands.add_parser("targets", help="list installed post targets (entry-point group botkit.targets)")
    corpus = commands.add_parser("corpus", help="inspect corpora").add_subparsers(dest="corpus_command", required=True)
    corpus.add_parser("stats", help="documents, characters, labels and length percentiles").add_argument("file", type=Path)
    _train_parser(commands)
    _eval_parser(commands)
    _import_parser(commands)
    _generate_parser(commands)
    _bots_parser(commands)
    add_serve_parser(commands)
    add_report_parser(commands)
    demo = commands.add_parser(
        "demo", help="the main job end to end on the example config: fetch, train, generate, filter, post to the outbox (no network, no accounts)"
    )
    demo.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
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
        make_folder(output)
    print(fetch(source, output, normalization, name=args.source).summary())


def _fetch_config_corpora(config, only: list[str] | None) -> None:  # noqa: ANN001 - Config, imported lazily
    from botkit.fetch import fetch

    names = list(config.corpora) if only is None else only
    unknown = [n for n in names if n not in config.corpora]
    if unknown:
        raise ConfigError(f"{config.path}: corpora: no corpus named {', '.join(unknown)} (defined: {', '.join(config.corpora) or 'none'})")
    for name in names:
        spec = config.corpora[name]
        make_folder(spec.output)
        print(fetch(spec.source, spec.output, spec.normalization, name=name).summary())


def cmd_plugins(args: argparse.Namespace) -> None:
    """``botkit sources|filters|targets``: the installed plugins of one kind, built-in or third-party."""
    if args.command == "sources":
        registry = SOURCES
    elif args.command == "filters":
        from botkit.filters import FILTERS as registry
    else:
        from botkit.bots import TARGETS as registry
    for name in registry.names():
        try:
            summary = registry.get(name).summary
        except BotkitError as exc:
            summary = f"(broken: {exc})"
        print(f"{name:<16} {summary}\n{'':<16} from {registry.origin(name)}")


def cmd_corpus(args: argparse.Namespace) -> None:
    print(corpus_stats(args.file).format())


def cmd_train(args: argparse.Namespace) -> None:
    from botkit.model.train import TrainConfig, TrainingInterrupted, resume_command, train

    given = {k: v for k in _TRAIN_FLAGS if (v := getattr(args, k)) is not None and v is not False}  # 0 is a value (--patience 0)
    overrides = {k: getattr(args, k) for k in _MODEL_FLAGS if getattr(args, k) is not None}
    try:
        report = train(args.corpus, args.output, TrainConfig(**given), overrides, resume=args.resume, base=args.base)
    except TrainingInterrupted as exc:
        raise KeyboardInterrupt(f"{exc}; continue with: {resume_command(args.corpus, args.output, given)}") from None
    print(report.summary())


def cmd_eval(args: argparse.Namespace) -> None:
    from botkit.model.evaluate import evaluate_file

    print(evaluate_file(args.weights, args.file, read_as=args.read_as).summary())


def cmd_generate(args: argparse.Namespace) -> None:
    from botkit.generate import Generator, Options
    from botkit.generate.generator import DEFAULT_BATCH_SIZE
    from botkit.generate.interactive import Session
    from botkit.generate.run import run

    generator = Generator.load(args.weights)
    temperatures = args.temperature or [1.0]
    labels = args.label or [None]
    if args.interactive:
        Session(generator, top_n=args.top_n, temperature=temperatures[0], label=labels[0], max_length=args.max_length, seed=args.seed, prefix=args.prefix).run()
        return
    options = Options(
        temperature=temperatures, top_k=args.top_k, top_p=args.top_p, prefix=args.prefix, label=labels,
        max_length=args.max_length, seed=args.seed, batch_size=args.batch_size or DEFAULT_BATCH_SIZE, context=args.context,
    )
    result = run(generator, args.n, options, args.filters, args.output)
    report = sys.stdout if args.output else sys.stderr  # without -o, stdout holds only the samples
    if args.output:
        print(f"{args.output}: {result.kept:,} of {args.n:,} samples kept")
    if args.report:
        print(result.chain.report.format(), file=report)
    elif result.kept < args.n:
        print(f"botkit: {args.n - result.kept:,} of {args.n:,} samples rejected by the filters (--report for details, --filters none to keep all)", file=sys.stderr)


def _bots_config(args: argparse.Namespace, *, ready: bool = False):  # noqa: ANN202 - Config, imported lazily
    """The config the bot commands read; with --db and no config file, an empty one (status, history).

    ``ready`` (botkit run) adds what stops the bots from running now to the config's own problems.
    """
    from botkit.config import Config, load_config

    path = Path(args.config)
    if _db(args) and args.config == DEFAULT_CONFIG and not path.exists():
        return Config(path, "", {})
    return load_config(path, ready=ready)


def _db(args: argparse.Namespace) -> str | None:
    """``--db URL``, else ``$BOTKIT_DB``, else None (the config's ``store:``)."""
    return args.db or os.environ.get(DB_ENV) or None


def _ledger(config, args: argparse.Namespace | None):  # noqa: ANN001, ANN202 - Config and Ledger, imported lazily
    from botkit.bots.ledger import open_ledger

    return open_ledger(config.store, config.base_dir, _db(args) if args else None, lease=config.lease)


def cmd_run(args: argparse.Namespace) -> None:
    _run_bots(_bots_config(args, ready=True), args, once=args.once)


def _run_bots(config, args: argparse.Namespace | None, *, once: bool) -> None:  # noqa: ANN001 - Config, imported lazily
    """Start every bot of ``config``: one tick each with ``once``, else the daemon until a signal."""
    import threading

    from botkit.bots.bot import build_bots
    from botkit.bots.daemon import Daemon, run_once, start_warnings
    from botkit.bots.workers import describe

    if not config.bots:
        raise ConfigError(f"{config.path}: bots: no bots defined (add one under bots:, see the README)")
    with _ledger(config, args) as ledger:
        stop = threading.Event()
        bots = build_bots(config.bots, ledger, str(config.path), stop=stop)
        for line in start_warnings(bots):
            print(f"botkit: warning: {line}", file=sys.stderr)
        if once:
            for result in run_once(bots, ledger):
                print(result)
            return
        announce = (
            f"botkit: running {len(bots)} bot(s) from {config.path} as worker {describe(bots[0].worker)}; "
            f"ledger {ledger.safe_url}; stop with Ctrl-C or SIGTERM"
        )
        Daemon(bots, ledger, lambda result: print(result, flush=True), stop).run(started=lambda: print(announce, flush=True))
        print("botkit: stopped", flush=True)


def cmd_status(args: argparse.Namespace) -> None:
    from botkit.bots.report import status

    config = _bots_config(args)
    with _ledger(config, args) as ledger:
        print(status(ledger, config.bots))


def cmd_history(args: argparse.Namespace) -> None:
    from botkit.bots.report import history

    config = _bots_config(args)
    with _ledger(config, args) as ledger:
        print(history(ledger, args.bot, args.limit or None))


def cmd_review(args: argparse.Namespace) -> None:
    from botkit.bots.review import review

    config = _bots_config(args)
    spec = config.bots.get(args.bot)
    if spec is None:
        raise ConfigError(f"{config.path}: bots: no bot named {args.bot} (defined: {', '.join(config.bots) or 'none'})")
    if not spec.options.review:
        raise ConfigError(f"{config.path}: bots.{args.bot}.review: review is off for this bot (set review: true to hold its candidates)")
    with _ledger(config, args) as ledger:
        print(review(ledger, args.bot, input, print).summary(args.bot))


def cmd_farm(args: argparse.Namespace) -> None:
    from botkit.bots.farm import build
    from botkit.config import load_config

    for line in build(load_config(args.config), dry_run=args.dry_run):
        print(line, flush=True)


def cmd_import_textgenrnn(args: argparse.Namespace) -> None:
    from botkit.model.textgenrnn_import import import_textgenrnn

    saved = import_textgenrnn(args.weights, args.vocab, args.config, args.output)
    print(f"{args.output}: imported {args.weights} ({saved.vocab.level} level, {len(saved.vocab):,} tokens, {saved.config.rnn_layers} × {saved.config.rnn_size} LSTM)")


def cmd_demo(args: argparse.Namespace) -> None:
    """The main job on the embedded defaults: files → corpus → model → samples → filters → outbox."""
    from botkit.bots.farm import build
    from botkit.bots.report import history
    from botkit.config import load_config

    config = load_config(args.config)
    print(f"== 1/3  fetch corpora and train models (botkit farm build {config.path})", flush=True)
    for line in build(config):  # fetches what the model bots learn from, then trains them
        print(line, flush=True)
    learned = {n for spec in config.bots.values() for n in ([spec.options.corpus] if isinstance(spec.options.corpus, str) else spec.options.corpus or [])}
    _fetch_config_corpora(config, [name for name in config.corpora if name not in learned])
    for spec in config.corpora.values():
        if spec.output.exists():
            print(f"\n== corpus {spec.name}\n{corpus_stats(spec.output).format()}")
    if not config.bots:
        print(f"\n{config.path} defines no bots: nothing to generate or post (see the bots: section of the example config.yaml)")
        return
    print(f"\n== 2/3  generate, filter and post: one tick of every bot (botkit run {config.path} --once)", flush=True)
    _run_bots(config, None, once=True)
    print("\n== 3/3  what the bots have posted (botkit history BOT)")
    with _ledger(config, None) as ledger:
        for name in config.bots:
            print(history(ledger, name, 5))


COMMANDS = {
    "fetch": cmd_fetch,
    "sources": cmd_plugins,
    "filters": cmd_plugins,
    "targets": cmd_plugins,
    "corpus": cmd_corpus,
    "train": cmd_train,
    "eval": cmd_eval,
    "import-textgenrnn": cmd_import_textgenrnn,
    "generate": cmd_generate,
    "demo": cmd_demo,
    "run": cmd_run,
    "status": cmd_status,
    "history": cmd_history,
    "review": cmd_review,
    "farm": cmd_farm,
    "serve": run_serve,
    "report": run_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = _normalize_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="botkit: %(levelname)s: %(message)s", level=logging.INFO if args.verbose else logging.WARNING)
    try:
        COMMANDS[args.command](args)
    except BotkitError as exc:
        print(f"botkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a command may say what was kept and how to go on
        print(f"botkit: interrupted {exc}" if str(exc) else "botkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
