"""Secrets never show: not in a message, a log line, ``botkit status`` or ``history``, the console's
pages and ``/api/status``, nor anywhere in the ledger's file.

First :mod:`botkit.redact` itself, as properties (Hypothesis): whatever a URL's password or
credential parameter holds, redacting the URL, or a message quoting it, leaves none of it. Then a
failing farm end to end: a Mastodon bot whose ``api_base_url`` comes from ``${MASTO_URL}`` with a
password in its userinfo and an ``?access_token=`` in its query, and its access token from
``${MASTODON_TOKEN}``, pointed at a closed port or at the fake instance (which refuses it); every
output of ``botkit run --once``, a daemon's tick, ``status``, ``history`` and the console is read
for the secrets, and so is every byte of the SQLite ledger.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from botkit.bots.ledger import Ledger, store_url
from botkit.cli import main
from botkit.config import load_config
from botkit.console.app import create_app
from botkit.console.auth import Token
from botkit.redact import Redactor, is_credential_key, redact_text, redact_url

from fakes.mastodon import FakeMastodon
from pgserver import free_port

# -- the redaction rules -----------------------------------------------------------------------

#: A password written unquoted, as the ledger accepts it ("@", ":" and "/" included). One ending in
#: "/" that holds an "@" too is left out: its last "@" reads as a profile link (``/@user``).
RAW = st.text(st.characters(codec="ascii", categories=["L", "N"], include_characters="@:/%!$'()*+,;=-._~"), min_size=4, max_size=24).filter(
    lambda s: not (s.endswith("/") and "@" in s)
)
ANY = st.text(st.characters(blacklist_categories=["Cs"]), min_size=4, max_size=24)  # anything, percent-quoted into the URL
NAMES = st.sampled_from(["password", "pass", "pwd", "token", "access_token", "key", "api_key", "apikey", "secret", "client_secret", "auth", "sig", "signature"])
SCHEMES = st.sampled_from(["http", "https", "postgresql+psycopg", "redis"])
HOSTS = st.sampled_from(["127.0.0.1:9", "db.example.org", "[::1]:5432", "mastodon.example"])
PATHS = st.sampled_from(["", "/", "/farm", "/api/v1", "/@someone/1"])


def secret_strategy() -> st.SearchStrategy[tuple[str, str]]:
    """(the secret, as it is written into the URL): raw, or any text percent-quoted."""
    return st.one_of(RAW.map(lambda s: (s, s)), ANY.map(lambda s: (s, quote(s, safe=""))))


def assert_hidden(secret: str, written: str, url: str) -> None:
    for shown in (redact_url(url), redact_text(f"ledger {url}: cannot open (refused)"), Redactor.of([url])(f"library said: {secret} ({written})")):
        assert secret not in shown and written not in shown, shown


@given(SCHEMES, st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), secret_strategy(), HOSTS, PATHS)
def test_a_userinfo_password_never_shows(scheme: str, user: str, password: tuple[str, str], host: str, path: str) -> None:
    secret, written = password
    url = f"{scheme}://{user}:{written}@{host}{path}"
    assume(written not in f"{scheme}://{user}:@{host}{path}")  # a secret that is also the host or the path is not one
    assert_hidden(secret, written, url)
    assert redact_url(url) == f"{scheme}://{user}:***@{host}{path}"  # the rest stays readable


@given(SCHEMES, HOSTS, PATHS, NAMES, st.sampled_from(["{}", "{}".upper(), "x-{}", "db_{}"]), secret_strategy(), st.booleans())
def test_a_credential_parameter_never_shows(scheme: str, host: str, path: str, name: str, form: str, value: tuple[str, str], first: bool) -> None:
    secret, _ = value
    written = quote(secret, safe="")  # a query value is quoted ("&" and "#" would end it)
    key = form.format(name) if form != "{}".upper() else name.upper()
    query = f"{key}={written}&page=2" if first else f"page=2&{key}={written}"
    url = f"{scheme}://{host}{path}?{query}"
    assume(written not in f"{scheme}://{host}{path}?page=2&{key}=")
    assert_hidden(secret, written, url)
    assert "page=2" in redact_url(url) and host in redact_url(url)


def test_what_is_no_credential_stays() -> None:
    kept = [
        "see https://mastodon.example/@toots/113 and https://medium.com/@a/b",  # profile links are no userinfo
        "sqlite:////tmp/farm/botkit.db?timeout=0.3",
        "https://host/search?q=a@b.example&page=2",
        "ledger postgresql+psycopg://bot@127.0.0.1:1/farm: cannot open",
    ]
    for text in kept:
        assert redact_text(text) == text
    assert redact_text("dsn: host=db password=s3cret-x user=bot") == "dsn: host=db password=*** user=bot"
    assert all(is_credential_key(k) for k in ["X-Api-Key", "client_secret", "refresh_token", "PGPASSWORD", "sig", "oauth"])
    assert not any(is_credential_key(k) for k in ["timeout", "page", "author", "sslmode", "visibility"])


def test_redacting_again_changes_nothing() -> None:
    """Messages pass several layers (the bot, the ledger, the CLI): each must leave the others' work as it is."""
    once = Redactor.of(["http://u:pw-1234@h:1/?token=t-5678", "hunter22"])("ledger http://u:pw-1234@h:1/?token=t-5678: failed: hunter22, pw-1234")
    assert once == "ledger http://u:***@h:1/?token=*** failed: ***, ***"  # a value runs to the space: a secret may end in ":"
    assert redact_text(once) == once and Redactor.of(["hunter22"])(once) == once


def test_a_url_from_the_environment_hides_its_path() -> None:
    """A webhook's token is a path segment: hidden when the URL came from the environment, wherever
    the path shows (the URL whole, or a library's message naming the path alone); the host stays."""
    hook = "https://hooks.example/api/webhooks/123/tok-qz75"
    redact = Redactor.of([hook], url_paths=True)
    assert redact(f"POST {hook}: 503") == "POST https://hooks.example***: 503"
    assert "tok-qz75" not in redact("404 for url /api/webhooks/123/tok-qz75?wait=true")
    assert Redactor.of(["https://mastodon.example/"], url_paths=True)("https://mastodon.example/api/v1/statuses") == "https://mastodon.example/api/v1/statuses"
    assert Redactor.of([hook])(f"POST {hook}") == f"POST {hook}"  # a ledger URL's path (the database) stays


def test_a_short_value_is_hidden_only_as_a_word() -> None:
    """``language: ${LANG}`` = en: hidden where it stands alone, not inside every word that holds it."""
    redact = Redactor.of(["en"])
    assert redact("language en refused; token sent") == "language *** refused; token sent"


# -- a failing farm, end to end ------------------------------------------------------------------

USER_PASSWORD = "pw-userinfo-qz71"
QUERY_TOKEN = "qs-token-qz72"
QUERY_KEY = "qs-key-qz73"
ACCESS_TOKEN = "bearer-token-qz74"
SECRETS = (USER_PASSWORD, QUERY_TOKEN, QUERY_KEY, ACCESS_TOKEN)
CONSOLE_TOKEN = Token("console-token-0123456789abcdef", "test")

CONFIG = """\
    store: botkit.db
    bots:
      masto:
        posts: posts.txt
        filters: none
        schedule: {every: 1s}
        retry: {attempts: 2, backoff: 0.01s}
        target:
          kind: mastodon
          live: true
          api_base_url: "${MASTO_URL}"
          access_token: "${MASTODON_TOKEN}"
          limits: {min_interval: 0s, daily_cap: null}
"""


@pytest.fixture(params=["closed port", "fake instance"])
def instance(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``127.0.0.1:PORT`` where nothing listens (every try fails, the claim stays for the next tick), or
    where the fake Mastodon does (it refuses the credentials, the bot is disabled); and what the
    status then says of the bot."""
    if request.param == "closed port":
        yield f"127.0.0.1:{free_port()}", "not confirmed"
        return
    with FakeMastodon({ACCESS_TOKEN: "toots"}) as fake:
        yield fake.url.removeprefix("http://"), "disabled:"


def botkit(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as cron runs it: its own log handler, its own stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "botkit", "-v", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def daemon_tick(folder: Path, env: dict[str, str]) -> str:
    """A daemon's output until it reported one tick, then SIGTERM: stdout and stderr (its log)."""
    out, err = folder / "daemon.out", folder / "daemon.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "botkit", "-v", "run", "config.yaml"], cwd=folder, env=env, stdout=stdout, stderr=stderr, text=True)
        try:
            deadline = time.monotonic() + 60
            while "masto: " not in out.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return out.read_text() + err.read_text()


def ledger_text(folder: Path) -> str:
    """Every value of every row of every table, and every byte of the database files (free pages and the WAL too)."""
    db = sqlite3.connect(folder / "botkit.db")
    try:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [str(value) for table in tables for row in db.execute(f"SELECT * FROM {table}") for value in row]
    finally:
        db.close()
    raw = b"".join(path.read_bytes() for path in folder.glob("botkit.db*"))
    return "\n".join(rows) + raw.decode("latin-1")


def console_pages(folder: Path) -> str:
    with Ledger(store_url("botkit.db", folder)) as ledger:
        client = TestClient(create_app(load_config(folder / "config.yaml"), ledger, CONSOLE_TOKEN))
        headers = {"Authorization": f"Bearer {CONSOLE_TOKEN.value}"}
        answers = [client.get(path, headers=headers) for path in ["/", "/api/status", "/bots/masto", "/bots/masto/model"]]
    assert [a.status_code for a in answers] == [200] * 4
    return "\n".join(a.text for a in answers)


def test_a_failing_farm_never_shows_its_secrets(
    tmp_path: Path, instance: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host, says = instance
    (tmp_path / "posts.txt").write_text("first post\nsecond post\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    masto_url = f"http://bot:{USER_PASSWORD}@{host}/?access_token={QUERY_TOKEN}&key={QUERY_KEY}"
    monkeypatch.setenv("MASTO_URL", masto_url)
    monkeypatch.setenv("MASTODON_TOKEN", ACCESS_TOKEN)
    env = dict(os.environ)

    once = botkit(tmp_path, env, "run", "--once", "config.yaml")
    assert once.returncode == 1 and "failed their tick: masto" in once.stderr, once.stderr  # the farm fails: cron hears of it
    daemon = daemon_tick(tmp_path, env)
    assert main(["status", str(tmp_path / "config.yaml")]) == 0
    assert main(["history", "masto", str(tmp_path / "config.yaml")]) == 0
    reports = capsys.readouterr()
    outputs = {
        "run --once": once.stdout + once.stderr,
        "daemon": daemon,
        "status and history": reports.out + reports.err,
        "console": console_pages(tmp_path),
        "ledger": ledger_text(tmp_path),
    }

    # The failure is there to see, the instance named without its credentials...
    shown = f"http://bot:***@{host}/?access_token=***&key=***"
    assert shown in once.stdout and shown in daemon and shown in outputs["console"], outputs
    assert "last error: " in reports.out and says in reports.out and shown in reports.out, reports.out
    # ...and no secret anywhere, in no case (the ledger's account key is lowercased).
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret.lower() not in text.lower(), f"{secret} in {where}: {text[:2000]}"
