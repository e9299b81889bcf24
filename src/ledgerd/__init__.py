"""ledgerd: an async double-entry ledger and payments service."""
