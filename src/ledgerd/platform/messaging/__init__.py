"""Events out of the process: the envelope, the publisher/subscriber ports, their adapters."""
