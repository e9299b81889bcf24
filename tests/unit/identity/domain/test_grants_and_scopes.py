from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from ledgerd.identity.domain.clients import ClientKind, OAuthClient
from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.domain.grants import AccessGrant
from ledgerd.identity.domain.scopes import SCOPE_MEANINGS, Scope, parse_scopes
from ledgerd.identity.domain.users import User
from ledgerd.kernel.errors import LedgerdError
from ledgerd.kernel.principal import ALL_LEDGERS, Principal

GRANT = AccessGrant(frozenset({Scope.LEDGER_READ, Scope.TRANSFERS_WRITE}), frozenset({"main"}))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_scope_has_a_meaning() -> None:
    assert set(SCOPE_MEANINGS) == set(Scope)


def test_a_scope_parameter_names_known_scopes_separated_by_single_spaces() -> None:
    assert parse_scopes("ledger.read transfers.write") == {
        Scope.LEDGER_READ,
        Scope.TRANSFERS_WRITE,
    }


@pytest.mark.parametrize(
    "text", ["", "ledger.read  transfers.write", " ledger.read", "ledger.read\n", "ledger.delete"]
)
def test_a_malformed_or_unknown_scope_is_invalid_scope(text: str) -> None:
    with pytest.raises(LedgerdError) as refused:
        parse_scopes(text)
    assert refused.value.code is IdentityErrorCode.INVALID_SCOPE


def test_a_grant_narrows_to_the_requested_scopes_and_keeps_its_ledgers() -> None:
    assert GRANT.narrowed_to(None) == GRANT
    narrowed = GRANT.narrowed_to(frozenset({Scope.LEDGER_READ}))
    assert narrowed == AccessGrant(frozenset({Scope.LEDGER_READ}), frozenset({"main"}))


def test_asking_beyond_the_grant_is_invalid_scope() -> None:
    with pytest.raises(LedgerdError) as refused:
        GRANT.narrowed_to(frozenset({Scope.LEDGER_READ, Scope.LEDGERS_ADMIN}))
    assert refused.value.code is IdentityErrorCode.INVALID_SCOPE
    assert refused.value.details == {"scope": "ledgers.admin"}


def test_a_grant_becomes_the_principal_of_a_subject() -> None:
    admin = AccessGrant(frozenset({Scope.LEDGERS_ADMIN}), ALL_LEDGERS)
    assert admin.principal("ops") == Principal("ops", frozenset({"ledgers.admin"}), ALL_LEDGERS)


def test_a_confidential_client_has_a_secret_hash_and_a_public_one_has_none() -> None:
    OAuthClient("c1", "svc", ClientKind.CONFIDENTIAL, "$argon2id$...", GRANT, NOW)
    OAuthClient("c2", "spa", ClientKind.PUBLIC, None, GRANT, NOW, ("https://app.test/cb",))
    with pytest.raises(ValueError, match="secret hash"):
        OAuthClient("c3", "svc", ClientKind.CONFIDENTIAL, None, GRANT, NOW)
    with pytest.raises(ValueError, match="secret hash"):
        OAuthClient("c4", "spa", ClientKind.PUBLIC, "$argon2id$...", GRANT, NOW)


def test_a_user_is_active_until_disabled() -> None:
    user = User("u1", "alice", "$argon2id$...", GRANT, NOW)
    assert user.is_active
    assert not replace(user, disabled_at=NOW).is_active
