"""config.yaml loading: every problem names the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from botkit.cli import main
from botkit.config import load_config
from botkit.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n", encoding="utf-8")
    config = load_config(write(tmp_path, "corpora:\n  c:\n    source: files\n    paths: [in.txt]\n    normalize: {lowercase: true}\n"))
    spec = config.corpora["c"]
    assert spec.source.options.paths == [tmp_path / "in.txt"]
    assert spec.output == tmp_path / "corpora" / "c.jsonl"
    assert spec.normalization.lowercase is True
    assert config.store == "botkit.db"


def test_the_shipped_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "config.yaml")
    assert config.corpora["shakespeare"].source.options.paths[0].is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stor: x\n", r"config\.yaml: stor: unknown key"),
        ("corpora:\n  c:\n    source: files\n    paths: [a]\n    colour: red\n", r"config\.yaml: corpora\.c\.colour: unknown key"),
        (
            "corpora:\n  c:\n    source: files\n    paths: [a]\n    skip_header: maybe\n",
            r"corpora\.c\.skip_header: Input should be a valid boolean.*got 'maybe'",
        ),
        ("corpora:\n  c:\n    source: files\n", r"corpora\.c\.paths: required key is missing"),
        ("corpora:\n  c:\n    paths: [a]\n", r"corpora\.c\.source: required key is missing"),
        ("corpora:\n  c:\n    source: nosuch\n", r"corpora\.c\.source: unknown source 'nosuch' \(known: .*files"),
        (
            "corpora:\n  c:\n    source: files\n    paths: [a]\n    normalize: {min_length: -1}\n",
            r"corpora\.c\.normalize\.min_length: Input should be greater than or equal to 0",
        ),
        ("corpora: [1, 2]\n", r"corpora: Input should be a valid dictionary"),
        ("- just\n- a list\n", r"top level must be a mapping"),
        ("corpora:\n  c: {source: files\n", r"line \d+, column \d+: not valid YAML"),
        ("store: a\nstore: b\n", r"config\.yaml: line 2: key 'store' is given twice"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "corpora:\n  a:\n    source: files\n    paths: [x]\n    bad: 1\n  b:\n    source: files\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "corpora.a.bad: unknown key" in str(info.value)
    assert "corpora.b.paths: required key is missing" in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_env_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_TEST_DB", "farm.db")
    config = load_config(write(tmp_path, "store: ${BOTKIT_TEST_DB}\ncorpora: {}\n"))
    assert config.store == "farm.db"
    config = load_config(write(tmp_path, "store: ${BOTKIT_TEST_UNSET:-default.db}\n"))
    assert config.store == "default.db"
    config = load_config(write(tmp_path, "store: cost$$5\n"))
    assert config.store == "cost$5"
    with pytest.raises(ConfigError, match=r"config\.yaml: store: environment variable BOTKIT_TEST_UNSET is not set"):
        load_config(write(tmp_path, "store: ${BOTKIT_TEST_UNSET}\n"))


def test_secrets_from_the_environment_are_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTKIT_TEST_SECRET", "hunter2")
    text = "corpora:\n  c:\n    source: files\n    paths: [a]\n    skip_header: ${BOTKIT_TEST_SECRET}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "corpora.c.skip_header" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "value from the environment not shown" in str(info.value)


@pytest.mark.parametrize(
    ("body", "key", "value"),
    [
        ("lease: ${BOTKIT_TEST_VALUE}\n", "lease", "secret-ish-value"),  # the validator's own message used to quote it
        ("bots:\n  b: {posts: p.txt, schedule: {cron: '${BOTKIT_TEST_VALUE}'}}\n", "bots.b.schedule", "0 0 * * secret-ish-day"),  # a whole-model check
        ("bots:\n  b: {posts: p.txt, schedule: {every: '1${BOTKIT_TEST_VALUE}'}}\n", "bots.b.schedule.every", "0 secret-ish"),  # part of a value
    ],
)
def test_a_bad_value_from_the_environment_is_named_but_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], body: str, key: str, value: str
) -> None:
    monkeypatch.setenv("BOTKIT_TEST_VALUE", value)
    config = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).startswith(f"{config}: {key}: ") and str(info.value).endswith("(value from the environment not shown)")
    assert main(["status", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"botkit: error: {config}: {key}: ") and "value from the environment not shown" in err
    for part in (value, "secret"):  # not even a part: APScheduler's message names the bad field of a crontab line
        assert part not in str(info.value) and part not in err


def test_a_bad_value_written_in_the_config_is_shown(tmp_path: Path) -> None:
    """The other side of the rule above: the user's own typo is echoed, so they see what to fix."""
    with pytest.raises(ConfigError, match=r"lease: not a duration \(use e\.g\. .*\) \(got 'soon'\)$"):
        load_config(write(tmp_path, "lease: soon\n"))


def test_the_example_subredditnn_farm_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "examples" / "subredditnn.yaml")
    assert set(config.bots) == {"politics_nn", "rarepuppers_nn", "hackernews_nn"}
    politics = config.bots["politics_nn"].options
    assert politics.target["subreddit"] == "SubredditNN" and politics.target["site"] == "politics_nn"  # defaults merged
    assert all(spec.source.options.path.is_file() for name, spec in config.corpora.items() if name != "hackernews")
