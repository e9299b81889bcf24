"""ledgerd-operator: runs ledgerd on Kubernetes from a `Ledgerd` custom resource.

A package of its own, beside `ledgerd` rather than inside it: the operator talks to the
Kubernetes API, never to the ledger's code, and its framework (kopf) is installed only with the
`operator` extra. It knows ledgerd the way a cluster administrator does: an image, its commands
(`migrate`, `serve`, `worker`), its `LEDGERD_*` settings and its health endpoints.
"""
