"""The webhooks context's Alembic revisions: its tables (``webhooks/adapters/tables.py``).

A branch of its own, labelled ``webhooks``, with its own base (``wh0001`` revises nothing): its
tables need none of another owner's. Revision ids start with ``wh``, which no other folder uses.
Alembic reads these files by path (the context's description names this folder); nothing
imports them.
"""
