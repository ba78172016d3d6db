"""botkit: train text-generating neural networks and run bots that post what they write.

Data flows one way: source → corpus → model → samples → filters → post.
"""

__version__ = "0.1.0"
