"""User-facing errors.

Anything a user can fix (a bad path, a malformed config, a dead network) is raised as a
:class:`BotkitError`; the CLI prints its message on one line and exits non-zero, without a
traceback. Programming errors stay ordinary exceptions so they are not hidden.
"""

from __future__ import annotations

from collections.abc import Callable


class BotkitError(Exception):
    """An error whose message alone tells the user what went wrong and where."""


class ConfigError(BotkitError):
    """A config file or option is malformed; the message names the file and key path."""


def as_flag(setting: str) -> str:
    """A setting as ``botkit train`` spells it: ``train_size`` is ``--train-size``."""
    return "--" + setting.replace("_", "-")


class SettingError(ConfigError):
    """A training setting is wrong or cannot apply, named the way the user wrote it.

    ``message`` makes the text given how to name a setting (``train_size``): its flag by default
    (``--train-size``, as ``botkit train`` takes it), or, through :meth:`spelled`, the key path of
    the bot's ``train:`` block that ``botkit farm build`` trained from (``bots.NAME.train.train_size``).
    """

    def __init__(self, message: Callable[[Callable[[str], str]], str]) -> None:
        self.message = message
        super().__init__(message(as_flag))

    def spelled(self, name: Callable[[str], str]) -> str:
        return self.message(name)


class CorpusError(BotkitError):
    """A corpus file cannot be read or written."""


class SourceError(BotkitError):
    """A source could not deliver its documents (bad input, bad credentials, dead network)."""


class PluginError(BotkitError):
    """A plugin name is unknown or a plugin failed to load."""
