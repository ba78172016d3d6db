"""Reply bots on Reddit: real praw, a praw.ini site per bot account, the fake Reddit's inbox,
subreddit listings and ``POST /api/comment``. Every reply is checked where it lands: in the fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from botkit.bots.bot import Bot
from botkit.bots.ledger import FAILED, POSTED, Ledger, utcnow
from botkit.errors import ConfigError

from fakes.reddit import Comment, FakeReddit, isolated_praw

CLIENT, SECRET = "bot-app", "app-secret-value"
ACCOUNTS = {"applebot": "apple-password", "pearbot": "pear-password"}
SUB, OTHER = "BotTalk", "Elsewhere"
TARGET = f"kind: reddit, subreddit: r/{SUB}, contact: u/owner"
APPLE = {"applebot": "target: {site: applebot}"}
Make = Callable[..., tuple[list[Bot], Ledger]]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReddit]:
    """The fake Reddit, and a praw.ini (in a temp $XDG_CONFIG_HOME) with one site per bot account,
    each named as its account (so the config's bot names are the accounts' names)."""
    ini = isolated_praw(tmp_path, monkeypatch)
    with FakeReddit(clients={CLIENT: SECRET}, users=dict(ACCOUNTS)) as server:
        server.add_posts(SUB, [])
        server.add_posts(OTHER, [])
        sites = [server.praw_ini(name, client_id=CLIENT, client_secret=SECRET, username=name, password=pw) for name, pw in ACCOUNTS.items()]
        ini.write_text("\n".join(sites), encoding="utf-8")
        yield server


def by_name(bots: list[Bot]) -> dict[str, Bot]:
    return {bot.name: bot for bot in bots}


def bodies(fake: FakeReddit, author: str) -> list[tuple[str, str]]:
    """(parent fullname, body) of every comment ``author`` made, oldest first."""
    return [(parent, c.body) for parent, c in _with_parents(fake) if c.author == author]


def _with_parents(fake: FakeReddit) -> list[tuple[str, Comment]]:
    return [(c.parent_name(post), c) for post, c in fake.all_comments()]


def api_paths(fake: FakeReddit) -> list[str]:
    return [r.path.rstrip("/") for r in fake.api_requests()]


def test_a_reply_to_the_bots_comment_is_answered_once_even_after_a_restart(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "a question", author="someone")
    mine = fake.comment(post, "an answer", author="applebot")
    theirs = fake.comment(mine, "alpha", author="someone")
    bots, ledger = reply_bots(TARGET, bots=APPLE)
    (bot,) = bots
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    assert bodies(fake, "applebot") == [(post, "an answer"), (theirs, "zulu")]  # under the parent, with the model's answer
    (reply,) = ledger.latest("applebot", 5, (POSTED,))
    assert reply.reply_to == theirs and ledger.history("applebot")[0].url.startswith(f"https://www.reddit.com/r/{SUB}/comments/")
    assert fake.depth(fake.comments_by("applebot")[-1].fullname) == 3
    assert bot.reply_tick().outcome == "empty"
    # Nothing is marked read, and nobody but the inbox was asked: the bot watches no subreddit.
    assert not any(r.method == "POST" and "read" in r.path for r in fake.requests)
    assert {r.query.get("mark") for r in fake.api_requests() if r.path.startswith("/message/")} == {"false"}
    assert not any(path.startswith("/r/") for path in api_paths(fake))
    (again,), ledger = reply_bots(TARGET, bots=APPLE, worker=bot.worker)  # a restart: config and ledger read again
    assert again.reply_tick().outcome == "empty"
    assert len(fake.comments_by("applebot")) == 2 and len(ledger.history("applebot")) == 1


def test_a_mention_and_a_reply_to_the_bots_post_are_answered(reply_bots: Make, fake: FakeReddit) -> None:
    own_post = fake.post(SUB, "the bot's post", author="applebot")
    on_post = fake.comment(own_post, "bravo", author="someone")
    elsewhere = fake.post(OTHER, "a thread elsewhere", author="someone")
    mention = fake.comment(elsewhere, "u/applebot charlie", author="another")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    assert [bot.reply_tick().outcome for _ in range(3)] == ["posted", "posted", "empty"]
    assert sorted(bodies(fake, "applebot")) == sorted([(on_post, "yankee"), (mention, "xray")])  # the summons is not part of what it answers
    depths = {parent: depth for parent, depth in _parent_depths(ledger, "applebot")}
    assert depths == {on_post: 1, mention: 1}


def _parent_depths(ledger: Ledger, bot: str) -> list[tuple[str, int]]:
    from sqlalchemy import select

    r = ledger.t["parents"]
    with ledger.engine.connect() as conn:
        return [(row.remote_id, row.depth) for row in conn.execute(select(r.c.remote_id, r.c.depth).where(r.c.bot == bot))]


@pytest.mark.parametrize("fault", ["dropped", "http-500"])
def test_a_reply_whose_answer_is_lost_is_found_not_posted_twice(reply_bots: Make, fake: FakeReddit, fault: str, zone: str) -> None:
    post = fake.post(SUB, "a post", author="applebot")
    parent = fake.comment(post, "alpha", author="someone")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    if fault == "dropped":
        fake.drop_comment(post_first=True)  # Reddit made the comment, the answer never came
    else:
        fake.fail_comment(500, post_first=True)  # prawcore would resend it itself: the bot must look it up
    result = bot.reply_tick()
    assert result.outcome == "posted", result
    assert bodies(fake, "applebot") == [(parent, "zulu")]  # once
    comments = [r for r in fake.api_requests() if r.path.rstrip("/") == "/api/comment"]
    assert len(comments) == 1
    assert "/user/applebot/comments" in api_paths(fake)
    (record,) = ledger.history("applebot")
    assert record.note == "found by reconciliation" and record.remote_id == fake.comments_by("applebot")[0].id
    assert bot.reply_tick().outcome == "empty" and len(fake.comments_by("applebot")) == 1


def test_the_bot_never_answers_itself(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "alpha", author="applebot")
    fake.comment(post, "u/applebot alpha", author="applebot")  # its own comment, naming itself, in a watched subreddit
    (bot,), ledger = reply_bots(TARGET, "watch: [BotTalk]", bots=APPLE)
    result = bot.reply_tick()
    assert result.outcome == "empty" and "heard 0" in result.message, result
    assert bodies(fake, "applebot") == [(post, "u/applebot alpha")]
    assert _parent_depths(ledger, "applebot") == []


def test_a_parent_deleted_before_the_reply_fails_that_reply_and_the_bot_goes_on(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "a post", author="applebot")
    first = fake.comment(post, "alpha", author="ann")
    second = fake.comment(post, "bravo", author="bob")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    assert bot.reply_tick().outcome == "posted"  # both heard; the older answered
    fake.delete(second)  # its author deleted it while its reply waited
    result = bot.reply_tick()
    assert result.outcome == "failed" and "DELETED_COMMENT" in result.message, result
    (failed,) = ledger.latest("applebot", 5, (FAILED,))
    assert failed.reply_to == second and ledger.claimed("applebot") is None
    assert bot.reply_tick().outcome == "empty"  # never tried again
    third = fake.comment(post, "charlie", author="cid")
    assert bot.reply_tick().outcome == "posted"
    assert bodies(fake, "applebot") == [(first, "zulu"), (third, "xray")]


def test_a_locked_thread_fails_the_reply(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "a post", author="applebot")
    fake.comment(post, "alpha", author="ann")
    fake.comment(post, "bravo", author="bob")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    assert bot.reply_tick().outcome == "posted"
    fake.lock(post)
    result = bot.reply_tick()
    assert result.outcome == "failed" and "THREAD_LOCKED" in result.message
    assert len(fake.comments_by("applebot")) == 1


def test_a_429_while_listening_waits_and_loses_nothing(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "a post", author="applebot")
    parent = fake.comment(post, "alpha", author="someone")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    fake.fail_next(429, headers={"retry-after": "120"})
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "429" in result.message, result
    assert timedelta(seconds=100) < result.retry_at - utcnow() <= timedelta(seconds=121)
    assert fake.comments_by("applebot") == [] and _parent_depths(ledger, "applebot") == []
    assert bot.reply_tick().outcome == "waiting"  # the ledger keeps it waiting
    ledger.wait_until("applebot", None)
    assert bot.reply_tick().outcome == "posted"
    assert bodies(fake, "applebot") == [(parent, "zulu")]


def test_reddits_ratelimit_on_a_reply_waits_and_keeps_the_reply(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "a post", author="applebot")
    parent = fake.comment(post, "alpha", author="someone")
    (bot,), ledger = reply_bots(TARGET, bots=APPLE)
    fake.fail_comment(ratelimit_minutes=9)
    result = bot.reply_tick()
    assert result.outcome == "waiting" and "Take a break for 9 minutes" in result.message, result
    assert timedelta(minutes=8, seconds=50) < result.retry_at - utcnow() <= timedelta(minutes=9, seconds=1)
    assert fake.comments_by("applebot") == [] and ledger.claimed("applebot") is None
    ledger.wait_until("applebot", None)
    assert bot.reply_tick().outcome == "posted" and bodies(fake, "applebot") == [(parent, "zulu")]


def test_watch_answers_new_comments_and_posts_in_that_subreddit_only(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "charlie", author="poster")
    comment = fake.comment(post, "alpha", author="commenter")
    other = fake.post(OTHER, "delta", author="poster2")
    fake.comment(other, "echo", author="commenter2")
    (bot,), ledger = reply_bots(TARGET, "watch: [r/BotTalk]", bots=APPLE)
    outcomes = [bot.reply_tick().outcome for _ in range(3)]
    assert outcomes == ["posted", "posted", "empty"]
    assert sorted(bodies(fake, "applebot")) == sorted([(post, "xray"), (comment, "zulu")])  # nothing in r/Elsewhere
    assert {"/r/BotTalk/comments", "/r/BotTalk/new"} <= set(api_paths(fake))


def test_a_bot_that_only_replies_needs_no_subreddit_but_a_bot_that_posts_does(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "charlie", author="poster")
    (bot,), _ = reply_bots("kind: reddit, contact: u/owner", "watch: [r/BotTalk]", bots=APPLE)  # no subreddit: key
    assert [bot.reply_tick().outcome for _ in range(2)] == ["posted", "empty"]
    assert bodies(fake, "applebot") == [(post, "xray")]
    with pytest.raises(ConfigError, match=r"bots\.applebot\.target\.subreddit: required for a bot that posts"):
        reply_bots("kind: reddit, contact: u/owner", bots={"applebot": "target: {site: applebot}, posts: posts.txt"})


def test_a_deep_comment_is_placed_by_its_ancestors_and_skipped_past_max_depth(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(OTHER, "a post", author="someone")
    c1 = fake.comment(post, "level 1", author="ann")
    c2 = fake.comment(c1, "level 2", author="bob")
    c3 = fake.comment(c2, "level 3", author="applebot")
    deep = fake.comment(c3, "alpha", author="cid")  # answers the bot at depth 4: a reply would be at depth 5
    mention = fake.comment(c1, "u/applebot bravo", author="dan")  # depth 2
    (bot,), ledger = reply_bots(TARGET, "max_depth: 4, max_per_thread: 10", bots=APPLE)
    assert bot.reply_tick().outcome == "posted"
    assert bot.reply_tick().outcome == "empty"
    assert dict(_parent_depths(ledger, "applebot")) == {deep: 4, mention: 2}  # the inbox gives no depth: ancestors were looked up
    assert bodies(fake, "applebot") == [(c2, "level 3"), (mention, "yankee")]
    info = [r for r in fake.api_requests() if r.path.rstrip("/") == "/api/info"]
    assert len(info) == 2  # one call per level, for every new comment at once
    assert info[0].query["id"] == f"{c1},{c3}" or info[0].query["id"] == f"{c3},{c1}"


def test_two_bots_talking_in_one_subreddit_stop_at_max_depth(reply_bots: Make, fake: FakeReddit, tmp_path: Path) -> None:
    """pearbot posts; applebot watches the subreddit; each answers the other (reply.bots), through
    its inbox or the watch, until a reply would be deeper than max_depth."""
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(
        TARGET,
        "max_depth: 3, max_per_thread: 10",
        bots={
            "pearbot": "posts: posts.txt, target: {site: pearbot}, reply: {bots: [applebot]}",
            "applebot": f"target: {{site: applebot}}, reply: {{bots: [pearbot], watch: [{SUB}]}}",
        },
    )
    bot = by_name(bots)
    assert bot["pearbot"].tick().outcome == "posted"
    for _ in range(5):  # far more rounds than the depth allows
        bot["applebot"].reply_tick()
        bot["pearbot"].reply_tick()
    (post,) = fake.submissions
    comments = fake.all_comments()
    assert [(c.author, fake.depth(c.fullname)) for _, c in comments] == [("applebot", 1), ("pearbot", 2), ("applebot", 3)]
    assert all(fake.find(c.parent_name(p)) is not None for p, c in comments)
    assert len(ledger.history("applebot")) == 2 and len(ledger.history("pearbot")) == 2  # its post and one reply
    skipped = {remote_id: depth for remote_id, depth in _parent_depths(ledger, "pearbot")}
    assert skipped[comments[-1][1].fullname] == 3  # heard, not answered: a reply would be at depth 4
    # Neither answered itself: every comment's parent is the other bot's.
    authors = {f"t3_{post.post.id}": "pearbot", **{c.fullname: c.author for _, c in comments}}
    assert all(authors[c.parent_name(p)] != c.author for p, c in comments)


def test_other_config_bots_are_ignored_unless_named(reply_bots: Make, fake: FakeReddit) -> None:
    post = fake.post(SUB, "alpha", author="pearbot")  # pearbot is a bot of this config
    (bot, _), ledger = reply_bots(TARGET, f"watch: [{SUB}]", bots={**APPLE, "pearbot": "target: {site: pearbot}"})
    result = bot.reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message
    assert fake.comments_by("applebot") == [] and _parent_depths(ledger, "applebot") == [(post, 0)]


def test_config_bots_are_known_by_their_accounts_whatever_their_names(reply_bots: Make, fake: FakeReddit) -> None:
    """Bots named apple and pear post as u/applebot and u/pearbot: pear's post is a bot's (skipped
    unless apple's reply.bots names pear), and naming pear lets apple answer it."""
    first = fake.post(SUB, "alpha", author="pearbot")
    farm = {"apple": "target: {site: applebot}", "pear": "target: {site: pearbot}"}
    (apple, _), ledger = reply_bots(TARGET, f"watch: [{SUB}]", bots=farm)
    assert "1 skipped" in apple.reply_tick().message
    assert fake.comments_by("applebot") == []
    second = fake.post(SUB, "bravo", author="pearbot")
    (apple, _), ledger = reply_bots(TARGET, f"watch: [{SUB}], bots: [pear]", bots=farm, worker=apple.worker)
    assert apple.reply_tick().outcome == "posted"
    assert [body for _, body in bodies(fake, "applebot")] == ["yankee"]
    assert {remote_id for remote_id, _ in _parent_depths(ledger, "apple")} == {first, second}


def test_pairs_fetched_from_reddit_train_a_reply_model_that_answers_a_comment_once(fake: FakeReddit, tmp_path: Path) -> None:
    """The whole path of a conversation bot: `botkit fetch reddit --comments` makes a pair corpus,
    `botkit train` a reply model from it, and a reply bot with that model answers a new post in a
    watched subreddit exactly once (its text: whatever a one-minute model writes)."""
    from botkit.bots.bot import build_bots
    from botkit.bots.ledger import store_url
    from botkit.cli import main
    from botkit.config import load_config
    from botkit.corpus import read_corpus

    from fakes.reddit import Post

    now = utcnow().timestamp()
    posts = [
        Post(f"q{i}", title, "Pairs", now - 3600 - i, score=50, comments=[Comment(f"c{i}", f"{answer} {i}"), Comment(f"r{i}", f"thanks {i}", parent=f"c{i}")])
        for i, (title, answer) in enumerate([("alpha", "zulu"), ("bravo", "yankee"), ("charlie", "xray")] * 8)
    ]
    fake.add_posts("Pairs", posts)
    corpus = tmp_path / "pairs.jsonl"
    assert main(["fetch", "reddit", "--subreddit", "Pairs", "--site", "pearbot", "--comments", "-o", str(corpus)]) == 0
    docs = list(read_corpus(corpus))
    assert len(docs) == 48 and {(d.parent, d.text) for d in docs} >= {("alpha", "zulu 0"), ("zulu 0", "thanks 0")}
    tiny = ["--epochs", "2", "--rnn-size", "16", "--embedding-size", "8", "--window", "16", "--sample-every", "0"]
    assert main(["train", str(corpus), "-o", str(tmp_path / "weights" / "talk"), *tiny]) == 0
    config = tmp_path / "config.yaml"
    config.write_text(
        "bots:\n  applebot:\n    filters: none\n    reply: {model: weights/talk, every: 1m, watch: [BotTalk]}\n"
        f"    target: {{{TARGET}, site: applebot, live: true}}\n",
        encoding="utf-8",
    )
    parent = fake.post(SUB, "alpha", author="someone")
    with Ledger(store_url("botkit.db", tmp_path)) as ledger:
        (bot,) = build_bots(load_config(config).bots, ledger, str(config))
        assert bot.reply_tick().outcome == "posted"
        again = bot.reply_tick()  # Reddit's default limits hold the next reply back 10 minutes; none is due anyway
        assert again.outcome == "waiting" and "0 new replies" in again.message
    assert [p for p, _ in bodies(fake, "applebot")] == [parent]
