"""Small fake remote services on 127.0.0.1 that speak the real HTTP API shapes.

The network is closed in tests, so the real client libraries (praw, tweepy, ...) are pointed at
these servers. A fake stands in only for the remote service, never for botkit's own code.
"""
