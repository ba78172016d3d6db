"""The mastodon target end to end: real Mastodon.py against the fake instance (tests/fakes/mastodon.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, TickResult
from botkit.bots.ledger import APPROVED, Candidate, Ledger, store_url, utcnow
from botkit.bots.report import status
from botkit.bots.targets import Transient
from botkit.bots.targets.mastodon import count, plain
from botkit.cli import main
from botkit.config import load_config

from claims import claim, dead_worker
from fakes import Answer
from fakes.mastodon import FakeMastodon, html_of

LiveBots = Callable[..., tuple[list[Bot], Ledger]]  # the live_bots fixture (conftest.py)

TOKEN = "masto-token-very-secret"
POSTS = ["hello from a bot", "a second toot", "the third"]
START = [("GET", "/api/v1/accounts/verify_credentials", 200), ("GET", "/api/v2/instance/", 200)]
LOOKUP = ("GET", "/api/v1/accounts/ID/statuses", 200)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMastodon]:
    monkeypatch.setenv("MASTODON_TOKEN", TOKEN)
    with FakeMastodon({TOKEN: "toots"}) as server:
        yield server


def target(fake: FakeMastodon, extra: str = "") -> str:
    """The issue's config shape, pointed at the fake instance."""
    return f"kind: mastodon, api_base_url: '{fake.url}', access_token: '${{MASTODON_TOKEN}}'" + (f", {extra}" if extra else "")


def test_posts_are_unlisted_statuses_with_their_urls(fake: FakeMastodon, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    (bot,), ledger = live_bots(target(fake, "spoiler_text: generated text, language: en"), POSTS)
    assert bot.tick().outcome == "posted" and bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:2]
    first = fake.statuses[0]
    assert (first.visibility, first.spoiler_text, first.language, first.sensitive) == ("unlisted", "generated text", "en", False)
    keys = [r.headers.get("idempotency-key") for r in fake.requests if r.method == "POST"]
    assert all(keys) and len(set(keys)) == 2
    (newest, oldest) = ledger.history("bot")
    assert oldest.remote_id == first.id and oldest.url == f"{fake.url}/@toots/{first.id}"
    assert fake.calls()[:3] == [*START, ("POST", "/api/v1/statuses", 200)]  # the account and the instance are asked once
    assert caplog.text.count("is not flagged as a bot") == 1 and "toots" not in fake.bot


def test_set_bot_flag_flags_the_account(fake: FakeMastodon, live_bots: LiveBots, caplog: pytest.LogCaptureFixture) -> None:
    (bot,), _ = live_bots(target(fake, "set_bot_flag: true"), POSTS)
    assert bot.tick().outcome == "posted"
    assert fake.bot == {"toots": True} and "not flagged" not in caplog.text
    assert ("PATCH", "/api/v1/accounts/update_credentials", 200) in fake.calls()


def a_429_waits_for_its_reset(bot: Bot, ledger: Ledger, texts: Callable[[], list[str]], rate_limit_next: Callable[[float], None]) -> None:
    """A post refused with 429 and a reset 120 s ahead: not posted, back in the queue, the bot waits that long."""
    rate_limit_next(120)
    result = bot.tick()
    assert result.outcome == "waiting" and "HTTP 429" in result.message
    assert result.retry_at is not None and timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=122)
    assert texts() == [] and ledger.claimed(bot.name) is None  # refused, so back in the queue
    ledger.wait_until(bot.name, None)  # the reset time has come
    assert bot.tick().outcome == "posted" and texts() == POSTS[:1]


def test_429_waits_for_the_reset_mastodon_gives(fake: FakeMastodon, live_bots: LiveBots) -> None:
    (bot,), ledger = live_bots(target(fake), POSTS)
    a_429_waits_for_its_reset(bot, ledger, fake.texts, fake.rate_limit_next)


@pytest.mark.parametrize("fault", [500, 503, 0])  # 0: the connection drops without an answer
def test_server_errors_are_retried_after_checking_nothing_went_out(fake: FakeMastodon, live_bots: LiveBots, fault: int) -> None:
    (bot,), _ = live_bots(target(fake), POSTS)
    fake.fail_next(Answer(fault, {"error": "scripted"}))
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1]
    assert fake.calls() == [*START, ("POST", "/api/v1/statuses", fault), LOOKUP, ("POST", "/api/v1/statuses", 200)]


@pytest.mark.parametrize("fault", [500, 0])
def test_a_lost_answer_is_found_in_the_accounts_statuses(fake: FakeMastodon, live_bots: LiveBots, fault: int, zone: str) -> None:
    (bot,), ledger = live_bots(target(fake), POSTS)
    fake.fail_next(Answer(fault, {"error": "scripted"}), act_first=True)  # posted, but the answer is lost
    assert bot.tick().outcome == "posted"
    assert fake.texts() == POSTS[:1]  # exactly once at the instance
    assert fake.calls() == [*START, ("POST", "/api/v1/statuses", fault), LOOKUP]
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (fake.statuses[0].id, "found by reconciliation")


def test_a_stop_gives_back_a_claim_the_instance_certainly_lacks(fake: FakeMastodon, live_bots: LiveBots) -> None:
    """The connection dropped before the instance acted: the stop's one lookup finds nothing, the
    candidate goes back to the queue (as after a rate limit), and a later tick posts it once."""
    (bot,), ledger = live_bots(target(fake), POSTS)
    candidate = claim(bot)
    fake.fail_next(Answer(0))
    with pytest.raises(Transient):
        bot.target.post(candidate)
    stopped = bot.settle_claim()
    assert stopped == TickResult("bot", "waiting", f"candidate {candidate.id} is not on mastodon (looked up on the way out): back in the queue")
    assert ledger.claimed("bot") is None and getattr(ledger.candidate("bot", candidate.id), "state", None) == APPROVED
    assert fake.calls()[-2:] == [("POST", "/api/v1/statuses", 0), LOOKUP] and fake.texts() == []
    assert bot.settle_claim() is None  # nothing of ours in doubt any more: no request
    assert bot.tick().outcome == "posted" and fake.texts() == POSTS[:1]


def test_run_once_looks_a_claim_left_in_doubt_up_before_it_ends(fake: FakeMastodon, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One try per tick, and its answer lost: ``run --once`` looks the claim up once before it exits,
    so the ledger has the post; the tick's own failure still makes the exit status 1."""
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in POSTS), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "defaults: {posts: posts.txt, filters: none, retry: {attempts: 1}}\n"
        f"bots:\n  bot: {{target: {{{target(fake)}, live: true, limits: {{min_interval: 0s, daily_cap: null}}}}}}\n",
        encoding="utf-8",
    )
    fake.fail_next(Answer(0), act_first=True)
    assert main(["run", "--once", str(config)]) == 1
    first, found = capsys.readouterr().out.splitlines()
    assert first.startswith("bot: error: candidate 1 not confirmed (") and first.endswith("looked up again when the worker stops or at the next tick")
    assert found == f"bot: posted: candidate 1 to mastodon: {fake.url}/@toots/{fake.statuses[0].id} (found by its lookup on the way out)"
    assert fake.texts() == POSTS[:1] and fake.calls()[-2:] == [("POST", "/api/v1/statuses", 0), LOOKUP]
    with Ledger(store_url("botkit.db", tmp_path)) as ledger:
        assert [r.remote_id for r in ledger.history("bot")] == [fake.statuses[0].id] and ledger.claimed("bot") is None


def test_a_retry_the_lookup_missed_is_answered_with_the_first_status(fake: FakeMastodon, live_bots: LiveBots) -> None:
    """The idempotency key: a second try of one claim gets the status the first made, never a new one."""
    (bot,), _ = live_bots(target(fake), POSTS)
    candidate = claim(bot)
    fake.fail_next(Answer(0), act_first=True)
    with pytest.raises(Exception, match="answer was lost"):
        bot.target.post(candidate)
    again = bot.target.post(candidate)
    assert fake.texts() == POSTS[:1] and again.remote_id == fake.statuses[0].id


def a_crash_after_posting_is_reconciled(live_bots: LiveBots, target: Callable[[str], str], texts: Callable[[], list[str]]) -> tuple[Candidate, Ledger]:
    """A post made just before the process died is found at restart, never made again; returns it and the ledger.

    The restart comes with a new signature: what was claimed (and sent) is what is looked up.
    """
    (bot,), ledger = live_bots(target("signature: '(a bot, v1)'"), POSTS, worker=dead_worker())
    candidate = claim(bot)
    bot.target.post(candidate)  # the process dies here, before the ledger hears of it
    (restarted,), _ = live_bots(target("signature: '(a bot, v2)'"), POSTS)
    assert restarted.tick().outcome == "posted" and restarted.tick().outcome == "posted"
    assert texts() == [f"{POSTS[0]}\n\n(a bot, v1)", f"{POSTS[1]}\n\n(a bot, v2)"]  # each once
    return candidate, ledger


def test_a_crash_after_posting_is_reconciled_at_restart(fake: FakeMastodon, live_bots: LiveBots, zone: str) -> None:
    _, ledger = a_crash_after_posting_is_reconciled(live_bots, lambda extra: target(fake, extra), fake.texts)
    assert [r.remote_id for r in ledger.history("bot")] == [fake.statuses[1].id, fake.statuses[0].id]


def test_a_text_over_the_instances_limit_is_refused_before_posting(monkeypatch: pytest.MonkeyPatch, live_bots: LiveBots) -> None:
    monkeypatch.setenv("MASTODON_TOKEN", TOKEN)
    with FakeMastodon({TOKEN: "toots"}, max_characters=40) as fake:
        long = "a text that is longer than forty characters, by far"
        (bot,), ledger = live_bots(target(fake), ["short", long, f"https://example.com/{'x' * 60}"])
        assert [bot.tick().outcome for _ in range(3)] == ["posted", "failed", "posted"]  # a link counts as 23
        assert fake.texts() == ["short", f"https://example.com/{'x' * 60}"]
        assert [r.method for r in fake.requests].count("POST") == 2
        with ledger.engine.connect() as conn:
            (reason,) = conn.exec_driver_sql("SELECT reason FROM candidates WHERE state = 'failed'").scalars()
        assert reason == f"{len(long)} characters; the instance takes at most 40 (the text is not cut)"


def test_bad_or_revoked_tokens_disable_that_bot_only_and_no_secret_leaks(
    fake: FakeMastodon, live_bots: LiveBots, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTHER_TOKEN", "other-token-also-secret")
    fake.tokens["other-token-also-secret"] = "other"
    bots, ledger = live_bots(target(fake), POSTS, bots={"good": "", "bad": "access_token: 'wrong-token-secret'", "other": "access_token: '${OTHER_TOKEN}'"})
    with caplog.at_level("INFO"):
        assert {bot.name: bot.tick().outcome for bot in bots} == {"good": "posted", "bad": "disabled", "other": "posted"}
        del fake.tokens["other-token-also-secret"]  # revoked (Mastodon's tokens do not expire; they are revoked)
        assert {bot.name: bot.tick().outcome for bot in bots} == {"good": "posted", "bad": "disabled", "other": "disabled"}
    report = status(ledger, load_config(bots[0].spec.base_dir / "config.yaml").bots)
    assert "HTTP 401: The access token is invalid" in report
    with ledger.engine.connect() as conn:
        stored = " ".join(str(row) for table in ("candidates", "bot_state", "posts") for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    for secret in (TOKEN, "wrong-token-secret", "other-token-also-secret"):
        assert secret not in report and secret not in caplog.text and secret not in stored
    assert len({bot.target.account() for bot in bots}) == 3


def test_statuses_are_read_back_as_the_text_that_was_sent() -> None:
    text = "Q&A <3 > all: \"see\" https://example.com/a/very/long/path/that/goes/on?b=1&c=2 @friend@other.example #tag\nline two\n\nnew 'paragraph'"
    shown = html_of(text)
    assert "&amp;" in shown and '<span class="invisible">' in shown and ">friend</span>" in shown and "other.example</" not in shown
    assert plain(shown).split() == [w.replace("@friend@other.example", "@friend") for w in text.split()]
    assert plain(shown).split("\n")[1] == "line two"


def test_characters_are_counted_as_mastodon_counts_them() -> None:
    assert count("hello") == 5 and count(f"see https://example.com/{'x' * 100}") == 4 + 23
    assert count("ping @someone@far.example.org") == len("ping @someone") and count("👍🏽 café") == 6


def test_the_content_warning_goes_on_the_posts_a_filter_flags(fake: FakeMastodon, live_bots: LiveBots) -> None:
    flagged = "what a damn fine day"
    spec = "spoiler_text: 'CW: rude words', spoiler_when: [{banned: {words: [damn]}}]"
    (bot,), _ = live_bots(target(fake, spec), ["a fine day for a toot", flagged, "another damn toot"])
    assert [bot.tick().outcome for _ in range(3)] == ["posted"] * 3
    assert [(s.text, s.spoiler_text) for s in fake.statuses] == [
        ("a fine day for a toot", ""), (flagged, "CW: rude words"), ("another damn toot", "CW: rude words"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("spoiler_when: [banned]", "spoiler_when needs spoiler_text"),
        ("spoiler_text: cw, spoiler_when: [no-such-filter]", "bots.bot.target.spoiler_when: 0: unknown filter 'no-such-filter'"),
    ],
)
def test_a_bad_spoiler_when_is_a_config_error(fake: FakeMastodon, live_bots: LiveBots, spec: str, message: str) -> None:
    from botkit.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        live_bots(target(fake, spec), POSTS)
