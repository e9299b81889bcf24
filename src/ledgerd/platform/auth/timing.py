"""The time rules that the key set and the token verifier must agree on."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# How far the verifier's clock may disagree with the issuer's: ``exp`` is honoured this long
# after it passes and ``nbf``/``iat`` this long before they arrive. Issuer and verifiers are
# different processes (several servers, the CLI), usually NTP-synchronised to well under a
# second; 30 s covers a lagging host without making a stolen token noticeably longer-lived.
CLOCK_LEEWAY: Final = timedelta(seconds=30)

# The longest access-token lifetime the key set plans for: a retired key stays verifiable until
# every token it can have signed has expired. The lifetime setting (15 min by default, issue 14)
# must not exceed it; the issuer refuses a longer one.
MAX_ACCESS_TOKEN_LIFETIME: Final = timedelta(hours=1)
