"""``botkit serve`` (the farm console) and ``botkit report`` (its pictures as PNG files): parsers and handlers.

Errors are :class:`BotkitError`, printed by the CLI as one ``botkit: error:`` line.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botkit.commands.common import DEFAULT_CONFIG, add_config, add_db, bots_config, open_ledger
from botkit.errors import BotkitError, ConfigError

DEFAULT_PORT = 8750
LOOPBACK = "127.0.0.1"


def _port(text: str) -> int:
    """A TCP port, or argparse's one-line usage error (a socket would raise OverflowError past 65535)."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number 0-65535: {text!r}")
    return int(text)


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="the farm console: a web page to watch the bots, review their candidates and see their models",
        description="Serve the farm console on http://HOST:PORT/ (loopback by default). Every request needs the token: "
        "$BOTKIT_CONSOLE_TOKEN, else one generated at first start into a mode-0600 file beside the ledger and printed once.",
    )
    add_config(serve)
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument(
        "--host", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}); anything else reaches beyond this machine, and is warned about"
    )
    add_db(serve)
    report = commands.add_parser(
        "report",
        parents=[common],
        help="write a model's or a bot's pictures as PNG files: loss curves, corpus statistics, filter funnel",
        description="botkit report weights/NAME -o DIR: the model's loss curves and corpus statistics. "
        "botkit report --bot NAME -c config.yaml -o DIR: those of the bot's model, plus its filter funnel from the ledger.",
    )
    report.add_argument("model", nargs="?", type=Path, metavar="MODEL", help="model folder, e.g. weights/NAME")
    report.add_argument("--bot", metavar="NAME", help="a bot of the config instead of a model folder")
    report.add_argument("-c", "--config", dest="config_flag", metavar="CONFIG", help=f"with --bot: config file (default {DEFAULT_CONFIG})")
    report.set_defaults(config_file=None)
    report.add_argument("-o", "--output", type=Path, required=True, help="folder to write the PNG files into")
    add_db(report)


# -- serve -----------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> None:
    """Load the config and the ledger, make sure of the token, listen, and serve until Ctrl-C."""
    from botkit.console.app import create_app
    from botkit.console.auth import load_token, token_file

    config = bots_config(args)
    sock = listen(args.host, args.port)
    with open_ledger(config, args) as ledger:
        token = load_token(token_file(ledger.url, config.base_dir))
        url = f"http://{_url_host(args.host)}:{sock.getsockname()[1]}/"
        for line in announce(args.host, url, token, config.path, ledger.safe_url):
            print(line, file=sys.stderr if line.startswith("botkit: warning") else sys.stdout, flush=True)
        serve(create_app(config, ledger, token), sock)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def announce(host: str, url: str, token: Any, config: Path, ledger: str) -> list[str]:
    """What ``botkit serve`` prints at start: the URL, the token only when it was just made, and warnings."""
    lines = [f"botkit: console for {config} (ledger {ledger}) at {url}"]
    if token.new:
        lines.append(f"botkit: log in with the token {token.value} (saved in {token.source}, mode 0600; printed only this once)")
    else:
        lines.append(f"botkit: log in with the token from {token.source}")
    if not is_loopback(host):
        lines.append(
            f"botkit: warning: the console listens on {host}, beyond this machine: whoever reaches it with the token can post as your bots, "
            "and plain HTTP carries the token in clear (put an HTTPS proxy in front)"
        )
    return lines


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or one error line (port taken, address not here) instead of uvicorn's traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        raise BotkitError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc})") from None
    return sock


def serve(app: Any, sock: socket.socket, started: Callable[[Any], None] | None = None) -> None:
    """Run uvicorn on ``sock`` until Ctrl-C (or ``server.should_exit``, which tests set)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if started is not None:
        started(server)
    server.run(sockets=[sock])


# -- report ----------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> None:
    """Write the PNGs and say which; name each picture that could not be drawn, and why."""
    if (args.model is None) == (args.bot is None):
        raise ConfigError("report: give exactly one of a model folder (botkit report weights/NAME -o DIR) or --bot NAME")
    lines = _bot_report(args) if args.bot else _model_report(args.model, None, args.output, args.model.name)
    for line in lines:
        print(line)


def _bot_report(args: argparse.Namespace) -> list[str]:
    from botkit.commands.bots import bot_spec
    from botkit.console.charts import funnel_png
    from botkit.console.farm import bot_corpora, funnel

    config = bots_config(args)
    spec = bot_spec(config, args.bot)
    with open_ledger(config, args) as ledger:
        counts = funnel(ledger, args.bot)
    lines = (
        [_write(args.output / "funnel.png", funnel_png(counts, f"{args.bot}: filter funnel"))]
        if counts.generated
        else [f"{args.bot}: no candidates in the ledger yet: no funnel.png"]
    )
    if spec.options.model is None:
        return [*lines, f"{args.bot}: posts prepared posts, no model: no loss or corpus pictures"]
    return lines + _model_report(spec.options.model, bot_corpora(spec, config.corpora), args.output, args.bot)


def _model_report(folder: Path, corpora: list[Path] | None, output: Path, title: str) -> list[str]:
    from botkit.console.charts import corpus_png, loss_png
    from botkit.console.farm import model_view

    view = model_view(folder, corpora)
    if view.history:
        lines = [_write(output / "loss.png", loss_png(view.history, f"{title}: loss per epoch", view.unit))]
    else:
        final = ", ".join(f"{key} {view.result[key]:.4f}" for key in ("train_loss", "val_loss") if isinstance(view.result.get(key), float))
        lines = [f"{view.folder}: no per-epoch losses recorded: no loss.png" + (f" (final: {final})" if final else "")]
    lines += [_write(output / f"corpus-{stats.path.stem}.png", corpus_png(stats)) for stats in view.corpora]
    return lines + [f"{problem}: no corpus picture" for problem in view.problems]


def _write(path: Path, data: bytes) -> str:
    """Write a picture atomically: a full disk leaves the previous picture, not half a PNG."""
    from botkit.atomic import write_bytes
    from botkit.corpus import make_folder

    make_folder(path)
    write_bytes(path, data, what="picture")
    return f"wrote {path}"


HANDLERS: dict[str, Callable[[argparse.Namespace], None]] = {"serve": run_serve, "report": run_report}
