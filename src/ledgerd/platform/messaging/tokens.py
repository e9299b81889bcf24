"""A ledger id as one plain word of a broker's routing name, reversibly.

NATS subjects and AMQP topic routing keys are words separated by ``.``, with ``*``, ``>``
and ``#`` as wildcards and whitespace forbidden; ledger ids may contain ``.`` and ``:``.
The token keeps ``A-Z a-z 0-9 -`` and writes every other character as ``_XX`` per UTF-8
byte (``acme.eur`` → ``acme_2Eeur``): always one word, never a wildcard, and decodable.
"""

from __future__ import annotations

import re

_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE = re.compile(r"_([0-9A-F]{2})")


def ledger_token(ledger: str) -> str:
    return "".join(
        char if char in _KEPT else "".join(f"_{byte:02X}" for byte in char.encode("utf-8"))
        for char in ledger
    )


def ledger_of_token(token: str) -> str:
    """The ledger id ``ledger_token`` made ``token`` from."""
    raw = _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), token)
    # Each escape stood for one UTF-8 byte: latin-1 turns the characters back into those bytes.
    return raw.encode("latin-1").decode("utf-8")
