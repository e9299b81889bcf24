"""The webhooks' adapters: SQL tables and repositories, the delivery queue, the HTTP sender."""
