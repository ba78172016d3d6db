"""The command line end to end: fetch from files, stats, demo, plugins, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botkit.cli import main
from botkit.corpus import read_corpus

BUILT_IN_SOURCES = ["csv", "files", "gitter", "matrix", "reddit", "reddit-dump", "twitter-archive"]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botkit", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def test_fetch_files_line_mode_then_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "titles.txt"
    src.write_text("title\nFirst  title\nsecond title\nFirst title\n\nhttp://x.y only a link\n", encoding="utf-8")
    out = tmp_path / "titles.jsonl"
    assert main(["fetch", "files", str(src), "--skip-header", "--label", "hn", "-o", str(out)]) == 0
    assert "added 3 new document(s)" in capsys.readouterr().out
    docs = list(read_corpus(out))
    assert [d.text for d in docs] == ["First title", "second title", "http://x.y only a link"]
    assert {d.label for d in docs} == {"hn"}
    assert main(["fetch", "files", str(src), "--skip-header", "--label", "hn", "--strip-urls", "-o", str(out)]) == 0
    assert "added 1 new document(s)" in capsys.readouterr().out  # only the link-stripped line is new
    assert main(["corpus", "stats", str(out)]) == 0
    stats = capsys.readouterr().out
    assert "documents:           4" in stats and "hn" in stats


def test_fetch_single_text_folder_and_default_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text("line one\nline two\n", encoding="utf-8")
    (folder / "b.txt").write_text("other book\n", encoding="utf-8")
    (folder / "skip.md").write_text("not text\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["fetch", "files", "books", "--single-text", "--label-from-filename"]) == 0
    docs = list(read_corpus(tmp_path / "corpora" / "books.jsonl"))
    assert [(d.text, d.label) for d in docs] == [("line one\nline two", "a"), ("other book", "b")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fetch", "files", "missing.txt", "-o", "out.jsonl"], "missing.txt: no such file or folder"),
        (["fetch", "files", "empty.txt", "-o", "out.jsonl"], "the source gave no documents"),
        (["fetch", "files", "in.txt", "-o", "nofolder/out.jsonl"], "folder nofolder does not exist"),
        (["fetch", "files", "in.txt", "-o", "out.csv"], "must end in .jsonl or .txt"),
        (["fetch", "files", "in.txt", "--min-length", "100", "-o", "out.jsonl"], "dropped by clean-up"),
        (["fetch", "files", "in.txt", "--min-length", "-3", "-o", "out.jsonl"], "botkit fetch: --min-length: Input should be greater than or equal to 0"),
        (["fetch", "nosuch"], "invalid choice: 'nosuch'"),
        (["corpus", "stats", "bad.jsonl"], "bad.jsonl: line 1 is not valid JSON"),
        (["fetch", "-c", "nope.yaml"], "nope.yaml: config file not found"),
    ],
)
def test_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "in.txt").write_text("short\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text("{oops\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("sources", BUILT_IN_SOURCES),
        ("filters", ["banned", "callable", "charset", "dedupe", "length", "min-score", "novelty", "repetition"]),
        ("targets", ["bluesky", "mastodon", "outbox", "reddit", "twitter"]),
    ],
)
def test_plugin_listings_show_every_built_in(command: str, expected: list[str]) -> None:
    result = run(command)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == expected
    assert "broken" not in result.stdout


def test_third_party_source_plugs_in_through_an_entry_point(tmp_path: Path) -> None:
    """A package that only declares a ``botkit.sources`` entry point becomes a fetch source."""
    (tmp_path / "shout_source.py").write_text(
        textwrap.dedent(
            """
            from pydantic import Field
            from botkit.corpus import Document
            from botkit.options import Options
            from botkit.sources import Source

            class ShoutOptions(Options):
                word: list[str] = Field(description="words to shout")

            class ShoutSource(Source):
                summary = "shouts its words"
                Options = ShoutOptions

                def documents(self):
                    for word in self.options.word:
                        yield Document(word.upper() + "!", label="shout")
            """
        ),
        encoding="utf-8",
    )
    dist = tmp_path / "shout_source-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-source\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[botkit.sources]\nshout = shout_source:ShoutSource\n", encoding="utf-8")
    env = {"PYTHONPATH": str(tmp_path)}
    listing = run("sources", env=env)
    assert "shouts its words" in listing.stdout and "shout-source" in listing.stdout
    fetched = run("fetch", "shout", "--word", "hi", "--word", "there", "-o", "out.jsonl", cwd=tmp_path, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert [json.loads(line)["text"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == ["HI!", "THERE!"]


def test_fetch_from_config_and_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "story.txt").write_text("Once upon a time.\nThe end.\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("corpora:\n  story:\n    source: files\n    paths: [story.txt]\n", encoding="utf-8")
    assert main(["fetch", "-c", str(config)]) == 0
    assert main(["fetch", "-c", str(config), "--corpus", "story"]) == 0
    assert "added 0 new document(s)" in capsys.readouterr().out
    assert main(["fetch", "-c", str(config), "--corpus", "other"]) == 1
    assert "no corpus named other" in capsys.readouterr().err
    assert main(["demo", str(config)]) == 0
    assert "documents:           2" in capsys.readouterr().out


def test_training_on_a_cpu_is_quiet(tmp_path: Path) -> None:
    """No CUDA/absl/oneDNN start-up lines from TensorFlow; one line saying the CPU trains (none on a GPU)."""
    corpus = tmp_path / "titles.txt"
    corpus.write_text("".join(f"title number {i} of a few\n" for i in range(40)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    tiny = ["--embedding-size", "8", "--rnn-layers", "1", "--rnn-size", "8", "--window", "16", "--batch-size", "8", "--sample-every", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "botkit", "train", str(corpus), "-o", str(tmp_path / "m"), "--epochs", "1", *tiny],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for noise in ("cuda", "cuinit", "absl", "onednn", "cpu_feature_guard", "tensorflow binary"):
        assert noise not in done.stderr.lower()
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("epoch 1: step")
    assert lines[:-1] in (["botkit: no GPU, training on CPU"], [])  # [] where a GPU trains


def test_quiet_start_up_keeps_real_errors(capfd: pytest.CaptureFixture[str]) -> None:
    from botkit.model import _known_notices_dropped

    with _known_notices_dropped():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796416973.025625   11306 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n")
        os.write(2, b"E0000 00:00:1796416975.707698   11306 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n")
        os.write(2, b"E0000 00:00:1796416975.707698   11306 op_kernel.cc:1] a real error\n")
    assert capfd.readouterr().err == "E0000 00:00:1796416975.707698   11306 op_kernel.cc:1] a real error\n"
