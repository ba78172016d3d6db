"""Fixtures shared by the test modules: a real PostgreSQL server for the ledger's PostgreSQL path,
the reference Bluesky network (``bluesky_network``, on that PostgreSQL server) and a bot's account
on it (``bluesky``),
``zone`` (tests that touch time run west and east of UTC), ``live_bots`` (bots that post
prepared lines to a live target), ``reply_model`` (a tiny trained reply model) and ``reply_bots``
(bots that answer what their target hears with it)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url
from botkit.config import load_config

from blueskypds import BlueskyNetwork, BotAccount
from blueskypds.install import unavailable
from blueskypds.proxy import LossyProxy
from pgserver import PostgresServer, PostgresUnavailable
from zones import zone

__all__ = ["bluesky", "bluesky_network", "ledger_url", "live_bots", "pg_url", "postgres", "reply_bots", "reply_model", "zone"]

#: The reply model's lesson: each parent word has one answer, so its replies show it read the parent.
ANSWERS = {"alpha": "zulu", "bravo": "yankee", "charlie": "xray", "delta": "whiskey", "echo": "victor", "golf": "tango"}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One server for the whole session, started only if some test asks for it (a start costs seconds).

    Skips, with the reason, where PostgreSQL cannot run; any other start failure is an error.
    """
    try:
        server = PostgresServer()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")
    with server:
        yield server


@pytest.fixture(scope="session")
def bluesky_network(request: pytest.FixtureRequest) -> Iterator[BlueskyNetwork]:
    """The reference Bluesky network (PDS, did:plc, AppView) for the whole session, started only if
    some test asks for it (about 20 s), its AppView on a database of :func:`postgres`. Skips, with the
    reason, where it is not installed (before starting PostgreSQL for it)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"Bluesky PDS unavailable: {reason}")
    with BlueskyNetwork(request.getfixturevalue("postgres").create_database("bluesky")) as network:
        yield network


@pytest.fixture
def bluesky(bluesky_network: BlueskyNetwork, monkeypatch: pytest.MonkeyPatch) -> Iterator[BotAccount]:
    """A new account for a bot on the reference PDS, its app password in ``$BLUESKY_APP_PASSWORD``,
    reached through a proxy that logs the bot's calls and loses answers on script."""
    account = bluesky_network.account("skeets")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", account.app_password)
    with LossyProxy(bluesky_network.url) as proxy:
        yield BotAccount(bluesky_network, account, proxy)


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The SQLAlchemy URL of a fresh, empty database, so tests never see each other's tables."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def live_bots(tmp_path: Path) -> Iterator[Callable[..., tuple[list[Bot], Ledger]]]:
    """``live_bots(target, posts, bots={"bot": ""}, worker=None)``: bots posting ``posts`` in order to a live target.

    ``target`` is the target mapping's keys as YAML flow text (``kind: mastodon, api_base_url: ...``),
    given to every bot with its limits lifted and fast retries; ``bots`` maps each bot's name to
    keys of its own (``access_token: ${OTHER}``). Every call reads config.yaml again, as a
    restarted daemon does; the ledgers are closed when the test ends.
    """

    def make(target: str, posts: list[str], *, bots: dict[str, str] | None = None, worker: str | None = None) -> tuple[list[Bot], Ledger]:
        (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
        own = {name: f"target: {{{keys}}}" for name, keys in (bots or {"bot": ""}).items()}
        return farm.build("  posts: posts.txt\n", target, own, worker)

    with _Farm(tmp_path) as farm:
        yield make


class _Farm:
    """A config.yaml of test bots in one folder, written and read again at every build (as a
    restarted daemon reads it), on one SQLite ledger per build; the ledgers close at the end."""

    DEFAULTS = "defaults:\n  filters: none\n  schedule: {every: 1s}\n  retry: {attempts: 3, backoff: 0.01s}\n"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ledgers: list[Ledger] = []

    def build(self, defaults: str, target: str, bots: dict[str, str], worker: str | None) -> tuple[list[Bot], Ledger]:
        """Bots with ``defaults`` (YAML lines) and ``target`` keys, live with limits lifted; ``bots``: each one's own keys."""
        config = self.folder / "config.yaml"
        config.write_text(
            self.DEFAULTS + defaults + f"  target: {{{target}, live: true, limits: {{min_interval: 0s, daily_cap: null}}}}\n"
            "bots:\n" + "".join(f"  {name}: {{{own}}}\n" for name, own in bots.items()),
            encoding="utf-8",
        )
        ledger = Ledger(store_url("botkit.db", self.folder))
        self.ledgers.append(ledger)
        return build_bots(load_config(config).bots, ledger, str(config), worker=worker), ledger

    def __enter__(self) -> _Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        for ledger in self.ledgers:
            ledger.close()


@pytest.fixture(scope="session")
def reply_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny char-level reply model trained on :data:`ANSWERS` (about 10 s): it answers
    ``alpha`` with ``zulu`` and so on, and writes a post (``parent: ""``) too."""
    from botkit.model.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("reply_model")
    rng = random.Random(0)
    lines = [{"text": word} for word in ANSWERS]  # posts: documents without a parent
    lines += [{"text": ANSWERS[parent], "parent": parent} for parent in (rng.choice(list(ANSWERS)) for _ in range(500))]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    config = TrainConfig(epochs=15, batch_size=16, window=32, lr=0.03, patience=0, sample_every=0)
    train([folder / "pairs.jsonl"], folder / "weights", config, {"embedding_size": 16, "rnn_layers": 1, "rnn_size": 32})
    return folder / "weights"


@pytest.fixture
def reply_bots(tmp_path: Path, reply_model: Path) -> Iterator[Callable[..., tuple[list[Bot], Ledger]]]:
    """``reply_bots(target, reply="", bots={"bot": ""}, worker=None)``: bots that answer with
    :func:`reply_model` what their (live) target hears.

    ``target`` is the target mapping's keys as YAML flow text, given to every bot with its limits
    lifted; ``reply`` extra keys of every bot's ``reply:`` block (``max_depth: 2, bots: [b]``);
    ``bots`` maps each bot's name to keys of its own (``target: {...}, posts: p.txt``). The guards
    are the defaults except the cooldown (0 s) and the decay (1: every depth answered). Every call
    reads config.yaml again, as a restarted daemon does.
    """

    def make(target: str, reply: str = "", *, bots: dict[str, str] | None = None, worker: str | None = None) -> tuple[list[Bot], Ledger]:
        extra = f", {reply}" if reply else ""
        defaults = f"  generate: {{temperature: 0.1}}\n  reply: {{model: {reply_model}, every: 1s, cooldown: 0s, decay: 1{extra}}}\n"
        return farm.build(defaults, target, bots or {"bot": ""}, worker)

    with _Farm(tmp_path) as farm:
        yield make


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger URL for the tests run on both databases: a SQLite file, then a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    return str(request.getfixturevalue("pg_url"))
