"""The load generator behind ``ledgerd bench``: a client of the API, and nothing more.

It drives a running ledgerd over gRPC or REST with concurrent clients, measures throughput and
latency, then checks the ledger's invariants through the API (and, given the database URL,
with ``ledgerd verify`` run as a separate process). It never imports the server's code: what
it knows of ledgerd is the generated ``ledgerd.v1`` contract, so it measures what a real
client would see. ``bench/`` at the repository root holds the pgbench scripts it compares with.
"""
