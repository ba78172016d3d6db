"""The bluesky target end to end: the real atproto Client against the reference PDS (``bluesky``:
@atproto/dev-env on 127.0.0.1, see tests/blueskypds/), through a proxy that loses answers on script.

A few tests keep the fake PDS (tests/fakes/bluesky.py), each saying why: what the real server
cannot be made to do within a test (a token expired on demand, a 429).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_bots_daemon import daemon, output, posted, stop, wait_for
from test_bots_mastodon import POSTS, LiveBots, a_429_waits_for_its_reset, a_crash_after_posting_is_reconciled

from botkit.bots.report import status
from botkit.bots.targets import Transient
from botkit.bots.targets.bluesky import record_key
from botkit.config import load_config
from botkit.post_text import graphemes

from blueskypds import BotAccount, Post
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
    with FakeBluesky({HANDLE: PASSWORD}) as server:
        yield server


def target(url: str, handle: str, extra: str = "") -> str:
    """The issue's config shape, pointed at a PDS."""
    return f"kind: bluesky, handle: {handle}, app_password: '${{BLUESKY_APP_PASSWORD}}', base_url: '{url}'" + (f", {extra}" if extra else "")


def on(pds: BotAccount, extra: str = "") -> str:
    """The target on the reference PDS, through the proxy."""
    return target(pds.url, pds.handle, extra)


def test_posts_are_records_at_the_candidates_key_with_facets(bluesky: BotAccount, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    text = "naïve café: see https://example.com/a?b=1 and #tags, @friend.test"
    (bot,), ledger = live_bots(on(bluesky, "langs: [en, fr]"), [text, *POSTS])
    assert bot.tick().outcome == "posted" and bot.tick().outcome == "posted"
    assert bluesky.texts() == [text, POSTS[0]]
    first = bluesky.posts()[0]
    assert first["value"]["langs"] == ["en", "fr"] and re.fullmatch(r"[2-7a-j][2-7a-z]{12}", Post.of(first).rkey)
    data = text.encode()
    spans = {f["features"][0]["$type"].rsplit("#")[-1]: data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in first["value"]["facets"]}
    assert spans == {"link": "https://example.com/a?b=1", "tag": "#tags"}  # byte offsets; no mention unless asked
    (newest, oldest) = ledger.history("bot")
    assert (oldest.remote_id, oldest.url) == (Post.of(first).rkey, f"https://bsky.app/profile/{bluesky.handle}/post/{Post.of(first).rkey}")
    assert bluesky.calls() == [LOGIN, LABEL, ("POST", CREATE, 200), ("POST", CREATE, 200)]
    assert caplog.text.count("is not labelled as a bot") == 1
    bluesky.network.sync()
    client = bot.target.client  # the account as any AT Protocol client sees it (the AppView's feed): newest first
    assert [item.post.record.text for item in client.get_author_feed(bluesky.handle).feed] == [POSTS[0], text]


def test_mentions_and_the_bot_label_when_asked(bluesky: BotAccount, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    friend = bluesky.network.account("friend")
    text = f"hi @{friend.handle} and @nobody.example.com"
    (bot,), _ = live_bots(on(bluesky, "mentions: true, label_bot: true"), [text], worker=dead_worker())
    assert bot.tick().outcome == "posted"
    (facet,) = bluesky.posts()[0]["value"]["facets"]  # a handle that does not resolve is no mention
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": friend.did}]
    (profile,) = bluesky.network.records(bluesky.account.did, "app.bsky.actor.profile")
    assert [label["val"] for label in profile["value"]["labels"]["values"]] == ["bot"] and "not labelled" not in caplog.text
    (restarted,), _ = live_bots(on(bluesky, "label_bot: true"), [text, "next"])
    assert restarted.tick().outcome == "posted"
    assert [c for c in bluesky.calls() if c[1] == "com.atproto.repo.putRecord"] == [("POST", "com.atproto.repo.putRecord", 200)]  # labelled once
    bluesky.network.sync()
    shown = bot.target.client.get_profile(bluesky.handle)  # the AppView shows the self-label
    assert [label.val for label in shown.labels or []] == ["bot"]


def test_one_login_serves_every_tick_and_restart(bluesky: BotAccount, live_bots: LiveBots) -> None:
    (bot,), _ = live_bots(on(bluesky), POSTS, worker=dead_worker())  # each run is a daemon that was stopped
    assert bot.tick().outcome == "posted"
    session = bot.target.session_file
    assert session.stat().st_mode & 0o777 == 0o600 and session.parent.stat().st_mode & 0o777 == 0o700
    assert bluesky.account.app_password not in session.read_text(encoding="utf-8")
    for _ in range(2):
        (restarted,), _ = live_bots(on(bluesky), POSTS, worker=dead_worker())
        assert restarted.tick().outcome == "posted"
    assert bluesky.texts() == POSTS and [c[1] for c in bluesky.calls()].count("com.atproto.server.createSession") == 1


def test_expiring_sessions_are_refreshed_and_kept(monkeypatch: pytest.MonkeyPatch, live_bots: LiveBots) -> None:
    """The client refreshes a token near its expiry by itself; each refresh is saved, so a restart needs no login.

    On the fake: the reference PDS's access tokens live two hours, and it cannot be told to issue shorter ones."""
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky({HANDLE: PASSWORD}, access_ttl=60) as fake:  # within the client's 15 minutes of margin: refreshed before each call
        (bot,), _ = live_bots(target(fake.url, HANDLE), POSTS, worker=dead_worker())
        assert bot.tick().outcome == "posted"
        (restarted,), _ = live_bots(target(fake.url, HANDLE), POSTS)
        assert restarted.tick().outcome == "posted"
        calls = [c[1].rsplit(".", 1)[-1] for c in fake.calls()]
        assert calls.count("createSession") == 1 and calls.count("refreshSession") >= 2 and fake.texts() == POSTS[:2]


@pytest.mark.parametrize("revoked", [False, True])
def test_a_token_the_server_expired_is_refreshed_then_logged_in_again(fake: FakeBluesky, live_bots: LiveBots, revoked: bool) -> None:
    """On the fake: the reference PDS's access tokens are signed and valid for two hours, none can be
    expired on demand, so only a fake can refuse a token the client still believes in."""
    (bot,), _ = live_bots(target(fake.url, HANDLE), POSTS)
    assert bot.tick().outcome == "posted"
    fake.expire_sessions(refresh=revoked)
    assert bot.tick().outcome == "posted"
    renewed = [("POST", "com.atproto.server.refreshSession", 400), LOGIN] if revoked else [("POST", "com.atproto.server.refreshSession", 200)]
    assert fake.calls()[3:] == [("POST", CREATE, 400), *renewed, ("POST", CREATE, 200)]
    assert fake.texts() == POSTS[:2]


def test_429_waits_for_the_reset_bluesky_gives(fake: FakeBluesky, live_bots: LiveBots) -> None:
    """On the fake: the reference PDS limits posts to 5,000 points an hour (1,666 posts), far more than a test can send."""
    (bot,), ledger = live_bots(target(fake.url, HANDLE), POSTS)
    a_429_waits_for_its_reset(bot, ledger, fake.texts, fake.rate_limit_next)


@pytest.mark.parametrize("fault", [500, 503, 502, 0])  # 502 comes as the SDK's NetworkError; 0 drops the connection
def test_server_errors_are_retried_after_checking_nothing_went_out(bluesky: BotAccount, live_bots: LiveBots, fault: int) -> None:
    """A gateway in front of the PDS fails the post without passing it on."""
    (bot,), _ = live_bots(on(bluesky), POSTS)
    bluesky.proxy.fail_next(CREATE, Answer(fault, {"error": "InternalServerError", "message": "Internal Server Error"}), act_first=False)
    assert bot.tick().outcome == "posted"
    assert bluesky.texts() == POSTS[:1]
    assert bluesky.calls() == [LOGIN, LABEL, ("POST", CREATE, fault), NOT_THERE, ("POST", CREATE, 200)]


@pytest.mark.parametrize("fault", [500, 0])
def test_a_lost_answer_is_found_at_the_candidates_key(bluesky: BotAccount, live_bots: LiveBots, fault: int, zone: str) -> None:
    (bot,), ledger = live_bots(on(bluesky), POSTS)
    bluesky.proxy.fail_next(CREATE, Answer(fault, {"error": "InternalServerError", "message": "Internal Server Error"}))  # the PDS posted it
    assert bot.tick().outcome == "posted"
    assert bluesky.texts() == POSTS[:1]
    assert bluesky.calls() == [LOGIN, LABEL, ("POST", CREATE, fault), LOOKUP]
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (Post.of(bluesky.posts()[0]).rkey, "found by reconciliation")


def test_a_second_create_of_one_claim_is_refused_by_the_server(bluesky: BotAccount, live_bots: LiveBots) -> None:
    """Even without a lookup first, a retry cannot post twice: the key is taken (the PDS answers 500),
    and the lookup that follows a failure finds the post there as ours."""
    (bot,), _ = live_bots(on(bluesky), POSTS)
    candidate = claim(bot)
    bluesky.proxy.fail_next(CREATE, Answer(0))
    for _ in range(2):
        with pytest.raises(Transient):
            bot.target.post(candidate)
    assert bluesky.texts() == POSTS[:1] and bluesky.calls()[-1] == ("POST", CREATE, 500)
    found = bot.target.reconcile(candidate)
    assert found is not None and found.remote_id == record_key("bot", candidate) and found.note == "found by reconciliation"


def test_a_crash_after_posting_is_reconciled_at_restart(bluesky: BotAccount, live_bots: LiveBots, zone: str) -> None:
    candidate, ledger = a_crash_after_posting_is_reconciled(live_bots, lambda extra: on(bluesky, extra), bluesky.texts)
    assert ledger.history("bot")[1].remote_id == record_key("bot", candidate)


def test_a_sigkill_while_the_answer_is_on_its_way_never_posts_twice(bluesky: BotAccount, tmp_path: Path) -> None:
    """``botkit run`` killed (SIGKILL) while its post is on the PDS and not yet in the ledger (the
    proxy holds the PDS's answer back half a second), then started again and left to finish: the
    restart finds that post at its key, and every post is made exactly once, with one login.

    One kill in that window, on the real server; tests/test_bots_daemon.py kills at random moments,
    again and again, against the fakes."""
    posts = [f"kill test post {n}" for n in range(3)]
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "defaults: {posts: posts.txt, filters: none, schedule: {every: 0.1s}, retry: {attempts: 2, backoff: 0.05s}}\n"
        f"bots:\n  b: {{target: {{{on(bluesky)}, live: true, limits: {{min_interval: 0s, daily_cap: null}}}}}}\n",
        encoding="utf-8",
    )
    bluesky.proxy.answer_delay = 0.5
    env = {"BLUESKY_APP_PASSWORD": bluesky.account.app_password}
    proc = daemon(config, env)
    assert wait_for(lambda: len(bluesky.texts()) == 1, 60), output(config)  # on the PDS; its answer held by the proxy
    proc.kill()
    proc.wait()
    assert posted(config).get("b") is None
    proc = daemon(config, env)
    done = wait_for(lambda: posted(config).get("b") == len(posts), 60)
    out = stop(proc, config)
    assert done and proc.returncode == 0, f"posted {posted(config)}\n{out}"
    assert sorted(bluesky.texts()) == sorted(posts)  # each exactly once on the PDS
    calls = [call[1:] for call in bluesky.calls()]
    assert calls.count(("com.atproto.repo.getRecord", 200)) == 1  # the killed run's post, found by the next
    assert calls.count(("com.atproto.server.createSession", 200)) == 1


def test_a_text_over_300_graphemes_is_refused_before_posting(bluesky: BotAccount, live_bots: LiveBots) -> None:
    family = "👨‍👩‍👧‍👦"  # 7 code points, one grapheme
    fits, long = family * 300, "x" * 301
    (bot,), ledger = live_bots(on(bluesky), [long, "short"])
    assert [bot.tick().outcome for _ in range(2)] == ["failed", "posted"]
    assert bluesky.texts() == ["short"] and [c[1] for c in bluesky.calls()].count(CREATE) == 1
    with ledger.engine.connect() as conn:
        (reason,) = conn.exec_driver_sql("SELECT reason FROM candidates WHERE state = 'failed'").scalars()
    assert reason == "301 graphemes; Bluesky takes at most 300 (the text is not cut)"
    assert graphemes(fits) == 300 and graphemes("🇫🇷🇩🇪 e\u0301 \r\n ❤️ 👍🏽") == 10


def test_bad_app_password_disables_that_bot_only_and_no_secret_leaks(
    bluesky: BotAccount, live_bots: LiveBots, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WRONG_PASSWORD", "wrong-app-password-secret")
    bots, ledger = live_bots(on(bluesky), POSTS, bots={"good": "", "bad": "app_password: '${WRONG_PASSWORD}'"})
    with caplog.at_level("INFO"):
        assert [bot.tick().outcome for bot in bots] == ["posted", "disabled"]
        assert [bot.tick().outcome for bot in bots] == ["posted", "disabled"]
    report = status(ledger, load_config(bots[0].spec.base_dir / "config.yaml").bots)
    assert f"disabled:   Bluesky refused the login of {bluesky.handle} (HTTP 401: AuthenticationRequired: Invalid identifier or password)" in report
    with ledger.engine.connect() as conn:
        stored = " ".join(str(row) for table in ("candidates", "bot_state", "posts") for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    for secret in (bluesky.account.app_password, "wrong-app-password-secret"):
        assert secret not in report and secret not in caplog.text and secret not in stored
    assert bots[0].target.account() == bots[1].target.account() == f"bluesky:{bluesky.handle}"


def test_record_keys_are_tids_one_per_claim(bluesky: BotAccount, live_bots: LiveBots) -> None:
    (bot,), _ = live_bots(on(bluesky), POSTS)
    first = claim(bot)
    key = record_key("bot", first)
    assert re.fullmatch(r"[2-7a-j][2-7a-z]{12}", key)
    assert key == record_key("bot", replace(first, claimed_at=first.claimed_at.replace(microsecond=0)))  # whatever the database keeps below the second
    assert key != record_key("other", first) and key != record_key("bot", replace(first, id=first.id + 1))
    assert bot.target.post(first).remote_id == key == Post.of(bluesky.posts()[0]).rkey  # the PDS takes it as a record key
