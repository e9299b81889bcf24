"""The ledger's command-line presentation: the scripted demo story and plain-text reports.

Both only call use cases and format what they answer, like the gRPC servicer beside them; the
composition root's CLI (`ledgerd.main.cli`) parses the command line and runs them.
"""
