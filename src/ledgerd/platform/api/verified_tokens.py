"""A bounded cache of verified access tokens, in front of the verifier.

Verifying a token (base64, JSON, an Ed25519 signature check, the claims) costs about 135 µs on
this project's machine, a large share of a cheap call such as ``GetBalance``; a client sends the
same token for minutes. So a token that verified is remembered, keyed by its exact text, and its
next calls skip the decoding and the signature. What a hit still checks, every time:

- the token has not expired: an entry lives until the token's ``exp`` or ``ttl_s`` after it was
  verified, whichever comes first (a token past ``exp`` is verified afresh, and refused);
- its signing key is still accepted now: a key retired by rotation and past its overlap stops
  its cached tokens on the very call it would stop them uncached.

Only tokens that verified are stored: a changed token is a different key, misses, and is
verified (and refused) in full. The revocation and ledger-grant checks are not the verifier's:
the Authentication concern runs them on every call, hit or miss. At ``max_entries`` the oldest
entry is dropped (first in, first out), so memory stays bounded whatever tokens arrive.
"""

from __future__ import annotations

from typing import Final

from ledgerd.kernel.clock import Clock
from ledgerd.platform.api.authentication import TokenVerifier
from ledgerd.platform.auth.access_tokens import VerifiedAccessToken
from ledgerd.platform.auth.keys import KeyRing

DEFAULT_TTL_S: Final = 60.0
DEFAULT_MAX_ENTRIES: Final = 10_000


class CachedTokenVerifier:
    """``verifier`` with its successful answers remembered (see the module's docstring)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        keys: KeyRing,
        clock: Clock,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            msg = "the token cache needs a positive TTL and room for one entry at least"
            raise ValueError(msg)
        self._verifier, self._keys, self._clock = verifier, keys, clock
        self._ttl_s, self._max_entries = ttl_s, max_entries
        # token -> (verified, until: epoch seconds); insertion order is eviction order.
        self._entries: dict[str, tuple[VerifiedAccessToken, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> VerifiedAccessToken:
        now = self._clock.now()
        entry = self._entries.get(token)
        if entry is not None:
            verified, until = entry
            key_accepted = self._keys.key_set.verification_key(verified.key_id, now) is not None
            if now.timestamp() < until and key_accepted:
                return verified
            del self._entries[token]
        verified = self._verifier.verify(token)  # raises for any token it refuses: not stored
        until = min(verified.expires_at.timestamp(), now.timestamp() + self._ttl_s)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (verified, until)
        return verified
