"""What a stream is made of: events with their place in the ledger, filters, positions."""
