"""Trained models, one folder each (``weights/NAME/``).

``base/`` ships with botkit: a small char model trained on tiny Shakespeare and the Hacker News
and Reddit titles of textgenrnn's datasets, so ``botkit generate base`` works right after install
and ``botkit train ... --from base`` fine-tunes from it. The name ``base`` finds it from anywhere.
"""
