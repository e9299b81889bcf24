"""The process's error catalogue, as the composition root fills it from every context."""

from __future__ import annotations

from http import HTTPStatus

import grpc

from ledgerd.identity.domain.errors import IdentityErrorCode
from ledgerd.identity.entrypoints.errors import IDENTITY_ERRORS
from ledgerd.kernel.errors import ErrorCode
from ledgerd.ledger.domain.errors import LedgerErrorCode
from ledgerd.ledger.entrypoints.errors import LEDGER_ERRORS
from ledgerd.main.error_codes import CONTEXT_ERROR_TABLES, ERROR_CODES
from ledgerd.streaming.domain.errors import StreamErrorCode
from ledgerd.streaming.entrypoints.errors import STREAM_ERRORS


def test_every_code_of_every_context_is_registered() -> None:
    registered = [code for code, _ in ERROR_CODES]
    assert set(registered) == (
        set(ErrorCode) | set(LedgerErrorCode) | set(IdentityErrorCode) | set(StreamErrorCode)
    )
    assert len(registered) == len(ERROR_CODES)


def test_each_context_table_covers_its_whole_code_enum() -> None:
    assert LEDGER_ERRORS in CONTEXT_ERROR_TABLES
    assert set(LEDGER_ERRORS) == set(LedgerErrorCode)
    assert IDENTITY_ERRORS in CONTEXT_ERROR_TABLES
    assert set(IDENTITY_ERRORS) == set(IdentityErrorCode)
    assert STREAM_ERRORS in CONTEXT_ERROR_TABLES
    assert set(STREAM_ERRORS) == set(StreamErrorCode)


def test_codes_are_unique_across_contexts() -> None:
    spellings = [str(code) for code, _ in ERROR_CODES]
    assert len(spellings) == len(set(spellings))


def test_every_code_has_a_grpc_status_an_http_status_and_a_meaning() -> None:
    for code, spec in ERROR_CODES:
        assert spec.transport.grpc is not grpc.StatusCode.OK, code
        assert isinstance(spec.transport.grpc, grpc.StatusCode), code
        assert HTTPStatus(spec.transport.http) >= HTTPStatus.BAD_REQUEST, code
        assert spec.meaning.strip(), code
        assert ERROR_CODES.transport(code) == spec.transport
        assert ERROR_CODES.code_of(str(code)) is code


def test_codes_spell_themselves() -> None:
    assert all(code.value == code.name for code, _ in ERROR_CODES)
