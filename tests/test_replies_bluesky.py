"""A Bluesky reply bot end to end: the real atproto Client against the reference network (``bluesky``:
its PDS and AppView, see tests/blueskypds/), other accounts posting as people do, answered with the
tiny reply model of conftest.py (``alpha`` is answered ``zulu``, ``bravo`` ``yankee``...).

Two tests keep the fake PDS (tests/fakes/bluesky.py), each saying why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_bots_bluesky import HANDLE, PASSWORD, on, target
from test_replies_mastodon import ReplyBots, parents

from botkit.bots.ledger import FAILED, utcnow
from botkit.bots.targets.bluesky import record_key

from blueskypds import BotAccount, Person, Post
from fakes.bluesky import FakeBluesky

CREATE = "com.atproto.repo.createRecord"
LISTEN = "app.bsky.notification.listNotifications"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBluesky]:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky({HANDLE: PASSWORD}, others=("friend.bsky.social",)) as server:
        server.label_bot(HANDLE)  # the bot's profile says what it is (no warning)
        yield server


@pytest.fixture
def friend(bluesky: BotAccount) -> Person:
    """A person on the network who talks to the bot."""
    return Person(bluesky.network, bluesky.network.account("friend"))


def replies(bluesky: BotAccount) -> list[tuple[str, str, str]]:
    """The bot's posts as (text, parent uri, root uri)."""
    return [(r["value"]["text"], r["value"]["reply"]["parent"]["uri"], r["value"]["reply"]["root"]["uri"]) for r in bluesky.posts() if "reply" in r["value"]]


def nsids(bluesky: BotAccount) -> list[str]:
    return [nsid for _, nsid, _ in bluesky.calls()]


def test_a_mention_is_answered_once_in_reply_to_it(bluesky: BotAccount, friend: Person, reply_bots: ReplyBots) -> None:
    mention = friend.post(f"@{bluesky.handle} alpha")
    (bot,), ledger = reply_bots(on(bluesky, "label_bot: true"))
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    (reply,) = bluesky.posts()
    assert reply["value"]["text"] == "zulu"  # the model read "alpha"
    ref = {"uri": mention.uri, "cid": mention.cid, "$type": "com.atproto.repo.strongRef"}
    assert reply["value"]["reply"]["parent"] == reply["value"]["reply"]["root"] == ref
    (candidate,) = ledger.latest("bot", 5)
    assert Post.of(reply).rkey == record_key("bot", candidate)  # the deterministic key, as for a post
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.reply_to) == (Post.of(reply).rkey, f"{mention.uri} {mention.cid} {mention.uri} {mention.cid}")
    assert ledger.parents_of("bot", [candidate.id]) == {candidate.id: ("", f"https://bsky.app/profile/{friend.account.handle}/post/{mention.rkey}")}
    assert parents(ledger) == [(mention.uri, mention.uri, 0, None)]
    bluesky.network.sync()
    assert bot.reply_tick().outcome == "empty"
    (restarted,), _ = reply_bots(on(bluesky), worker=bot.worker)
    assert restarted.reply_tick().outcome == "empty"
    assert bluesky.posts() == [reply]  # once, whatever happened after
    assert nsids(bluesky).count(LISTEN) == 3 and "app.bsky.feed.getPostThread" not in nsids(bluesky)
    heard = friend.client.app.bsky.notification.list_notifications().notifications  # the reply notified its parent's author
    assert [(n.reason, n.uri) for n in heard] == [("reply", reply["uri"])]


def test_a_reply_to_the_bots_post_is_answered(bluesky: BotAccount, friend: Person, reply_bots: ReplyBots, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("a post\n", encoding="utf-8")
    (bot,), ledger = reply_bots(on(bluesky), bots={"bot": "posts: posts.txt"})
    assert bot.tick().outcome == "posted"
    (post,) = bluesky.posts()
    answer = friend.post("bravo", reply_to=Post.of(post))  # no mention: a reply notifies the parent's author
    assert bot.reply_tick().outcome == "posted"
    assert replies(bluesky) == [("yankee", answer.uri, post["uri"])]
    assert parents(ledger) == [(answer.uri, post["uri"], 1, None)]


def test_a_lost_answer_is_found_at_the_replys_key(bluesky: BotAccount, friend: Person, reply_bots: ReplyBots) -> None:
    mention = friend.post(f"@{bluesky.handle} alpha")
    (bot,), ledger = reply_bots(on(bluesky))
    bluesky.proxy.fail_next(CREATE)  # the PDS made the reply; the bot gets a 500
    assert bot.reply_tick().outcome == "posted"
    assert replies(bluesky) == [("zulu", mention.uri, mention.uri)]
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (Post.of(bluesky.posts()[0]).rkey, "found by reconciliation")
    assert bluesky.calls()[-2:] == [("POST", CREATE, 500), ("GET", "com.atproto.repo.getRecord", 200)]


def test_the_bot_never_answers_its_own_posts(fake: FakeBluesky, reply_bots: ReplyBots, tmp_path: Path) -> None:
    """On the fake: the AppView never notifies an account of its own posts, so only a fake that does
    (``notify_self``) shows that the bot's own guard holds too."""
    fake.notify_self = True
    (tmp_path / "posts.txt").write_text(f"@{HANDLE} alpha\n", encoding="utf-8")
    (bot,), ledger = reply_bots(target(fake.url, HANDLE, "mentions: true"), bots={"bot": "posts: posts.txt"})
    assert bot.tick().outcome == "posted"
    assert [(n.did, n.reason) for n in fake.notifications] == [(fake.did(HANDLE), "mention")]
    result = bot.reply_tick()
    assert result.outcome == "empty", result
    assert fake.texts(HANDLE) == [f"@{HANDLE} alpha"] and parents(ledger) == []
    assert bot.target.me() == HANDLE


def test_a_parent_deleted_before_the_reply_fails_that_reply_only(bluesky: BotAccount, friend: Person, reply_bots: ReplyBots) -> None:
    mention = friend.post(f"@{bluesky.handle} alpha")
    (bot,), ledger = reply_bots(on(bluesky), bots={"bot": "review: true"})
    assert bot.reply_tick().outcome == "empty"
    (queued,) = ledger.queued("bot")
    assert ledger.review(queued, True)
    friend.delete(mention.uri)
    result = bot.reply_tick()
    assert result.outcome == "failed" and "was deleted" in result.message, result
    assert bluesky.posts() == [] and CREATE not in nsids(bluesky) and ledger.claimed("bot") is None
    (failed,) = ledger.latest("bot", 5, (FAILED,))
    assert failed.reason == f"the post it answers is gone ({mention.uri} was deleted)"
    later = friend.post(f"@{bluesky.handle} bravo")
    (bot,), _ = reply_bots(on(bluesky), worker=bot.worker)  # the bot goes on (now without review)
    assert bot.reply_tick().outcome == "posted"
    assert replies(bluesky) == [("yankee", later.uri, later.uri)]


def test_a_429_while_listening_waits_and_loses_nothing(fake: FakeBluesky, reply_bots: ReplyBots) -> None:
    """On the fake: the reference PDS allows 3,000 reads in 5 minutes, far more than a test can ask."""
    fake.post_as("friend.bsky.social", f"@{HANDLE} alpha")
    (bot,), ledger = reply_bots(target(fake.url, HANDLE))
    fake.rate_limit_listening(120)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "HTTP 429" in result.message, result
    assert result.retry_at is not None and timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=122)
    assert bot.reply_tick().outcome == "waiting" and [c[1] for c in fake.calls()].count(LISTEN) == 1
    assert fake.posts(HANDLE) == [] and parents(ledger) == []
    ledger.wait_until("bot", None)
    assert bot.reply_tick().outcome == "posted"
    assert [r.value["text"] for r in fake.posts(HANDLE)] == ["zulu"]


def test_an_account_labelled_as_a_bot_is_answered_only_when_named(bluesky: BotAccount, reply_bots: ReplyBots) -> None:
    robot = Person(bluesky.network, bluesky.network.account("robot"))
    robot.label_bot()
    first = robot.post(f"@{bluesky.handle} alpha")
    (bot,), ledger = reply_bots(on(bluesky))
    assert bot.reply_tick().outcome == "empty"
    assert bluesky.posts() == []
    name = robot.account.handle
    assert parents(ledger) == [(first.uri, first.uri, 0, f"{name} is a bot not named in reply.bots")]
    second = robot.post(f"@{bluesky.handle} bravo")
    (bot,), _ = reply_bots(on(bluesky), f"bots: [{name}]", worker=bot.worker)
    assert bot.reply_tick().outcome == "posted"
    assert replies(bluesky) == [("yankee", second.uri, second.uri)]


def test_a_thread_with_a_person_stops_at_max_depth(bluesky: BotAccount, friend: Person, reply_bots: ReplyBots) -> None:
    robot = Person(bluesky.network, bluesky.network.account("robot"))
    (bot,), ledger = reply_bots(on(bluesky), "max_depth: 3, max_per_thread: 10")
    root = friend.post(f"@{bluesky.handle} alpha")
    assert bot.reply_tick().outcome == "posted"  # at depth 1

    def last() -> Post:
        return Post.of(bluesky.posts()[-1])

    second = friend.post("bravo", reply_to=last())  # a reply to the bot's reply: reason "reply"
    aside = robot.post("charlie", reply_to=second)  # below it, to the friend: the bot is told, but not addressed
    assert bot.reply_tick().outcome == "posted"  # at depth 3
    third = friend.post("delta", reply_to=last())
    result = bot.reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message, result
    assert replies(bluesky) == [("zulu", root.uri, root.uri), ("yankee", second.uri, root.uri)]
    assert parents(ledger) == [
        (root.uri, root.uri, 0, None), (second.uri, root.uri, 2, None), (third.uri, root.uri, 4, "max_depth: a reply would be at depth 5 (most 3)"),
    ]  # fmt: skip
    told = bot.target.client.app.bsky.notification.list_notifications().notifications
    assert aside.uri in [n.uri for n in told]  # heard, and left alone
    assert nsids(bluesky).count("app.bsky.feed.getPostThread") == 2  # second and third; the root and the aside need none
