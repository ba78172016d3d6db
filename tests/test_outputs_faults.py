"""Outputs that cannot be written, and inputs of the wrong type: one ``botkit: error:`` line naming
the file, no traceback, no temporary file left, the previous file as it was.

The faults are made for real, never by patching botkit: a full disk is a 1 MB tmpfs filled up, a
read-only folder is that tmpfs remounted read-only (root, which these tests often run as, ignores
permission bits), a killed writer is a child process killed with SIGKILL, a reader that goes away
is a pipe closed by the test. Where mounting is not permitted, those tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.model.vocab import VocabError, Vocabulary

TINY = ["--embedding-size", "8", "--rnn-layers", "1", "--rnn-size", "16", "--window", "16", "--batch-size", "8", "--sample-every", "0"]
FILLER = "filler"


def error_line(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    """Run botkit in-process; it must fail with exactly one ``botkit: error:`` line, which is returned."""
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err.strip()
    err = "\n".join(line for line in err.splitlines() if line != "botkit: no GPU, training on CPU")
    assert err.startswith("botkit: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with a file's bytes (the filler aside): a left-over temp file or a changed file shows."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*")) if p.name != FILLER}


def _mount(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["mount", *args], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs of its own, unmounted afterwards: filled, it is a full disk; remounted, a read-only one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root and mount permission): {done.stderr.strip() if done else 'no mount command'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until only ``leave`` bytes are free."""
    stat = os.statvfs(disk)
    (disk / FILLER).write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))


def read_only(disk: Path) -> None:
    done = _mount("-o", "remount,ro", str(disk))
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot remount a tmpfs read-only: {done.stderr.strip() if done else 'no mount command'}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny trained model and its corpus (trained once: a few seconds)."""
    folder = tmp_path_factory.mktemp("trained")
    corpus = folder / "titles.txt"
    corpus.write_text("".join(f"a title with the number {i} in it\n" for i in range(60)), encoding="utf-8")
    assert main(["train", str(corpus), "-o", str(folder / "m"), "--epochs", "1", *TINY]) == 0
    return folder / "m", corpus


# --- train -o onto a full disk or a read-only folder (item 6, 7) ------------------------------


def test_train_onto_a_full_disk_keeps_the_previous_model(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, corpus = trained
    out = small_disk / "m"
    shutil.copytree(model, out)
    before = listing(small_disk)
    fill(small_disk, leave=8192)
    # Before: an h5py traceback per buffer, a segfault (rc 139) and .tmp.model.weights.h5 left.
    err = error_line(capsys, "train", corpus, "-o", out, "--resume", "--epochs", "3")
    assert f"{out}/" in err and "No space left on device" in err and "is unchanged" in err
    assert listing(small_disk) == before  # the model as it was, no temporary file
    (small_disk / FILLER).unlink()
    assert main(["generate", str(out), "-n", "2", "--filters", "none"]) == 0  # and it still loads


LIMITED = """
import resource, signal, sys
from botkit.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX rlimits")
def test_train_past_a_file_size_limit_keeps_the_previous_model(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    """The same fault where no tmpfs can be mounted: a file size limit in a child process (the
    weights, about 70 KB, cannot be written; h5py used to crash the process here, rc 139)."""
    model, corpus = trained
    out = tmp_path / "m"
    shutil.copytree(model, out)
    before = listing(tmp_path)
    args = ["train", str(corpus), "-o", str(out), "--resume", "--epochs", "3"]
    done = subprocess.run([sys.executable, "-c", LIMITED, "30000", *args], capture_output=True, text=True, timeout=300, check=False)
    err = "\n".join(line for line in done.stderr.splitlines() if line.startswith("botkit: ") and line != "botkit: no GPU, training on CPU")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert err.startswith(f"botkit: error: {out}/") and "(File too large); the previous model file is unchanged" in err and "\n" not in err, err
    assert listing(tmp_path) == before


def test_new_model_onto_a_full_disk_leaves_nothing(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, corpus = trained
    fill(small_disk, leave=8192)
    err = error_line(capsys, "train", corpus, "-o", small_disk / "new", "--epochs", "1", *TINY)
    assert f"{small_disk / 'new'}" in err and "No space left on device" in err
    assert listing(small_disk) == {}


def test_train_into_a_read_only_folder(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, corpus = trained
    read_only(small_disk)
    err = error_line(capsys, "train", corpus, "-o", small_disk / "m", "--epochs", "1", *TINY)
    assert str(small_disk / "m") in err and "Read-only file system" in err
    assert listing(small_disk) == {}


# --- generate -o that cannot be written (item 7) ----------------------------------------------


def test_generate_into_a_missing_folder(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = trained
    out = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    err = error_line(capsys, "generate", model, "-n", "2", "--filters", "none", "-o", out)
    assert err == f"botkit: error: {out}: cannot write samples file (folder {out.parent} does not exist); nothing written"


def test_generate_into_a_read_only_folder(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = trained
    out = small_disk / "x.jsonl"
    out.write_text('{"text": "an old sample"}\n', encoding="utf-8")
    read_only(small_disk)
    err = error_line(capsys, "generate", model, "-n", "2", "--filters", "none", "-o", out)
    assert err == f"botkit: error: {out}: cannot write samples file (Read-only file system); the previous samples file is unchanged"


def test_generate_onto_a_full_disk(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = trained
    out = small_disk / "out.jsonl"
    out.write_text('{"text": "an old sample"}\n', encoding="utf-8")
    before = listing(small_disk)
    fill(small_disk, leave=4096)
    err = error_line(capsys, "generate", model, "-n", "400", "--filters", "none", "-o", out)
    assert err == f"botkit: error: {out}: cannot write samples file (No space left on device); the previous samples file is unchanged"
    assert listing(small_disk) == before  # no .out.jsonl.*.tmp


def test_report_onto_a_full_disk(small_disk: Path, trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = trained
    (small_disk / "loss.png").write_bytes(b"an old picture")
    before = listing(small_disk)
    fill(small_disk, leave=0)
    err = error_line(capsys, "report", model, "-o", small_disk)
    assert err == f"botkit: error: {small_disk / 'loss.png'}: cannot write picture (No space left on device); the previous picture is unchanged"
    assert listing(small_disk) == before


# --- vocab.json with values of the wrong type (item 8) ----------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokens": 5}, "vocab.json: tokens: expected a list of strings (got 5)"),
        ({"labels": None}, "vocab.json: labels: expected a list of strings (got null)"),
        ({"tokens": ["<pad>", "<sep>", "<unk>", "a", 7]}, "vocab.json: tokens: item 4 is 7, expected a string"),
        ({"labels": ["", ["x"]]}, 'vocab.json: labels: item 1 is ["x"], expected a string'),
        ({"level": 3}, "vocab.json: level: expected one of 'char', 'word' (got 3)"),
        ({"labels": []}, "vocab.json: labels: expected at least the empty label"),
    ],
    ids=["tokens-a-number", "labels-null", "a-number-as-a-token", "a-list-as-a-label", "level-a-number", "no-labels"],
)
def test_vocab_of_the_wrong_types(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, object], message: str
) -> None:
    model, corpus = trained
    damaged = tmp_path / "m"
    shutil.copytree(model, damaged, ignore=shutil.ignore_patterns("cache", "resume"))
    vocab = json.loads((damaged / "vocab.json").read_text(encoding="utf-8"))
    (damaged / "vocab.json").write_text(json.dumps({**vocab, **change}), encoding="utf-8")
    with pytest.raises(VocabError, match="^" + str(damaged / message).replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Vocabulary.load(damaged / "vocab.json")
    runs: list[list[str | Path]] = [["generate", damaged, "-n", "1"], ["eval", damaged, corpus]]
    for args in runs:
        assert message in error_line(capsys, *args)


# --- temporary files of killed writers (item 11) ----------------------------------------------

_WRITER = """
import os, signal, sys
from botkit.corpus.document import Document
from botkit.corpus.io import CorpusWriter
with CorpusWriter(sys.argv[1]) as writer:
    writer.add(Document("a document of a writer that is " + sys.argv[2]))
    writer._tmp.flush()
    if sys.argv[2] == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    print("writing", flush=True)
    sys.stdin.read()  # live until the test closes stdin
"""


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_temp_files_of_killed_fetches_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("a fetched document\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", _WRITER, "c.jsonl", "killed"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    dead = _temps(tmp_path)
    assert len(dead) == 1  # what the issue saw: a hidden file that no run removed
    live = subprocess.Popen([sys.executable, "-c", _WRITER, "c.jsonl", "live"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout is not None and live.stdout.readline() == "writing\n"
        (living,) = set(_temps(tmp_path)) - set(dead)
        old_style = tmp_path / ".c.jsonl.k2j4h5g1.tmp"  # tempfile's name, from before names held the pid
        old_style.write_text("half a corpus\n", encoding="utf-8")
        os.utime(old_style, (0, 0))
        assert main(["fetch", "files", "in.txt", "-o", "c.jsonl"]) == 0
        assert _temps(tmp_path) == [living]  # the live writer's file is untouched
    finally:
        assert live.stdin is not None
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    assert _temps(tmp_path) == []  # the live writer finished: its file renamed into place
    assert "a writer that is live" in Path("c.jsonl").read_text(encoding="utf-8")


# --- a reader that goes away (item 12) --------------------------------------------------------


@pytest.mark.parametrize("args", [["targets"], ["generate", "MODEL", "-n", "20", "--filters", "none"]], ids=["targets", "generate"])
def test_output_into_a_closed_pipe(trained: tuple[Path, Path], args: list[str]) -> None:
    """`botkit targets | head -1`: the reader is gone before botkit writes (its end of the pipe is
    closed before botkit starts, so every run meets the broken pipe, not only an unlucky one)."""
    model, _ = trained
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        args = [str(model) if a == "MODEL" else a for a in args]
        done = subprocess.run([sys.executable, "-m", "botkit", *args], stdout=write_end, capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
