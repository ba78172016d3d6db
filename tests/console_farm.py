"""A small farm for the console's tests (HTTP and browser): two bots, a review queue, a trained-looking model.

``apple`` posts prepared posts (one of them a ``<script>`` with ``{{ }}``) and holds them for review;
``pear`` has a model folder whose ``config.json`` records per-epoch losses and names a labelled
corpus, and a twitter target (not live) whose key comes from the environment: it must never show.
Ticks run ``run.yaml`` (apple alone), since pear's model is only the metadata the console reads.
A client logs in with :func:`logged_in` (the session cookie) or sends :data:`BEARER`.

For the model page's playground, :func:`make_model_farm` writes ``plum``: a bot generating from a
real model (:func:`train_tiny`, seconds), holding its candidates for review, banning "script".
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from botkit.bots.ledger import Ledger, store_url
from botkit.cli import main
from botkit.commands.console import listen, serve
from botkit.config import load_config
from botkit.console.app import SESSION_COOKIE, create_app
from botkit.console.auth import Token

PLUM_LABELS = ["orchard0", "orchard1", "orchard2"]
SCRIPT = "<script>document.title='pwned'</script> {{ 7*7 }}"
POSTS = ["the first post", SCRIPT, "number three", "four", "and five"]
TOKEN = Token("test-token-0123456789abcdef", "test")
BEARER = {"Authorization": f"Bearer {TOKEN.value}"}
SECRET = "tw-key-never-shown-4242"
SECRET_ENV = "BOTKIT_TEST_TWITTER_KEY"
HISTORY = [{"epoch": e, "step": 10 * e, "seconds": 1.0 * e, "train_loss": 3.0 / e, "val_loss": 3.2 / e + 0.1} for e in range(1, 6)]

_APPLE = """\
    apple:
      posts: posts.txt
      filters: none
      review: true
      buffer: {size: 5, low: 1}
      schedule: {every: 10s}
      target: {kind: outbox, limits: {min_interval: 0s, daily_cap: null}}
"""
_PEAR = f"""\
    pear:
      model: weights/pear
      corpus: pears
      target: {{kind: twitter, consumer_key: "${{{SECRET_ENV}}}"}}
"""

_PLUM = """\
store: botkit.db
bots:
  plum:
    model: {model}
    review: true
    generate: {{max_length: 40, temperature: 0.8}}
    filters: [{{length: {{min_chars: 1, min_words: 1}}}}, {{banned: {{words: [script]}}}}, dedupe]
    target: {{kind: outbox, limits: {{min_interval: 0s, daily_cap: null}}}}
"""


def make_farm(folder: Path, *, history: bool = True) -> Path:
    """Write the farm into ``folder`` and queue apple's five posts for review; returns the console's config."""
    (folder / "posts.txt").write_text("".join(p + "\n" for p in POSTS), encoding="utf-8")
    corpus = folder / "corpora" / "pears.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps({"text": "pear " * (i % 7 + 1), "label": f"orchard{i % 3}"}) + "\n" for i in range(60)), encoding="utf-8")
    (folder / "run.yaml").write_text("store: botkit.db\nbots:\n" + textwrap.indent(textwrap.dedent(_APPLE), "  "), encoding="utf-8")
    corpora = "corpora:\n  pears: {source: files, paths: [posts.txt], output: corpora/pears.jsonl}\n"
    bots = textwrap.indent(textwrap.dedent(_APPLE) + textwrap.dedent(_PEAR), "  ")
    (folder / "config.yaml").write_text(f"store: botkit.db\n{corpora}bots:\n{bots}", encoding="utf-8")
    write_weights(folder / "weights" / "pear", HISTORY if history else None)
    tick(folder)
    return folder / "config.yaml"


def write_weights(folder: Path, history: list[dict[str, Any]] | None, corpus: Path | None = None) -> None:
    """A model folder's config.json as the trainer writes it, with ``training.history`` when given."""
    folder.mkdir(parents=True)
    training: dict[str, Any] = {"level": "char", "window": 16, "lr": 0.008, "result": {"epoch": 5, "train_loss": 0.6, "val_loss": 0.74, "best_val_loss": 0.74}}
    if history is not None:
        training["history"] = history
    if corpus is not None:
        training["corpus"] = [str(corpus)]
    model = {"vocab_size": 40, "num_labels": 1, "embedding_size": 8, "rnn_layers": 1, "rnn_size": 16}
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "level": "char", "model": model, "training": training}), encoding="utf-8")


def train_tiny(folder: Path) -> Path:
    """A tiny labelled char model (one epoch, seconds) in ``folder/weights``: what ``plum`` generates from."""
    corpus = folder / "plums.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"plum number {i} is ripe", "label": PLUM_LABELS[i % 3]}) + "\n" for i in range(60)), encoding="utf-8")
    tiny = ["--epochs", "1", "--rnn-size", "16", "--embedding-size", "8", "--window", "16", "--sample-every", "0"]
    assert main(["train", str(corpus), "-o", str(folder / "weights"), *tiny]) == 0
    return folder / "weights"


def make_model_farm(folder: Path, weights: Path) -> Path:
    """Write ``plum``'s config into ``folder``, generating from ``weights``; returns the config."""
    config = folder / "config.yaml"
    config.write_text(_PLUM.format(model=weights), encoding="utf-8")
    return config


def tick(folder: Path) -> None:
    """One tick of apple, as ``botkit run run.yaml --once`` does it."""
    assert main(["run", str(folder / "run.yaml"), "--once"]) == 0


def outbox(folder: Path) -> list[str]:
    path = folder / "outbox" / "apple.txt"
    return [line.split("  ", 2)[2] for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def ledger_of(folder: Path) -> Ledger:
    return Ledger(store_url("botkit.db", folder))


@contextmanager
def console_app(config: Path) -> Iterator[tuple[Any, Ledger]]:
    """The console app on the farm's config and ledger, guarded by :data:`TOKEN`."""
    loaded = load_config(config)
    with ledger_of(config.parent) as ledger:
        yield create_app(loaded, ledger, TOKEN), ledger


@contextmanager
def live_console(config: Path) -> Iterator[str]:
    """The console served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    servers: list[Any] = []
    with console_app(config) as (app, _ledger):
        sock = listen("127.0.0.1", 0)
        thread = threading.Thread(target=serve, args=(app, sock, servers.append), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not (servers and servers[0].started):
            assert time.monotonic() < deadline and thread.is_alive(), "the console did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            servers[0].should_exit = True
            thread.join(10)


def login_nonce(client: TestClient) -> str:
    """The login form's own CSRF token (it is also in the cookie the form sets)."""
    return client.get("/login").text.split('name="login_csrf" value="')[1].split('"')[0]


def logged_in(client: TestClient) -> TestClient:
    """The client with the session cookie the login form sets."""
    answer = client.post("/login", data={"token": TOKEN.value, "login_csrf": login_nonce(client), "next": "/bots/apple"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/bots/apple"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN.value not in cookie  # the cookie is derived from the token, not the token
    return client
