"""The webhooks context: a ledger's events pushed to partners' HTTP endpoints, signed, in order."""
