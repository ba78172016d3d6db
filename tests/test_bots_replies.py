"""Reply bots on the local outbox: what they hear, what they answer (once each, ever), and the
guards that stop two bots from talking forever. The targets' own listening (Reddit, X, Mastodon,
Bluesky) is tested with each target against its fake service."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import Farm, wait_for

from botkit.bots.bot import Bot
from botkit.bots.daemon import run_once
from botkit.bots.ledger import POSTED, Ledger
from botkit.bots.review import review
from botkit.bots.targets import Incoming
from botkit.cli import main

from zones import WEST

OUTBOX = "kind: outbox"
Make = Callable[..., tuple[list[Bot], Ledger]]


def by_name(bots: list[Bot]) -> dict[str, Bot]:
    return {bot.name: bot for bot in bots}


def outbox_lines(tmp_path: Path, bot: str) -> list[str]:
    path = tmp_path / "outbox" / f"{bot}.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_a_bot_answers_another_bots_post_once_with_its_reply_model(reply_bots: Make, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt, reply: {bots: [answerer]}", "answerer": "reply: {bots: [poster]}"})
    bot = by_name(bots)
    assert bot["poster"].tick().outcome == "posted"
    first = bot["answerer"].reply_tick()
    assert first.outcome == "posted", first
    assert "heard" not in first.message  # a post's message, not the listening summary
    again = bot["answerer"].reply_tick()
    assert again.outcome == "empty" and "0 new replies" in again.message
    (reply,) = ledger.latest("answerer", 5, (POSTED,))
    assert reply.text == "zulu" and reply.reply_to == "#1"  # the model read its parent
    assert outbox_lines(tmp_path, "answerer")[0].endswith("re #1: zulu")
    # The parent's words were kept only until the reply went out.
    assert ledger.parents_of("answerer", [reply.id]) == {reply.id: ("", str(tmp_path / "outbox" / "poster.txt"))}
    # A restart (config read again, the generators loaded again) hears the same post and does not answer it again.
    bots, ledger = reply_bots(
        OUTBOX, bots={"poster": "posts: posts.txt, reply: {bots: [answerer]}", "answerer": "reply: {bots: [poster]}"}, worker=bot["answerer"].worker
    )
    assert by_name(bots)["answerer"].reply_tick().outcome == "empty"
    assert len(ledger.history("answerer")) == 1


def test_status_and_history_show_replies(reply_bots: Make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "posts.txt").write_text("alpha\nbravo\n", encoding="utf-8")
    bots, _ = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "answerer": "reply: {bots: [poster], cooldown: 1h}"})
    bot = by_name(bots)
    bot["poster"].tick(), bot["poster"].tick(), bot["answerer"].reply_tick()
    config = str(tmp_path / "config.yaml")
    assert main(["status", config]) == 0
    out = capsys.readouterr().out
    assert "replies:    1 answered, 1 skipped by the guards or filters, 0 waiting; listening every 1s" in out
    assert main(["history", "answerer", config]) == 0
    assert capsys.readouterr().out.rstrip().endswith("#3             re #1: zulu")


def test_two_bots_talking_stop_at_the_depth_limit_and_never_answer_themselves(reply_bots: Make, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, "max_depth: 3, max_per_thread: 10", bots={"a": "posts: posts.txt, reply: {bots: [b]}", "b": "reply: {bots: [a]}"})
    bot = by_name(bots)
    bot["a"].tick()
    for _ in range(6):  # far more rounds than the depth allows
        bot["b"].reply_tick()
        bot["a"].reply_tick()
    depths = [post.depth for post in ledger.posted("outbox")]
    assert depths == [0, 1, 2, 3]  # a's post, b's reply, a's answer, b's last word: nothing at depth 4
    assert len(ledger.history("a")) == 2 and len(ledger.history("b")) == 2
    skipped = [line for line in _skips(ledger, "a")]
    assert any("max_depth" in why for why in skipped)
    assert not any(post.bot == "a" for post in _answered_parents(ledger, "a"))  # a never answered itself


def _skips(ledger: Ledger, bot: str) -> list[str]:
    from sqlalchemy import select

    r = ledger.t["parents"]
    with ledger.engine.connect() as conn:
        return [row.skipped for row in conn.execute(select(r.c.skipped).where(r.c.bot == bot, r.c.skipped.is_not(None)))]


def _answered_parents(ledger: Ledger, bot: str) -> list[object]:
    from sqlalchemy import select

    r = ledger.t["parents"]
    with ledger.engine.connect() as conn:
        authors = list(conn.execute(select(r.c.author).where(r.c.bot == bot)).scalars())
    return [type("P", (), {"bot": author}) for author in authors]


def test_other_bots_are_answered_only_when_named(reply_bots: Make, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "shy": ""})
    bot = by_name(bots)
    bot["poster"].tick()
    result = bot["shy"].reply_tick()
    assert result.outcome == "empty" and "1 skipped" in result.message
    assert ledger.history("shy") == []
    assert _skips(ledger, "shy") == ["poster is a bot not named in reply.bots"]


def test_thread_cap_and_author_cooldown_hold(reply_bots: Make, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("alpha\nbravo\ncharlie\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "fan": "reply: {bots: [poster], cooldown: 1h}"})
    bot = by_name(bots)
    for _ in range(3):
        bot["poster"].tick()
    bot["fan"].reply_tick()  # three posts by one author: the cooldown lets one through
    assert [c.text for c in ledger.latest("fan", 5, (POSTED,))] == ["zulu"]
    assert sorted(why.split(":")[0] for why in _skips(ledger, "fan")) == ["cooldown", "cooldown"]


def test_decay_is_drawn_once_per_parent_and_repeats_after_a_restart() -> None:
    from botkit.bots.replies import chance

    deep = [Incoming(id=f"t{i}", text="x", author="u", thread="t", depth=5, link=f"t{i}") for i in range(400)]
    odds = [chance("bot", item, 0.7) for item in deep]
    assert odds == [chance("bot", item, 0.7) for item in deep]
    answered = sum(draw < p for p, draw in odds) / len(deep)
    assert abs(answered - 0.7**4) < 0.06
    assert chance("bot", Incoming(id="m", text="x", author="u", thread="m", depth=1, link="m"), 0.7)[0] == 1.0


def test_replies_wait_for_review_and_the_reviewer_sees_the_parent(reply_bots: Make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "careful": "review: true, reply: {bots: [poster]}"})
    bot = by_name(bots)
    bot["poster"].tick()
    result = bot["careful"].reply_tick()
    assert result.outcome == "empty" and "1 repl(ies) wait for review" in result.message
    (queued,) = ledger.queued("careful")
    assert queued.reply_to == "#1"
    answers = iter(["a"])
    shown: list[str] = []
    assert review(ledger, "careful", lambda prompt: next(answers), shown.append).approved == 1
    assert shown[1:] == ["in reply to: alpha", queued.text]
    assert bot["careful"].reply_tick().outcome == "posted"


def test_the_console_shows_what_a_queued_reply_answers(reply_bots: Make, tmp_path: Path) -> None:
    from console_farm import BEARER, TOKEN
    from starlette.testclient import TestClient

    from botkit.config import load_config
    from botkit.console.app import create_app

    (tmp_path / "posts.txt").write_text("alpha <b>bold</b>\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "careful": "review: true, reply: {bots: [poster]}"})
    bot = by_name(bots)
    bot["poster"].tick()
    bot["careful"].reply_tick()
    with TestClient(create_app(load_config(tmp_path / "config.yaml"), ledger, TOKEN)) as client:
        page = client.get("/bots/careful", headers=BEARER).text
        farm = client.get("/", headers=BEARER).text
        status = client.get("/api/status", headers=BEARER).json()
    assert '<blockquote class="parent">in reply to: alpha &lt;b&gt;bold&lt;/b&gt;</blockquote>' in page
    assert '<small class="replies">replies: 1 answered, 0 skipped</small>' in farm
    replies = {bot["name"]: bot["replies"] for bot in status["bots"]}
    assert replies == {"poster": {"answered": 0, "skipped": 0}, "careful": {"answered": 1, "skipped": 0}}  # the fixture gives every bot a reply: block


def test_run_once_listens_and_a_reply_only_bot_needs_a_reply_model(reply_bots: Make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, bots={"poster": "posts: posts.txt", "answerer": "reply: {bots: [poster]}"})
    results = run_once(bots, ledger)
    assert [(r.bot, r.outcome) for r in results] == [("poster", "empty"), ("poster", "posted"), ("answerer", "posted")]
    config = tmp_path / "bad.yaml"
    config.write_text("bots:\n  lonely: {reply: {every: 1m}}\n", encoding="utf-8")
    assert main(["farm", "build", str(config)]) == 1
    assert "bots.lonely: a bot that only replies needs reply.model: (a reply model)" in capsys.readouterr().err
    posting_model = tmp_path / "weights" / "plain"
    posting_model.mkdir(parents=True)
    (posting_model / "config.json").write_text('{"training": {"conditional": false}}', encoding="utf-8")
    config.write_text("bots:\n  talker: {model: weights/plain, reply: {every: 1m}}\n", encoding="utf-8")
    assert main(["run", str(config), "--once"]) == 1
    assert f"bots.talker.model: {posting_model} is not a reply model (its corpus had no parents)" in capsys.readouterr().err


# -- two daemons killed at random ---------------------------------------------------------------

PARENTS = 24


@pytest.mark.slow  # SIGKILLs at random moments: tens of seconds; ./task test runs it, -m 'not slow' skips it
def test_two_daemons_killed_at_random_answer_each_post_once(tmp_path: Path, reply_model: Path, ledger_url: str) -> None:
    """A poster and two reply bots on the outbox, run by two daemons that are SIGKILLed and
    restarted at random: every post is answered by each reply bot exactly once, in the ledger
    and in the outbox files, and no claim is left behind."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "golf"]
    (tmp_path / "posts.txt").write_text("".join(f"{words[i % 6]} {i}\n" for i in range(PARENTS)), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "lease: 1s\n"
        "defaults: {filters: none, retry: {attempts: 2, backoff: 0.05s}, generate: {temperature: 0.1},"
        f" reply: {{model: {reply_model}, every: 0.3s, cooldown: 0s, max_per_thread: 1, bots: [poster]}}}}\n"
        "bots:\n"
        "  poster: {posts: posts.txt, schedule: {every: 0.3s}, reply: null}\n"
        "  r1: {}\n"
        "  r2: {}\n",
        encoding="utf-8",
    )
    farm = Farm(config, {"BOTKIT_DB": ledger_url, "TZ": WEST})
    rng = random.Random(12)
    kills = 0
    farm.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(1.5, 3.0))
            farm.kill_one(rng)
            kills += 1

        def settled() -> bool:
            return all(len(_replies(tmp_path, bot)) == PARENTS for bot in ("r1", "r2"))

        done = wait_for(settled, 120)
    finally:
        farm.stop()
    out = farm.output()
    print(f"{kills} kills, {farm.started} processes started")
    assert done, f"r1 {len(_replies(tmp_path, 'r1'))}, r2 {len(_replies(tmp_path, 'r2'))} of {PARENTS}\n{out}"
    with Ledger(ledger_url) as ledger:
        posts = {f"#{c.id}" for c in ledger.latest("poster", 100, (POSTED,))}
        for bot in ("r1", "r2"):
            answered = _replies(tmp_path, bot)
            assert sorted(answered) == sorted(posts), bot  # each post once: none twice, none missed
            assert sorted(c.reply_to for c in ledger.latest(bot, 100, (POSTED,))) == sorted(posts)
            assert ledger.claimed(bot) is None
    assert "Traceback" not in out, out


def _replies(folder: Path, bot: str) -> list[str]:
    """The parents a bot's outbox file answers, one entry per reply line (``re #12: ...``)."""
    return [line.split("  ", 2)[2].split(":", 1)[0].removeprefix("re ") for line in outbox_lines(folder, bot)]


def test_what_is_older_than_max_age_or_twice_in_one_answer_is_decided_once(reply_bots: Make, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    bots, ledger = reply_bots(OUTBOX, "max_age: 1h")
    (bot,) = bots
    assert bot.replier is not None
    now = datetime.now(UTC)
    old = Incoming(id="old", text="alpha", author="someone", thread="old", depth=0, link="old", created_at=now - timedelta(hours=2))
    new = Incoming(id="new", text="bravo", author="someone", thread="new", depth=0, link="new", created_at=now - timedelta(minutes=5))
    own = Incoming(id="own", text="charlie", author="me", thread="own", depth=0, link="own")
    assert bot.replier.take([old, new, new, own], me="me", now=now) == (1, 1)
    assert _skips(ledger, "bot") == ["max_age: posted at " + f"{now - timedelta(hours=2):%Y-%m-%d %H:%M}Z"]
    assert [c.text for c in ledger.latest("bot", 5)] == ["yankee"]
    assert ledger.unseen("bot", ["old", "new", "own"]) == {"own"}  # the bot's own post is not even recorded
    assert bot.replier.take([old, new], me="me", now=now) == (0, 0)


def test_a_reply_that_waited_longer_than_max_age_is_dropped(reply_bots: Make, tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text("alpha\n", encoding="utf-8")
    bots, ledger = reply_bots(OUTBOX, "max_age: 1s", bots={"poster": "posts: posts.txt", "careful": "review: true, reply: {bots: [poster]}"})
    bot = by_name(bots)
    bot["poster"].tick()
    bot["careful"].reply_tick()
    (queued,) = ledger.queued("careful")
    assert ledger.parents_of("careful", [queued.id])[queued.id][0] == "alpha"  # shown to the reviewer meanwhile
    time.sleep(1.2)  # nobody reviewed it in time
    assert bot["careful"].reply_tick().outcome == "empty"
    dropped = ledger.candidate("careful", queued.id)
    assert dropped is not None and dropped.state == "failed" and dropped.reason == "max_age: not posted within 1s of being written"
    assert ledger.parents_of("careful", [queued.id])[queued.id][0] == ""
    assert ledger.history("careful") == []
