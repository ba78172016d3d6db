"""The reddit source end to end: real praw, configured only through praw.ini / praw_* env vars,
talking HTTP to the fake Reddit in tests/fakes/reddit.py; through ``botkit fetch`` as users run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import praw.config
import pytest

from botkit.cli import main
from botkit.corpus import read_corpus
from botkit.praw_site import header_wait
from botkit.sources.reddit import RATE_LIMIT_DEFAULT_WAIT, RATE_LIMIT_MAX_WAIT, RATE_LIMIT_RETRIES

from fakes.reddit import TIME_WINDOWS, Comment, FakeReddit, Post

CLIENT_ID = "botkit-test-client"
SECRET = "s3cret-client-XYZ"
USER, PASSWORD = "botkit_user", "hunter2-pw-QRS"
SECRETS = (SECRET, PASSWORD)
NOW = 1_750_000_000.0  # the fake's clock: 2025-06-15T15:06:40Z
DAY = 86400.0

POLITICS = [
    Post("p1", "Senate passes the budget", "politics", NOW - 3 * DAY, score=500),
    Post("p2", "Ask: how do primaries work?", "politics", NOW - 10 * DAY, score=400, selftext="Genuinely curious."),
    Post("p3", "Megathread: rules of the sub", "politics", NOW - 1 * DAY, score=9000, stickied=True),
    Post("p4", "A removed post", "politics", NOW - 2 * DAY, score=350, selftext="[removed]"),
    Post("p5", "[deleted]", "politics", NOW - 2 * DAY, score=340, selftext="[deleted]"),
    Post("p6", "An NSFW post", "politics", NOW - 4 * DAY, score=330, over_18=True),
    Post("p7", "A low-scoring post", "politics", NOW - 5 * DAY, score=3),
    Post("p8", "An old post", "politics", NOW - 700 * DAY, score=300),
]
# what a default fetch keeps, in listing order (score, highest first)
DEFAULT_KEPT = ["p1", "p2", "p8", "p7"]


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    with FakeReddit(clients={CLIENT_ID: SECRET}, users={USER: PASSWORD}, now=NOW) as server:
        server.add_posts("politics", POLITICS)
        yield server


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean praw configuration: praw.ini only in a temp $XDG_CONFIG_HOME, no praw_* variables,
    praw's once-per-process ini cache emptied, and the current directory a fresh folder."""
    for key in list(os.environ):
        if key.lower().startswith("praw_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("APPDATA", raising=False)
    config_home = tmp_path / "xdg"
    config_home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return config_home


def write_ini(xdg: Path, fake: FakeReddit, site: str = "botkit", **settings: str) -> None:
    (xdg / "praw.ini").write_text(fake.praw_ini(site, **settings), encoding="utf-8")


def read_only(xdg: Path, fake: FakeReddit, **extra: str) -> None:
    write_ini(xdg, fake, client_id=CLIENT_ID, client_secret=SECRET, **extra)


def fetch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fetch", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ids(path: Path) -> list[str]:
    return [d.id or "" for d in read_corpus(path)]


def test_fetch_subreddit_read_only_then_again_adds_nothing(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    code, out, _ = fetch(capsys, "--subreddit", "politics", "--site", "botkit")
    assert code == 0 and "added 4 new document(s)" in out
    docs = list(read_corpus(Path("corpora/politics.jsonl")))
    assert [d.id for d in docs] == DEFAULT_KEPT
    first = docs[0]
    assert (first.text, first.label, first.source) == ("Senate passes the budget", "politics", "reddit")
    assert first.created == "2025-06-12T15:06:40Z"
    assert docs[1].text == "Ask: how do primaries work?"  # title only by default

    code, out, _ = fetch(capsys, "--subreddit", "politics", "--site", "botkit")
    assert code == 0 and "added 0 new document(s)" in out and "4 in total" in out
    assert set(fake.grants()) == {"client_credentials"}
    listing = fake.api_requests()[0]
    assert (listing.path, listing.query["t"], listing.query["limit"], listing.bearer) == ("/r/politics/top", "all", "1000", "token-1")
    assert listing.user_agent.startswith("botkit/0.1.0 (corpus fetcher) PRAW/")


def test_password_grant_from_praw_env_vars(xdg: Path, fake: FakeReddit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    write_ini(xdg, fake, site="fakereddit")  # endpoints only: praw reads oauth_url/reddit_url from no env var
    for key, value in {
        "praw_site": "fakereddit",
        "praw_client_id": CLIENT_ID,
        "praw_client_secret": SECRET,
        "praw_username": USER,
        "praw_password": PASSWORD,
        "praw_user_agent": "my-own-bot/2.0 by u/botkit_user",
    }.items():
        monkeypatch.setenv(key, value)
    code, _, _ = fetch(capsys, "--subreddit", "politics", "-o", "out.jsonl")
    assert code == 0
    assert ids(Path("out.jsonl")) == DEFAULT_KEPT
    assert fake.grants() == ["password"]
    token_request = fake.requests[0]
    assert (token_request.client_id, token_request.form["username"]) == (CLIENT_ID, USER)
    assert all(r.user_agent.startswith("my-own-bot/2.0 by u/botkit_user") for r in fake.requests)  # config's agent wins


def test_two_subreddits_r_prefix_and_default_output(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add_posts("technology", [Post("t1", "A new chip", "technology", NOW - DAY, score=50)])
    read_only(xdg, fake)
    code, _, _ = fetch(capsys, "--subreddit", "r/politics", "--subreddit", "/r/Technology/", "--site", "botkit")
    assert code == 0
    docs = list(read_corpus(Path("corpora/reddit.jsonl")))
    assert [(d.id, d.label) for d in docs] == [(i, "politics") for i in DEFAULT_KEPT] + [("t1", "technology")]


def test_config_yaml_corpus(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    Path("config.yaml").write_text(
        "corpora:\n"
        "  politics:\n"
        "    source: reddit\n"
        "    subreddit: [r/politics]\n"
        "    time: all-filters\n"
        "    limit: null\n"
        "    min_score: 100\n"
        "    site: botkit\n"
        "    output: data/politics.jsonl\n",
        encoding="utf-8",
    )
    code, _, err = fetch(capsys, "--config", "config.yaml")
    assert code == 0, err
    assert ids(Path("data/politics.jsonl")) == ["p1", "p2", "p8"]
    assert {(r.query["t"], r.query["limit"]) for r in fake.api_requests()} == {(t, "1024") for t in TIME_WINDOWS}
    Path("config.yaml").write_text("corpora:\n  politics:\n    source: reddit\n    subreddits: [politics]\n", encoding="utf-8")
    code, _, err = fetch(capsys, "--config", "config.yaml")
    assert code == 1 and "corpora.politics.subreddits: unknown key" in err


def test_filters_can_be_relaxed_and_tightened(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    code, _, _ = fetch(capsys, "--subreddit", "politics", "--site", "botkit", "--over-18", "--min-score", "100", "--selftext")
    assert code == 0
    docs = {d.id: d.text for d in read_corpus(Path("corpora/politics.jsonl"))}
    assert list(docs) == ["p1", "p2", "p6", "p8"]  # NSFW in; low score, sticky, [removed], [deleted] out
    assert docs["p2"] == "Ask: how do primaries work?\n\nGenuinely curious."
    assert docs["p1"] == "Senate passes the budget"  # a link post has no body to add


def test_comments_make_a_pair_corpus_within_depth_and_count_limits(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    """Each comment answers its parent comment, or the post's title; gone and sticky ones answer nothing."""
    post = Post("q1", "What should a bot say first?", "bots", NOW - DAY, score=80)
    post.comments = [
        Comment("c1", "Hello, world.", created_utc=NOW - 3600),
        Comment("c2", "[deleted]"),
        Comment("c3", "Rules: be kind", stickied=True),
        Comment("c4", "Something unexpected", created_utc=NOW - 3000),
        Comment("r1", "Too plain.", parent="c1"),
        Comment("r2", "orphaned reply", parent="c2"),
        Comment("rr1", "Plain is good.", parent="r1"),
        Comment("rrr1", "deeper than asked", parent="rr1"),
        Comment("c5", "folded into a more stub"),
    ]
    fake.add_posts("bots", [post, Post("q2", "An NSFW post", "bots", NOW - DAY, score=70, over_18=True, comments=[Comment("n1", "skipped")])])
    fake.comment_page = 4  # c5 comes as a "more" stub, which is dropped, not followed
    read_only(xdg, fake)
    code, _, err = fetch(capsys, "--subreddit", "bots", "--site", "botkit", "--comments")
    assert code == 0, err
    docs = list(read_corpus(Path("corpora/bots.jsonl")))
    assert [(d.id, d.text, d.parent) for d in docs] == [  # breadth first, three levels by default
        ("t1_c1", "Hello, world.", "What should a bot say first?"),
        ("t1_c4", "Something unexpected", "What should a bot say first?"),
        ("t1_r1", "Too plain.", "Hello, world."),
        ("t1_rr1", "Plain is good.", "Too plain."),
    ]
    assert (docs[0].label, docs[0].source, docs[0].created) == ("bots", "reddit", "2025-06-15T14:06:40Z")
    assert [r.path for r in fake.api_requests()] == ["/r/bots/top", "/comments/q1/"]

    code, _, err = fetch(capsys, "--subreddit", "bots", "--site", "botkit", "--comments", "--comment-depth", "1", "--comments-per-post", "1", "-o", "top.jsonl")
    assert code == 0, err
    assert [d.id for d in read_corpus(Path("top.jsonl"))] == ["t1_c1"]


def test_lone_surrogates_from_the_api_are_replaced_and_counted(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    """The API's JSON can carry a ``\\ud83d`` escape (a title cut inside an emoji); it becomes U+FFFD,
    in the post and in the comment that answers it, and the fetch goes on."""
    post = Post("u1", "cut \ud83d title", "bots", NOW - DAY, score=80, comments=[Comment("k1", "low \ude00 half", created_utc=NOW - 60)])
    fake.add_posts("bots", [post, Post("u2", "whole \ud83d\ude00 emoji", "bots", NOW - DAY, score=70)])
    read_only(xdg, fake)
    code, out, err = fetch(capsys, "--subreddit", "bots", "--site", "botkit", "-o", "posts.jsonl")
    assert code == 0, err
    assert "1 lone surrogate(s) replaced with U+FFFD" in out
    assert [d.text for d in read_corpus(Path("posts.jsonl"))] == ["cut \ufffd title", "whole \U0001f600 emoji"]
    code, out, err = fetch(capsys, "--subreddit", "bots", "--site", "botkit", "--comments", "-o", "pairs.jsonl")
    assert code == 0, err
    assert "2 lone surrogate(s) replaced with U+FFFD" in out
    assert [(d.text, d.parent) for d in read_corpus(Path("pairs.jsonl"))] == [("low \ufffd half", "cut \ufffd title")]


def test_time_filter_and_limit_reach_the_api(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    fake.generate("bigsub", 300, seed=1)
    read_only(xdg, fake)
    code, _, _ = fetch(capsys, "--subreddit", "bigsub", "--site", "botkit", "--time", "year", "--limit", "150", "-o", "a.jsonl")
    assert code == 0
    assert ids(Path("a.jsonl")) == [p.id for p in fake.top("bigsub", "year")[:150]]
    pages = fake.api_requests()
    assert [(r.query["t"], r.query["limit"], r.query.get("after")) for r in pages] == [
        ("year", "150", None),
        ("year", "150", f"t3_{fake.top('bigsub', 'year')[99].id}"),  # Reddit pages by 100 whatever the limit
    ]
    code, _, _ = fetch(capsys, "--subreddit", "bigsub", "--site", "botkit", "--limit", "none", "-o", "b.jsonl")
    assert code == 0 and len(ids(Path("b.jsonl"))) == 300
    assert fake.api_requests()[-1].query["limit"] == "1024"  # praw's "as many as possible"


def test_all_filters_goes_past_the_listing_cap(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    fake.generate("bigsub", 3000, seed=7)
    read_only(xdg, fake)
    assert fetch(capsys, "--subreddit", "bigsub", "--site", "botkit", "-o", "one.jsonl")[0] == 0
    assert len(ids(Path("one.jsonl"))) == 1000  # Reddit's cap for one time filter
    assert fetch(capsys, "--subreddit", "bigsub", "--site", "botkit", "--time", "all-filters", "-o", "union.jsonl")[0] == 0
    got = ids(Path("union.jsonl"))
    expected = {p.id for t in TIME_WINDOWS for p in fake.top("bigsub", t)}
    assert len(got) == len(set(got)) == len(expected) > 1000
    assert set(got) == expected
    assert {r.query["t"] for r in fake.api_requests()} == set(TIME_WINDOWS)


def test_server_error_then_success(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    fake.fail_next(500)
    assert fetch(capsys, "--subreddit", "politics", "--site", "botkit")[0] == 0  # prawcore retries 5xx
    assert [r.status for r in fake.api_requests()] == [500, 200]
    assert ids(Path("corpora/politics.jsonl")) == DEFAULT_KEPT


def test_rate_limited_waits_as_told_then_resumes(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    fake.generate("bigsub", 250, seed=3)
    read_only(xdg, fake)
    fake.fail_next(429, after=1, headers={"retry-after": "0.3"})  # on page 2
    fake.fail_next(429, headers={"x-ratelimit-used": "600", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"})
    started = time.monotonic()
    assert fetch(capsys, "--subreddit", "bigsub", "--site", "botkit", "-o", "big.jsonl")[0] == 0
    assert time.monotonic() - started >= 1.3  # 0.3 s from retry-after, then 1 s from x-ratelimit-reset
    calls = fake.api_requests()
    assert [r.status for r in calls] == [200, 429, 429, 200, 200]
    assert calls[1].query["after"] == calls[2].query["after"] == calls[3].query["after"]  # page 2 asked again, not page 1
    got = ids(Path("big.jsonl"))
    assert len(got) == len(set(got)) == 250


def test_expired_token_is_renewed(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    fake.fail_next(401)  # with www-authenticate: Bearer realm="reddit", error="invalid_token"
    assert fetch(capsys, "--subreddit", "politics", "--site", "botkit")[0] == 0
    assert fake.grants() == ["client_credentials", "client_credentials"]
    assert [(r.status, r.bearer) for r in fake.api_requests()] == [(401, "token-1"), (200, "token-2")]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ERROR_CASES = {
    "unknown subreddit (404)": ("nosuchsub", lambda f: None, "r/nosuchsub: no such subreddit (HTTP 404"),
    "unknown subreddit (redirect)": ("nosuchsub", lambda f: setattr(f, "redirect_unknown", True), "redirected to /subreddits/search"),
    "private subreddit": (
        "secretclub",
        lambda f: (f.add_posts("secretclub", []), f.private.add("secretclub")),
        "r/secretclub: access denied (HTTP 403",
    ),
    "server keeps failing": ("politics", lambda f: f.fail_next(503, times=3), "Reddit's servers failed (HTTP 503) even after retries"),
    "rate limit never lifts": (
        "politics",
        lambda f: f.fail_next(429, times=RATE_LIMIT_RETRIES + 1, headers={"retry-after": "0.05"}),
        "r/politics: Reddit still refuses with HTTP 429",
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_api_errors_are_one_line_and_write_nothing(case: str, xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    subreddit, script, message = ERROR_CASES[case]
    script(fake)
    read_only(xdg, fake)
    code, out, err = fetch(capsys, "--subreddit", subreddit, "--site", "botkit")
    assert_clean_failure(code, out, err, message)


def assert_clean_failure(code: int, out: str, err: str, message: str) -> None:
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("botkit: error: ") and message in last, err
    assert "Traceback" not in err
    assert not any(secret in out + err for secret in SECRETS)
    assert not Path("corpora/politics.jsonl").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"client_id": CLIENT_ID, "client_secret": "wrong-" + SECRET}, "refused the credentials of praw site 'botkit' (HTTP 401)"),
        (
            {"client_id": CLIENT_ID, "client_secret": SECRET, "username": USER, "password": "x" + PASSWORD},
            "praw site 'botkit' (invalid_grant)",
        ),
        ({}, "no Reddit API credentials in praw site 'botkit': put client_id and client_secret"),
        ({"client_id": CLIENT_ID}, "praw site 'botkit' has a client_id but no client_secret"),
    ],
    ids=["wrong client secret", "wrong password", "no credentials", "no secret"],
)
def test_credential_errors_name_the_site_not_the_secret(
    settings: dict[str, str], message: str, xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ini(xdg, fake, **settings)
    code, out, err = fetch(capsys, "--subreddit", "politics", "--site", "botkit")
    assert_clean_failure(code, out, err, message)
    assert not any(secret in out + err for secret in settings.values() if secret != CLIENT_ID)


def test_nothing_configured_says_how_to_configure(xdg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fetch(capsys, "--subreddit", "politics")
    assert_clean_failure(code, out, err, "no Reddit API credentials in praw site 'DEFAULT'")
    assert "praw_client_id and praw_client_secret" in err and "praw.ini" in err


def test_unknown_site_and_malformed_ini(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    read_only(xdg, fake)
    code, out, err = fetch(capsys, "--subreddit", "politics", "--site", "nosuchsite")
    assert_clean_failure(code, out, err, "praw.ini has no [nosuchsite] site")
    (xdg / "praw.ini").write_text(f"[botkit]\nclient_id = {CLIENT_ID}\npassword {PASSWORD}\n", encoding="utf-8")
    praw.config.Config.CONFIG = None  # praw caches the ini per process; the xdg fixture restores it
    code, out, err = fetch(capsys, "--subreddit", "politics", "--site", "botkit")
    assert_clean_failure(code, out, err, f"{xdg / 'praw.ini'}: malformed praw.ini (ParsingError)")


def test_network_down_names_the_host(xdg: Path, fake: FakeReddit, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    (xdg / "praw.ini").write_text(
        f"[botkit]\noauth_url = http://127.0.0.1:{port}\nreddit_url = http://127.0.0.1:{port}\nclient_id = {CLIENT_ID}\nclient_secret = {SECRET}\n",
        encoding="utf-8",
    )
    code, out, err = fetch(capsys, "--subreddit", "politics", "--site", "botkit")  # prawcore retries: ~4 s
    assert_clean_failure(code, out, err, f"cannot reach 127.0.0.1:{port} (ConnectionError, after retries)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subreddit", "r/not a name"], "--subreddit: 'r/not a name' is not a subreddit name"),
        (["--subreddit", "politics", "--limit", "0"], "--limit: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_are_refused_before_any_request(args: list[str], message: str, xdg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fetch(capsys, *args)
    assert_clean_failure(code, out, err, message)


def test_header_wait_reads_the_headers_and_caps_the_wait() -> None:
    def retry_after(headers: dict[str, str]) -> float:  # as the reddit source asks
        return header_wait(headers, default=RATE_LIMIT_DEFAULT_WAIT, most=RATE_LIMIT_MAX_WAIT)

    assert retry_after({"retry-after": "2.5", "x-ratelimit-reset": "40"}) == 2.5
    assert retry_after({"x-ratelimit-reset": "40"}) == 40.0
    assert retry_after({"retry-after": "86400"}) == RATE_LIMIT_MAX_WAIT
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == RATE_LIMIT_DEFAULT_WAIT
    assert header_wait({"retry-after": "0"}, default=5.0, least=1.0) == 1.0  # as the reddit target asks


def test_installed_command_end_to_end(tmp_path: Path, fake: FakeReddit) -> None:
    """The real ``botkit`` executable, as a user runs it (entry point, argv rewrite, exit code)."""
    config_home, work = tmp_path / "xdg", tmp_path / "work"
    config_home.mkdir()
    work.mkdir()
    write_ini(config_home, fake, client_id=CLIENT_ID, client_secret=SECRET)
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("praw_") and k != "APPDATA"}
    env["XDG_CONFIG_HOME"] = str(config_home)
    botkit = Path(sys.executable).with_name("botkit")
    done = subprocess.run([str(botkit), "fetch", "--subreddit", "politics", "--site", "botkit"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ids(work / "corpora" / "politics.jsonl") == DEFAULT_KEPT
    lazy = subprocess.run(
        [sys.executable, "-c", "import sys, botkit.sources.reddit; print(sorted({'praw', 'prawcore'} & set(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lazy.stdout.strip() == "[]"  # the CLI imports every source to build its parser
