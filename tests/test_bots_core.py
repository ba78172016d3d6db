"""Bots on the embedded defaults: config schema, the ledger, the outbox, prepared posts, one tick,
``run --once``, ``status``, ``history`` and ``review``. No network, no TensorFlow."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import SCHEMA_VERSION, Ledger, LedgerError, show_time, store_url, utcnow
from botkit.bots.targets import TARGETS, Limits, PostResult, Target
from botkit.cli import main
from botkit.config import load_config
from botkit.errors import ConfigError
from botkit.terminal import BIDI_CONTROLS, printable

from claims import claim, dead_worker

POSTS = ["the first post", "a second post", "number three", "four", "and five"]


def write_config(folder: Path, body: str, posts: list[str] | None = POSTS) -> Path:
    if posts is not None:
        (folder / "posts.txt").write_text("".join(p + "\n" for p in posts), encoding="utf-8")
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


ONE_BOT = """\
    store: botkit.db
    bots:
      apple:
        posts: posts.txt
        filters: none
        schedule: {every: 10s}
"""


def outbox_lines(folder: Path, bot: str) -> list[str]:
    path = folder / "outbox" / f"{bot}.txt"
    return [line.split("  ", 2)[2] for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def ledger_for(config: Path) -> Ledger:
    return Ledger(store_url("botkit.db", config.parent))


# -- config ----------------------------------------------------------------------------------


def test_defaults_merge_into_every_bot(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            """\
            defaults:
              posts: posts.txt
              schedule: {every: 3h, jitter: 1m}
              target: {kind: reddit, subreddit: SubredditNN, live: true, flair_text: generated}
              buffer: {size: 8}
            bots:
              apple:
                target: {site: applebot}
              pear:
                schedule: {cron: "0 9 * * 1-5"}
                target: {kind: outbox}
                buffer: {low: 2}
            """,
        )
    )
    apple, pear = config.bots["apple"], config.bots["pear"]
    assert apple.target_kind == "reddit" and apple.target.site == "applebot" and apple.target.flair_text == "generated"
    assert apple.options.schedule.every == 3 * 3600 and apple.options.schedule.jitter == 60
    assert apple.options.posts == tmp_path / "posts.txt"
    assert apple.limits == Limits(min_interval=600, daily_cap=24)  # reddit's defaults, untouched
    # A schedule replaces the default whole; a target of another kind too; other mappings merge.
    assert pear.options.schedule.every is None and pear.options.schedule.cron == "0 9 * * 1-5"
    assert pear.target_kind == "outbox" and pear.options.buffer.size == 8 and pear.options.buffer.low == 2


def test_crontab_weekdays_mean_what_crontab_says(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 'bots:\n  a:\n    posts: posts.txt\n    schedule: {cron: "30 9 * * 1"}\n'))
    trigger = config.bots["a"].options.schedule.trigger()
    fire = trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=UTC))  # a Wednesday
    assert fire.strftime("%A %H:%M") == "Monday 09:30"  # crontab 1 = Monday (APScheduler 3 alone would say Tuesday)


@pytest.mark.parametrize(
    ("bot", "message"),
    [
        ("posts: posts.txt\n    colour: red", r"config\.yaml: bots\.apple\.colour: unknown key"),
        ("target: {kind: outbox}", r"bots\.apple: give one of model: .* or posts: .*, or a reply: block"),
        ("model: weights/apple\n    posts: posts.txt", r"bots\.apple: give one of model: .* or posts: .*, not both"),
        ("posts: posts.txt\n    target: {kind: telegraph}", r"bots\.apple\.target\.kind: unknown target 'telegraph' \(known: .*outbox, reddit, twitter"),
        ("posts: posts.txt\n    target: {live: true}", r"bots\.apple\.target\.kind: required key is missing"),
        ("posts: posts.txt\n    schedule: {cron: '0 */3 * *'}", r"bots\.apple\.schedule: .*crontab line '0 \*/3 \* \*' has 4 fields"),
        ("posts: posts.txt\n    schedule: {cron: '0 25 * * *'}", r"bots\.apple\.schedule: .*not a valid crontab line"),
        ("posts: posts.txt\n    schedule: {every: soon}", r"bots\.apple\.schedule\.every: .*not a duration"),
        ("posts: posts.txt\n    schedule: {every: 1s, cron: '* * * * *'}", r"give exactly one of every: .* or cron:"),
        (
            "posts: posts.txt\n    target: {kind: reddit, subreddit: x, limits: {daily_cap: 0}}",
            r"bots\.apple\.target\.limits\.daily_cap: Input should be greater than or equal to 1",
        ),
        ("posts: posts.txt\n    target: {kind: twitter, api_key: x}", r"bots\.apple\.target\.api_key: unknown key"),
    ],
)
def test_bad_bot_configs_name_file_and_key(tmp_path: Path, bot: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, f"bots:\n  apple:\n    {bot}\n"))


def test_a_mistake_in_defaults_is_reported_once_at_its_own_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """\
        defaults: {schedule: {evry: 1s}, buffer: {size: x}, target: {kind: outbox, limits: {daily_cap: 0}}}
        bots:
          apple: {posts: posts.txt}
          pear: {posts: posts.txt, schedule: {every: 2s}, buffer: {size: y}}
          plum: {posts: posts.txt, target: {kind: reddit, subreddit: x, limts: 1}}
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    lines = str(raised.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "defaults.schedule.evry",  # once, though apple and plum both inherit it (pear has its own schedule)
        "defaults.buffer.size",
        "defaults.target.limits.daily_cap",  # plum's reddit target replaces the outbox default whole
        "bots.pear.buffer.size",  # pear's own value
        "bots.plum.target.limts",
    ]


def test_run_refuses_to_start_and_lists_every_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no praw.ini anywhere
    monkeypatch.chdir(tmp_path)
    config = write_config(
        tmp_path,
        """\
        bots:
          a: {model: weights/a}
          b: {posts: missing.txt}
          c: {posts: posts.txt, filters: [length, no-such-filter]}
          d: {posts: posts.txt, target: {kind: twitter, live: true}}
          e: {posts: posts.txt, target: {kind: reddit, subreddit: SubredditNN, live: true}}
        """,
    )
    assert main(["run", str(config), "--once"]) == 1
    err = capsys.readouterr().err
    assert f"{config}: bots.a.model: no model folder {tmp_path / 'weights' / 'a'}" in err
    assert f"{config}: bots.b.posts: no such file {tmp_path / 'missing.txt'}" in err
    assert "bots.c.filters.1: unknown filter 'no-such-filter'" in err
    assert "bots.d.target.consumer_key: required for a live twitter target" in err and "bots.d.target.access_token_secret" in err
    assert "bots.e.target.site: required for a live reddit target" in err
    assert "Traceback" not in err
    assert not (tmp_path / "outbox").exists()


# -- the ledger ------------------------------------------------------------------------------


def test_ledger_schema_is_versioned_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger(url) as ledger:
        ledger.record_error("a", "boom")
    with Ledger(url) as ledger:
        assert ledger.state("a").last_error == "boom"
        with ledger.engine.begin() as conn:
            conn.execute(ledger.t["schema_version"].update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(LedgerError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this botkit knows \({SCHEMA_VERSION}\); upgrade botkit"):
        Ledger(url)


def test_ledger_uses_wal_and_hides_passwords_in_urls(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert store_url("postgresql://u:pw@host/db", tmp_path) == "postgresql://u:pw@host/db"
    assert store_url("farm.db", tmp_path) == f"sqlite:///{tmp_path / 'farm.db'}"
    with pytest.raises(LedgerError) as info:
        Ledger("postgresql+nosuchdriver://bob:hunter2@localhost/botkit")
    assert "hunter2" not in str(info.value) and "bob:***@localhost" in str(info.value)


# -- ticks -----------------------------------------------------------------------------------


def test_run_once_posts_prepared_posts_in_order_each_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT)
    for _ in range(len(POSTS) + 2):
        assert main(["run", str(config), "--once"]) == 0
    out = capsys.readouterr().out
    assert out.count("apple: posted: candidate") == len(POSTS)
    assert "apple: empty: no candidates left" in out
    assert outbox_lines(tmp_path, "apple") == POSTS
    assert main(["history", "apple", "-c", str(config)]) == 0
    history = capsys.readouterr().out.splitlines()
    assert [line.split(maxsplit=4)[4] for line in history] == POSTS[::-1]  # newest first
    assert all(" outbox " in line for line in history)


def test_appended_posts_are_taken_later_and_nothing_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT, POSTS[:2])
    for _ in range(3):
        main(["run", str(config), "--once"])
    with open(tmp_path / "posts.txt", "a", encoding="utf-8") as fh:
        fh.write("a late addition\n")
    for _ in range(2):
        main(["run", str(config), "--once"])
    assert outbox_lines(tmp_path, "apple") == [*POSTS[:2], "a late addition"]


def test_not_live_targets_post_to_the_outbox_and_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT + "        target: {kind: reddit, subreddit: SubredditNN, site: nosuchsite}\n")
    assert main(["run", str(config), "--once"]) == 0
    captured = capsys.readouterr()
    assert f"apple: reddit target is not live: posting to outbox {tmp_path / 'outbox' / 'apple.txt'} instead (set live: true to post)" in captured.err
    assert outbox_lines(tmp_path, "apple") == POSTS[:1]
    assert main(["status", "-c", str(config)]) == 0
    assert "target:     outbox (the reddit target is not live)" in capsys.readouterr().out


def test_status_shows_last_post_queue_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT)
    assert main(["status", "-c", str(config)]) == 0
    assert "last post:  -" in capsys.readouterr().out
    main(["run", str(config), "--once"])
    capsys.readouterr()
    assert main(["status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("apple\n") and "target:     outbox" in out
    assert f"queue:      {len(POSTS) - 1} waiting" in out
    assert f"last post:  {utcnow():%Y-%m-%d}" in out


def test_limits_hold_a_bot_back_and_lowering_them_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT + "        target: {kind: outbox, limits: {min_interval: 1h}}\n")
    main(["run", str(config), "--once"])
    main(["run", str(config), "--once"])
    out = capsys.readouterr().out
    assert "apple: waiting: minimum interval 3600s since the last post" in out
    assert len(outbox_lines(tmp_path, "apple")) == 1

    config = write_config(tmp_path, ONE_BOT + "        target: {kind: outbox, limits: {daily_cap: 2}}\n")
    main(["run", str(config), "--once"])
    main(["run", str(config), "--once"])
    assert "apple: waiting: daily cap of 2 posts reached" in capsys.readouterr().out
    assert len(outbox_lines(tmp_path, "apple")) == 2


def test_lowered_reddit_limits_print_a_warning(tmp_path: Path) -> None:
    spec = load_config(
        write_config(tmp_path, ONE_BOT + "        target: {kind: reddit, subreddit: x, live: true, limits: {min_interval: 0s, daily_cap: null}}\n")
    ).bots["apple"]
    assert spec.limits == Limits(min_interval=0, daily_cap=None)
    assert spec.loosened_limits() == ["min_interval 0s (default 600s)", "daily_cap none (default 24)"]


def test_filters_judge_candidates_as_they_enter_the_buffer(tmp_path: Path) -> None:
    words = " ".join(f"w{i:03d}" for i in range(80))
    too_long, fits = words[:281], words[:274]  # X's 280, less the signature and its blank line
    posts = ["hello there my friend", "hello there my friend", "no no no no no", too_long, fits, "a fine last post"]
    body = ONE_BOT.replace("filters: none", "filters: default") + "        target: {kind: twitter, signature: '#bot'}\n"
    config = write_config(tmp_path, body, posts)
    for _ in range(4):
        assert main(["run", str(config), "--once"]) == 0
    # Not live, so the outbox stands in, signature and all: the demo shows what would be posted.
    assert outbox_lines(tmp_path, "apple") == [f"{posts[0]}\\n\\n#bot", f"{fits}\\n\\n#bot", f"{posts[5]}\\n\\n#bot"]
    with ledger_for(config) as ledger, ledger.engine.connect() as conn:
        rejected = set(conn.exec_driver_sql("SELECT text, reason FROM candidates WHERE state = 'rejected'"))
    assert {(text, reason.split(":")[0]) for text, reason in rejected} == {(posts[1], "dedupe"), (posts[2], "repetition"), (too_long, "length")}
    assert any(reason == "length: too long: 281 characters (max 274)" for _, reason in rejected)


# -- exactly once over crashes -----------------------------------------------------------------


def one_bot(config: Path, ledger: Ledger, worker: str | None = None) -> Bot:
    c = load_config(config)
    (bot,) = build_bots(c.bots, ledger, str(config), worker=worker)
    return bot


def test_a_claim_left_by_a_crash_is_reconciled_not_reposted(tmp_path: Path, zone: str) -> None:
    config = write_config(tmp_path, ONE_BOT)
    with ledger_for(config) as ledger:
        bot = one_bot(config, ledger, worker=dead_worker())
        candidate = claim(bot)
        bot.target.post(candidate)  # ... and the process dies before mark_posted
        assert ledger.claimed("apple") is not None
        fresh = one_bot(config, ledger)  # the restarted process: its predecessor's pid is gone, so no wait
        result = fresh.tick()
        assert result.outcome == "posted" and f"candidate {candidate.id}" in result.message
        assert ledger.claimed("apple") is None
        # A claim that never reached the outbox is posted normally after reconciliation.
        second = claim(fresh)
        assert fresh.tick().outcome == "posted"
        assert [r.text for r in ledger.history("apple")] == [second.text, candidate.text]
    assert outbox_lines(tmp_path, "apple") == POSTS[:2]


def test_a_claim_of_a_live_worker_is_left_alone_until_its_lease_runs_out(tmp_path: Path) -> None:
    config = write_config(tmp_path, "    lease: 1s\n" + ONE_BOT)
    with Ledger(store_url("botkit.db", tmp_path), lease=1.0) as ledger:
        busy = one_bot(config, ledger)  # alive (this very process), but stalled after its claim
        candidate = claim(busy)
        other = one_bot(config, ledger, worker="elsewhere/0:1:other")
        result = other.tick()
        assert result.outcome == "skipped" and "run by" in result.message  # the bot's own lease holds
        time.sleep(1.1)
        result = other.tick()  # both leases ran out: the other worker reconciles, then posts it once
        assert result.outcome == "posted" and f"candidate {candidate.id}" in result.message
        assert busy.tick().outcome == "skipped"  # the stalled worker wakes up: the bot is not its own any more
        assert not ledger.release(candidate, busy.worker)  # and its late 'not posted' changes nothing
        assert ledger.history("apple")[0].text == candidate.text
    assert outbox_lines(tmp_path, "apple") == POSTS[:1]


def test_outbox_does_not_repeat_a_line_written_just_before_a_crash(tmp_path: Path) -> None:
    config = write_config(tmp_path, ONE_BOT)
    with ledger_for(config) as ledger:
        bot = one_bot(config, ledger, worker=dead_worker())
        candidate = claim(bot)

        def crash(when: datetime) -> None:
            bot.target._append(candidate.id, when, candidate.text)
            raise KeyboardInterrupt  # the file line is written, the ledger transaction is not

        with pytest.raises(KeyboardInterrupt):
            ledger.record("outbox", str(candidate.id), candidate.text, crash)
        assert ledger.recorded("outbox", str(candidate.id)) is None
        assert one_bot(config, ledger).tick().outcome == "posted"
    assert outbox_lines(tmp_path, "apple") == POSTS[:1]


class Flaky(Target):
    """A target whose service fails in scripted ways, for the bot's failure rules (not a mock of botkit:
    a third-party target plugin registered the way plugins register)."""

    summary = "scripted failures"
    script: list[BaseException | None] = []
    delivered: list[int] = []

    def post(self, candidate):  # noqa: ANN001, ANN201
        step = Flaky.script.pop(0) if Flaky.script else None
        if isinstance(step, BaseException):
            if getattr(step, "delivered", False):
                Flaky.delivered.append(candidate.id)
            raise step
        Flaky.delivered.append(candidate.id)
        return PostResult(f"f{candidate.id}")

    def reconcile(self, candidate):  # noqa: ANN001, ANN201
        return PostResult(f"f{candidate.id}", note="reconciled") if candidate.id in Flaky.delivered else None


@pytest.fixture
def flaky(tmp_path: Path) -> Path:
    TARGETS.register("flaky")(Flaky)
    Flaky.script, Flaky.delivered = [], []
    yield write_config(tmp_path, ONE_BOT + "        target: {kind: flaky, live: true}\n        retry: {attempts: 3, backoff: 0.01s}\n")
    TARGETS._registered.pop("flaky")


def test_failures_follow_the_rules(flaky: Path) -> None:
    from botkit.bots.targets import Disabled, RateLimited, Rejected, Transient

    lost = Transient("503")
    lost.delivered = True  # type: ignore[attr-defined]  # went out, but the answer was lost
    with ledger_for(flaky) as ledger:
        bot = one_bot(flaky, ledger)
        Flaky.script = [Transient("500"), lost]
        assert bot.tick().outcome == "posted"  # retried after a 500; the lost answer found by reconciliation
        assert Flaky.delivered == [1]
        Flaky.script = [RateLimited("slow down", 120)]
        result = bot.tick()
        assert result.outcome == "waiting" and result.retry_at is not None
        assert timedelta(seconds=110) < result.retry_at - utcnow() <= timedelta(seconds=120)
        assert ledger.claimed("apple") is None  # not posted: back in the queue
        assert bot.tick().outcome == "waiting"  # still within the wait
        ledger.wait_until("apple", None)
        Flaky.script = [Rejected("too long")]
        assert bot.tick().outcome == "failed"
        Flaky.script = [Transient("500")] * 3
        assert bot.tick().outcome == "error"
        assert ledger.claimed("apple") is not None  # unsure: stays claimed, reconciled next time
        Flaky.script = [Disabled("bad password")]
        assert bot.tick().outcome == "disabled"
        assert ledger.claimed("apple") is not None  # a claim it was unsure about stays claimed
        assert bot.tick().outcome == "disabled"
        assert ledger.state("apple").disabled == "bad password"
        ledger.enable(["apple"])  # what a restart does
        assert bot.tick().outcome == "posted"
        states = [c for c in ledger.history("apple")]
        assert len(states) == 2 and len(set(Flaky.delivered)) == len(Flaky.delivered)


def test_one_bot_crashing_does_not_stop_the_others(flaky: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """\
        bots:
          broken: {posts: posts.txt, filters: none, target: {kind: flaky, live: true}}
          fine: {posts: posts.txt, filters: none}
        """,
    )
    Flaky.script = [ZeroDivisionError("a bug in a plugin")]
    with ledger_for(config) as ledger:
        from botkit.bots.daemon import run_once

        results = run_once(build_bots(load_config(config).bots, ledger, str(config)), ledger)
        # The crash left its claim in doubt; the lookup before the run ends finds it never went out.
        assert [(r.bot, r.outcome) for r in results] == [("broken", "error"), ("broken", "waiting"), ("fine", "posted")]
        assert "ZeroDivisionError: a bug in a plugin" in ledger.state("broken").last_error
        assert ledger.claimed("broken") is None and ledger.waiting("broken") == len(POSTS)


def test_run_once_exits_1_when_a_tick_failed_and_says_each_failure_once(
    flaky: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """cron reads the exit status: a failed tick must not exit 0, nor bury its one line under two copies."""
    from botkit.bots.targets import Disabled, Rejected

    config = write_config(
        tmp_path,
        """\
        bots:
          crashing: {posts: posts.txt, filters: none, target: {kind: flaky, live: true}}
          refused: {posts: posts.txt, filters: none, target: {kind: flaky, live: true}}
          fine: {posts: posts.txt, filters: none}
          locked: {posts: posts.txt, filters: none, target: {kind: flaky, live: true}}
        """,
    )
    Flaky.script = [ZeroDivisionError("a bug in a plugin"), Rejected("title too long"), Disabled("bad password")]
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(config), "--once"]) == 1
    captured = capsys.readouterr()
    shown = captured.out + captured.err + "".join(f"{r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.WARNING)
    for failure in ("a bug in a plugin", "title too long", "bad password"):
        assert shown.count(failure) == 1, shown
    assert "crashing: error: " in captured.out and "refused: failed: candidate " in captured.out
    assert "locked: disabled: bad password" in captured.out and "fine: posted: candidate " in captured.out
    assert captured.err.splitlines()[-1] == "botkit: error: 3 of 4 bot(s) failed their tick: crashing, refused, locked (their lines above say why)"
    Flaky.script = []
    assert main(["run", str(config), "--once"]) == 0  # each run --once is a restart: the disabled bot is tried again
    assert capsys.readouterr().out.count(": posted: candidate ") == 4


def test_run_once_as_cron_runs_it_exit_status_and_one_line_per_failure(tmp_path: Path) -> None:
    """In a child process, as cron runs it: the real log handler, stdout and stderr, the exit status."""
    config = write_config(
        tmp_path, ONE_BOT + "        target: {kind: outbox, folder: blocked, limits: {min_interval: 0s}}\n        retry: {attempts: 3, backoff: 0.01s}\n"
    )
    (tmp_path / "blocked").write_text("a file where the outbox folder should be", encoding="utf-8")

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "botkit", "run", str(config), "--once"], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    failed = once()
    assert failed.returncode == 1, failed.stderr
    lines = (failed.stdout + failed.stderr).splitlines()
    assert [line for line in lines if "try 3 of 3" in line] == []  # the last try's failure is the result line
    assert len([line for line in lines if line.startswith("apple: error: candidate 1 not confirmed")]) == 1
    assert lines[-1] == "botkit: error: 1 of 1 bot(s) failed their tick: apple (their lines above say why)"
    (tmp_path / "blocked").unlink()
    fixed = once()
    assert fixed.returncode == 0 and "apple: posted: candidate 1" in fixed.stdout and fixed.stderr == ""


# -- review ----------------------------------------------------------------------------------


CONTROL_POSTS = ["clear\x1b[2Jscreen", "title\x1b]0;pwned\x07here", "back\x08\x08space", "carriage\rreturn", "one-byte csi\x9b2J", "héllo wörld 😀 ✓ \tтекст"]
SHOWN_AS = ["clear\\x1b[2Jscreen", "title\\x1b]0;pwned\\x07here", "back\\x08\\x08space", "carriage\\rreturn", "one-byte csi\\x9b2J", "héllo wörld 😀 ✓ \tтекст"]
RAW_CONTROLS = ("\x1b", "\x07", "\x08", "\r", "\x9b")


def test_review_and_history_show_control_characters_escaped_on_the_terminal(tmp_path: Path) -> None:
    """In child processes, bytes as a terminal would get them: no escape sequence arrives raw, ordinary text is untouched."""
    config = write_config(tmp_path, ONE_BOT + "        review: true\n        buffer: {size: 6, low: 1}\n", CONTROL_POSTS)

    def botkit(*args: str, stdin: str = "") -> str:
        done = subprocess.run([sys.executable, "-m", "botkit", *args], cwd=tmp_path, input=stdin.encode(), capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode("utf-8")

    botkit("run", str(config), "--once")
    reviewed = botkit("review", "apple", "-c", str(config), stdin="a\n" * len(CONTROL_POSTS))
    for _ in CONTROL_POSTS:
        botkit("run", str(config), "--once")
    history = botkit("history", "apple", "-c", str(config))
    for shown in (reviewed, history):
        assert not any(raw in shown for raw in RAW_CONTROLS), ascii(shown)
        assert all(escaped in shown for escaped in SHOWN_AS), shown
    assert len(history.splitlines()) == len(CONTROL_POSTS)  # a carriage return starts no line of its own


def test_status_shows_a_stored_error_with_its_control_characters_escaped(flaky: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from botkit.bots.targets import Rejected

    Flaky.script = [Rejected("\x1b]0;owned\x07refused\x1b[2J")]
    assert main(["run", str(flaky), "--once"]) == 1
    assert "\\x1b]0;owned\\x07refused\\x1b[2J" in capsys.readouterr().out  # the result line
    assert main(["status", "-c", str(flaky)]) == 0
    out = capsys.readouterr().out
    assert "last error:" in out and "\\x1b]0;owned\\x07refused\\x1b[2J" in out and "\x1b" not in out


def test_history_and_status_show_a_claim_in_doubt_with_its_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A claim a clean stop could not settle: ``history`` lists it first, in doubt since its claim, and
    ``status`` names it; its text escaped as every other row's."""
    config = write_config(tmp_path, ONE_BOT, CONTROL_POSTS)
    assert main(["run", str(config), "--once"]) == 0  # a post before it: the claim still comes first
    with ledger_for(config) as ledger:
        bot = one_bot(config, ledger)
        candidate = claim(bot)
        ledger.retire(bot.worker)  # the stop's lookup could not reach the service: claimed, its lease ended
    assert candidate.claimed_at is not None
    since = show_time(candidate.claimed_at)
    capsys.readouterr()
    assert main(["history", "apple", "-c", str(config), "-n", "1"]) == 0
    first, posted = capsys.readouterr().out.splitlines()
    assert first == f"{since}  in doubt (claimed, not confirmed)  candidate {candidate.id}, looked up at the next tick  {SHOWN_AS[1]}"
    assert posted.endswith(SHOWN_AS[0])
    assert main(["status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"  in flight:  candidate {candidate.id} in doubt (claimed, not confirmed) since {since}; looked up at the next tick" in out
    assert not any(raw in out for raw in RAW_CONTROLS)


def _obeyed(c: str) -> bool:
    """A character a terminal acts on rather than shows: a control (newline and tab aside) or a bidirectional override."""
    return (unicodedata.category(c) == "Cc" and c not in "\n\t") or ord(c) in BIDI_CONTROLS


@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from([chr(c) for c in BIDI_CONTROLS] + ["\u200e", "\u200f"]))))
def test_printable_escapes_controls_only(text: str) -> None:
    shown = printable(text)
    assert not any(_obeyed(c) for c in shown)
    if not any(_obeyed(c) for c in text):
        assert shown == text  # letters, emoji, combining marks, direction marks, newlines and tabs as they are
    assert printable(shown) == shown  # escaping twice changes nothing more: shown once


def test_a_bidirectional_override_shows_as_its_escape() -> None:
    assert printable("safe \u202eexe.txt") == "safe \\u202eexe.txt"


def test_review_approves_and_rejects_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT + "        review: true\n        buffer: {size: 3, low: 1}\n")
    assert main(["run", str(config), "--once"]) == 0
    assert "apple: empty: candidates wait for review (botkit review)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("x\nr\na\n"))  # a bad answer is asked again
    assert main(["review", "apple", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[1/3] candidate 1" in out and POSTS[0] in out
    assert out.rstrip().endswith("apple: 1 approved, 1 rejected, 1 left in the queue")  # EOF stops like q
    main(["run", str(config), "--once"])
    assert outbox_lines(tmp_path, "apple") == [POSTS[1]]
    config_off = write_config(tmp_path, ONE_BOT)
    assert main(["review", "apple", "-c", str(config_off)]) == 1
    assert "bots.apple.review: review is off for this bot" in capsys.readouterr().err


def test_db_flag_points_every_command_at_another_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, ONE_BOT)
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    assert main(["run", str(config), "--once", "--db", other]) == 0
    assert not (tmp_path / "botkit.db").exists() and (tmp_path / "elsewhere.db").exists()
    capsys.readouterr()
    assert main(["history", "apple", "--db", other, "-c", str(config)]) == 0
    assert POSTS[0] in capsys.readouterr().out
    assert main(["history", "apple", "-c", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "apple: no posts yet"


def test_run_lists_config_mistakes_and_missing_files_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad key in one bot does not hide another bot's missing posts file, nor the bot's own bad target."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "bots:\n  a: {posts: posts.txt, target: {kind: nope}, schedule: {cron: 'bad cron'}}\n  b: {posts: missing.txt}\n",
        encoding="utf-8",
    )
    (tmp_path / "posts.txt").write_text("hello\n", encoding="utf-8")
    assert main(["run", str(config), "--once"]) == 1
    err = capsys.readouterr().err
    assert f"{config}: bots.a.schedule: crontab line 'bad cron'" in err
    assert f"{config}: bots.a.target.kind: unknown target 'nope'" in err
    assert f"{config}: bots.b.posts: no such file {tmp_path / 'missing.txt'}" in err
