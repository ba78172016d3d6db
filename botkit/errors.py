"""User-facing errors.

Anything a user can fix (a bad path, a malformed config, a dead network) is raised as a
:class:`BotkitError`; the CLI prints its message on one line and exits non-zero, without a
traceback. Programming errors stay ordinary exceptions so they are not hidden.
"""


class BotkitError(Exception):
    """An error whose message alone tells the user what went wrong and where."""


class ConfigError(BotkitError):
    """A config file or option is malformed; the message names the file and key path."""


class CorpusError(BotkitError):
    """A corpus file cannot be read or written."""


class SourceError(BotkitError):
    """A source could not deliver its documents (bad input, bad credentials, dead network)."""


class PluginError(BotkitError):
    """A plugin name is unknown or a plugin failed to load."""
