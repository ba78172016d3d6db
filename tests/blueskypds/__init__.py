"""The reference Bluesky network for tests: its PDS, did:plc directory and AppView on 127.0.0.1, gone afterwards.

A fake can only agree with what its author believed about Bluesky; the real server shows what
Bluesky does (a repeated record key is a 500, not a 400; what the AppView notifies). So the Bluesky
tests run ``@atproto/dev-env`` (what the atproto team tests with) in a subprocess, installed by
``./task test`` (:mod:`blueskypds.install`), on a database of the suite's own PostgreSQL server.

Tests get accounts with app passwords (:meth:`BlueskyNetwork.account`), a bot's account behind a
proxy that can lose answers (:class:`BotAccount`), speak as other people through :class:`Person`,
and wait for the AppView with :meth:`BlueskyNetwork.sync`.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from blueskypds.install import HOME, node_home
from blueskypds.proxy import LossyProxy

SERVE = Path(__file__).parent / "serve.mjs"
START_S = 120.0  # a cold start on 2 busy cores: about 10 s of imports, 10 s of set-up
SYNC_S = 60.0  # the AppView gives up after 30 s; a busy machine may need that long
_serial = itertools.count(1)


@dataclass(frozen=True)
class Account:
    """An account of the PDS: its login password, and an app password as a bot is configured with."""

    handle: str
    did: str
    password: str
    app_password: str


class BlueskyNetwork:
    """``serve.mjs`` running in a temporary folder, on ``database_url`` (an empty PostgreSQL database).

    Use as a context manager: entering starts the network and waits until it answers; leaving
    closes it and removes the folder.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.url = ""
        self._root: Path | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> Self:
        self._root = Path(tempfile.mkdtemp(prefix="botkit-pds-"))
        env = {
            **os.environ,
            "PATH": f"{node_home() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "BLUESKY_PDS_HOME": str(HOME),  # where serve.mjs finds the packages
            "DB_POSTGRES_URL": self.database_url,
            "TMPDIR": str(self._root),  # the PDS keeps its data and blobs there
        }
        with open(self._root / "network.log", "w", encoding="utf-8") as log:
            self._proc = subprocess.Popen(
                ["node", str(SERVE)], cwd=self._root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
            )
        threading.Thread(target=self._read, args=(self._proc,), name="bluesky-network", daemon=True).start()
        try:
            started = self._expect(lambda line: line.startswith("{"), START_S, "start")
        except BaseException:
            self.stop()
            raise
        pds = urlsplit(json.loads(started)["pds"])
        self.url = f"http://127.0.0.1:{pds.port}"  # it names itself localhost; every socket is on 127.0.0.1
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _expect(self, wanted: Callable[[str], bool], timeout: float, what: str) -> str:
        """The next line of the network that ``wanted`` accepts (others are its own chatter)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"the Bluesky network did not {what} within {timeout:.0f} s:\n{self._log()}") from None
            if line is None:
                raise RuntimeError(f"the Bluesky network ended:\n{self._log()}")
            if wanted(line):
                return line

    def _log(self) -> str:
        log = self._root / "network.log" if self._root else None
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def sync(self) -> None:
        """Wait until the AppView has indexed all that the PDS wrote (posts, deletions, profiles), as
        Bluesky's own tests do: what a notification or a thread shows depends on it."""
        assert self._proc is not None and self._proc.stdin is not None, "start the network first"
        self._proc.stdin.write("sync\n")
        self._proc.stdin.flush()
        self._expect(lambda line: line == "synced", SYNC_S, "sync")

    def account(self, name: str) -> Account:
        """A new account ``NAME-N.test`` (handles must end in .test here) and an app password for it."""
        handle, password = f"{name}-{next(_serial)}.test", f"pw-{name}-{os.getpid()}"
        created = self._xrpc("com.atproto.server.createAccount", {"handle": handle, "email": f"{handle}@example.com", "password": password})
        app = self._xrpc("com.atproto.server.createAppPassword", {"name": "botkit"}, created["accessJwt"])
        return Account(handle, created["did"], password, app["password"])

    def records(self, did: str, collection: str = "app.bsky.feed.post") -> list[dict[str, Any]]:
        """The records of one collection of a repository, oldest key first (``listRecords``, public)."""
        params = {"repo": did, "collection": collection, "limit": "100", "reverse": "true"}
        answer = httpx.get(f"{self.url}/xrpc/com.atproto.repo.listRecords", params=params, timeout=30)
        answer.raise_for_status()
        return list(answer.json()["records"])

    def _xrpc(self, nsid: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = httpx.post(f"{self.url}/xrpc/{nsid}", json=body, headers=headers, timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def stop(self) -> None:
        """End the network (end of its stdin), kill it if it will not, and remove its folder."""
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass(frozen=True)
class Post:
    """A post as a reply names it (a strong ref)."""

    uri: str
    cid: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Post:
        """The post of a record as :meth:`BlueskyNetwork.records` lists it."""
        return cls(record["uri"], record["cid"])

    @property
    def rkey(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BotAccount:
    """A bot's account, which the bot reaches through ``proxy`` (its config's ``base_url``) while
    the tests look at the PDS itself."""

    network: BlueskyNetwork
    account: Account
    proxy: LossyProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def handle(self) -> str:
        return self.account.handle

    def posts(self) -> list[dict[str, Any]]:
        """The account's posts on the PDS (``uri``, ``cid``, ``value``), oldest key first."""
        return self.network.records(self.account.did)

    def texts(self) -> list[str]:
        return [record["value"]["text"] for record in self.posts()]

    def calls(self) -> list[tuple[str, str, int]]:
        """What the bot asked the PDS: (method, NSID, the status it got)."""
        return self.proxy.calls()


class Person:
    """Another account, used as a person uses Bluesky: the atproto ``Client`` logged in with its
    password, straight to the PDS. Whatever it writes is indexed by the AppView before the method returns."""

    def __init__(self, network: BlueskyNetwork, account: Account) -> None:
        from atproto import Client

        self.network = network
        self.account = account
        self.client = Client(network.url)
        network.sync()  # the client's login reads the new account's profile from the AppView
        self.client.login(account.handle, account.password)

    def post(self, text: str, *, reply_to: Post | None = None) -> Post:
        """Post ``text`` (its @handles become mentions) as this account; ``reply_to``: the post it
        answers (the thread's root is read from that post's record).

        A person sees a post before answering it: the AppView notifies a reply's parents only once
        it has indexed them, and it indexes each account's writes in its own order."""
        from atproto import models

        reply = None
        if reply_to is not None:
            self.network.sync()
            parent = models.ComAtprotoRepoStrongRef.Main(uri=reply_to.uri, cid=reply_to.cid)
            above = self.client.com.atproto.repo.get_record(_record_params(reply_to.uri)).value
            root = above.reply.root if getattr(above, "reply", None) else parent
            reply = models.AppBskyFeedPost.ReplyRef(root=root, parent=parent)
        posted = self.client.send_post(text, facets=self.client.detect_facets(text) or None, reply_to=reply)
        self.network.sync()
        return Post(posted.uri, posted.cid)

    def delete(self, uri: str) -> None:
        """Delete one of this account's posts (``deleteRecord``)."""
        self.client.com.atproto.repo.delete_record({"repo": self.account.did, **_record_params(uri, repo=False)})
        self.network.sync()

    def label_bot(self) -> None:
        """Self-label the profile as a bot, as the app's setting does."""
        from atproto import models

        labels = models.ComAtprotoLabelDefs.SelfLabels(values=[models.ComAtprotoLabelDefs.SelfLabel(val="bot")])
        record = models.AppBskyActorProfile.Record(labels=labels)
        self.client.com.atproto.repo.put_record({"repo": self.account.did, "collection": "app.bsky.actor.profile", "rkey": "self", "record": record})
        self.network.sync()


def _record_params(uri: str, *, repo: bool = True) -> dict[str, str]:
    """``at://REPO/COLLECTION/RKEY`` as the parameters of getRecord (and deleteRecord, without the repo)."""
    did, collection, rkey = uri.removeprefix("at://").split("/")
    return {**({"repo": did} if repo else {}), "collection": collection, "rkey": rkey}
