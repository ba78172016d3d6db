"""The ``botkit`` command line: the parser made of every command group's parsers, and the dispatch.

The commands themselves live in :mod:`botkit.commands`, one module per group (data, model, bots,
console), each holding its parsers and its handlers side by side.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Callable, Sequence

from botkit import __version__
from botkit.commands import bots, console, data, model
from botkit.errors import BotkitError
from botkit.redact import redact_text

GROUPS = (data, model, bots, console)
HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {name: handler for group in GROUPS for name, handler in group.HANDLERS.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botkit", description="Train text-generating networks and run bots that post what they write.")
    parser.add_argument("--version", action="version", version=f"botkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    # The global flags again on every command, so `botkit fetch reddit ... -v` works as `botkit -v fetch ...` does.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.add_parsers(commands, common)
    return parser


class _Formatter(logging.Formatter):
    """``botkit: warning: ...``: one prefix for every message botkit prints, logged or not; any URL
    credential a library's log line or a traceback quotes is hidden (botkit's own are already)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"botkit: {record.levelname.lower()}: {record.getMessage()}"
        return redact_text(f"{text}\n{self.formatException(record.exc_info)}" if record.exc_info else text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = data.normalize_argv(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter())
    logging.basicConfig(handlers=[handler], level=logging.INFO if args.verbose else logging.WARNING)
    try:
        HANDLERS[args.command](args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is handled below
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # another pipe or socket broke: that is a bug to see, not a reader that left
        # `botkit status | head`: the reader has all it wants. Python's recipe: point stdout at
        # devnull, so the flush at exit does not fail again, and leave quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BotkitError as exc:
        print(f"botkit: error: {redact_text(str(exc))}", file=sys.stderr)  # redacted where it was made; this is the last net
        return 1
    except KeyboardInterrupt as exc:  # a command may say what was kept and how to go on
        print(f"botkit: interrupted {exc}" if str(exc) else "botkit: interrupted", file=sys.stderr)
        return 130
    return 0


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll says POLLERR), rather than some other
    pipe or socket a command wrote to; where poll is missing, assume it is stdout."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
        return False
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


if __name__ == "__main__":
    sys.exit(main())
