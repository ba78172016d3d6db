"""The twitter target end to end: real tweepy, its session routed to the fake X server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url, utcnow
from botkit.bots.report import history, status
from botkit.config import load_config
from fakes.twitter import FakeX

KEYS = {"X_CONSUMER_KEY": "ck-public", "X_CONSUMER_SECRET": "cs-very-secret", "X_ACCESS_TOKEN": "at-123", "X_ACCESS_TOKEN_SECRET": "ats-very-secret"}
SECRETS = ("cs-very-secret", "ats-very-secret")
POSTS = ["hello from a bot", "a second tweet", "the third"]

BOT = """\
  {name}:
    posts: {posts}
    filters: none
    schedule: {{every: 1s}}
    retry: {{attempts: 3, backoff: 0.01s}}
    target:
      kind: twitter
      live: true
      limits: {{min_interval: 0s, daily_cap: null}}
      consumer_key: ${{X_CONSUMER_KEY}}
      consumer_secret: ${{X_CONSUMER_SECRET}}
      access_token: ${{{token}}}
      access_token_secret: ${{X_ACCESS_TOKEN_SECRET}}
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeX]:
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    with FakeX({"ck-public": "at-123"}) as server:
        yield server


def make_bots(tmp_path: Path, fake: FakeX, posts: list[str] = POSTS, *, bots: dict[str, str] | None = None) -> tuple[list[Bot], Ledger]:
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    bots = bots or {"bird": "X_ACCESS_TOKEN"}
    body = "bots:\n" + "".join(BOT.format(name=name, posts="posts.txt", token=token) for name, token in bots.items())
    config = tmp_path / "config.yaml"
    config.write_text(body, encoding="utf-8")
    ledger = Ledger(store_url("botkit.db", tmp_path))
    built = build_bots(load_config(config).bots, ledger, str(config))
    for bot in built:
        fake.route(bot.target.client.session)  # the test's seam: tweepy's own session, routed here
    return built, ledger


def test_posts_reach_x_with_their_ids(tmp_path: Path, fake: FakeX) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    assert bot.tick().outcome == "posted"
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:2]
    (newest, oldest) = ledger.history("bird")
    assert oldest.remote_id == fake.tweets[0].id and oldest.url == f"https://x.com/i/web/status/{fake.tweets[0].id}"
    assert fake.requests[0].consumer_key == "ck-public" and fake.requests[0].access_token == "at-123"
    ledger.close()


def test_429_waits_for_the_reset_x_gives(tmp_path: Path, fake: FakeX) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    fake.rate_limit_next(120)
    result = bot.tick()
    assert result.outcome == "waiting" and "HTTP 429" in result.message
    assert timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=122)
    assert fake.texts() == [] and ledger.claimed("bird") is None  # refused, so back in the queue
    assert bot.tick().outcome == "waiting"
    ledger.wait_until("bird", None)  # the reset time has come
    assert bot.tick().outcome == "posted" and fake.texts() == POSTS[:1]
    ledger.close()


@pytest.mark.parametrize("fault", [500, 503, 0])  # 0: the connection drops without an answer
def test_server_errors_are_retried(tmp_path: Path, fake: FakeX, fault: int) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    fake.fail_next(fault)
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1] and len(fake.requests) == 2
    ledger.close()


def test_a_lost_answer_is_confirmed_by_the_duplicate_refusal(tmp_path: Path, fake: FakeX) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    fake.fail_next(500, post_first=True)  # posted, but the answer is a 500
    result = bot.tick()
    assert result.outcome == "posted"
    assert fake.texts() == POSTS[:1]  # exactly once at X
    assert [r.status for r in fake.requests] == [500, 403]
    (record,) = ledger.history("bird")
    assert record.remote_id is None and "duplicate content" in record.note
    assert "(id unknown: X answered 'duplicate content'" in history(ledger, "bird", None)
    ledger.close()


def test_a_crash_after_posting_is_reconciled_at_restart(tmp_path: Path, fake: FakeX) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    bot.refill()
    candidate = ledger.claim_next("bird")
    bot.target.post(candidate)  # the process dies here, before the ledger hears of it
    (restarted,), _ = make_bots(tmp_path, fake)
    assert restarted.tick().outcome == "posted"
    assert restarted.tick().outcome == "posted"
    assert fake.texts() == POSTS[:2]
    assert [r.remote_id is None for r in ledger.history("bird")] == [False, True]
    ledger.close()


def test_refused_texts_fail_and_the_queue_moves_on(tmp_path: Path, fake: FakeX) -> None:
    (bot,), ledger = make_bots(tmp_path, fake, ["same text", "same text", "x" * 300, "fine"])
    outcomes = [bot.tick().outcome for _ in range(4)]
    assert outcomes == ["posted", "failed", "failed", "posted"]
    assert fake.texts() == ["same text", "fine"]
    with ledger.engine.connect() as conn:
        reasons = list(conn.exec_driver_sql("SELECT reason FROM candidates WHERE state = 'failed' ORDER BY id").scalars())
    assert reasons == [
        "X refused the text as duplicate content (an earlier post had the same text)",
        "X refused the text (HTTP 400: text must be 1 to 280 characters)",
    ]
    ledger.close()


def test_bad_credentials_disable_that_bot_only_and_no_secret_leaks(
    tmp_path: Path, fake: FakeX, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("X_WRONG_TOKEN", "at-wrong-very-secret")
    bots, ledger = make_bots(tmp_path, fake, bots={"bird": "X_ACCESS_TOKEN", "owl": "X_WRONG_TOKEN"})
    with caplog.at_level("INFO"):  # what botkit -v logs
        outcomes = {bot.name: bot.tick().outcome for bot in bots}
        outcomes2 = {bot.name: bot.tick().outcome for bot in bots}
    assert outcomes == {"bird": "posted", "owl": "disabled"} and outcomes2 == {"bird": "posted", "owl": "disabled"}
    report = status(ledger, load_config(tmp_path / "config.yaml").bots)
    assert "disabled:   X refused the account (HTTP 401" in report
    assert len(fake.texts()) == 2
    with ledger.engine.connect() as conn:
        stored = " ".join(str(row) for table in ("candidates", "bot_state", "posts") for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    for secret in (*SECRETS, "at-wrong-very-secret"):
        assert secret not in report and secret not in caplog.text and secret not in stored
    ledger.close()
