"""The ``botkit`` commands: one module per group, each holding its parsers and handlers side by side.

* :mod:`~botkit.commands.data`: ``fetch``, ``sources``/``filters``/``targets``, ``corpus stats``;
* :mod:`~botkit.commands.model`: ``train``, ``eval``, ``import-textgenrnn``, ``generate``;
* :mod:`~botkit.commands.bots`: ``run``, ``status``, ``history``, ``review``, ``farm build``, ``demo``;
* :mod:`~botkit.commands.console`: ``serve``, ``report``.

Each module has ``add_parsers(commands, common)`` and ``HANDLERS`` (command name → handler), so a
new command is one function pair in the module of its group; :mod:`botkit.cli` only dispatches.
Heavy libraries (TensorFlow, praw, pandas, uvicorn) are imported inside the handlers, this
boundary and no other, so ``botkit --help`` stays fast.
"""
