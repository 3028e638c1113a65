"""The local stack's ports (deploy/local): a port handed to a child process is one no other
process can take before the child binds it, and a cluster node that still finds its port
taken is started again on new ports instead of failing the run (CI, stop 15: a node of the
three-node cluster exited with "Address already in use")."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import kafka_cluster, stack
from deploy.local.kafka_cluster import KafkaCluster, PortTaken
from deploy.local.stack import free_port, wait_for_port


@pytest.mark.parametrize("ephemeral", [
    None,                    # this host's own range
    range(32768, 61000),     # Linux's default
    range(49152, 65536),     # IANA's dynamic ports (Windows, BSD)
    range(1024, 65536),      # everything ephemeral: too little below it, so bind(0)
])
def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range(
        monkeypatch: pytest.MonkeyPatch, ephemeral: range | None) -> None:
    """The rule: below the ephemeral range when more than 1,000 ports lie between 10,000 and
    its start, else whatever bind(0) gives; never the same port twice in one process."""
    if ephemeral is not None:
        monkeypatch.setattr(stack, "_ephemeral_ports", lambda: ephemeral)
    ranged = stack._ephemeral_ports()
    roomy = ranged.start - stack._LOWEST_PORT > 1000
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    if roomy:
        assert all(stack._LOWEST_PORT <= port < ranged.start for port in ports)
    for port in ports[:50]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@contextlib.contextmanager
def cluster_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                  times: int) -> Iterator[tuple[KafkaCluster, int]]:
    """A one-node cluster whose port plan starts with a taken port `times` times (the client
    port of a fresh plan is its first port). The port is bound and not listening, as a peer's
    outgoing connection holds it; the cluster is stopped at the end."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        taken = held.getsockname()[1]
        handed: list[int] = []

        def plan_port() -> int:
            fresh_plan = len(handed) % 3 == 0
            port = taken if fresh_plan and handed.count(taken) < times else free_port()
            handed.append(port)
            return port

        monkeypatch.setattr(kafka_cluster, "free_port", plan_port)
        cluster = KafkaCluster(tmp_path / "kafka", brokers=1)
        try:
            yield cluster, taken
        finally:
            cluster.stop()


def test_a_node_whose_port_was_taken_starts_again_on_new_ports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with cluster_given(monkeypatch, tmp_path, times=1) as (cluster, taken):
        cluster.start(timeout=90)
        assert cluster.nodes[0].port != taken
        wait_for_port(cluster.nodes[0].port, 5, cluster.nodes[0].proc)


def test_a_port_taken_on_every_attempt_is_reported_with_the_nodes_log(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with cluster_given(monkeypatch, tmp_path, times=2) as (cluster, _), \
            pytest.raises(PortTaken, match="a planned port was taken"):
        cluster.start(timeout=90, attempts=2)
