"""Every RPC of every enabled context declares what it requires of its caller (fail closed).

The pipeline's authentication refuses a method it finds no entry for; these tests make a new
RPC without one break the build instead of the API.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from ledgerd.identity.domain.scopes import Scope
from ledgerd.main.bounded_context import GrpcService, merged_access, services_of
from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.main.contexts.ledger import LEDGER
from ledgerd.platform.api.access import MethodAccess

SERVICES = services_of(ENABLED_CONTEXTS)


def _undeclared(service: GrpcService) -> set[str]:
    return {method.name for method in service.descriptor.methods} - service.access.keys()


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_every_method_has_an_access_entry_and_every_entry_a_method(service: GrpcService) -> None:
    methods = {method.name for method in service.descriptor.methods}
    assert not _undeclared(service), f"{service.name}: RPCs without a scope"
    assert service.access.keys() <= methods, f"{service.name}: entries for no RPC"


def test_a_method_without_an_entry_is_found() -> None:
    (ledger_service,) = LEDGER.services
    access = dict(ledger_service.access)
    del access["GetBalance"]
    assert _undeclared(dataclasses.replace(ledger_service, access=access)) == {"GetBalance"}


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_scopes_are_identitys_and_ledger_fields_are_string_fields_of_the_request(
    service: GrpcService,
) -> None:
    known = {scope.value for scope in Scope}
    for method in service.descriptor.methods:
        access = service.access[method.name]
        assert access.public or access.scope in known, (method.name, access.scope)
        if access.ledger_field is not None:
            field = method.input_type.fields_by_name.get(access.ledger_field)
            assert field is not None, f"{method.name}: no field {access.ledger_field}"
            assert field.type == FieldDescriptor.TYPE_STRING, method.name
            assert not field.is_repeated, method.name


def test_the_ledgers_rpcs_need_the_scope_their_kind_of_action_does() -> None:
    (ledger_service,) = LEDGER.services
    scopes = {method: access.scope for method, access in ledger_service.access.items()}
    assert scopes["CreateLedger"] == Scope.LEDGERS_ADMIN
    assert scopes["FreezeAccount"] == scopes["CloseAccount"] == Scope.LEDGERS_ADMIN
    assert scopes["PostTransfers"] == scopes["ReverseTransfer"] == Scope.TRANSFERS_WRITE
    assert scopes["UpdateAccountMetadata"] == scopes["CreateAccount"] == Scope.LEDGER_WRITE
    assert scopes["ExportStatement"] == scopes["ListLedgers"] == Scope.LEDGER_READ
    assert not any(access.public for access in ledger_service.access.values())
    on_no_ledger = {m for m, access in ledger_service.access.items() if not access.ledger_field}
    assert on_no_ledger == {"CreateLedger", "ListLedgers"}


def test_merged_access_is_keyed_by_the_grpc_method_path() -> None:
    access = merged_access(SERVICES)
    expected = sum(len(service.descriptor.methods) for service in SERVICES)
    assert len(access) == expected
    assert access["/ledgerd.v1.LedgerService/GetBalance"] == MethodAccess(
        scope="ledger.read", ledger_field="ledger"
    )


def test_a_method_is_public_or_needs_a_scope() -> None:
    assert MethodAccess(scope=None, public=True).public
    with pytest.raises(ValueError, match="either public or needs a scope"):
        MethodAccess(scope=None)
    with pytest.raises(ValueError, match="either public or needs a scope"):
        MethodAccess(scope="ledger.read", public=True)


def test_security_md_shows_every_services_table_as_it_is() -> None:
    text = (Path(__file__).parents[3] / "docs" / "security.md").read_text()
    rows = re.findall(r"^\| (\w+) \| `([\w.]+)` \| (?:`(\w+)`|—) \|$", text, re.MULTILINE)
    shown = {
        rpc: MethodAccess(scope=scope, ledger_field=field or None) for rpc, scope, field in rows
    }
    assert len(shown) == len(rows)  # no RPC shown twice
    assert shown == {
        method: access for service in SERVICES for method, access in service.access.items()
    }
