"""Which streams this process's commits wrote events to: for listeners in the same process.

PostgreSQL's NOTIFY names the stream a commit wrote to, for every process (``listener.py``).
The embedded database has no such signal, and there everything runs in one process: the outbox
writer tells this broadcaster the stream once the commit is done, and whoever needs to know
(the live streams' hub, which reads only the ledger that committed) listens here. A listener is
called on the event loop, right after the commit; it must not block.
"""

from __future__ import annotations

from collections.abc import Callable


class CommittedStreams:
    def __init__(self) -> None:
        self._listeners: list[Callable[[str], object]] = []

    def listen(self, listener: Callable[[str], object]) -> Callable[[], None]:
        """Call ``listener(stream)`` after each commit that wrote to ``stream``; the undoing."""
        self._listeners.append(listener)

        def stop_listening() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop_listening

    def committed(self, stream: str) -> None:
        """A commit wrote events to ``stream`` (the outbox writer, after the commit)."""
        for listener in tuple(self._listeners):  # one may stop listening as it is called
            listener(stream)
