"""The StreamService requests' field rules, for the REST gateway's checks and the API reference."""

from __future__ import annotations

from typing import Final

from ledgerd.kernel.ids import ID_RULE
from ledgerd.kernel.rules import ApiRules

STREAM_API_RULES: Final = ApiRules(
    fields={"ledgerd.v1.CreateStreamTicketRequest.ledger": ID_RULE},
)
