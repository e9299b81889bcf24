"""The REST gateway's per-request work: JSON body to request message, response to JSON."""

from __future__ import annotations

import json

from bench.micro.conftest import Allocations, Benchmark

from ledgerd.gateway.http_rules import http_routes
from ledgerd.gateway.transcoding import build_request, render
from ledgerd.v1 import ledger_pb2 as pb

ROUTES = {r.method.name: r for r in http_routes(pb.DESCRIPTOR.services_by_name["LedgerService"])}
BATCH = 100


def _batch_body() -> bytes:
    transfers = [
        {
            "idempotency_key": f"k{n}",
            "legs": [{"debit_account": "bank", "credit_account": f"a{n}", "amount": "125"}],
            "metadata": {"order": f"o-{n}"},
        }
        for n in range(BATCH)
    ]
    return json.dumps({"transfers": transfers}).encode()


def test_transcode_a_batch_request(benchmark: Benchmark, allocations: Allocations) -> None:
    route = ROUTES["PostTransfers"]
    body = _batch_body()

    def transcode() -> object:
        return build_request(route, path_values={"ledger": "bench"}, query=(), body=body)

    allocations(transcode)
    message = benchmark(transcode)
    assert len(message.transfers) == BATCH


def test_render_a_transfer(benchmark: Benchmark, allocations: Allocations) -> None:
    transfer = pb.Transfer(
        id="t1",
        idempotency_key="k1",
        legs=[pb.Leg(debit_account="bank", credit_account="alice", amount=125, asset="USD/2")],
        status=pb.Transfer.POSTED,
        metadata={"order": "o-1"},
    )
    allocations(lambda: render(transfer))
    document = benchmark(render, transfer)
    assert document["id"] == "t1"
