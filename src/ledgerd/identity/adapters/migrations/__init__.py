"""The identity context's Alembic revisions: its tables (``identity/adapters/tables.py``).

A branch of its own, labelled ``identity``, with its own base (``i0001`` revises nothing): its
tables need none of another owner's. Revision ids start with ``i``, which no other folder uses.
Alembic reads these files by path (the context's description names this folder); nothing
imports them.
"""
