"""The process's limit on open files: raised to the hard limit at start-up, read for the caps.

Every connection, gRPC or HTTP, holds a file. Many systems start processes with a soft limit of
1,024 (or 256) while allowing far more: the soft limit is what runs out first under many
clients, and a process may raise it to the hard limit itself.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def _shown(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit, and log it once (INFO).

    Never fails: a system that refuses (some allow no raise to an unlimited hard limit) keeps
    the limit it gave, with a warning.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        log.info("open file limit %s (the hard limit)", _shown(soft))
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning(
            "open file limit stays %s: raising it to the hard limit %s failed: %s",
            _shown(soft),
            _shown(hard),
            error,
        )
        return
    log.info("open file limit raised from %s to %s (the hard limit)", _shown(soft), _shown(hard))


def open_file_limit() -> int | None:
    """How many files this process may have open (the soft limit); ``None``: no limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft
