"""Bad input to config.yaml and the option flags: one ``botkit: error:`` report naming the file and
key, every problem of a config at once, no traceback, and nothing written.

Alias bombs and cycles, bot and corpus names that would leave their folder, non-finite numbers in
any float setting, and problems one of which used to hide the rest.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botkit.cli import main
from botkit.config import MAX_VALUES, Config, load_config
from botkit.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def report(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The lines of the error report of a command that must fail: the first says ``botkit: error:``."""
    assert main(list(args)) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines and lines[0].startswith("botkit: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines


def files_in(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nbots:\n  b: {{posts: p.txt, target: {{kind: outbox, x: *a{levels}}}}}\n"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, billion_laughs())
    before = files_in(tmp_path)
    (line,) = report(capsys, "status", str(config))
    # Line 6 holds a5, the first anchor past the limit (9 ** 6 values): refused before a9 (9 ** 10) is reached.
    assert (
        line
        == f"botkit: error: {config}: line 6: more than {MAX_VALUES:,} values once its aliases are expanded (an alias bomb?); write a shared part once, e.g. under defaults:"
    )
    assert files_in(tmp_path) == before


def test_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    """Aliases are YAML's own way to share a part; a config that uses them within the limit loads as before."""
    text = "x: &t {kind: outbox, signature: ' (bot)'}\nbots:\n  a: {posts: p.txt, target: *t}\n  b: {posts: q.txt, target: *t}\n"
    with pytest.raises(ConfigError, match=r"config\.yaml: x: unknown key$"):  # the anchor's own key is still not a config key
        load_config(write(tmp_path, text))
    config = load_config(write(tmp_path, "defaults: {target: &t {kind: outbox, signature: ' (bot)'}}\nbots:\n  a: {posts: p.txt, target: *t}\n"))
    assert config.bots["a"].target.signature == " (bot)"
    with pytest.raises(ConfigError) as info:  # 9 ** 4 values: not refused as a bomb, checked as usual
        load_config(write(tmp_path, billion_laughs(levels=3)))
    assert "alias bomb" not in str(info.value) and "bots.b.target.x: unknown key" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults: &d {x: *d}\n", r"line 1: an alias refers to a list or mapping that contains it \(a cycle\)"),
        ("a: &l [1, *l]\n", r"line 1: an alias refers to a list or mapping that contains it \(a cycle\)"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", r"lists or mappings nested too deeply to read"),
    ],
)
def test_cycles_and_deep_nesting_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    config = write(tmp_path, text)
    (line,) = report(capsys, "status", str(config))
    assert re.fullmatch(f"botkit: error: {re.escape(str(config))}: {message}", line), line


@pytest.mark.parametrize("name", ["../../pwned", "a/b", ".hidden", "..", "tab\there", "x" * 101, "a\\b", ""])
def test_a_bot_name_that_cannot_be_a_file_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    (tmp_path / "p.txt").write_text("hello\n", encoding="utf-8")
    config = write(tmp_path, yaml.safe_dump({"bots": {name: {"posts": "p.txt"}}}))
    before = files_in(tmp_path)
    lines = report(capsys, "run", str(config), "--once")
    shown = name if name.isprintable() else repr(name)
    assert lines == [f"botkit: error: {config}: bots.{shown}: not a usable name (it names files: letters, digits, -, _ and . only, not . first, at most 100)"]
    assert files_in(tmp_path) == before and not (tmp_path.parent / "pwned").exists()


def test_usable_names_and_bad_corpus_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "bots:\n  my-bot_2.0: {posts: p.txt}\n  Ünïcode: {posts: p.txt}\n"))
    assert set(config.bots) == {"my-bot_2.0", "Ünïcode"}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "corpora:\n  ../out: {source: files, paths: [a]}\nbots:\n  ../b: {posts: p.txt}\n"))
    assert str(info.value).splitlines() == [
        f"{tmp_path / 'config.yaml'}: corpora.../out: not a usable name (it names files: letters, digits, -, _ and . only, not . first, at most 100)",
        f"{tmp_path / 'config.yaml'}: bots.../b: not a usable name (it names files: letters, digits, -, _ and . only, not . first, at most 100)",
    ]


@pytest.mark.parametrize(
    ("body", "key", "got"),
    [
        ("bots:\n  b: {model: w, generate: {temperature: .nan}}\n", "bots.b.generate.temperature.0", "nan"),
        ("bots:\n  b: {model: w, generate: {temperature: [0.5, .inf]}}\n", "bots.b.generate.temperature.1", "inf"),
        ("bots:\n  b: {model: w, generate: {top_p: .nan}}\n", "bots.b.generate.top_p", "nan"),
        ("bots:\n  b: {model: w, train: {minutes: .inf}}\n", "bots.b.train.minutes", "inf"),
        ("bots:\n  b: {model: w, train: {lr: -.inf}}\n", "bots.b.train.lr", "-inf"),
        ("bots:\n  b: {posts: p.txt, reply: {decay: .nan}}\n", "bots.b.reply.decay", "nan"),
        ("bots:\n  b: {posts: p.txt, schedule: {every: .inf}}\n", "bots.b.schedule.every", "inf"),
        ("lease: .inf\n", "lease", "inf"),
        ("bots:\n  b: {posts: p.txt, schedule: {every: '" + "9" * 400 + "s'}}\n", "bots.b.schedule.every", "inf"),  # 1e400 seconds
    ],
)
def test_non_finite_numbers_in_config_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, key: str, got: str) -> None:
    config = write(tmp_path, body)
    assert report(capsys, "status", str(config)) == [f"botkit: error: {config}: {key}: Input should be a finite number (got {got})"]


@pytest.mark.parametrize(
    ("args", "flag", "got"),
    [
        (["generate", "base", "-t", "nan"], "--temperature", "'nan'"),
        (["generate", "base", "-t", "0.7", "-t", "inf"], "--temperature", "'inf'"),
        (["generate", "base", "--top-p", "NaN"], "--top-p", "'NaN'"),
        (["generate", "base", "--repetition-penalty", "infinity"], "--repetition-penalty", "'infinity'"),
    ],
)
def test_non_finite_generate_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str, got: str) -> None:
    out = tmp_path / "samples.jsonl"
    lines = report(capsys, *args, "-n", "2", "-o", str(out))
    assert lines == [f"botkit: error: botkit generate: {flag}: Input should be a finite number (got {got})"]
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value"), [("--minutes", "inf"), ("--lr", "nan"), ("--clipnorm", "inf"), ("--train-size", "nan"), ("--dropout", "nan")])
def test_non_finite_train_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("a line\n" * 20, encoding="utf-8")
    out = tmp_path / "model"
    assert report(capsys, "train", str(corpus), "-o", str(out), flag, value) == [
        f"botkit: error: botkit train: {flag}: Input should be a finite number (got {value!r})"
    ]
    assert not out.exists()


def test_a_bad_top_level_key_hides_no_bot_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "stor: x\nlease: soon\nbots:\n  b: {posts: p.txt, colour: red}\ncorpora:\n  c: {source: nosuch}\n")
    assert report(capsys, "status", str(config)) == [
        f"botkit: error: {config}: lease: not a duration (use e.g. 30s, 10m, 3h, 1d or a number of seconds) (got 'soon')",
        f"{config}: stor: unknown key",
        f"{config}: corpora.c.source: unknown source 'nosuch' (known: " + report_sources(),
        f"{config}: bots.b.colour: unknown key",
    ]


def report_sources() -> str:
    from botkit.sources import SOURCES

    return ", ".join(SOURCES.names()) + ")"


def test_a_bad_cron_line_hides_no_unknown_filter(tmp_path: Path) -> None:
    text = "bots:\n  b:\n    posts: p.txt\n    schedule: {cron: '61 * * * *'}\n    filters: [nosuch, {length: {colour: red}}]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith(
        "bots.b.schedule: not a valid crontab line '61 * * * *' (Error validating expression '61': the last value (61) is higher than the maximum value (59))"
    )
    assert lines[1].endswith("bots.b.filters.0: unknown filter 'nosuch' (known: banned, callable, charset, dedupe, length, min-score, novelty, repetition)")
    assert lines[2].endswith("bots.b.filters.1.length.colour: unknown key")


def test_a_filter_mistake_in_defaults_is_reported_once(tmp_path: Path) -> None:
    text = "defaults: {filters: [nosuch]}\nbots:\n  a: {posts: p.txt}\n  b: {posts: q.txt}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert (
        str(info.value)
        == f"{tmp_path / 'config.yaml'}: defaults.filters.0: unknown filter 'nosuch' (known: banned, callable, charset, dedupe, length, min-score, novelty, repetition)"
    )


def test_every_unset_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOTKIT_T_A", "BOTKIT_T_B", "BOTKIT_T_C"):
        monkeypatch.delenv(name, raising=False)
    text = "store: ${BOTKIT_T_A}\nbots:\n  b: {posts: p.txt, schedule: {every: '${BOTKIT_T_B}'}, target: {kind: outbox, signature: '${BOTKIT_T_C}${BOTKIT_T_A}'}, x: 1}\n"
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).splitlines() == [
        f"{config}: store: environment variable BOTKIT_T_A is not set",
        f"{config}: bots.b.schedule.every: environment variable BOTKIT_T_B is not set",
        f"{config}: bots.b.target.signature: environment variable BOTKIT_T_C is not set",
        f"{config}: bots.b.target.signature: environment variable BOTKIT_T_A is not set",
        f"{config}: bots.b.x: unknown key",  # the rest of the config is still checked (not the values still reading ${VAR})
    ]


# Keys a config uses, so that generated mappings reach deep into the checks, not just "unknown key".
_KEYS = st.sampled_from(
    ["store", "lease", "corpora", "defaults", "bots", "b", "c", "source", "paths", "files", "output", "normalize", "posts", "model", "train",
     "generate", "temperature", "top_p", "minutes", "schedule", "every", "cron", "jitter", "target", "kind", "outbox", "signature", "limits",
     "filters", "length", "reply", "decay", "review", "buffer", "size", "from", "../x", ".x", "a/b"]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["${BOTKIT_T_UNSET}", "${HOME}", "3h", "0 */3 * * *", "outbox", "files", "p.txt", "default", "none", "nan", "inf"])
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=6), inner, max_size=5), max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_mapping_gives_a_config_or_a_config_error(raw: dict[str, Any]) -> None:
    """Whatever a config.yaml holds, loading it ends in a Config or a ConfigError, never another exception."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            assert lines and all(line.startswith(f"{path}: ") for line in lines), lines
