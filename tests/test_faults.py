"""Real failures a user meets: each is one ``botkit: error:`` line, no traceback, nothing lost, no secret shown.

The failures are made for real, never by patching botkit: a full disk is a file size limit
(RLIMIT_FSIZE) in a child process, a missing permission is a child that drops root to an
unprivileged uid (root ignores permission bits, and these tests often run as root), an I/O error
is a read of /proc/self/mem at offset 0 (unmapped memory: EIO, for root too).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from botkit.cli import main
from botkit.errors import ConfigError
from botkit.options import validate

posix_only = pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs POSIX rlimits and uids")

#: A uid and gid that own none of the test's files (nobody's on Linux).
UNPRIVILEGED = 65534

# The child imports everything and builds the parser (which loads every plugin) before it drops
# its privileges, since the interpreter's own files may then be out of reach (/root/.pyenv).
_CHILD = """
import os, resource, signal, sys
import botkit.config, botkit.fetch
from botkit.cli import build_parser, main
build_parser()
fsize, uid = int(sys.argv[1]), int(sys.argv[2])
if fsize >= 0:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if uid >= 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
sys.exit(main(sys.argv[3:]))
"""


def child(cwd: Path, *args: str, fsize: int = -1, unprivileged: bool = False) -> str:
    """Run botkit in a child process, with a file size limit or without root; return its stderr."""
    uid = UNPRIVILEGED if unprivileged and os.geteuid() == 0 else -1  # a normal user is unprivileged already
    result = subprocess.run([sys.executable, "-c", _CHILD, str(fsize), str(uid), *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    return result.stderr


def one_error_line(stderr: str, *expected: str) -> None:
    assert stderr.startswith("botkit: error: ") and stderr.count("\n") == 1, stderr
    for part in expected:
        assert part in stderr, stderr


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with a file's bytes: a left-over temp file or a changed corpus shows."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() and not p.is_symlink() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged child can reach (pytest's tmp_path sits in a root-only folder)."""
    folder = Path(tempfile.mkdtemp(prefix="botkit-faults-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


@pytest.fixture
def lines(shared_dir: Path) -> Path:
    """An input of 2,000 lines (about 60 KB) and a corpus of one old document beside it."""
    (shared_dir / "in.txt").write_text("".join(f"line number {i} of the input\n" for i in range(2000)), encoding="utf-8")
    (shared_dir / "c.jsonl").write_text('{"text": "an old document"}\n', encoding="utf-8")
    return shared_dir


# --- writing a corpus -----------------------------------------------------------------------


@posix_only
def test_read_only_output_folder(lines: Path) -> None:
    (lines / "ro").mkdir()
    shutil.move(lines / "c.jsonl", lines / "ro" / "c.jsonl")
    (lines / "ro").chmod(0o555)
    before = listing(lines)
    stderr = child(lines, "fetch", "files", "in.txt", "-o", "ro/c.jsonl", unprivileged=True)
    one_error_line(stderr, "ro/c.jsonl: cannot create a file in ro (Permission denied); the old corpus is unchanged")
    assert listing(lines) == before


@posix_only
@pytest.mark.parametrize(
    ("output", "fsize", "message"),
    [
        ("c.jsonl", 20_000, "c.jsonl: cannot write the corpus (File too large); the old corpus is unchanged"),
        ("new.txt", 20_000, "new.txt: cannot write the corpus (File too large); nothing written"),
        ("c.jsonl", 10, "c.jsonl: cannot copy the old corpus (File too large); the old corpus is unchanged"),
    ],
    ids=["adding-to-a-corpus", "new-corpus", "copying-the-old-corpus"],
)
def test_disk_full_while_writing(lines: Path, output: str, fsize: int, message: str) -> None:
    before = listing(lines)
    one_error_line(child(lines, "fetch", "files", "in.txt", "-o", output, fsize=fsize), message)
    assert listing(lines) == before  # old corpus as it was, no .NAME.*.tmp left


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "c.jsonl: is a folder, expected a corpus file"),
        (lambda p: p.write_text('{"text": "ok"}\n{"text": broken\n', encoding="utf-8"), "c.jsonl: line 2 is not valid JSON"),
        (lambda p: p.symlink_to("/proc/self/mem"), "c.jsonl: cannot read corpus file (Input/output error)"),
    ],
    ids=["a-folder", "invalid", "io-error"],
)
def test_old_corpus_that_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make: Callable[[Path], object], message: str
) -> None:
    if "mem" in message and not Path("/proc/self/mem").exists():
        pytest.skip("no /proc")
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("a new document\n", encoding="utf-8")
    make(Path("c.jsonl"))
    before = listing(tmp_path)
    assert main(["fetch", "files", "in.txt", "-o", "c.jsonl"]) == 1
    one_error_line(capsys.readouterr().err, message)
    assert listing(tmp_path) == before


@posix_only
def test_old_corpus_without_read_permission(lines: Path) -> None:
    lines.chmod(0o777)  # the folder is writable, so the temp file is made and must be removed
    before = listing(lines)
    (lines / "c.jsonl").chmod(stat.S_IWUSR)
    stderr = child(lines, "fetch", "files", "in.txt", "-o", "c.jsonl", unprivileged=True)
    one_error_line(stderr, "c.jsonl: cannot read corpus file (Permission denied)")
    (lines / "c.jsonl").chmod(0o644)
    assert listing(lines) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt", "-o", "corpora/out.jsonl"], "missing.txt: no such file or folder"),
        (["empty_folder", "-o", "corpora/out.jsonl"], "empty_folder: matches no files"),
        (["in.txt", "-o", "corpora"], "corpora: a corpus must end in .jsonl or .txt (got 'no suffix')"),
        (["in.txt", "-o", "corpora/out.csv"], "corpora/out.csv: a corpus must end in .jsonl or .txt (got '.csv')"),
        (["in.txt", "-o", "corpora/dir.jsonl"], "corpora/dir.jsonl: is a folder, expected a corpus file"),
        (["in.txt", "-o", "nope/out.jsonl"], "nope/out.jsonl: folder nope does not exist"),
        (["in.txt", "-o", "in.txt/out.jsonl"], "in.txt/out.jsonl: in.txt is a file, not a folder"),
        # /proc takes no new files, from root either
        (["in.txt", "-o", "/proc/out.jsonl"], "/proc/out.jsonl: cannot create a file in /proc"),
    ],
)
def test_bad_fetch_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    if args[-1].startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc")
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("a document\n", encoding="utf-8")
    Path("empty_folder").mkdir()
    Path("corpora/dir.jsonl").mkdir(parents=True)
    before = listing(tmp_path)
    assert main(["fetch", "files", *args]) == 1
    one_error_line(capsys.readouterr().err, message)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("args", [["files", "in.txt"], ["-c", "config.yaml"]], ids=["default-output", "config-corpora"])
def test_corpora_folder_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("a document\n", encoding="utf-8")
    Path("corpora").write_text("not a folder\n", encoding="utf-8")
    Path("config.yaml").write_text("corpora:\n  c: {source: files, paths: [in.txt]}\n", encoding="utf-8")
    assert main(["fetch", *args]) == 1
    one_error_line(capsys.readouterr().err, "corpora: a file is in the way")


# --- reading a config -----------------------------------------------------------------------


@posix_only
def test_config_without_read_permission(shared_dir: Path) -> None:
    config = shared_dir / "config.yaml"
    config.write_text("store: botkit.db\n", encoding="utf-8")
    config.chmod(stat.S_IWUSR)
    stderr = child(shared_dir, "fetch", "-c", "config.yaml", unprivileged=True)
    one_error_line(stderr, "config.yaml: cannot read config file (Permission denied)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", "config.yaml: line 1: a key must be a name, not a list or mapping"),
        ("store: x\nbots: {[x]: 1}\n", "config.yaml: line 2: a key must be a name, not a list or mapping"),
        ("bots:\n  b:\n    ? {x: 1}\n    : 2\n", "config.yaml: line 3: a key must be a name, not a list or mapping"),
    ],
)
def test_config_key_that_is_a_list_or_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_text(text, encoding="utf-8")
    assert main(["fetch", "-c", "config.yaml"]) == 1
    one_error_line(capsys.readouterr().err, message)


def test_config_that_is_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").mkdir()
    assert main(["fetch", "-c", "config.yaml"]) == 1
    one_error_line(capsys.readouterr().err, "config.yaml: cannot read config file (Is a directory)")


# --- secrets --------------------------------------------------------------------------------


def test_literal_secrets_of_the_wrong_type_are_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("posts.txt").write_text("a post\n", encoding="utf-8")
    Path("config.yaml").write_text(
        textwrap.dedent(
            """\
            bots:
              typed:
                posts: posts.txt
                target:
                  kind: twitter
                  consumer_key: 98765432
                  consumer_secret: [sekrit-one, sekrit-two]
                  access_token: {token: sekrit-three}
                  access_token_secret: 4.2424
              no_supply:  # a bot-level error sees the whole bot, its target's credentials included
                target: {kind: twitter, consumer_key: hunter2-literal}
            """
        ),
        encoding="utf-8",
    )
    assert main(["fetch", "-c", "config.yaml"]) == 1
    err = capsys.readouterr().err
    for key in ("consumer_key", "consumer_secret", "access_token", "access_token_secret"):
        assert f"config.yaml: bots.typed.target.{key}: Input should be a valid string (a secret: value not shown)" in err
    assert "config.yaml: bots.no_supply: give one of model:" in err
    for part in ("98765432", "8765", "sekrit", "4.2424", "2424", "hunter2", "literal"):
        assert part not in err


class _Inner(BaseModel):
    token: SecretStr


class _WithSecrets(BaseModel):
    keys: list[SecretStr]
    inner: _Inner
    name: str


def test_secret_fields_in_lists_and_nested_models_are_never_shown() -> None:
    with pytest.raises(ConfigError) as info:
        validate(_WithSecrets, {"keys": ["fine", 13572468], "inner": {"token": 24681357}, "name": 5}, "plugin.yaml", ("x",))
    assert str(info.value).splitlines() == [
        "plugin.yaml: x.keys.1: Input should be a valid string (a secret: value not shown)",
        "plugin.yaml: x.inner.token: Input should be a valid string (a secret: value not shown)",
        "plugin.yaml: x.name: Input should be a valid string (got 5)",
    ]
