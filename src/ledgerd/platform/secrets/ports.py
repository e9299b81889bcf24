"""What a secret store does for ledgerd: read the current value a reference names."""

from __future__ import annotations

from typing import Protocol

from ledgerd.platform.secrets.references import SecretReference
from ledgerd.platform.secrets.secret import Secret


class SecretError(Exception):
    """A reference that could not be resolved; the message names the reference, not a value."""

    def __init__(self, reference: SecretReference, reason: str) -> None:
        super().__init__(f"secret {reference}: {reason}")
        self.reference = reference
        self.reason = reason


class SecretUnreachableError(SecretError):
    """The store did not answer (down, refused, timed out): worth retrying later."""


class SecretNotFoundError(SecretError):
    """The store answered that there is no such secret or field, or that it may not be read."""


class SecretStore(Protocol):
    """One kind of store (env/file, OpenBao/Vault KV v2, AWS Secrets Manager).

    Leased credentials (Vault's database engine) are not a store: a lease is renewed, not
    re-read (``leases.DatabaseLease``), and raises the same ``SecretError``s.
    """

    async def read(self, reference: SecretReference) -> Secret:
        """The value now; ``SecretUnreachableError`` or ``SecretNotFoundError`` otherwise."""
        ...

    async def aclose(self) -> None: ...
