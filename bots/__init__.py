"""The posting engine: what runs bots once their models are trained.

``spec.py`` reads a bot's config block; ``farm.py`` builds its model; ``supply.py`` fills its queue
with filtered samples; ``bot.py`` posts them exactly once (claim, post, confirm, reconcile);
``replies.py`` decides what a reply bot answers; ``daemon.py`` and ``workers.py`` schedule bots and
share them among processes; ``review.py`` and ``report.py`` are what people read. Everything the
engine knows lives in the ledger (``ledger/``). Where posts go is a plugin: ``targets/``.
"""
