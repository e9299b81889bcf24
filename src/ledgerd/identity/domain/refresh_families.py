"""Refresh-token families: single use, rotation, and reuse detection (OAuth 2.0 Security BCP).

A family starts when a grant is first exchanged for tokens. Each refresh token is used once:
using the family's current token yields the next one, in the same family. Presenting a token
of the family that was already used means two parties hold it — the client and someone who
stole it, and there is no telling which is which — so the whole family is revoked: every token
in it, and (through the revocation check keyed by family) its live access tokens.

A family also ends by time: ``absolute_lifetime`` after it started, however active, and
``idle_timeout`` after its current token was issued if nobody refreshed meanwhile.

The rules work on token digests; a family never sees a usable token.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ledgerd.identity.domain.grants import AccessGrant


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    absolute_lifetime: timedelta
    idle_timeout: timedelta

    def __post_init__(self) -> None:
        if not timedelta(0) < self.idle_timeout <= self.absolute_lifetime:
            msg = "the idle timeout must be positive and no longer than the absolute lifetime"
            raise ValueError(msg)


class RevocationCause(StrEnum):
    REUSE_DETECTED = "reuse_detected"
    # Revoked on request: RFC 7009 revocation, or the client was revoked.
    REVOKED = "revoked"


class RefreshRefusal(StrEnum):
    """Why a presented refresh token did not yield a new one (all INVALID_GRANT to a client)."""

    REVOKED = "revoked"
    REUSED = "reused"
    EXPIRED = "expired"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    family_id: str
    client_id: str
    subject: str
    grant: AccessGrant
    policy: RefreshPolicy
    started_at: datetime
    # The digest of the one token that may be used next, and when it was issued.
    current_digest: str
    current_issued_at: datetime
    # How many rotations so far; storage updates a family only from the generation it read,
    # so of two concurrent uses of one token exactly one rotates it.
    generation: int = 0
    revoked_at: datetime | None = None
    revocation_cause: RevocationCause | None = None

    @property
    def expires_at(self) -> datetime:
        return self.started_at + self.policy.absolute_lifetime

    @property
    def idle_expires_at(self) -> datetime:
        return self.current_issued_at + self.policy.idle_timeout

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def redeem(self, presented_digest: str, next_digest: str, now: datetime) -> Redemption:
        """Use the token whose digest is ``presented_digest``, one this family has issued.

        Accepted: the family with ``next_digest`` as its current token. Refused: the reason,
        and the family as it must be stored (revoked, when the token had been used before).
        """
        if self.is_revoked:
            return Redemption(self, RefreshRefusal.REVOKED)
        if presented_digest != self.current_digest:
            revoked = self.revoke(now, RevocationCause.REUSE_DETECTED)
            return Redemption(revoked, RefreshRefusal.REUSED)
        if now >= self.expires_at:
            return Redemption(self, RefreshRefusal.EXPIRED)
        if now >= self.idle_expires_at:
            return Redemption(self, RefreshRefusal.IDLE)
        rotated = replace(
            self,
            current_digest=next_digest,
            current_issued_at=now,
            generation=self.generation + 1,
        )
        return Redemption(rotated, None)

    def revoke(self, now: datetime, cause: RevocationCause) -> RefreshFamily:
        """The family revoked at ``now``; revoking a revoked family keeps the first cause."""
        if self.is_revoked:
            return self
        return replace(self, revoked_at=now, revocation_cause=cause, generation=self.generation + 1)


def start_family(  # noqa: PLR0913 - every field of a new family, named at the call site
    *,
    family_id: str,
    client_id: str,
    subject: str,
    grant: AccessGrant,
    policy: RefreshPolicy,
    first_digest: str,
    now: datetime,
) -> RefreshFamily:
    return RefreshFamily(
        family_id=family_id,
        client_id=client_id,
        subject=subject,
        grant=grant,
        policy=policy,
        started_at=now,
        current_digest=first_digest,
        current_issued_at=now,
    )


@dataclass(frozen=True, slots=True)
class Redemption:
    family: RefreshFamily
    refusal: RefreshRefusal | None

    @property
    def accepted(self) -> bool:
        return self.refusal is None
