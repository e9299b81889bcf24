"""The streaming context's Alembic revisions: its tables (``streaming/adapters/tables.py``).

A branch of its own, labelled ``streaming``, with its own base (``s0001`` revises nothing).
Revision ids start with ``s``, which no other folder uses. Alembic reads these files by path
(the context's description names this folder); nothing imports them.
"""
