"""The commits' broadcaster: each listener hears each stream, until it stops listening."""

from __future__ import annotations

from ledgerd.platform.outbox.commits import CommittedStreams


def test_every_listener_hears_each_commit_until_it_stops_listening() -> None:
    streams = CommittedStreams()
    first: list[str] = []
    second: list[str] = []
    stop_second: list[object] = []

    def once(stream: str) -> None:
        second.append(stream)
        stop = stop_second[0]
        assert callable(stop)
        stop()  # stops as it is called: the others still hear this commit

    stop_first = streams.listen(first.append)
    stop_second.append(streams.listen(once))
    third: list[str] = []
    streams.listen(third.append)

    streams.committed("books")
    streams.committed("other")
    stop_first()
    stop_first()  # twice: nothing more happens
    streams.committed("last")

    assert first == ["books", "other"]
    assert second == ["books"]
    assert third == ["books", "other", "last"]
