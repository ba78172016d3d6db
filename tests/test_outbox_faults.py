"""The outbox counts a post only once its whole line is on disk: torn lines, full disks, read-only folders.

A write cut short (a full disk, a crash mid-write) leaves half a line in ``outbox/BOT.txt``. That
half line must never count as the post, must be cut away before the next line is appended (never
glued onto it), and the candidate must stay unposted until a later run writes it whole.

The failures are made for real, never by patching botkit: a full disk is a file size limit
(RLIMIT_FSIZE, EFBIG) in a child process, or, where mounting is allowed (root, as in CI), a small
tmpfs filled up (ENOSPC); a read-only folder is that tmpfs remounted read-only (EROFS); a crash
mid-write is the half line it leaves, written by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botkit.bots.bot import Bot, build_bots
from botkit.bots.ledger import Ledger, store_url
from botkit.cli import main
from botkit.config import load_config

from claims import claim, dead_worker

#: Posts of 18 KB, as in the report: one write of the line is many pages, so a full disk tears it.
POSTS = [f"post number {i}: " + " ".join(f"w{i}{j:05d}" for j in range(2500)) for i in range(1, 6)]

CONFIG = """\
store: botkit.db
bots:
  apple:
    posts: posts.txt
    filters: none
    schedule: {every: 10s}
    retry: {attempts: 2, backoff: 0.01s, max_backoff: 0.01s}
    target: {kind: outbox, folder: box}
"""

#: The child runs botkit under a file size limit; SIGXFSZ ignored, a write past it fails with EFBIG.
_CHILD = """
import resource, signal, sys
from botkit.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
fsize = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
sys.exit(main(sys.argv[2:]))
"""

posix_only = pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs POSIX rlimits")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "posts.txt").write_text("".join(p + "\n" for p in POSTS), encoding="utf-8")
    (tmp_path / "box").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def outbox(config: Path) -> Path:
    return config.parent / "box" / "apple.txt"


def posted_lines(config: Path) -> list[str]:
    """The outbox's lines as ``#ID  text``; asserts the file ends in a newline (no torn tail)."""
    data = outbox(config).read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    return [line.split("  ", 1)[1] for line in data.decode("utf-8").split("\n")[:-1]]


def history(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``botkit history``'s candidates, newest first, as ``#ID``."""
    capsys.readouterr()
    assert main(["history", "apple", "-c", str(config)]) == 0
    return [line.split()[3] for line in capsys.readouterr().out.splitlines()]


def run_once(config: Path, capsys: pytest.CaptureFixture[str], status: int = 0) -> str:
    """One ``botkit run --once`` in this process: its output and log lines together; ``status``: its exit status (1 when the tick failed)."""
    capsys.readouterr()
    assert main(["run", str(config), "--once"]) == status
    captured = capsys.readouterr()
    return captured.out + captured.err


def one_bot(config: Path, ledger: Ledger) -> Bot:
    (bot,) = build_bots(load_config(config).bots, ledger, str(config), worker=dead_worker())
    return bot


# -- a torn last line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "torn",
    [
        lambda line: line[: len(line) // 3],  # a crash (or a full disk) a third of the way through
        lambda line: line[:-1],  # everything but the newline: text and marker complete, still not whole
        lambda line: line[:24],  # the time and the marker only
    ],
    ids=["a-third", "all-but-the-newline", "marker-only"],
)
def test_a_torn_line_left_by_a_crash_is_no_proof_and_is_cut_before_the_next_line(
    config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, torn: Callable[[bytes], bytes]
) -> None:
    assert "posted: candidate 1" in run_once(config, capsys)
    whole = outbox(config).read_bytes()
    with Ledger(store_url("botkit.db", config.parent)) as ledger:
        candidate = claim(one_bot(config, ledger))  # a daemon claims candidate 2, starts its line and dies
        assert candidate.id == 2
        line = f"2026-12-07 14:52:25Z  #2  {candidate.text}\n".encode()
        outbox(config).write_bytes(whole + torn(line))
    out = run_once(config, capsys)
    assert "apple: posted: candidate 2" in out
    assert posted_lines(config) == [f"#1  {POSTS[0]}", f"#2  {POSTS[1]}"]  # written whole, not taken from the torn one
    assert f"{outbox(config)}: cut off a torn last line" in caplog.text
    assert "posted: candidate 3" in run_once(config, capsys)
    assert posted_lines(config) == [f"#{i}  {p}" for i, p in enumerate(POSTS[:3], 1)]
    assert history(config, capsys) == ["#3", "#2", "#1"]


def test_a_torn_line_of_another_candidate_is_cut_and_never_counts(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A half line with the next candidate's marker, though nothing claimed it (a copied or
    restored file): the next post is written whole after cutting it, and nothing counts it."""
    run_once(config, capsys)
    with open(outbox(config), "ab") as fh:
        fh.write(f"2026-12-07 14:52:25Z  #2  {POSTS[1][:5000]}".encode())
    assert "posted: candidate 2" in run_once(config, capsys)
    assert posted_lines(config) == [f"#1  {POSTS[0]}", f"#2  {POSTS[1]}"]


def test_a_file_of_nothing_but_a_long_torn_line_is_emptied_before_the_first_post(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The torn tail is longer than one read-back step (64 KB) and no whole line comes before it."""
    outbox(config).write_bytes(b"2026-12-07 14:52:25Z  #1  " + b"x" * 150_000)
    assert "posted: candidate 1" in run_once(config, capsys)
    assert posted_lines(config) == [f"#1  {POSTS[0]}"]


def test_a_whole_line_written_just_before_a_crash_still_counts_once(config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """The proof that stays: a whole last line with the claimed candidate's marker and text."""
    run_once(config, capsys)
    with Ledger(store_url("botkit.db", config.parent)) as ledger:
        candidate = claim(one_bot(config, ledger))
        with open(outbox(config), "ab") as fh:
            fh.write(f"2026-12-07 14:52:25Z  #2  {candidate.text}\n".encode())
    before = outbox(config).read_bytes()
    out = run_once(config, capsys)
    assert "apple: posted: candidate 2" in out and "torn" not in caplog.text
    assert outbox(config).read_bytes() == before  # counted, not written twice
    assert history(config, capsys) == ["#2", "#1"]


# -- a write that fails ----------------------------------------------------------------------


@pytest.fixture
def tmpfs(config: Path) -> Iterator[Path]:
    """The outbox folder on a 2 MB tmpfs of its own; skipped where mounting is not permitted."""
    box = config.parent / "box"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(box)], check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield box
    finally:
        subprocess.run(["umount", str(box)], check=True)


def fill(box: Path, leave: int) -> Path:
    """Fill the file system of ``box`` up to ``leave`` free bytes, with a file of its own."""
    stats = os.statvfs(box)
    filler = box / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler


def assert_not_posted(config: Path, before: bytes, out: str, error: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Candidate 2 failed with one message naming the file; the file and the history are as before."""
    assert f"apple: error: candidate 2 not confirmed ({outbox(config)}: cannot write candidate 2 to the outbox ({error}); not posted)" in out, out
    assert "posted: candidate 2" not in out
    assert outbox(config).read_bytes() == before  # the half line written before the failure was undone
    assert history(config, capsys) == ["#1"]


def assert_posted_whole_later(config: Path, capsys: pytest.CaptureFixture[str], earlier: int = 0) -> None:
    """Once the disk has room again, candidate 2 is posted whole, then 3 on a line of its own."""
    assert "apple: posted: candidate 2" in run_once(config, capsys)
    assert "apple: posted: candidate 3" in run_once(config, capsys)
    assert posted_lines(config)[earlier:] == [f"#{i}  {p}" for i, p in enumerate(POSTS[:3], 1)]
    assert history(config, capsys) == ["#3", "#2", "#1"]


def test_a_full_disk_fails_the_post_and_a_later_run_posts_it_whole(config: Path, tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_once(config, capsys)
    before = outbox(config).read_bytes()
    filler = fill(tmpfs, leave=9 * 1024)  # room for half of the next post
    out = run_once(config, capsys, status=1)
    assert_not_posted(config, before, out, "No space left on device", capsys)
    out = run_once(config, capsys, status=1)  # still full: the claimed candidate is tried again, and fails again
    assert_not_posted(config, before, out, "No space left on device", capsys)
    filler.unlink()
    assert_posted_whole_later(config, capsys)


@posix_only
def test_a_file_size_limit_fails_the_post_and_a_later_run_posts_it_whole(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same without mounting: a child whose file size limit lets half of the next line through.

    The outbox starts at 1 MB of earlier posts so that the limit falls inside it, well above
    the sizes the ledger's database and its write-ahead log reach in one run.
    """
    earlier = "".join(f"2026-01-01 00:00:00Z  #{-i}  an earlier post of another ledger {'.' * 1000}\n" for i in range(1000))
    outbox(config).write_text(earlier, encoding="utf-8")
    run_once(config, capsys)
    before = outbox(config).read_bytes()
    args = [sys.executable, "-c", _CHILD, str(len(before) + 9 * 1024), "run", str(config), "--once"]
    child = subprocess.run(args, check=False, cwd=config.parent, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr  # the tick failed: cron hears of it
    assert_not_posted(config, before, child.stdout + child.stderr, "File too large", capsys)
    assert_posted_whole_later(config, capsys, earlier=1000)
    assert posted_lines(config)[:1000] == [line.split("  ", 1)[1] for line in earlier.splitlines()]


def test_a_read_only_outbox_fails_the_post_and_a_later_run_posts_it_whole(config: Path, tmpfs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_once(config, capsys)
    before = outbox(config).read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    try:
        out = run_once(config, capsys, status=1)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert_not_posted(config, before, out, "Read-only file system", capsys)
    assert_posted_whole_later(config, capsys)
