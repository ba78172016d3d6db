"""A Bluesky reply bot end to end: the real atproto Client against the fake PDS (tests/fakes/bluesky.py),
answering with the tiny reply model of conftest.py (``alpha`` is answered ``zulu``, ``bravo`` ``yankee``...)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_bots_bluesky import HANDLE, PASSWORD, target
from test_replies_mastodon import ReplyBots, parents

from botkit.bots.bluesky import record_key
from botkit.bots.ledger import FAILED, utcnow

from fakes import Answer
from fakes.bluesky import FakeBluesky, Record

FRIEND, ROBOT = "friend.bsky.social", "robot.bsky.social"
CREATE = "com.atproto.repo.createRecord"
LISTEN = "app.bsky.notification.listNotifications"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBluesky]:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky({HANDLE: PASSWORD}, others=(FRIEND, ROBOT)) as server:
        server.label_bot(HANDLE)  # the bot's profile says what it is (no warning)
        yield server


def replies(fake: FakeBluesky) -> list[tuple[str, str, str]]:
    """The bot's posts as (text, parent uri, root uri)."""
    return [(r.value["text"], r.value["reply"]["parent"]["uri"], r.value["reply"]["root"]["uri"]) for r in fake.posts(HANDLE) if "reply" in r.value]


def nsids(fake: FakeBluesky) -> list[str]:
    return [nsid for _, nsid, _ in fake.calls()]


def test_a_mention_is_answered_once_in_reply_to_it(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    mention = fake.post_as(FRIEND, f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake))
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    (reply,) = fake.posts(HANDLE)
    assert reply.value["text"] == "zulu"  # the model read "alpha"
    assert reply.value["reply"]["parent"] == reply.value["reply"]["root"] == {"uri": mention.uri, "cid": mention.cid, "$type": "com.atproto.repo.strongRef"}
    (candidate,) = ledger.latest("bot", 5)
    assert reply.rkey == record_key("bot", candidate)  # the deterministic key, as for a post
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.reply_to) == (reply.rkey, f"{mention.uri} {mention.cid} {mention.uri} {mention.cid}")
    assert ledger.parents_of("bot", [candidate.id]) == {candidate.id: ("", f"https://bsky.app/profile/{FRIEND}/post/{mention.rkey}")}
    assert parents(ledger) == [(mention.uri, mention.uri, 0, None)]
    assert bot.reply_tick().outcome == "empty"
    (restarted,), _ = reply_bots(target(fake), worker=bot.worker)
    assert restarted.reply_tick().outcome == "empty"
    assert fake.posts(HANDLE) == [reply]  # once, whatever happened after
    assert nsids(fake).count(LISTEN) == 3 and "app.bsky.feed.getPostThread" not in nsids(fake)
    assert [n.did for n in fake.notifications] == [fake.did(HANDLE), fake.did(FRIEND)]  # the reply notified its parent's author


def test_a_reply_to_the_bots_post_is_answered(fake: FakeBluesky, reply_bots: ReplyBots, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("a post\n", encoding="utf-8")
    (bot,), ledger = reply_bots(target(fake), bots={"bot": "posts: posts.txt"})
    assert bot.tick().outcome == "posted"
    (post,) = fake.posts(HANDLE)
    answer = fake.post_as(FRIEND, "bravo", reply_to=post)  # no mention: a reply notifies the parent's author
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [("yankee", answer.uri, post.uri)]
    assert parents(ledger) == [(answer.uri, post.uri, 1, None)]


def test_a_lost_answer_is_found_at_the_replys_key(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    mention = fake.post_as(FRIEND, f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake))
    fake.fail_next(Answer(500, {"error": "InternalServerError", "message": "Internal Server Error"}), act_first=True)
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [("zulu", mention.uri, mention.uri)]
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (fake.posts(HANDLE)[0].rkey, "found by reconciliation")
    assert fake.calls()[-2:] == [("POST", CREATE, 500), ("GET", "com.atproto.repo.getRecord", 200)]


def test_the_bot_never_answers_its_own_posts(fake: FakeBluesky, reply_bots: ReplyBots, tmp_path: Path) -> None:
    fake.notify_self = True  # the AppView would not even tell it
    (tmp_path / "posts.txt").write_text(f"@{HANDLE} alpha\n", encoding="utf-8")
    (bot,), ledger = reply_bots(target(fake, "mentions: true"), bots={"bot": "posts: posts.txt"})
    assert bot.tick().outcome == "posted"
    assert [(n.did, n.reason) for n in fake.notifications] == [(fake.did(HANDLE), "mention")]
    result = bot.reply_tick()
    assert result.outcome == "empty", result
    assert fake.texts(HANDLE) == [f"@{HANDLE} alpha"] and parents(ledger) == []
    assert bot.target.me() == HANDLE


def test_a_parent_deleted_before_the_reply_fails_that_reply_only(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    mention = fake.post_as(FRIEND, f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake), bots={"bot": "review: true"})
    assert bot.reply_tick().outcome == "empty"
    (queued,) = ledger.queued("bot")
    assert ledger.review(queued, True)
    fake.delete(mention.uri)
    result = bot.reply_tick()
    assert result.outcome == "failed" and "was deleted" in result.message, result
    assert fake.posts(HANDLE) == [] and CREATE not in nsids(fake) and ledger.claimed("bot") is None
    (failed,) = ledger.latest("bot", 5, (FAILED,))
    assert failed.reason == f"the post it answers is gone ({mention.uri} was deleted)"
    later = fake.post_as(FRIEND, f"@{HANDLE} bravo")
    (bot,), _ = reply_bots(target(fake), worker=bot.worker)  # the bot goes on (now without review)
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [("yankee", later.uri, later.uri)]


def test_a_429_while_listening_waits_and_loses_nothing(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    mention = fake.post_as(FRIEND, f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake))
    fake.rate_limit_listening(120)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "HTTP 429" in result.message, result
    assert result.retry_at is not None and timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=122)
    assert bot.reply_tick().outcome == "waiting" and nsids(fake).count(LISTEN) == 1
    assert fake.posts(HANDLE) == [] and parents(ledger) == []
    ledger.wait_until("bot", None)
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [("zulu", mention.uri, mention.uri)]


def test_an_account_labelled_as_a_bot_is_answered_only_when_named(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    fake.label_bot(ROBOT)
    first = fake.post_as(ROBOT, f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake))
    assert bot.reply_tick().outcome == "empty"
    assert fake.posts(HANDLE) == []
    assert parents(ledger) == [(first.uri, first.uri, 0, f"{ROBOT} is a bot not named in reply.bots")]
    second = fake.post_as(ROBOT, f"@{HANDLE} bravo")
    (bot,), _ = reply_bots(target(fake), f"bots: [{ROBOT}]", worker=bot.worker)
    assert bot.reply_tick().outcome == "posted"
    assert replies(fake) == [("yankee", second.uri, second.uri)]


def test_a_thread_with_a_person_stops_at_max_depth(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    (bot,), ledger = reply_bots(target(fake), "max_depth: 3, max_per_thread: 10")
    root = fake.post_as(FRIEND, f"@{HANDLE} alpha")
    assert bot.reply_tick().outcome == "posted"  # at depth 1

    def last() -> Record:
        return fake.posts(HANDLE)[-1]

    second = fake.post_as(FRIEND, "bravo", reply_to=last())  # a reply to the bot's reply: reason "reply"
    aside = fake.post_as(ROBOT, "charlie", reply_to=second)  # below it, to the friend: the bot is told, but not addressed
    assert bot.reply_tick().outcome == "posted"  # at depth 3
    third = fake.post_as(FRIEND, "delta", reply_to=last())
    result = bot.reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message, result
    assert replies(fake) == [("zulu", root.uri, root.uri), ("yankee", second.uri, root.uri)]
    assert parents(ledger) == [
        (root.uri, root.uri, 0, None), (second.uri, root.uri, 2, None), (third.uri, root.uri, 4, "max_depth: a reply would be at depth 5 (most 3)"),
    ]  # fmt: skip
    assert any(n.uri == aside.uri and n.did == fake.did(HANDLE) for n in fake.notifications)  # heard, and left alone
    assert nsids(fake).count("app.bsky.feed.getPostThread") == 2  # second and third; the root and the aside need none
