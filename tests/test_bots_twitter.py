"""The twitter target end to end: real tweepy, its session routed to the fake X server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url, utcnow
from botkit.bots.report import history, status
from botkit.bots.targets import Transient
from botkit.bots.targets.twitter import shown_as
from botkit.config import load_config

from claims import claim, dead_worker
from fakes.twitter import FakeX, shown

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
      limits: {{min_interval: {interval}, daily_cap: null}}
      signature: {signature}
      consumer_key: ${{X_CONSUMER_KEY}}
      consumer_secret: ${{X_CONSUMER_SECRET}}
      access_token: ${{{token}}}
      access_token_secret: ${{X_ACCESS_TOKEN_SECRET}}
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot's OAuth 1.0a keys, where config.yaml's ${X_...} finds them."""
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def fake(keys: None) -> Iterator[FakeX]:
    with FakeX({"ck-public": "at-123"}) as server:
        yield server


def make_bots(
    tmp_path: Path,
    fake: FakeX,
    posts: list[str] = POSTS,
    *,
    bots: dict[str, str] | None = None,
    worker: str | None = None,
    signature: str = "null",
    interval: str = "0s",
) -> tuple[list[Bot], Ledger]:
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    bots = bots or {"bird": "X_ACCESS_TOKEN"}
    body = "bots:\n" + "".join(BOT.format(name=name, posts="posts.txt", token=token, signature=signature, interval=interval) for name, token in bots.items())
    config = tmp_path / "config.yaml"
    config.write_text(body, encoding="utf-8")
    ledger = Ledger(store_url("botkit.db", tmp_path))
    built = build_bots(load_config(config).bots, ledger, str(config), worker=worker)
    for bot in built:
        fake.route(bot.target.client.session)  # the test's seam: tweepy's own session, routed here
    return built, ledger


def calls(fake: FakeX) -> list[tuple[str, str, int]]:
    """Every request in order: (method, path, status); a user's timeline shows as /2/users/ID/tweets."""
    return [(r.method, r.path.replace(fake.user_id("at-123"), "ID"), r.status) for r in fake.requests]


LOOKUP = [("GET", "/2/users/me", 200), ("GET", "/2/users/ID/tweets", 200)]


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
def test_server_errors_are_retried_after_checking_nothing_went_out(tmp_path: Path, fake: FakeX, fault: int) -> None:
    (bot,), ledger = make_bots(tmp_path, fake)
    fake.fail_next(fault)
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1]
    assert calls(fake) == [("POST", "/2/tweets", fault), *LOOKUP, ("POST", "/2/tweets", 201)]
    ledger.close()


def test_a_lost_answer_is_found_in_the_accounts_posts(tmp_path: Path, keys: None, zone: str) -> None:
    with FakeX({"ck-public": "at-123"}, duplicates=False) as fake:  # no duplicate refusal to lean on
        (bot,), ledger = make_bots(tmp_path, fake)
        fake.fail_next(500, post_first=True)  # posted, but the answer is a 500
        result = bot.tick()
        assert result.outcome == "posted"
        assert fake.texts() == POSTS[:1]  # exactly once at X
        assert calls(fake) == [("POST", "/2/tweets", 500), *LOOKUP]
        (record,) = ledger.history("bird")
        assert (record.remote_id, record.note) == (fake.tweets[0].id, "found by reconciliation")
        assert fake.requests[-1].query["max_results"] == "100" and "start_time" in fake.requests[-1].query
        ledger.close()


def test_a_lost_answer_the_timeline_does_not_show_yet_is_confirmed_by_the_duplicate_refusal(tmp_path: Path, keys: None) -> None:
    with FakeX({"ck-public": "at-123"}, timeline_lag=3600) as fake:
        (bot,), ledger = make_bots(tmp_path, fake)
        fake.fail_next(500, post_first=True)
        assert bot.tick().outcome == "posted"
        assert fake.texts() == POSTS[:1]
        assert calls(fake) == [("POST", "/2/tweets", 500), *LOOKUP, ("POST", "/2/tweets", 403)]
        (record,) = ledger.history("bird")
        assert record.remote_id is None and "duplicate content" in record.note
        assert "(id unknown: X answered 'duplicate content'" in history(ledger, "bird", None)
        ledger.close()


def test_a_crash_after_posting_is_reconciled_at_restart(tmp_path: Path, keys: None, zone: str) -> None:
    with FakeX({"ck-public": "at-123"}, duplicates=False) as fake:
        (bot,), ledger = make_bots(tmp_path, fake, worker=dead_worker(), signature="'(a bot, v1)'")
        candidate = claim(bot)
        bot.target.post(candidate)  # the process dies here, before the ledger hears of it
        # The restart comes with a new signature: what was claimed (and sent) is what is looked up.
        (restarted,), _ = make_bots(tmp_path, fake, signature="'(a bot, v2)'")
        assert restarted.tick().outcome == "posted"
        assert restarted.tick().outcome == "posted"
        assert fake.texts() == [f"{POSTS[0]}\n\n(a bot, v1)", f"{POSTS[1]}\n\n(a bot, v2)"]  # each once
        assert [r.remote_id for r in ledger.history("bird")] == [fake.tweets[1].id, fake.tweets[0].id]
        assert not any(r.status == 403 for r in fake.requests)
        ledger.close()


def test_a_stop_leaves_a_claim_the_timeline_does_not_show_in_doubt(tmp_path: Path, keys: None) -> None:
    """X's lookup finding nothing proves nothing (its timelines lag): a stopping bot keeps the claim, so
    the next start's post meets the duplicate refusal and records the post, instead of a fresh claim
    taking that refusal for a refused text."""
    with FakeX({"ck-public": "at-123"}, timeline_lag=3600) as fake:
        (bot,), ledger = make_bots(tmp_path, fake, worker=dead_worker())
        candidate = claim(bot)
        fake.fail_next(500, post_first=True)
        with pytest.raises(Transient):
            bot.target.post(candidate)
        stopped = bot.settle_claim()
        assert stopped is not None and stopped.outcome == "error"
        assert (
            stopped.message
            == f"candidate {candidate.id} left in doubt (claimed, not confirmed): twitter does not show it yet, which proves nothing; looked up again at the next start"
        )
        assert ledger.claimed("bird") == candidate  # untouched
        (restarted,), _ = make_bots(tmp_path, fake)
        assert restarted.tick().outcome == "posted"
        assert fake.texts() == POSTS[:1] and len(ledger.history("bird")) == 1
        ledger.close()


def test_without_timelines_the_duplicate_refusal_still_confirms_a_post(tmp_path: Path, keys: None, caplog: pytest.LogCaptureFixture) -> None:
    """X's Free tier will not list the account's posts: the bot is not disabled for it, and says so once."""
    with FakeX({"ck-public": "at-123"}, timelines=False) as fake:
        (bot,), ledger = make_bots(tmp_path, fake)
        fake.fail_next(500, post_first=True)
        assert bot.tick().outcome == "posted"
        fake.fail_next(503)  # not posted: no second lookup, the post is simply retried
        assert bot.tick().outcome == "posted"
        assert fake.texts() == POSTS[:2]
        assert calls(fake) == [("POST", "/2/tweets", 500), ("GET", "/2/users/me", 200), ("GET", "/2/users/ID/tweets", 403), ("POST", "/2/tweets", 403),
                               ("POST", "/2/tweets", 503), ("POST", "/2/tweets", 201)]  # fmt: skip
        assert [r.remote_id is None for r in ledger.history("bird")] == [False, True]
        assert caplog.text.count("X will not list the account's posts") == 1
        ledger.close()


def test_text_with_entities_and_links_is_found(tmp_path: Path, keys: None, zone: str) -> None:
    text = "Q&A <3 > all: see https://example.com/a?b=1&c=2. Or botkit.dev (https://x.org/p)!"
    with FakeX({"ck-public": "at-123"}, duplicates=False) as fake:
        (bot,), ledger = make_bots(tmp_path, fake, [text, "next"])
        fake.fail_next(500, post_first=True)
        assert bot.tick().outcome == "posted"
        assert fake.texts() == [text]
        shown_text = shown(text)
        assert "&amp;" in shown_text and "example.com" not in shown_text and shown_text.count("https://t.co/") == 3
        assert ledger.history("bird")[0].remote_id == fake.tweets[0].id
        ledger.close()


def test_a_post_x_shows_differently_is_not_taken_for_ours() -> None:
    matches = shown_as("see https://example.com/a & more")
    assert matches("see https://t.co/abc123 &amp; more") and matches("  see   https://example.com/a &amp; more ")
    assert not matches("see https://t.co/abc123 &amp; less")
    assert not matches("see https://t.co/abc123 & more https://t.co/def456")
    assert not shown_as("a &amp; b")("a &amp; b")  # X would show our literal "&amp;" as "&amp;amp;"


def test_bots_with_one_access_token_share_its_limits(tmp_path: Path, fake: FakeX) -> None:
    bots, ledger = make_bots(tmp_path, fake, bots={"bird": "X_ACCESS_TOKEN", "owl": "X_ACCESS_TOKEN"}, interval="1h")
    key = f"x:{hashlib.sha256(b'at-123').hexdigest()[:16]}"
    assert [bot.target.account() for bot in bots] == [key, key]
    assert [bot.tick().outcome for bot in bots] == ["posted", "waiting"]
    assert fake.texts() == POSTS[:1]
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
