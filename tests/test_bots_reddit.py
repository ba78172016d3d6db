"""The reddit target end to end: real praw, configured only through a praw.ini site per bot,
talking HTTP to the fake Reddit (``POST /api/submit``, ``/api/v1/me``, ``/user/NAME/submitted``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url, utcnow
from botkit.cli import main
from botkit.config import load_config

from claims import claim, dead_worker
from fakes.reddit import FakeReddit, isolated_praw

CLIENT, SECRET = "bot-app", "app-secret-value"
ACCOUNTS = {"applebot": "apple-password", "pearbot": "pear-password"}
POSTS = ["What is the best apple?", "Apples, ranked", "An apple a day"]
SUB = "SubredditNN"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReddit]:
    """The fake Reddit, and a praw.ini (in a temp $XDG_CONFIG_HOME) with one site per bot account."""
    ini = isolated_praw(tmp_path, monkeypatch)
    with FakeReddit(clients={CLIENT: SECRET}, users=dict(ACCOUNTS)) as server:
        server.add_posts(SUB, [])
        sites = [server.praw_ini(name, client_id=CLIENT, client_secret=SECRET, username=name, password=pw) for name, pw in ACCOUNTS.items()]
        sites.append(server.praw_ini("wrongpw", client_id=CLIENT, client_secret=SECRET, username="pearbot", password="not-the-password"))
        sites.append(server.praw_ini("nopassword", client_id=CLIENT, client_secret=SECRET, username="pearbot"))
        sites.append(server.praw_ini("apple2bot", client_id=CLIENT, client_secret=SECRET, username="AppleBot", password=ACCOUNTS["applebot"]))
        sites.append(server.praw_ini("slowbot", client_id=CLIENT, client_secret=SECRET, username="applebot", password=ACCOUNTS["applebot"], timeout="1"))
        ini.write_text("\n".join(sites), encoding="utf-8")
        yield server


def write_config(tmp_path: Path, target: str, *, bots: tuple[str, ...] = ("apple",), posts: list[str] = POSTS) -> Path:
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    body = (
        "defaults:\n  posts: posts.txt\n  filters: none\n  retry: {attempts: 2, backoff: 0.01s}\n"
        f"  target: {{kind: reddit, subreddit: r/{SUB}, live: true, contact: u/owner, limits: {{min_interval: 0s, daily_cap: null}}, {target}}}\n"
        "bots:\n" + "".join(f"  {name}: {{target: {{site: {name}bot}}}}\n" for name in bots)
    )
    config = tmp_path / "config.yaml"
    config.write_text(body, encoding="utf-8")
    return config


def make_bots(config: Path, worker: str | None = None) -> tuple[list[Bot], Ledger]:
    ledger = Ledger(store_url("botkit.db", config.parent))
    return build_bots(load_config(config).bots, ledger, str(config), worker=worker), ledger


def test_posts_reach_the_subreddit_as_the_bot_account(tmp_path: Path, fake: FakeReddit) -> None:
    config = write_config(tmp_path, "flair_text: generated, signature: 'I am a bot.'")
    (bot,), ledger = make_bots(config)
    assert bot.tick().outcome == "posted"
    (sub,) = fake.submissions
    assert (sub.post.title, sub.post.author, sub.post.subreddit) == (POSTS[0], "applebot", SUB)
    assert sub.form["text"] == "I am a bot." and sub.form["flair_text"] == "generated" and sub.form["kind"] == "self"
    (record,) = ledger.history("apple")
    assert record.remote_id == sub.post.id and record.url == f"https://www.reddit.com/r/{SUB}/comments/{sub.post.id}/"
    agents = {r.user_agent for r in fake.requests}
    assert all("botkit/" in a and "bot apple; run by u/owner" in a for a in agents)
    ledger.close()


def test_title_and_body_mode(tmp_path: Path, fake: FakeReddit) -> None:
    config = write_config(tmp_path, "mode: title+body", posts=["A title\\nand the body,\\nin two lines"])
    (bot,), ledger = make_bots(config)
    assert bot.tick().outcome == "posted"
    assert (fake.submissions[0].post.title, fake.submissions[0].form["text"]) == ("A title", "and the body,\nin two lines")
    ledger.close()


def test_ratelimit_waits_the_time_reddit_gives(tmp_path: Path, fake: FakeReddit) -> None:
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    fake.fail_submit(ratelimit_minutes=9)
    result = bot.tick()
    assert result.outcome == "waiting" and "Take a break for 9 minutes" in result.message
    assert timedelta(minutes=8, seconds=50) < result.retry_at - utcnow() <= timedelta(minutes=9, seconds=1)
    assert fake.submissions == [] and ledger.claimed("apple") is None
    ledger.wait_until("apple", None)
    assert bot.tick().outcome == "posted" and fake.titles() == POSTS[:1]
    ledger.close()


def api_calls(fake: FakeReddit) -> list[tuple[str, str, int]]:
    """Every API call in order: (method, path without praw's trailing slash, the fake's status)."""
    return [(r.method, r.path.rstrip("/"), r.status) for r in fake.api_requests()]


RECONCILE = [("GET", "/api/v1/me", 200), ("GET", "/user/applebot/submitted", 200)]


def test_server_errors_are_retried_after_checking_nothing_went_out(tmp_path: Path, fake: FakeReddit) -> None:
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    fake.fail_submit(500)  # Reddit failed without posting: prawcore must not retry, the bot does
    result = bot.tick()
    assert result.outcome == "posted" and "found by reconciliation" not in result.message
    assert fake.titles() == POSTS[:1]
    assert api_calls(fake) == [("POST", "/api/submit", 500), *RECONCILE, ("POST", "/api/submit", 200)]
    ledger.close()


@pytest.mark.parametrize(
    ("fault", "status"),
    [(lambda fake: fake.fail_submit(500, post_first=True), 500), (lambda fake: fake.drop_submit(post_first=True), 0)],
    ids=["http-500", "dropped-connection"],
)
def test_a_post_whose_answer_is_lost_goes_out_once(tmp_path: Path, fake: FakeReddit, fault, status: int, zone: str) -> None:  # noqa: ANN001
    """prawcore would resend the submission itself (twice): the bot must find it instead."""
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    fault(fake)
    result = bot.tick()
    assert result.outcome == "posted" and "s00001" in result.message
    assert fake.titles() == POSTS[:1]
    assert api_calls(fake) == [("POST", "/api/submit", status), *RECONCILE]
    (record,) = ledger.history("apple")
    assert record.remote_id == "s00001" and ledger.claimed("apple") is None and ledger.waiting("apple") == len(POSTS) - 1
    assert bot.tick().outcome == "posted" and fake.titles() == POSTS[:2]  # and the queue goes on
    ledger.close()


def test_reads_keep_prawcores_retries(tmp_path: Path, fake: FakeReddit) -> None:
    """Only requests that change something skip prawcore's retries: a reconciliation read does not."""
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    fake.fail_submit(502, post_first=True)
    fake.fail_next(503, after=1)  # the submission is served, then /api/v1/me fails once
    assert bot.tick().outcome == "posted" and fake.titles() == POSTS[:1]
    assert api_calls(fake) == [("POST", "/api/submit", 502), ("GET", "/api/v1/me", 503), *RECONCILE]
    ledger.close()


def test_a_crash_after_submitting_is_reconciled_at_restart(tmp_path: Path, fake: FakeReddit, zone: str) -> None:
    config = write_config(tmp_path, "flair_id: null")
    (bot,), ledger = make_bots(config, worker=dead_worker())
    candidate = claim(bot)
    bot.target.post(candidate)  # Reddit has it; the process dies before the ledger does
    (restarted,), _ = make_bots(config)  # its predecessor's pid is gone: no waiting for its leases
    result = restarted.tick()
    assert result.outcome == "posted" and "s00001" in result.message
    assert restarted.tick().outcome == "posted"
    assert fake.titles() == POSTS[:2]  # nothing twice
    assert [r.remote_id for r in ledger.history("apple")] == ["s00002", "s00001"]
    ledger.close()


def test_a_claim_is_found_with_the_text_it_was_claimed_with(tmp_path: Path, fake: FakeReddit) -> None:
    """The signature changes between the claim and the restart: reconciliation still looks for what was sent."""
    posts = ["A title\\nand its body"]
    config = write_config(tmp_path, "mode: title+body, signature: 'I am a bot (v1).'", posts=posts)
    (bot,), ledger = make_bots(config, worker=dead_worker())
    candidate = claim(bot)
    assert candidate.rendered == "A title\nand its body\n\nI am a bot (v1)."
    bot.target.post(candidate)
    config = write_config(tmp_path, "mode: title+body, signature: 'I am a bot (v2).'", posts=posts)
    (restarted,), _ = make_bots(config)
    result = restarted.tick()
    assert result.outcome == "posted" and "found by reconciliation" in ledger.history("apple")[0].note
    (sub,) = fake.submissions
    assert (sub.post.title, sub.form["text"]) == ("A title", "and its body\n\nI am a bot (v1).")
    ledger.close()


@pytest.mark.parametrize(
    ("mode", "text", "title", "body"),
    [
        ("title", "Apples  &\\n pears <3", "Apples & pears <3", ""),  # one line, as Reddit titles are
        ("title+body", "Q&A:  <apples>\\nbody & <b>more</b>\\n  and  more", "Q&A:  <apples>", "body & <b>more</b>\n  and  more"),
    ],
    ids=["title", "title+body"],
)
def test_reconciliation_sees_through_what_reddit_normalises(tmp_path: Path, fake: FakeReddit, mode: str, text: str, title: str, body: str, zone: str) -> None:
    """Reddit's copy has its whitespace collapsed and ``&<>`` escaped: a lost answer still goes out once."""
    fake.normalise = True
    (bot,), ledger = make_bots(write_config(tmp_path, f"mode: {mode}", posts=[text, "next"]))
    fake.fail_submit(500, post_first=True)
    result = bot.tick()
    assert result.outcome == "posted" and "s00001" in result.message
    (sub,) = fake.submissions
    assert (sub.post.title, sub.form.get("text", "")) == (title, body)
    assert api_calls(fake) == [("POST", "/api/submit", 500), *RECONCILE]
    ledger.close()


def test_reconciliation_wants_the_same_body(tmp_path: Path, fake: FakeReddit) -> None:
    """A post with our title but another body (an earlier candidate's) is not ours: ours goes out."""
    (bot,), ledger = make_bots(write_config(tmp_path, "mode: title+body", posts=["Same title\\nfirst body", "Same title\\nsecond body"]))
    assert bot.tick().outcome == "posted"
    fake.fail_submit(500)  # not posted: the lookup finds only the first post, whose body differs
    assert bot.tick().outcome == "posted"
    assert [s.form["text"] for s in fake.submissions] == ["first body", "second body"]
    ledger.close()


def test_bots_of_one_reddit_user_share_its_limits(tmp_path: Path, fake: FakeReddit) -> None:
    config = write_config(tmp_path, "flair_id: null", bots=("apple", "apple2"))
    config.write_text(config.read_text().replace("min_interval: 0s", "min_interval: 1h"), encoding="utf-8")
    (apple, apple2), ledger = make_bots(config)
    assert apple.target.account() == apple2.target.account() == "reddit:applebot"  # sites applebot and apple2bot, user AppleBot
    assert apple.tick().outcome == "posted"
    result = apple2.tick()
    assert result.outcome == "waiting" and "minimum interval" in result.message
    assert fake.titles() == POSTS[:1]
    ledger.close()


def test_requests_have_praws_timeout(tmp_path: Path, fake: FakeReddit, monkeypatch: pytest.MonkeyPatch) -> None:
    """praw's own default (16 s) when the site sets none: well inside the 30 s claim lease."""
    seen: list[Any] = []
    send = requests.Session.request

    def spy(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return send(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    assert bot.tick().outcome == "posted"
    assert seen and set(seen) == {16}
    ledger.close()


def test_a_sites_own_timeout_applies(tmp_path: Path, fake: FakeReddit) -> None:
    """praw 8 ignores praw.ini's ``timeout``; the target applies it: a submission answered too late is looked up."""
    config = write_config(tmp_path, "flair_id: null", bots=("slow",))
    (bot,), ledger = make_bots(config)
    fake.submit_delay = 1.5  # the site's timeout is 1 s
    result = bot.tick()
    assert result.outcome == "posted" and fake.titles() == POSTS[:1]
    assert api_calls(fake) == [("POST", "/api/submit", 200), *RECONCILE]
    assert ledger.history("slow")[0].note == "found by reconciliation"
    ledger.close()


def test_bad_password_disables_that_bot_only(tmp_path: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "flair_id: null", bots=("apple", "wrongpw"))
    config.write_text(config.read_text().replace("site: wrongpwbot", "site: wrongpw"), encoding="utf-8")
    assert main(["run", str(config), "--once"]) == 1  # a disabled bot is a failed tick: cron must hear of it
    out = capsys.readouterr().out
    assert "apple: posted" in out and "wrongpw: disabled: r/SubredditNN: Reddit refused the account of praw site 'wrongpw'" in out
    assert main(["run", str(config), "--once"]) == 1
    assert fake.titles() == POSTS[:2]
    assert main(["status", "-c", str(config)]) == 0
    report = capsys.readouterr().out
    assert "disabled:   r/SubredditNN: Reddit refused the account" in report
    for secret in (SECRET, *ACCOUNTS.values(), "not-the-password"):
        assert secret not in out + report


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (lambda fake: fake.fail_submit(403), "Reddit refused the account of praw site 'applebot' (HTTP 403)"),
        (lambda fake: fake.subreddits.pop(SUB.lower()), "Reddit refused the post: SUBREDDIT_NOEXIST"),
    ],
)
def test_account_and_subreddit_problems_disable_the_bot(tmp_path: Path, fake: FakeReddit, script, message: str) -> None:  # noqa: ANN001
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null"))
    script(fake)
    result = bot.tick()
    assert result.outcome == "disabled" and message in result.message
    assert ledger.claimed("apple") is None and ledger.waiting("apple") == len(POSTS)  # nothing lost
    ledger.close()


def test_a_title_reddit_refuses_fails_that_candidate_only(tmp_path: Path, fake: FakeReddit) -> None:
    (bot,), ledger = make_bots(write_config(tmp_path, "flair_id: null", posts=["x" * 301, "fine"]))
    assert [bot.tick().outcome, bot.tick().outcome] == ["failed", "posted"]
    assert fake.titles() == ["fine"]
    ledger.close()


def test_run_refuses_reddit_bots_without_usable_credentials(tmp_path: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "flair_id: null", bots=("apple", "x", "y"))
    text = config.read_text().replace("site: xbot", "site: nopassword").replace("site: ybot", "site: nosuchsite")
    config.write_text(text.replace("contact: u/owner, ", ""), encoding="utf-8")
    assert main(["run", str(config), "--once"]) == 1
    err = capsys.readouterr().err
    assert "bots.x.target.site: praw site 'nopassword' lacks password" in err
    assert "bots.y.target.site: praw.ini has no [nosuchsite] site" in err
    assert "bots.apple.target.contact: required (who runs this bot" in err
    assert fake.requests == []
