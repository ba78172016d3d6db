"""Post targets and the bot daemon (Reddit, X, the local outbox). Filled in by the bots issue."""
