"""A Mastodon reply bot end to end: real Mastodon.py against the fake instance (tests/fakes/mastodon.py),
answering with the tiny reply model of conftest.py (``alpha`` is answered ``zulu``, ``bravo`` ``yankee``...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from test_bots_mastodon import TOKEN, target

from botkit.bots.bot import Bot
from botkit.bots.ledger import FAILED, Ledger, utcnow

from fakes import Answer
from fakes.mastodon import FakeMastodon

ReplyBots = Callable[..., tuple[list[Bot], Ledger]]  # the reply_bots fixture (conftest.py)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMastodon]:
    monkeypatch.setenv("MASTODON_TOKEN", TOKEN)
    with FakeMastodon({TOKEN: "toots"}, bots=True) as server:
        yield server


def parents(ledger: Ledger, bot: str = "bot") -> list[tuple[str, str, int, str | None]]:
    """What the bot decided about, in order: (parent id, thread, depth, why skipped or None)."""
    from sqlalchemy import select

    r = ledger.t["parents"]
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(r.c.remote_id, r.c.thread, r.c.depth, r.c.skipped).where(r.c.bot == bot).order_by(r.c.seen_at, r.c.remote_id))
        return [tuple(row) for row in rows]


def listened(fake: FakeMastodon) -> list[dict[str, str]]:
    """The query of every notifications request, in order."""
    return [r.query for r in fake.requests if r.path == "/api/v1/notifications"]


def test_a_mention_is_answered_once_in_reply_to_it(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    mention = fake.post_as("alice", "@toots alpha")
    (bot,), ledger = reply_bots(target(fake))
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    (reply,) = fake.by("toots")
    assert (reply.text, reply.in_reply_to_id, reply.visibility) == ("@alice zulu", mention.id, "unlisted")  # the model read "alpha"
    assert reply.idempotency_key
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.reply_to) == (reply.id, f"{mention.id} @alice public")
    (candidate,) = ledger.latest("bot", 5)
    assert ledger.parents_of("bot", [candidate.id]) == {
        candidate.id: ("", f"{fake.url}/@alice/{mention.id}")
    }  # the words were kept only until the reply went out
    assert parents(ledger) == [(mention.id, mention.id, 0, None)]
    assert bot.reply_tick().outcome == "empty" and bot.reply_tick().outcome == "empty"
    (restarted,), _ = reply_bots(target(fake), worker=bot.worker)  # config read again, a new client: no cursor
    assert restarted.reply_tick().outcome == "empty"
    assert fake.by("toots") == [reply]  # once, whatever happened after
    (notification,) = fake.notifications
    assert [q.get("since_id") for q in listened(fake)] == [None, None, notification.id, None]  # the cursor only saves work
    assert all(q["types[]"] == "mention" for q in listened(fake))
    assert not any("/context" in r.path for r in fake.requests)  # a mention that answers nothing has no thread to ask about


def test_a_direct_mention_is_answered_directly(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    mention = fake.post_as("bob@far.example", "@toots bravo", visibility="direct")
    (bot,), _ = reply_bots(target(fake, "visibility: public"))
    assert bot.reply_tick().outcome == "posted"
    (reply,) = fake.by("toots")
    assert (reply.text, reply.in_reply_to_id, reply.visibility) == ("@bob@far.example yankee", mention.id, "direct")


def test_a_lost_answer_is_found_among_the_parents_replies(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    mention = fake.post_as("alice", "@toots alpha")
    (bot,), ledger = reply_bots(target(fake))
    fake.fail_next(Answer(500, {"error": "scripted"}), act_first=True)  # the reply is made, its answer lost
    assert bot.reply_tick().outcome == "posted"
    (reply,) = fake.by("toots")
    assert reply.in_reply_to_id == mention.id
    (record,) = ledger.history("bot")
    assert (record.remote_id, record.note) == (reply.id, "found by reconciliation")
    after = [(r.method, r.path, r.status) for r in fake.requests][-2:]
    assert after == [("POST", "/api/v1/statuses", 500), ("GET", f"/api/v1/statuses/{mention.id}/context", 200)]


def test_the_bot_never_answers_its_own_posts(fake: FakeMastodon, reply_bots: ReplyBots, tmp_path: Path) -> None:
    fake.notify_self = True  # Mastodon would not even tell it
    (tmp_path / "posts.txt").write_text("@toots alpha\n", encoding="utf-8")
    (bot,), ledger = reply_bots(target(fake), bots={"bot": "posts: posts.txt"})
    assert bot.tick().outcome == "posted"
    assert [(n.username, n.author) for n in fake.notifications] == [("toots", "toots")]
    result = bot.reply_tick()
    assert result.outcome == "empty", result
    assert fake.texts() == ["@toots alpha"] and parents(ledger) == []
    assert bot.target.me() == "toots"


def test_a_parent_deleted_before_the_reply_fails_that_reply_only(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    mention = fake.post_as("alice", "@toots alpha")
    (bot,), ledger = reply_bots(target(fake), bots={"bot": "review: true"})
    assert bot.reply_tick().outcome == "empty"
    (queued,) = ledger.queued("bot")
    assert ledger.review(queued, True)
    fake.delete(mention.id)
    result = bot.reply_tick()
    assert result.outcome == "failed" and "it was deleted" in result.message, result
    assert fake.by("toots") == [] and ledger.claimed("bot") is None
    (failed,) = ledger.latest("bot", 5, (FAILED,))
    assert "HTTP 404: The post you are trying to reply to does not appear to exist." in (failed.reason or "")
    fake.post_as("bob", "@toots bravo")
    (bot,), _ = reply_bots(target(fake), worker=bot.worker)  # the bot goes on (now without review)
    assert bot.reply_tick().outcome == "posted"
    assert [s.text for s in fake.by("toots")] == ["@bob yankee"]


def test_a_429_while_listening_waits_and_loses_nothing(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    fake.post_as("alice", "@toots alpha")
    (bot,), ledger = reply_bots(target(fake))
    fake.rate_limit_listening(120)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "HTTP 429" in result.message, result
    assert result.retry_at is not None and timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=122)
    assert bot.reply_tick().outcome == "waiting" and len(listened(fake)) == 1  # the instance is not asked again before the reset
    assert fake.by("toots") == [] and parents(ledger) == []
    ledger.wait_until("bot", None)  # the reset time has come
    assert bot.reply_tick().outcome == "posted"
    assert [s.text for s in fake.by("toots")] == ["@alice zulu"]


def test_an_account_flagged_as_a_bot_is_answered_only_when_named(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    first = fake.post_as("robot", "@toots alpha", bot=True)
    (bot,), ledger = reply_bots(target(fake))
    result = bot.reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message, result
    assert fake.by("toots") == []
    assert parents(ledger) == [(first.id, first.id, 0, "robot is a bot not named in reply.bots")]
    fake.post_as("robot", "@toots bravo", bot=True)
    (bot,), _ = reply_bots(target(fake), "bots: [robot]", worker=bot.worker)
    assert bot.reply_tick().outcome == "posted"
    assert [s.text for s in fake.by("toots")] == ["@robot yankee"]


def test_a_thread_with_a_person_stops_at_max_depth(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    (bot,), ledger = reply_bots(target(fake), "max_depth: 3, max_per_thread: 10")
    root = fake.post_as("alice", "@toots alpha")
    assert bot.reply_tick().outcome == "posted"  # at depth 1
    second = fake.post_as("alice", "@toots bravo", in_reply_to=fake.by("toots")[-1].id)
    assert bot.reply_tick().outcome == "posted"  # at depth 3
    third = fake.post_as("alice", "@toots charlie", in_reply_to=fake.by("toots")[-1].id)
    result = bot.reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message, result
    assert [s.text for s in fake.by("toots")] == ["@alice zulu", "@alice yankee"]
    assert parents(ledger) == [
        (root.id, root.id, 0, None), (second.id, root.id, 2, None), (third.id, root.id, 4, "max_depth: a reply would be at depth 5 (most 3)"),
    ]  # fmt: skip
    replies = fake.by("toots")
    assert [r.in_reply_to_id for r in replies] == [root.id, second.id]


def test_mentions_beyond_one_page_are_read_by_the_link_header(fake: FakeMastodon, reply_bots: ReplyBots) -> None:
    mentions = [fake.post_as(f"fan{n}", f"@toots echo {n}") for n in range(45)]
    (bot,), _ = reply_bots(target(fake))
    heard = bot.target.incoming([])
    assert [item.id for item in heard] == [m.id for m in mentions]  # all of them, oldest first
    assert heard[0].text == "echo 0" and heard[0].author == "fan0" and heard[0].link == f"{mentions[0].id} @fan0 public"
    first, second = listened(fake)
    assert "max_id" not in first and second["max_id"] == fake.notifications[5].id  # the oldest of the first page
