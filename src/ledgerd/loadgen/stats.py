"""What a run counted: requests, transfers, errors by code, latency, acknowledged ids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ledgerd.loadgen.latency import LatencyHistogram


@dataclass(slots=True)
class RunStats:
    """One process's counts (or, merged, the whole run's); picklable for the trip home."""

    requests: int = 0
    failed_requests: int = 0
    transfers_ok: int = 0
    transfers_failed: int = 0
    replayed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Failed transfers (trivial runs: failed calls) by error code."""
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    """One sample per request, failed ones included."""
    acked_ids: list[str] = field(default_factory=list)
    """Ids of the transfers the server said it posted: each must be in the ledger."""
    elapsed_s: float = 0.0
    """From the start signal to the last response (merged: the longest process)."""
    token_renewals: int = 0
    """Access tokens got during the run to replace one about to expire (all processes)."""

    @property
    def transfers_done(self) -> int:
        return self.transfers_ok + self.transfers_failed

    def merge(self, other: RunStats) -> None:
        self.requests += other.requests
        self.failed_requests += other.failed_requests
        self.transfers_ok += other.transfers_ok
        self.transfers_failed += other.transfers_failed
        self.replayed += other.replayed
        self.errors.update(other.errors)
        self.latency.merge(other.latency)
        self.acked_ids.extend(other.acked_ids)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.token_renewals += other.token_renewals
