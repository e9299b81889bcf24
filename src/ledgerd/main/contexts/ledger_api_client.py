"""The ledger's API client, for its client commands: the calls they make to LedgerService.

Each goes over the shared plumbing (``main/api_client.py``): a deadline per call, failures as
one line and an exit code, listings read page by page.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ledgerd.kernel.paging import MAX_PAGE_SIZE
from ledgerd.main.api_client import ApiChannel, Listing, connect, gather
from ledgerd.v1 import ledger_pb2 as pb
from ledgerd.v1 import ledger_pb2_grpc


def _timestamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


class LedgerClient:
    """The calls the ledger's client commands make, over one channel; see :func:`connect_ledger`."""

    def __init__(self, api: ApiChannel) -> None:
        self._api = api
        self._stub = ledger_pb2_grpc.LedgerServiceStub(api.channel)

    def ledgers(self, limit: int | None) -> Listing[pb.Ledger]:
        def page(size: int, token: str) -> tuple[Sequence[pb.Ledger], str]:
            request = pb.ListLedgersRequest(page_size=size, page_token=token)
            answer = self._api.call(self._stub.ListLedgers, request)
            return answer.ledgers, answer.next_page_token

        return gather(page, limit, self._api.page_size)

    def accounts(
        self, ledger: str, metadata: Sequence[str], limit: int | None
    ) -> Listing[pb.Account]:
        def page(size: int, token: str) -> tuple[Sequence[pb.Account], str]:
            request = pb.ListAccountsRequest(
                ledger=ledger, metadata=metadata, page_size=size, page_token=token
            )
            answer = self._api.call(self._stub.ListAccounts, request)
            return answer.accounts, answer.next_page_token

        return gather(page, limit, self._api.page_size)

    def balance(self, ledger: str, account: str, as_of: datetime | None) -> pb.AccountBalance:
        request = pb.GetBalanceRequest(ledger=ledger, account=account)
        if as_of is not None:
            request.as_of.CopyFrom(_timestamp(as_of))
        return self._api.call(self._stub.GetBalance, request)

    def transfer(self, ledger: str, transfer: str) -> pb.Transfer:
        request = pb.GetTransferRequest(ledger=ledger, transfer=transfer)
        return self._api.call(self._stub.GetTransfer, request)


@contextmanager
def connect_ledger(
    server: str, timeout_s: float, page_size: int = MAX_PAGE_SIZE, *, token: str | None = None
) -> Iterator[LedgerClient]:
    """A client of the ledger at ``server`` (HOST:PORT), each call carrying ``token`` if any."""
    with connect(server, timeout_s, page_size, token=token) as api:
        yield LedgerClient(api)
