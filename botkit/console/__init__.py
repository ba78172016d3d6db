"""The farm console (``botkit serve``) and its pictures without a browser (``botkit report``).

* :mod:`~botkit.console.farm`: what the pages show, read from the ledger, the config and the
  model folders, plus the reviewer's decisions as conditional updates on the ledger.
* :mod:`~botkit.console.charts`: matplotlib pictures (loss curves, corpus statistics, filter funnel),
  served as PNG by the console and written to files by ``botkit report``.
* :mod:`~botkit.console.playground`: the model page's samples, generated and judged as the bot
  does it, and the picked ones sent to the bot's queue.
* :mod:`~botkit.console.auth`: the access token, the session cookie and the CSRF token.
* :mod:`~botkit.console.app`: the Starlette app and its routes.
* the ``serve`` and ``report`` command lines live with the other commands, in :mod:`botkit.commands.console`.
"""
