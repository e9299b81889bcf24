"""Why a subscription was refused or ended."""

from __future__ import annotations

from enum import StrEnum

from ledgerd.kernel.errors import LedgerdError


class StreamErrorCode(StrEnum):
    """The streaming context's codes; their spelling is part of the API."""

    # The position asked for is past the ledger's last event: a client resuming from a
    # position this ledger never had (another ledger's, or a database restored from backup).
    POSITION_AHEAD = "POSITION_AHEAD"
    # The server ends the stream: it is shutting down, or the subscription's credentials
    # expired. The client resumes from the last sequence it received.
    STREAM_ENDED = "STREAM_ENDED"


class PositionAheadError(LedgerdError):
    def __init__(self, ledger: str, position: int, last: int) -> None:
        super().__init__(
            StreamErrorCode.POSITION_AHEAD,
            f"position {position} is past ledger {ledger}'s last event ({last})",
            {"ledger": ledger, "position": str(position), "last_sequence": str(last)},
        )


class StreamEndedError(LedgerdError):
    """The server ended the subscription; ``position`` is where the subscriber resumes from."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(
            StreamErrorCode.STREAM_ENDED,
            f"{reason}; resume after sequence {position}",
            {"reason": reason, "position": str(position)},
        )
        self.reason = reason
        self.position = position
