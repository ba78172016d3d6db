"""Reply bots on X: real tweepy, its session routed to the fake X (mentions, lookups, replies).
Every reply is checked where it lands: in the fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from botkit.bots.bot import Bot
from botkit.bots.ledger import FAILED, POSTED, Ledger, utcnow

from fakes.twitter import FakeX

KEYS = {"X_CONSUMER_KEY": "ck-public", "X_CONSUMER_SECRET": "cs-very-secret", "X_ACCESS_TOKEN": "at-123", "X_ACCESS_TOKEN_SECRET": "ats-very-secret"}
TARGET = (
    "kind: twitter, consumer_key: '${X_CONSUMER_KEY}', consumer_secret: '${X_CONSUMER_SECRET}',"
    " access_token: '${X_ACCESS_TOKEN}', access_token_secret: '${X_ACCESS_TOKEN_SECRET}'"
)
BOT = "bot1000000"  # the fake's username for the account of at-123
Make = Callable[..., tuple[list[Bot], Ledger]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeX]:
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    with FakeX({"ck-public": "at-123"}) as server:
        server.add_user("alice")
        server.add_user("bob")
        yield server


@pytest.fixture
def bird(reply_bots: Make, fake: FakeX) -> Callable[..., tuple[Bot, Ledger]]:
    """``bird(reply="", worker=None)``: the one reply bot, its tweepy session routed to the fake."""

    def make(reply: str = "", *, worker: str | None = None) -> tuple[Bot, Ledger]:
        (bot,), ledger = reply_bots(TARGET, reply, bots={"bird": ""}, worker=worker)
        fake.route(bot.target.client.session)
        return bot, ledger

    return make


def replies(fake: FakeX) -> list[tuple[str | None, str]]:
    """(parent id, text) of every post the bot made, oldest first."""
    return [(t.in_reply_to, t.text) for t in fake.by(BOT)]


def calls(fake: FakeX, path: str) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path.replace(fake.user_id("at-123"), "ID") == path]


def test_a_mention_is_answered_once_even_after_a_restart(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    mention = fake.say("alice", f"@{BOT} alpha")
    bot, ledger = bird()
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    assert replies(fake) == [(mention.id, "zulu")]
    (reply,) = fake.by(BOT)
    assert reply.conversation_id == mention.id and reply.prefix == "@alice "  # X shows it as "@alice zulu"
    assert ledger.parents_of("bird", [ledger.latest("bird", 1, (POSTED,))[0].id]) == {1: ("", f"https://x.com/alice/status/{mention.id}")}
    assert bot.reply_tick().outcome == "empty"
    mentions = calls(fake, "/2/users/ID/mentions")
    assert "since_id" not in mentions[0] and mentions[1]["since_id"] == mention.id  # the second asks only for what is newer
    assert mentions[0]["expansions"] == "referenced_tweets.id,author_id" and "conversation_id" in mentions[0]["tweet.fields"]
    again, ledger = bird(worker=bot.worker)  # a restart: no since_id in memory, the ledger remembers
    assert again.reply_tick().outcome == "empty"
    assert replies(fake) == [(mention.id, "zulu")] and len(ledger.history("bird")) == 1


def test_replies_in_a_conversation_are_placed_and_the_depth_limit_holds(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    root = fake.say("alice", "a post of alice's")
    first = fake.say("bob", f"@alice @{BOT} bravo", reply_to=root.id)  # depth 1: answers the root
    above = fake.say("bob", "@alice more", reply_to=root.id)
    below = fake.say("alice", "@bob and more", reply_to=above.id)
    deep = fake.say("bob", f"@alice @{BOT} alpha", reply_to=below.id)  # depth 3: a reply would be at depth 4
    bot, ledger = bird("max_depth: 3, max_per_thread: 10")
    assert bot.reply_tick().outcome == "posted"
    assert bot.reply_tick().outcome == "empty"
    assert replies(fake) == [(first.id, "yankee")]  # what it answered is "bravo", without the handles
    assert dict(_parent_depths(ledger)) == {first.id: 1, deep.id: 3}
    # The page brought `below` (what `deep` answers) and the root (the conversation); one lookup found `above`.
    assert [q["ids"] for q in calls(fake, "/2/tweets") if "ids" in q] == [above.id]


def _parent_depths(ledger: Ledger) -> list[tuple[str, int]]:
    from sqlalchemy import select

    r = ledger.t["parents"]
    with ledger.engine.connect() as conn:
        return [(row.remote_id, row.depth) for row in conn.execute(select(r.c.remote_id, r.c.depth).where(r.c.bot == "bird"))]


def test_a_reply_whose_answer_is_lost_is_found_not_posted_twice(reply_bots: Make, keys_fake_without_duplicates: FakeX, zone: str) -> None:
    fake = keys_fake_without_duplicates
    mention = fake.say("alice", f"@{BOT} alpha")
    (bot,), ledger = reply_bots(TARGET, bots={"bird": ""})
    fake.route(bot.target.client.session)
    fake.fail_next(500, post_first=True)  # X made the reply, the answer was a 500
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    assert replies(fake) == [(mention.id, "zulu")]  # once
    assert [r.status for r in fake.requests if r.method == "POST"] == [500]
    (record,) = ledger.history("bird")
    assert (record.remote_id, record.note) == (fake.by(BOT)[0].id, "found by reconciliation")
    assert bot.reply_tick().outcome == "empty" and len(fake.by(BOT)) == 1


@pytest.fixture
def keys_fake_without_duplicates(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeX]:
    """A fake X that never refuses a duplicate: only the lookup can find a reply that went out."""
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    with FakeX({"ck-public": "at-123"}, duplicates=False) as server:
        server.add_user("alice")
        yield server


def test_a_reply_to_another_parent_with_the_same_text_is_not_taken_for_ours(reply_bots: Make, keys_fake_without_duplicates: FakeX, zone: str) -> None:
    fake = keys_fake_without_duplicates
    one = fake.say("alice", f"@{BOT} alpha")
    (bot,), ledger = reply_bots(TARGET, bots={"bird": ""})
    fake.route(bot.target.client.session)
    assert bot.reply_tick().outcome == "posted"
    two = fake.say("alice", f"@{BOT} alpha again")
    fake.fail_next(503)  # not made: the lookup sees "zulu" only under the first mention, so it posts again
    assert bot.reply_tick().outcome == "posted"
    assert [parent for parent, _ in replies(fake)] == [one.id, two.id]
    assert ledger.history("bird")[0].note is None


def test_the_bot_never_answers_itself(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    fake.say(BOT, f"@{BOT} alpha")  # the account naming itself, posted outside botkit
    bot, ledger = bird()
    result = bot.reply_tick()
    assert result.outcome == "empty" and "heard 0" in result.message, result
    assert replies(fake) == [(None, f"@{BOT} alpha")] and _parent_depths(ledger) == []


def test_a_parent_deleted_before_the_reply_fails_that_reply_and_the_bot_goes_on(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    first = fake.say("alice", f"@{BOT} alpha")
    second = fake.say("bob", f"@{BOT} bravo")
    bot, ledger = bird()
    assert bot.reply_tick().outcome == "posted"  # both heard; the older answered
    fake.delete(second.id)
    result = bot.reply_tick()
    assert result.outcome == "failed" and "deleted or not visible" in result.message, result
    (failed,) = ledger.latest("bird", 5, (FAILED,))
    assert failed.reply_to == second.id and ledger.claimed("bird") is None
    assert bot.reply_tick().outcome == "empty"  # never tried again
    third = fake.say("alice", f"@{BOT} charlie")
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [(first.id, "zulu"), (third.id, "xray")]


def test_a_429_while_listening_waits_and_loses_nothing(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    mention = fake.say("alice", f"@{BOT} alpha")
    bot, ledger = bird()
    fake.rate_limit_reads(300)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "429" in result.message, result
    assert timedelta(seconds=280) < result.retry_at - utcnow() <= timedelta(seconds=302)
    assert replies(fake) == [] and _parent_depths(ledger) == []
    assert bot.reply_tick().outcome == "waiting"
    ledger.wait_until("bird", None)
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [(mention.id, "zulu")]


def test_a_429_on_a_reply_waits_and_keeps_the_reply(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    mention = fake.say("alice", f"@{BOT} alpha")
    bot, ledger = bird()
    fake.rate_limit_next(120)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "429" in result.message, result
    assert replies(fake) == [] and ledger.claimed("bird") is None
    ledger.wait_until("bird", None)
    assert bot.reply_tick().outcome == "posted" and replies(fake) == [(mention.id, "zulu")]


def test_a_mention_under_a_deleted_post_still_has_a_depth(bird: Callable[..., tuple[Bot, Ledger]], fake: FakeX) -> None:
    root = fake.say("alice", "a post")
    middle = fake.say("bob", "@alice hm", reply_to=root.id)
    mention = fake.say("alice", f"@bob @{BOT} alpha", reply_to=middle.id)
    fake.delete(middle.id)
    bot, ledger = bird("max_depth: 2")
    result = bot.reply_tick()
    # depth 2 as far as X tells (its parent is gone, but it is not the root): a reply would be at 3
    assert result.outcome == "empty" and "1 skipped" in result.message, result
    assert dict(_parent_depths(ledger)) == {mention.id: 2} and replies(fake) == []
