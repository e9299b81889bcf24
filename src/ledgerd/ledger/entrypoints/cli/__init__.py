"""The ledger's command-line presentation: the scripted demo story and plain-text reports.

Both only call use cases and format what they answer, like the gRPC servicer beside them; the
ledger's commands in the composition root (`ledgerd.main.contexts.ledger_commands`) parse the
command line and run them.
"""
