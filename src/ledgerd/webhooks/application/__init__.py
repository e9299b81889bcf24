"""The webhooks' use cases, one per module, and the dispatcher that delivers."""
