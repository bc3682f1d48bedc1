"""The multi-process watchdog and failure handling, with a stand-in coordination client (the
real two-process runs are in test_multihost.py)."""

import pytest

from prdarts_jax.runtime import distributed
from prdarts_jax.runtime.distributed import ClusterSpec, PeerWatchdog


class FakeClient:
    """The key-value store of JAX's coordination service, in a dict."""

    def __init__(self):
        self.store, self.down = {}, False

    def key_value_set(self, key, value, allow_overwrite=False):
        if self.down:
            raise RuntimeError("UNAVAILABLE: failed to connect to all addresses")
        self.store[key] = value

    def key_value_try_get(self, key):
        if self.down:
            raise RuntimeError("UNAVAILABLE: failed to connect to all addresses")
        if key not in self.store:
            raise RuntimeError(f"NOT_FOUND: Config key {key} not found")
        return self.store[key]


def _dog(client, pid=0, silence=20.0):
    return PeerWatchdog(client, ClusterSpec("127.0.0.1:1", 2, pid), poll=2.0, silence=silence,
                        on_lost=pytest.fail)


def test_a_live_peer_keeps_the_watchdog_quiet():
    client = FakeClient()
    mine, theirs = _dog(client, 0), _dog(client, 1)
    for t in range(0, 100, 2):
        assert mine.check(now=t) is None and theirs.check(now=t) is None
    assert client.store == {"prdarts/beat/0": "50", "prdarts/beat/1": "50"}


def test_a_peer_not_started_yet_is_waited_for():
    client = FakeClient()
    mine = _dog(client, 0)
    assert all(mine.check(now=t) is None for t in range(0, 200, 2))


def test_a_silent_peer_stops_this_process_after_the_timeout():
    client = FakeClient()
    mine, theirs = _dog(client, 0), _dog(client, 1)
    theirs.check(now=0)
    assert mine.check(now=0) is None
    assert mine.check(now=20) is None                     # 20 s silent: not yet
    reason = mine.check(now=21)
    assert reason.startswith("process 1 of 2 stopped answering (21 s without a sign of life)")


def test_a_lost_coordinator_stops_this_process():
    client = FakeClient()
    mine = _dog(client, 1)
    assert mine.check(now=0) is None
    client.down = True
    assert "process 1 of 2 lost the coordinator (127.0.0.1:1: UNAVAILABLE" in mine.check(now=2)


def test_timeouts_from_the_environment():
    assert distributed.timeouts({}) == distributed.TIMEOUTS
    assert distributed.timeouts({"PRDARTS_PEER_TIMEOUT_SECONDS": "5"})[
        "PRDARTS_PEER_TIMEOUT_SECONDS"] == 5.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="PRDARTS_PEER_POLL_SECONDS=.* must be a positive"):
            distributed.timeouts({"PRDARTS_PEER_POLL_SECONDS": bad})


def test_only_a_collective_broken_by_a_lost_peer_counts_as_one(monkeypatch):
    import jax

    from prdarts_jax.runtime.cli import lost_peer
    err = jax.errors.JaxRuntimeError("UNKNOWN: Gloo all-reduce failed: [pair.cc:547] "
                                     "Connection closed by peer [127.0.0.1]:18329")
    assert lost_peer(err) is None                             # one process: not a peer's
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    assert "a collective failed because another process went away (UNKNOWN: Gloo" in \
        lost_peer(err)
    assert lost_peer(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")) is None
    assert lost_peer(ValueError("Connection closed by peer")) is None
