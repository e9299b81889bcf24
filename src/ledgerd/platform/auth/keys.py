"""The signing key set: one current signer, the retired keys still verifiable, and their JWKS.

Rotation rule: ``rotate()`` makes a new current signer and retires the previous one. A retired key
stops signing at once but stays verifiable until every token it can have signed has expired —
its retirement instant plus the access-token lifetime plus the clock leeway the verifier grants
past ``exp`` — and is dropped after that, so its tokens are refused even if one was stolen and
the key's private part leaked later.

A set is an immutable value: rotating returns a new set, which the caller stores (the identity
context, through a port) and hands to the `KeyRing` its issuer and verifier read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ledgerd.platform.auth.timing import CLOCK_LEEWAY, MAX_ACCESS_TOKEN_LIFETIME

# The one signing algorithm (RFC 9864's name for EdDSA over Ed25519; joserfc 1.8 deprecates
# "EdDSA"). Each key carries its algorithm, and verification takes it from the key, never from
# the token, so adding ES256 later is a new key type, not a new way to be confused.
ED25519: Final = "Ed25519"
SUPPORTED_ALGORITHMS: Final = frozenset({ED25519})

# The version of the serialised private set; a reader refuses any other.
STORAGE_FORMAT: Final = 1


class KeySetError(ValueError):
    """A key set that cannot be used: nothing current, a bad stored form, an unknown algorithm."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key pair with its ``kid``; ``retired_at`` is set when a newer key took over signing."""

    kid: str
    algorithm: str
    jwk: OKPKey
    created_at: datetime
    retired_at: datetime | None = None
    # Set with retired_at: the instant after which no token this key signed is still valid.
    verifiable_until: datetime | None = None

    @property
    def is_current(self) -> bool:
        return self.retired_at is None

    def verifiable_at(self, now: datetime) -> bool:
        return self.verifiable_until is None or now < self.verifiable_until

    def public_jwk(self) -> dict[str, Any]:
        """The public members only (never ``d``), with ``kid``, ``alg`` and ``use``."""
        public: dict[str, Any] = self.jwk.as_dict(private=False)
        return {**public, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def generate_key(now: datetime) -> SigningKey:
    """A fresh Ed25519 key; its ``kid`` is the RFC 7638 thumbprint of its public part."""
    jwk = OKPKey.generate_key(
        ED25519, parameters={"alg": ED25519, "use": "sig"}, private=True, auto_kid=True
    )
    return SigningKey(kid=jwk.kid or "", algorithm=ED25519, jwk=jwk, created_at=now)


@dataclass(frozen=True, slots=True)
class SigningKeySet:
    """The current signer first, then the retired keys still verifiable, newest first."""

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        if not self.keys or not self.keys[0].is_current:
            raise KeySetError("a key set needs a current signing key, first")
        if any(key.is_current for key in self.keys[1:]):
            raise KeySetError("a key set has exactly one current signing key")
        kids = [key.kid for key in self.keys]
        if len(set(kids)) != len(kids) or "" in kids:
            raise KeySetError("key ids must be present and distinct")
        for key in self.keys:
            if key.algorithm not in SUPPORTED_ALGORITHMS:
                raise KeySetError(f"key {key.kid} has an unsupported algorithm {key.algorithm}")

    @classmethod
    def generate(cls, now: datetime) -> SigningKeySet:
        return cls((generate_key(now),))

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def verification_key(self, kid: str, now: datetime) -> SigningKey | None:
        """The key ``kid`` names if its tokens may still be accepted at ``now``."""
        for key in self.keys:
            if key.kid == kid:
                return key if key.verifiable_at(now) else None
        return None

    def rotate(self, now: datetime, token_lifetime: timedelta) -> SigningKeySet:
        """A new current signer; the old one retired; keys past their overlap dropped.

        ``token_lifetime`` is the access-token lifetime in force: the old signer's tokens stay
        verifiable that long (plus the clock leeway) after ``now``.
        """
        if not timedelta(0) < token_lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
            raise KeySetError(f"the token lifetime must be in (0, {MAX_ACCESS_TOKEN_LIFETIME}]")
        retired = replace(
            self.current, retired_at=now, verifiable_until=now + token_lifetime + CLOCK_LEEWAY
        )
        return SigningKeySet((generate_key(now), retired, *self.keys[1:])).pruned(now)

    def pruned(self, now: datetime) -> SigningKeySet:
        """The same set without the retired keys whose tokens have all expired at ``now``."""
        return SigningKeySet(tuple(key for key in self.keys if key.verifiable_at(now)))

    def jwks(self, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """The JSON Web Key Set to publish: public parts of the keys verifiable at ``now``."""
        return {"keys": [key.public_jwk() for key in self.keys if key.verifiable_at(now)]}

    def to_json(self) -> str:
        """The private set, for storage only: it holds the private keys (``d``)."""
        return json.dumps(
            {
                "format": STORAGE_FORMAT,
                "keys": [
                    {
                        "jwk": {**key.jwk.as_dict(private=True), "kid": key.kid},
                        "alg": key.algorithm,
                        "created_at": key.created_at.isoformat(),
                        "retired_at": _instant_text(key.retired_at),
                        "verifiable_until": _instant_text(key.verifiable_until),
                    }
                    for key in self.keys
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SigningKeySet:
        try:
            stored = json.loads(text)
            stored_format = stored["format"]
        except (ValueError, KeyError, TypeError) as error:
            raise _unreadable(error) from None
        if stored_format != STORAGE_FORMAT:
            raise KeySetError(f"unknown key set format {stored_format!r}")
        try:
            return cls(tuple(_stored_key(entry) for entry in stored["keys"]))
        except (ValueError, KeyError, TypeError, JoseError) as error:
            if isinstance(error, KeySetError):
                raise
            raise _unreadable(error) from None


def _unreadable(error: Exception) -> KeySetError:
    # The message names the kind of fault only: the text holds private keys.
    return KeySetError(f"unreadable key set ({type(error).__name__})")


def _instant_text(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def _instant(text: object) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError
    instant = datetime.fromisoformat(text)
    if instant.utcoffset() is None:
        raise ValueError
    return instant


def _stored_key(entry: Mapping[str, Any]) -> SigningKey:
    algorithm = entry["alg"]
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise KeySetError(f"unsupported algorithm {algorithm!r} in the stored key set")
    jwk = OKPKey.import_key(dict(entry["jwk"]))
    if not jwk.is_private or jwk.kid is None:
        raise KeySetError("a stored signing key needs its private part and its kid")
    if jwk.curve_name != algorithm:
        # An X25519 key (key agreement) labelled Ed25519 would fail only at the first signing.
        raise KeySetError(f"a stored {algorithm} key is on curve {jwk.curve_name}")
    created_at = _instant(entry["created_at"])
    if created_at is None:
        raise KeySetError("a stored signing key needs its creation instant")
    return SigningKey(
        kid=jwk.kid,
        algorithm=algorithm,
        jwk=jwk,
        created_at=created_at,
        retired_at=_instant(entry["retired_at"]),
        verifiable_until=_instant(entry["verifiable_until"]),
    )


class KeyRing:
    """The key set a process uses now; replacing it (after a rotation) takes effect at once."""

    def __init__(self, key_set: SigningKeySet) -> None:
        self.key_set = key_set

    def replace(self, key_set: SigningKeySet) -> None:
        self.key_set = key_set
