"""The command line as one piece: every setting declared once (flags and config keys from one model),
commands that behave alike (the config as CONFIG or -c, descriptions, one message prefix)."""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path

import pytest

from botkit.bots.spec import TrainBlock
from botkit.cli import build_parser, main
from botkit.training import ShapeOptions, TrainConfig


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option string → destination, for the options of one command."""
    return {flag: a.dest for a in parser._actions for flag in a.option_strings}


def test_every_train_flag_is_a_train_key_of_a_bot_and_back() -> None:
    train = _subcommands(build_parser())["train"]
    dests = set(_flags(train).values())
    settings = set(TrainConfig.model_fields) | set(ShapeOptions.model_fields)
    assert settings <= dests  # every setting is a flag of botkit train ...
    command_only = {"help", "verbose", "output", "resume", "base"}  # where to write and how to start: not settings
    assert dests - command_only == settings  # ... and every flag of botkit train but those is a setting
    bot_keys = {field.alias or name for name, field in TrainBlock.model_fields.items()}
    assert bot_keys == settings | {"from"}  # a bot's train: block takes the same keys, and --from as from
    assert "--from" in _flags(train)


def test_every_generate_setting_is_a_flag_and_a_generate_key_of_a_bot_and_back() -> None:
    from botkit.bots.spec import BotOptions
    from botkit.generation import GenerateSettings

    generate = _subcommands(build_parser())["generate"]
    dests = set(_flags(generate).values())
    settings = set(GenerateSettings.model_fields)
    # what to do with the samples (how many, for which parents, where to write, which filters): the command's own
    command_only = {"help", "verbose", "n", "parent", "parents", "seed", "batch_size", "filters", "report", "output", "interactive", "top_n"}
    assert settings <= dests and dests - command_only == settings
    bot_block = BotOptions.model_fields["generate"].annotation
    assert bot_block is GenerateSettings  # a bot's generate: block is the very same model
    assert "-t" in _flags(generate) and _flags(generate)["-t"] == "temperature"


def test_train_help_shows_the_declared_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "windows per step (default 32)" in help_text and "peak learning rate of Adam, decayed linearly to 0 (default 0.008)" in help_text


FARM = """\
    corpora:
      titles: {source: files, paths: [titles.txt]}
    bots:
      apple: {model: weights/apple, corpus: titles, train: {epochs: ten, rnn_size: -1}}
      pear: {posts: titles.txt}
"""


@pytest.mark.parametrize("command", [["farm", "build"], ["run", "--once"]])
def test_a_wrong_type_in_train_is_one_line_per_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    (tmp_path / "titles.txt").write_text("one title\nanother title\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(FARM), encoding="utf-8")
    assert main([*command, str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("botkit: error: ") and f"{config}: bots.apple.train.epochs: Input should be a valid integer" in err
    assert f"{config}: bots.apple.train.rnn_size: Input should be greater than or equal to 1 (got -1)" in err
    assert "Traceback" not in err and "--epochs" not in err  # the key path, not the flag: the value came from YAML


def test_a_wrong_flag_value_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "x.txt", "-o", str(tmp_path / "w"), "--train-size", "1.5"]) == 1
    assert capsys.readouterr().err == "botkit: error: botkit train: --train-size: Input should be less than or equal to 1 (got '1.5')\n"


def _posts_farm(folder: Path) -> Path:
    (folder / "posts.txt").write_text("the first post of the day\nthe second post of the day\n", encoding="utf-8")
    config = folder / "farm.yaml"
    config.write_text("bots:\n  apple: {posts: posts.txt, filters: none}\n", encoding="utf-8")
    return config


def test_every_bot_command_takes_the_config_as_an_argument_or_with_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_posts_farm(tmp_path))
    assert main(["run", "-c", config, "--once"]) == 0
    assert main(["run", config, "--once"]) == 0
    assert "apple: posted" in capsys.readouterr().out
    for argv in (["status", config], ["status", "-c", config], ["history", "apple", config], ["history", "apple", "-c", config]):
        assert main(argv) == 0, argv
        assert "the second post of the day" in capsys.readouterr().out or argv[0] == "status"
    assert main(["status", config, "-c", str(tmp_path / "other.yaml")]) == 1
    assert "two config files given" in capsys.readouterr().err


def test_a_bot_nobody_knows_is_an_error_in_history_as_in_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_posts_farm(tmp_path))
    for command in ("history", "review"):
        assert main([command, "nosuchbot", config]) == 1
        assert "bots: no bot named nosuchbot (defined: apple)" in capsys.readouterr().err


def test_every_command_has_a_description() -> None:
    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = [] if parser.description else [path]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and path != "botkit fetch":  # sources describe themselves
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
        return missing

    assert walk(build_parser(), "botkit") == []


def test_verbose_works_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "fetch", "files", "a.txt"]).verbose
    assert parser.parse_args(["fetch", "files", "a.txt", "-v"]).verbose
    assert not parser.parse_args(["fetch", "files", "a.txt"]).verbose


def test_log_lines_have_the_one_prefix(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    config = _posts_farm(tmp_path)
    config.write_text("bots:\n  apple: {posts: posts.txt, filters: none, target: {kind: outbox, limits: {min_interval: 0s}}}\n", encoding="utf-8")
    root = logging.getLogger()
    before = list(root.handlers)
    root.handlers.clear()  # main() sets up logging as a fresh process would
    try:
        assert main(["run", str(config), "--once", "-v"]) == 0
        logging.getLogger("botkit.test").warning("a warning")
    finally:
        root.handlers[:] = before
    err = capfd.readouterr().err
    assert "botkit: warning: a warning" in err and "WARNING" not in err


def test_a_bots_generate_block_takes_top_k_top_p_and_context(tmp_path: Path) -> None:
    from botkit.config import load_config
    from botkit.errors import ConfigError

    config = _posts_farm(tmp_path)
    config.write_text("bots:\n  apple: {model: weights/apple, generate: {top_k: 40, top_p: 0.9, context: carry}}\n", encoding="utf-8")
    generate = load_config(config).bots["apple"].options.generate
    assert (generate.top_k, generate.top_p, generate.context) == (40, 0.9, "carry")
    config.write_text("bots:\n  apple: {model: weights/apple, generate: {top_p: 2, context: far}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert "bots.apple.generate.top_p: Input should be less than or equal to 1 (got 2)" in str(raised.value)
    assert "bots.apple.generate.context: Input should be 'window', 'carry' or 'sliding' (got 'far')" in str(raised.value)
