"""The TLS and mTLS settings' own types (``main/settings.py`` holds the settings themselves)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledgerd.identity.domain.scopes import Scope


class MtlsGrant(BaseModel):
    """What a client certificate's identity is granted (LEDGERD_MTLS_IDENTITIES), as a client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scopes: tuple[str, ...] = Field(min_length=1)
    ledgers: tuple[str, ...] | Literal["*"]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        known = {scope.value for scope in Scope}
        unknown = sorted(set(scopes) - known)
        if unknown:
            msg = f"unknown scopes {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            raise ValueError(msg)
        return scopes
