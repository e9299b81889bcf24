"""Broker addresses fit to show and to store: what they point at, never how to log in."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_credentials(address: str) -> str:
    """``address`` with user names, passwords, tokens and query options left out.

    Takes a URL (``amqp://user:secret@host:5672/vhost`` gives ``amqp://host:5672/vhost``) or a
    comma-separated list of them or of ``[user@]host:port`` servers (Kafka's bootstrap list).
    The query goes too: brokers take tokens there (``?token=...``, ``?password=...``), and
    what is left still says where the events go.
    """
    return ",".join(_one(part.strip()) for part in address.split(","))


def _one(address: str) -> str:
    if "://" not in address:
        return address.rpartition("@")[2]
    parts = urlsplit(address)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
