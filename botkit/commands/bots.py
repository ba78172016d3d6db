"""``botkit run``, ``status``, ``history``, ``review``, ``farm build`` and ``demo``: the bots of a config.

Every one of them takes the config file as ``CONFIG`` or ``-c CONFIG`` alike, and the ledger from
the config's ``store:``, ``--db URL`` or ``$BOTKIT_DB``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from botkit.commands.common import add_config, add_db, bots_config, config_path, open_ledger
from botkit.corpus import corpus_stats
from botkit.errors import BotkitError, ConfigError
from botkit.terminal import say

if TYPE_CHECKING:
    from botkit.bots.spec import BotSpec
    from botkit.config import Config


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=summary, description=description or summary[0].upper() + summary[1:] + ".")

    run = command(
        "run",
        "run the bots of a config: a daemon until SIGTERM/Ctrl-C, or one tick of each with --once",
        "Run every bot under bots: in the config on its schedule (APScheduler), posting to its target. "
        "A target not marked live: true posts to the local outbox instead.",
    )
    add_config(run)
    run.add_argument("--once", action="store_true", help="one tick of every bot, then exit (for cron and the demo); exit status 1 if any bot's tick failed")
    add_db(run)
    status = command("status", "each bot's last post (with its link), next run, queue size, the worker that holds it, and its last error")
    add_config(status)
    add_db(status)
    history = command("history", "a bot's posts, newest first: time, target, link (or remote id), text")
    history.add_argument("bot", metavar="BOT")
    add_config(history)
    history.add_argument("-n", "--limit", type=int, default=50, help="at most this many posts (default 50; 0 for all)")
    add_db(history)
    review = command("review", "approve or reject a bot's queued candidates, one by one (bots with review: true)")
    review.add_argument("bot", metavar="BOT")
    add_config(review)
    add_db(review)
    farm = command("farm", "build every bot's model").add_subparsers(dest="farm_command", required=True)
    build = farm.add_parser(
        "build", parents=[common], help="fetch each bot's corpus and train its model, skipping what is up to date",
        description="Fetch each model bot's corpora and train its model with its train: settings, skipping what is up to date.",
    )  # fmt: skip
    add_config(build)
    build.add_argument("--dry-run", action="store_true", help="only say what would be fetched and trained")
    demo = command(
        "demo",
        "the main job end to end on the example config: fetch, train, generate, filter, post to the outbox (no network, no accounts)",
    )
    add_config(demo)


class TicksFailed(BotkitError):
    """Some bots' ticks failed in ``run --once``: the CLI's one error line counts them, and the exit status is 1."""


def run(args: argparse.Namespace) -> None:
    """``botkit run``: the daemon, or with ``--once`` one tick of every bot, for cron.

    Exit status of ``run --once``: 0 when every tick did its job (posted, or had nothing to do:
    empty, waiting on a limit or the service, skipped because another worker holds the bot);
    1 when any bot's tick failed (an error, a post the service refused, a disabled bot), with
    ``botkit: error: N of M bot(s) failed their tick: NAMES`` last on stderr, each failure
    itself printed once, as its result line, on stdout; 1 as well for a config or ledger error,
    before any tick; 130 on Ctrl-C.
    """
    from botkit.bots.spec import readiness

    config = bots_config(args, also=lambda bots, corpora, where: readiness(bots, where))
    _fail_if_any(run_bots(config, args, once=args.once), len(config.bots))


def _fail_if_any(failed: list[str], total: int) -> None:
    if failed:
        raise TicksFailed(f"{len(failed)} of {total} bot(s) failed their tick: {', '.join(failed)} (their lines above say why)")


def run_bots(config: Config, args: argparse.Namespace | None, *, once: bool) -> list[str]:
    """Start every bot of ``config``: one tick each with ``once``, else the daemon until a signal.

    Returns the bots whose tick went wrong (``once`` only; the daemon reports as it goes), in
    config order, each once: the caller decides the exit status.
    """
    import threading

    from botkit.bots.bot import build_bots
    from botkit.bots.daemon import Daemon, run_once, start_warnings
    from botkit.bots.workers import describe

    if not config.bots:
        raise ConfigError(f"{config.path}: bots: no bots defined (add one under bots:, see the README)")
    with open_ledger(config, args) as ledger:
        stop = threading.Event()
        bots = build_bots(config.bots, ledger, str(config.path), stop=stop)
        for line in start_warnings(bots):
            say(f"botkit: warning: {line}", file=sys.stderr)
        if once:
            results = run_once(bots, ledger)
            for result in results:
                say(result)
            return list(dict.fromkeys(r.bot for r in results if r.went_wrong))
        announce = (
            f"botkit: running {len(bots)} bot(s) from {config.path} as worker {describe(bots[0].worker)}; ledger {ledger.safe_url}; stop with Ctrl-C or SIGTERM"
        )
        Daemon(bots, ledger, lambda result: say(result, flush=True), stop).run(started=lambda: say(announce, flush=True))
        print("botkit: stopped", flush=True)
        return []


def status(args: argparse.Namespace) -> None:
    from botkit.bots.report import status as report

    config = bots_config(args)
    with open_ledger(config, args) as ledger:
        say(report(ledger, config.bots))


def history(args: argparse.Namespace) -> None:
    from botkit.bots.report import history as report

    config = bots_config(args)
    with open_ledger(config, args) as ledger:
        if args.bot not in config.bots and args.bot not in ledger.bots():
            raise ConfigError(_no_such_bot(config, args.bot))
        say(report(ledger, args.bot, args.limit or None))


def review(args: argparse.Namespace) -> None:
    from botkit.bots.review import review as review_queue

    config = bots_config(args)
    spec = bot_spec(config, args.bot)
    if not spec.options.review:
        raise ConfigError(f"{config.path}: bots.{args.bot}.review: review is off for this bot (set review: true to hold its candidates)")
    with open_ledger(config, args) as ledger:
        print(review_queue(ledger, args.bot, input, say).summary(args.bot))


def bot_spec(config: Config, name: str) -> BotSpec:
    """The bot ``name`` of ``config``, or the error every command gives for a bot it does not know."""
    spec = config.bots.get(name)
    if spec is None:
        raise ConfigError(_no_such_bot(config, name))
    return spec


def _no_such_bot(config: Config, name: str) -> str:
    return f"{config.path}: bots: no bot named {name} (defined: {', '.join(config.bots) or 'none'})"


def farm(args: argparse.Namespace) -> None:
    from botkit.bots.farm import build, build_problems
    from botkit.config import load_config

    config = load_config(config_path(args), also=build_problems)
    for line in build(config, dry_run=args.dry_run):
        print(config.redact(line), flush=True)  # a path or a source option may come from the environment


def demo(args: argparse.Namespace) -> None:
    """The main job on the embedded defaults: files → corpus → model → samples → filters → outbox."""
    from botkit.bots.farm import build
    from botkit.bots.report import history as report
    from botkit.commands.data import fetch_config_corpora
    from botkit.config import load_config

    config = load_config(config_path(args))
    print(f"== 1/3  fetch corpora and train models (botkit farm build {config.path})", flush=True)
    for line in build(config):  # fetches what the model bots learn from, then trains them
        print(config.redact(line), flush=True)
    learned = {n for spec in config.bots.values() for n in ([spec.options.corpus] if isinstance(spec.options.corpus, str) else spec.options.corpus or [])}
    fetch_config_corpora(config, [name for name in config.corpora if name not in learned])
    for spec in config.corpora.values():
        if spec.output.exists():
            say(f"\n== corpus {spec.name}\n{corpus_stats(spec.output).format()}")
    if not config.bots:
        print(f"\n{config.path} defines no bots: nothing to generate or post (see the bots: section of the example config.yaml)")
        return
    print(f"\n== 2/3  generate, filter and post: one tick of every bot (botkit run {config.path} --once)", flush=True)
    failed = run_bots(config, None, once=True)
    print("\n== 3/3  what the bots have posted (botkit history BOT)")
    with open_ledger(config, None) as ledger:
        for name in config.bots:
            say(report(ledger, name, 5))
    _fail_if_any(failed, len(config.bots))


HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {
    "run": run, "status": status, "history": history, "review": review, "farm": farm, "demo": demo,
}  # fmt: skip
