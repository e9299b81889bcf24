"""The streaming context's error table: its codes with their transport statuses and meaning."""

from __future__ import annotations

from http import HTTPStatus

import grpc

from ledgerd.platform.api.errors import INVALID, ErrorSpec, ErrorTable, Transport
from ledgerd.streaming.domain.errors import StreamErrorCode

STREAM_ERRORS: ErrorTable = {
    StreamErrorCode.POSITION_AHEAD: ErrorSpec(
        INVALID,
        "The position to stream from is past the ledger's last event (`details.last_sequence`):"
        " it was never this ledger's.",
    ),
    StreamErrorCode.STREAM_ENDED: ErrorSpec(
        Transport(grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE),
        "The server ended the stream (it is shutting down); resume after `details.position`,"
        " here or on another server.",
    ),
}
