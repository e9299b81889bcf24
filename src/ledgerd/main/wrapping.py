"""The wrapping keys of the secrets ledgerd keeps in its database, as the settings give them.

One key for all of them (``LEDGERD_SIGNING_KEYS_SECRET``, earlier ones in its ``_PREVIOUS``):
it seals the token signing keys (identity) and the webhooks' signing secrets, each for a
purpose of its own (``ledgerd.platform.auth.sealing``).
"""

from __future__ import annotations

from ledgerd.main.settings import Settings
from ledgerd.platform.auth.sealing import WrappingKeys
from ledgerd.platform.auth.wrapping_keys import wrapping_keys


def database_wrapping_keys(settings: Settings) -> WrappingKeys:
    """``LEDGERD_SIGNING_KEYS_SECRET`` (seals and opens) and its ``_PREVIOUS`` keys (open)."""
    current, previous = settings.signing_keys_secret, settings.signing_keys_secret_previous
    return WrappingKeys(
        current=wrapping_keys(current.get_secret_value())[0] if current else None,
        previous=wrapping_keys(previous.get_secret_value()) if previous else (),
    )
