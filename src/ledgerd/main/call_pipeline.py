"""The call pipeline every call passes, gRPC or REST: its concerns, in order, registered here.

One object, built once by the container, is run by the gRPC server's interceptor and by the
REST gateway's in-process invoker alike, so a concern added to the list below applies to both
transports by construction. (A gateway that forwards to another ledgerd is a gRPC client: the
other server's pipeline applies.)
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from grpc_health.v1 import health

from ledgerd.main.contexts import ENABLED_CONTEXTS
from ledgerd.platform.api.admission import Admission
from ledgerd.platform.api.authentication import Authentication
from ledgerd.platform.api.call_concerns import (
    AccessLog,
    AdmissionControl,
    ErrorClassification,
    deadline,
)
from ledgerd.platform.api.grpc_reflection import SERVICE_NAMES as REFLECTION_SERVICES
from ledgerd.platform.api.pipeline import CallPipeline, Concern
from ledgerd.platform.throttled_log import ThrottledLog

ACCESS_LOG = "ledgerd.access"
# Probes must be answered when the server is full: these take no admission permit.
UNADMITTED_SERVICES = (health.SERVICE_NAME, *REFLECTION_SERVICES)


def build_call_pipeline(
    admission: Admission,
    authentication: Authentication | None = None,
    *,
    unadmitted_methods: Collection[str] | None = None,
) -> CallPipeline:
    """The concerns, outermost first; each acts around all that follow it.

    1. The access log, outermost, so its line tells how every call ended, refusals included.
    2. Error classification: whatever fails inside, a concern included, is a domain error or
       a bug (logged once, INTERNAL to the client).
    3. The client's deadline, so that all work below it — admission's, authentication's
       look-ups, the call's — is bounded by it.
    4. Admission: a permit per call, or OVERLOADED before any work is done; but probes, and
       the methods the contexts declare open for hours (``unadmitted_methods``, default the
       enabled contexts': event streams).

    5. Authentication and authorisation (``LEDGERD_AUTH=required``), after admission (an
       overloaded server refuses before checking credentials) and before the call: it sets
       ``CallInfo.principal`` and the kernel's principal scope, or refuses.

    Metrics go beside the access log.
    """
    logger = logging.getLogger(ACCESS_LOG)
    concerns: list[Concern] = [
        AccessLog(logger),
        ErrorClassification(ThrottledLog(logger)),
        deadline,
        AdmissionControl(
            admission,
            exempt_services=UNADMITTED_SERVICES,
            exempt_methods=(
                [method for context in ENABLED_CONTEXTS for method in context.unadmitted_methods]
                if unadmitted_methods is None
                else unadmitted_methods
            ),
        ),
    ]
    if authentication is not None:
        concerns.append(authentication)
    return CallPipeline(concerns)
