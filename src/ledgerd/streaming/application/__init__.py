"""The hub that fans a ledger's events out to its subscriptions, and the subscriptions."""
