"""The transactional outbox: events written with the change, then relayed to a broker."""
