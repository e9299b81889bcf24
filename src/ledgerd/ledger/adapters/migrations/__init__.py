"""The ledger's Alembic revisions: its tables (``ledger/adapters/tables.py``), built and changed.

Alembic reads these files by path (``ledgerd.main.migrations`` names this folder as one of the
schema's version locations); nothing imports them. They are the first part of the one linear
history the platform's outbox revisions continue (v0003 revises v0002): databases made before
each owner had its folder hold that history's ids, which stay as they were.
"""
