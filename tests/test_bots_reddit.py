"""The reddit target end to end: real praw, configured only through a praw.ini site per bot,
talking HTTP to the fake Reddit (``POST /api/submit``, ``/api/v1/me``, ``/user/NAME/submitted``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import praw
import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url, utcnow
from botkit.cli import main
from botkit.config import load_config
from fakes.reddit import FakeReddit

CLIENT, SECRET = "bot-app", "app-secret-value"
ACCOUNTS = {"applebot": "apple-password", "pearbot": "pear-password"}
POSTS = ["What is the best apple?", "Apples, ranked", "An apple a day"]
SUB = "SubredditNN"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReddit]:
    """The fake Reddit, and a praw.ini (in a temp $XDG_CONFIG_HOME) with one site per bot account."""
    for key in list(os.environ):
        if key.lower().startswith("praw_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)  # praw reads its ini once per process
    monkeypatch.chdir(tmp_path)
    with FakeReddit(clients={CLIENT: SECRET}, users=dict(ACCOUNTS)) as server:
        server.add_posts(SUB, [])
        (tmp_path / "xdg").mkdir()
        sites = [server.praw_ini(name, client_id=CLIENT, client_secret=SECRET, username=name, password=pw) for name, pw in ACCOUNTS.items()]
        sites.append(server.praw_ini("wrongpw", client_id=CLIENT, client_secret=SECRET, username="pearbot", password="not-the-password"))
        sites.append(server.praw_ini("nopassword", client_id=CLIENT, client_secret=SECRET, username="pearbot"))
        (tmp_path / "xdg" / "praw.ini").write_text("\n".join(sites), encoding="utf-8")
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


def make_bots(config: Path) -> tuple[list[Bot], Ledger]:
    ledger = Ledger(store_url("botkit.db", config.parent))
    return build_bots(load_config(config).bots, ledger, str(config)), ledger


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
def test_a_post_whose_answer_is_lost_goes_out_once(tmp_path: Path, fake: FakeReddit, fault, status: int) -> None:  # noqa: ANN001
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


def test_a_crash_after_submitting_is_reconciled_at_restart(tmp_path: Path, fake: FakeReddit) -> None:
    config = write_config(tmp_path, "flair_id: null")
    (bot,), ledger = make_bots(config)
    bot.refill()
    candidate = ledger.claim_next("apple")
    bot.target.post(candidate)  # Reddit has it; the process dies before the ledger does
    (restarted,), _ = make_bots(config)
    result = restarted.tick()
    assert result.outcome == "posted" and "s00001" in result.message
    assert restarted.tick().outcome == "posted"
    assert fake.titles() == POSTS[:2]  # nothing twice
    assert [r.remote_id for r in ledger.history("apple")] == ["s00002", "s00001"]
    ledger.close()


def test_bad_password_disables_that_bot_only(tmp_path: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "flair_id: null", bots=("apple", "wrongpw"))
    config.write_text(config.read_text().replace("site: wrongpwbot", "site: wrongpw"), encoding="utf-8")
    assert main(["run", str(config), "--once"]) == 0
    out = capsys.readouterr().out
    assert "apple: posted" in out and "wrongpw: disabled: r/SubredditNN: Reddit refused the account of praw site 'wrongpw'" in out
    assert main(["run", str(config), "--once"]) == 0
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
    assert "bots.y.target.site: praw.ini has no [nosuchsite] section" in err
    assert "bots.apple.target.contact: required (who runs this bot" in err
    assert fake.requests == []
