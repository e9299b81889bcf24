"""The platform's Alembic revisions: the outbox, its relays and the consumers' inbox.

Alembic reads these files by path (``ledgerd.main.migrations`` names this folder as one of the
schema's version locations); nothing imports them. v0003 revises the ledger's v0002: the
history was one folder when they were written, and databases hold its ids, so the line stays.
"""
