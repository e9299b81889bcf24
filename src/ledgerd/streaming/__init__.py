"""The streaming context: live subscriptions to a ledger's events, resumable from a position.

A subscriber asks for one ledger's events, optionally filtered by account and event type,
from a sequence number; it gets every matching event after it, in ledger order, first from
the event log (catching up) and then live, with no gap and no duplicate at the seam. The
transports (gRPC server streaming, Server-Sent Events, WebSocket) are thin layers over one
`StreamHub` per process.
"""
