"""The bluesky target end to end: the real atproto Client against the fake PDS (tests/fakes/bluesky.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from test_bots_mastodon import POSTS, LiveBots, a_429_waits_for_its_reset, a_crash_after_posting_is_reconciled

from botkit.bots import Transient
from botkit.bots.bluesky import graphemes, record_key
from botkit.bots.report import status
from botkit.config import load_config

from claims import claim, dead_worker
from fakes import Answer
from fakes.bluesky import FakeBluesky

HANDLE, PASSWORD = "skeets.bsky.social", "abcd-efgh-ijkl-mnop"
LOGIN = ("POST", "com.atproto.server.createSession", 200)
LABEL = ("GET", "com.atproto.repo.getRecord", 400)  # the profile has no bot label (no profile record at all)
CREATE = "com.atproto.repo.createRecord"
LOOKUP = ("GET", "com.atproto.repo.getRecord", 200)
NOT_THERE = ("GET", "com.atproto.repo.getRecord", 400)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBluesky]:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky({HANDLE: PASSWORD}, others=("friend.bsky.social",)) as server:
        yield server


def target(fake: FakeBluesky, extra: str = "") -> str:
    """The issue's config shape, pointed at the fake PDS."""
    return f"kind: bluesky, handle: {HANDLE}, app_password: '${{BLUESKY_APP_PASSWORD}}', base_url: '{fake.url}'" + (f", {extra}" if extra else "")


def test_posts_are_records_at_the_candidates_key_with_facets(fake: FakeBluesky, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    text = "naïve café: see https://example.com/a?b=1 and #tags, @friend.bsky.social"
    (bot,), ledger = live_bots(target(fake, "langs: [en, fr]"), [text, *POSTS])
    assert bot.tick().outcome == "posted" and bot.tick().outcome == "posted"
    assert fake.texts() == [text, POSTS[0]]
    first = fake.posts()[0]
    assert first.value["langs"] == ["en", "fr"] and re.fullmatch(r"[2-7a-j][2-7a-z]{12}", first.rkey)
    data = text.encode()
    spans = {f["features"][0]["$type"].rsplit("#")[-1]: data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in first.value["facets"]}
    assert spans == {"link": "https://example.com/a?b=1", "tag": "#tags"}  # byte offsets; no mention unless asked
    (newest, oldest) = ledger.history("bot")
    assert (oldest.remote_id, oldest.url) == (first.rkey, f"https://bsky.app/profile/{HANDLE}/post/{first.rkey}")
    assert fake.calls() == [LOGIN, LABEL, ("POST", CREATE, 200), ("POST", CREATE, 200)]
    assert caplog.text.count("is not labelled as a bot") == 1
    client = bot.target.client  # the account as any AT Protocol client sees it: newest first
    assert [item.post.record.text for item in client.get_author_feed(HANDLE).feed] == [POSTS[0], text]
    listed = client.com.atproto.repo.list_records({"repo": fake.did(HANDLE), "collection": "app.bsky.feed.post", "limit": 1})
    assert [r.uri.rsplit("/", 1)[-1] for r in listed.records] == [newest.remote_id] and listed.cursor == newest.remote_id


def test_mentions_and_the_bot_label_when_asked(fake: FakeBluesky, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    (bot,), _ = live_bots(target(fake, "mentions: true, label_bot: true"), ["hi @friend.bsky.social and @nobody.example.com"], worker=dead_worker())
    assert bot.tick().outcome == "posted"
    (facet,) = fake.posts()[0].value["facets"]  # an unknown handle is no mention
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": fake.did("friend.bsky.social")}]
    profile = fake.records[(fake.did(HANDLE), "app.bsky.actor.profile", "self")].value
    assert [label["val"] for label in profile["labels"]["values"]] == ["bot"] and "not labelled" not in caplog.text
    (restarted,), _ = live_bots(target(fake, "label_bot: true"), ["hi @friend.bsky.social and @nobody.example.com", "next"])
    assert restarted.tick().outcome == "posted"
    assert [c for c in fake.calls() if c[1] == "com.atproto.repo.putRecord"] == [("POST", "com.atproto.repo.putRecord", 200)]  # labelled once


def test_one_login_serves_every_tick_and_restart(fake: FakeBluesky, live_bots: LiveBots) -> None:
    (bot,), _ = live_bots(target(fake), POSTS, worker=dead_worker())  # each run is a daemon that was stopped
    assert bot.tick().outcome == "posted"
    session = bot.target.session_file
    assert session.stat().st_mode & 0o777 == 0o600 and session.parent.stat().st_mode & 0o777 == 0o700
    assert PASSWORD not in session.read_text(encoding="utf-8")
    for _ in range(2):
        (restarted,), _ = live_bots(target(fake), POSTS, worker=dead_worker())
        assert restarted.tick().outcome == "posted"
    assert fake.texts() == POSTS and [c[1] for c in fake.calls()].count("com.atproto.server.createSession") == 1


def test_expiring_sessions_are_refreshed_and_kept(monkeypatch: pytest.MonkeyPatch, live_bots: LiveBots) -> None:
    """The client refreshes a token near its expiry by itself; each refresh is saved, so a restart needs no login."""
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky({HANDLE: PASSWORD}, access_ttl=60) as fake:  # within the client's 15 minutes of margin: refreshed before each call
        (bot,), _ = live_bots(target(fake), POSTS, worker=dead_worker())
        assert bot.tick().outcome == "posted"
        (restarted,), _ = live_bots(target(fake), POSTS)
        assert restarted.tick().outcome == "posted"
        calls = [c[1].rsplit(".", 1)[-1] for c in fake.calls()]
        assert calls.count("createSession") == 1 and calls.count("refreshSession") >= 2 and fake.texts() == POSTS[:2]


@pytest.mark.parametrize("revoked", [False, True])
def test_a_token_the_server_expired_is_refreshed_then_logged_in_again(fake: FakeBluesky, live_bots: LiveBots, revoked: bool) -> None:
    (bot,), _ = live_bots(target(fake), POSTS)
    assert bot.tick().outcome == "posted"
    fake.expire_sessions(refresh=revoked)
    assert bot.tick().outcome == "posted"
    renewed = [("POST", "com.atproto.server.refreshSession", 400), LOGIN] if revoked else [("POST", "com.atproto.server.refreshSession", 200)]
    assert fake.calls()[3:] == [("POST", CREATE, 400), *renewed, ("POST", CREATE, 200)]
    assert fake.texts() == POSTS[:2]


def test_429_waits_for_the_reset_bluesky_gives(fake: FakeBluesky, live_bots: LiveBots) -> None:
    (bot,), ledger = live_bots(target(fake), POSTS)
    a_429_waits_for_its_reset(bot, ledger, fake.texts, fake.rate_limit_next)


@pytest.mark.parametrize("fault", [500, 503, 502, 0])  # 502 comes as the SDK's NetworkError; 0 drops the connection
def test_server_errors_are_retried_after_checking_nothing_went_out(fake: FakeBluesky, live_bots: LiveBots, fault: int) -> None:
    (bot,), _ = live_bots(target(fake), POSTS)
    fake.fail_next(Answer(fault, {"error": "InternalServerError", "message": "Internal Server Error"}))
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1]
    assert fake.calls() == [LOGIN, LABEL, ("POST", CREATE, fault), NOT_THERE, ("POST", CREATE, 200)]


@pytest.mark.parametrize("fault", [500, 0])
def test_a_lost_answer_is_found_at_the_candidates_key(fake: FakeBluesky, live_bots: LiveBots, fault: int, zone: str) -> None:
    (bot,), ledger = live_bots(target(fake), POSTS)
    fake.fail_next(Answer(fault, {"error": "InternalServerError", "message": "Internal Server Error"}), act_first=True)
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1]
    assert fake.calls() == [LOGIN, LABEL, ("POST", CREATE, fault), LOOKUP]
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (fake.posts()[0].rkey, "found by reconciliation")


def test_a_second_create_of_one_claim_is_refused_by_the_server(fake: FakeBluesky, live_bots: LiveBots) -> None:
    """Even without a lookup first, a retry cannot post twice: the key is taken, and the post there is ours."""
    (bot,), _ = live_bots(target(fake), POSTS)
    candidate = claim(bot)
    fake.fail_next(Answer(0), act_first=True)
    with pytest.raises(Transient):
        bot.target.post(candidate)
    again = bot.target.post(candidate)
    assert fake.texts() == POSTS[:1] and again.remote_id == record_key("bot", candidate) and again.note == "found by reconciliation"
    assert fake.calls()[-2:] == [("POST", CREATE, 400), LOOKUP]


def test_a_crash_after_posting_is_reconciled_at_restart(fake: FakeBluesky, live_bots: LiveBots, zone: str) -> None:
    candidate, ledger = a_crash_after_posting_is_reconciled(live_bots, lambda extra: target(fake, extra), fake.texts)
    assert ledger.history("bot")[1].remote_id == record_key("bot", candidate)


def test_a_text_over_300_graphemes_is_refused_before_posting(fake: FakeBluesky, live_bots: LiveBots) -> None:
    family = "👨‍👩‍👧‍👦"  # 7 code points, one grapheme
    fits, long = family * 300, "x" * 301
    (bot,), ledger = live_bots(target(fake), [long, "short"])
    assert [bot.tick().outcome for _ in range(2)] == ["failed", "posted"]
    assert fake.texts() == ["short"] and [c[1] for c in fake.calls()].count(CREATE) == 1
    with ledger.engine.connect() as conn:
        (reason,) = conn.exec_driver_sql("SELECT reason FROM candidates WHERE state = 'failed'").scalars()
    assert reason == "301 graphemes; Bluesky takes at most 300 (the text is not cut)"
    assert graphemes(fits) == 300 and graphemes("🇫🇷🇩🇪 e\u0301 \r\n ❤️ 👍🏽") == 10


def test_bad_app_password_disables_that_bot_only_and_no_secret_leaks(
    fake: FakeBluesky, live_bots: LiveBots, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WRONG_PASSWORD", "wrong-app-password-secret")
    bots, ledger = live_bots(target(fake), POSTS, bots={"good": "", "bad": "app_password: '${WRONG_PASSWORD}'"})
    with caplog.at_level("INFO"):
        assert [bot.tick().outcome for bot in bots] == ["posted", "disabled"]
        assert [bot.tick().outcome for bot in bots] == ["posted", "disabled"]
    report = status(ledger, load_config(bots[0].spec.base_dir / "config.yaml").bots)
    assert f"disabled:   Bluesky refused the login of {HANDLE} (HTTP 401: AuthenticationRequired: Invalid identifier or password)" in report
    with ledger.engine.connect() as conn:
        stored = " ".join(str(row) for table in ("candidates", "bot_state", "posts") for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    for secret in (PASSWORD, "wrong-app-password-secret"):
        assert secret not in report and secret not in caplog.text and secret not in stored
    assert bots[0].target.account() == bots[1].target.account() == f"bluesky:{HANDLE}"


def test_record_keys_are_tids_one_per_claim(fake: FakeBluesky, live_bots: LiveBots) -> None:
    (bot,), _ = live_bots(target(fake), POSTS)
    first = claim(bot)
    key = record_key("bot", first)
    assert re.fullmatch(r"[2-7a-j][2-7a-z]{12}", key)
    assert key == record_key("bot", replace(first, claimed_at=first.claimed_at.replace(microsecond=0)))  # whatever the database keeps below the second
    assert key != record_key("bot", replace(first, id=first.id + 1)) and key != record_key("other", first)
