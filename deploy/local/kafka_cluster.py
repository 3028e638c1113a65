"""A local Apache Kafka cluster of one or three KRaft nodes, optionally with SASL/SCRAM and ACLs
(issue 14 items 1 and 3). `make up BROKERS=3 SASL=1` and the broker-loss and ACL tests use it;
`KafkaServer` in stack.py stays the single plaintext broker of the default stack and fixtures.

Layout (every node is broker and controller: "combined" mode. Three JVMs instead of six on a
developer machine, and a quorum of three voters still survives the loss of any one node,
including the active controller):

* CLIENT    127.0.0.1:<port>          the services' listener: SASL_PLAINTEXT with
                                      SCRAM-SHA-512 (one user per service, shared.kafka_acl),
                                      or PLAINTEXT without `sasl`.
* INTERNAL  127.0.0.1:<internal_port> replication between brokers, SASL_PLAINTEXT as the
                                      super user `homeward-broker`.
* CONTROLLER 127.0.0.1:<controller>   the KRaft quorum, PLAINTEXT: SCRAM cannot authenticate
                                      the quorum (its credentials live in the metadata the
                                      quorum serves), so the anonymous principal of this
                                      loopback-only listener is a super user. Kubernetes uses
                                      Strimzi's mutual TLS here instead.

The broker and admin users are written at `kafka-storage format` time (`--add-scram`); the
services' users and their ACLs are created afterwards through the admin API
(shared.kafka_admin.setup_principals). `StandardAuthorizer` with
allow.everyone.if.no.acl.found=false: a principal may do only what its ACLs allow.
Replication: 3 replicas and min.insync.replicas 2 with three nodes, 1/1 with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.stack import (
    LOG4J_CONFIG,
    ChildExited,
    _cluster_id,
    _die_with_parent,
    _stop,
    ensure_kafka_jars,
    free_port,
    wait_for_ports,
)
from shared import kafka_acl
from shared.kafka_access import KafkaAccess

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


class PortTaken(RuntimeError):
    """A node exited because another process held one of its planned ports."""


@dataclass
class KafkaNode:
    node_id: int
    data_dir: Path
    port: int
    internal_port: int
    controller_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class KafkaCluster:
    """`brokers` combined KRaft nodes on free loopback ports; `credentials` (user -> password,
    shared.kafka_admin.load_credentials) switch SASL/SCRAM and ACLs on."""

    data_dir: Path
    brokers: int = 3
    credentials: dict[str, str] | None = None
    heap: str = "384m"
    ports: list[int] | None = None
    nodes: list[KafkaNode] = field(default_factory=list)

    @property
    def sasl(self) -> bool:
        return self.credentials is not None

    @property
    def replication_factor(self) -> int:
        return min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.brokers >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def access(self, user: str = kafka_acl.ADMIN) -> KafkaAccess:
        """How `user` reaches the cluster (PLAINTEXT without SASL)."""
        if self.credentials is None:
            return KafkaAccess(self.bootstrap)
        return KafkaAccess(self.bootstrap, "SASL_PLAINTEXT", "SCRAM-SHA-512",
                           kafka_acl.principal(user), self.credentials[user])

    def _java(self) -> list[str]:
        libs = ensure_kafka_jars()
        return ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp", f"{libs}/*"]

    def _config(self, node: KafkaNode, voters: str) -> Path:
        client = "SASL_PLAINTEXT" if self.sasl else "PLAINTEXT"
        lines = [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=CLIENT://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=CLIENT://127.0.0.1:{node.port},"
            f"INTERNAL://127.0.0.1:{node.internal_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=INTERNAL",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,CLIENT:{client},"
            f"INTERNAL:{client}",
            f"log.dirs={node.data_dir / 'kraft-logs'}",
            "num.partitions=6",
            f"default.replication.factor={self.replication_factor}",
            f"min.insync.replicas={self.min_insync_replicas}",
            f"offsets.topic.replication.factor={self.replication_factor}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={self.replication_factor}",
            f"transaction.state.log.min.isr={self.min_insync_replicas}",
            f"share.coordinator.state.topic.replication.factor={self.replication_factor}",
            f"share.coordinator.state.topic.min.isr={self.min_insync_replicas}",
            "unclean.leader.election.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            # A restarted node catches up and rejoins the ISR quickly.
            "replica.lag.time.max.ms=10000",
        ]
        if self.credentials is not None:
            broker = kafka_acl.principal(kafka_acl.BROKER)
            lines += [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                f"listener.name.client.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN} required;",
                f"listener.name.internal.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN} required "
                f'username="{broker}" password="{self.credentials[kafka_acl.BROKER]}";',
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{broker};User:{kafka_acl.principal(kafka_acl.ADMIN)};"
                "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
            ]
        path = node.data_dir / "server.properties"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _plan(self) -> None:
        if self.nodes:
            return
        for i in range(self.brokers):
            port = self.ports[i] if self.ports else free_port()
            self.nodes.append(KafkaNode(i + 1, self.data_dir / f"node{i + 1}", port,
                                        free_port(), free_port()))

    def start(self, timeout: float = 120, attempts: int = 3) -> KafkaCluster:
        """Format and start every node; returns once each node's client port answers.

        A node that finds one of its planned ports taken by another process exits with "Address
        already in use" (PortTaken). With ports of its own choosing (`ports` not given) the
        cluster then stops its nodes, wipes its data and starts again on new ports, up to
        `attempts` times in all; a node that exits for any other reason raises RuntimeError
        with the tail of its log."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if self.ports or attempt == attempts:
                    raise
                self.stop()
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.nodes.clear()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> KafkaCluster:
        self._plan()
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cluster_id = _cluster_id()
        scram = []
        if self.credentials is not None:
            for user in (kafka_acl.BROKER, kafka_acl.ADMIN):
                scram += ["--add-scram", f"SCRAM-SHA-512=[name={kafka_acl.principal(user)},"
                                         f"password={self.credentials[user]}]"]
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            config = self._config(node, voters)
            if not (node.data_dir / "kraft-logs" / "meta.properties").exists():
                subprocess.run(
                    [*self._java(), "kafka.tools.StorageTool", "format",
                     f"--cluster-id={cluster_id}", "-c", str(config), "--ignore-formatted",
                     *scram],
                    check=True, stdout=subprocess.DEVNULL,
                )
        for node in self.nodes:
            self.start_node(node.node_id, wait=False)
        self._wait(self.nodes, timeout)
        return self

    @staticmethod
    def _wait(nodes: list[KafkaNode], timeout: float) -> None:
        """Until every one of `nodes` answers on its client port (stack.wait_for_ports: any
        node exiting first raises). PortTaken when its log says one of its ports was taken."""
        try:
            wait_for_ports([(n.port, n.proc, n.data_dir / "broker.log") for n in nodes],
                           timeout)
        except ChildExited as exc:
            with contextlib.suppress(OSError):
                if exc.log and "Address already in use" in exc.log.read_text(errors="replace"):
                    raise PortTaken(f"a planned port was taken; {exc}") from exc
            raise

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start_node(self, node_id: int, wait: bool = True, timeout: float = 120) -> None:
        node = self.node(node_id)
        log = (node.data_dir / "broker.log").open("ab")
        node.proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(node.data_dir / "server.properties")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if wait:
            self._wait([node], timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL: the node dies mid-write, as on a power loss."""
        node = self.node(node_id)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(30)

    def active_controller(self) -> int:
        """The node id of the KRaft quorum's leader, from the newest quorum-state file of a
        live node (clients are not told the active controller under KRaft)."""
        best = (-1, -1)
        for node in self.nodes:
            if not node.running:
                continue
            state = node.data_dir / "kraft-logs" / "__cluster_metadata-0" / "quorum-state"
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            if data.get("leaderId", -1) >= 0:
                best = max(best, (int(data["leaderEpoch"]), int(data["leaderId"])))
        if best[1] < 0:
            raise RuntimeError("no node knows the quorum's leader")
        return best[1]

    async def under_replicated(self) -> list[tuple[str, int]]:
        """(topic, partition) of every partition whose in-sync replicas are fewer than its
        replicas, over all topics the admin may describe."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(request_timeout_ms=30_000, **self.access().client_options())
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if not t.startswith("__")]
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        return [(t["topic"], p["partition"]) for t in described for p in t["partitions"]
                if len(p["isr"]) < len(p["replicas"])]

    def ensure_topics_and_principals(self) -> None:
        """The declared topics with this cluster's replication, then (with SASL) the services'
        users and ACLs."""
        from shared.kafka import ensure_topics

        asyncio.run(ensure_topics(self.access(), self.replication_factor,
                                  self.min_insync_replicas))
        if self.credentials is not None:
            from shared.kafka_admin import setup_principals

            setup_principals(self.access(), self.credentials)

    def service_env(self, service: str) -> dict[str, str]:
        """Settings (shared.settings) that make `service` reach this cluster as itself."""
        env = {"HOMEWARD_KAFKA_BOOTSTRAP": self.bootstrap,
               "HOMEWARD_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
               "HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas)}
        if self.credentials is not None:
            env |= {"HOMEWARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                    "HOMEWARD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                    "HOMEWARD_KAFKA_USERNAME": kafka_acl.principal(service),
                    "HOMEWARD_KAFKA_PASSWORD": self.credentials[service]}
        return env

    def stop(self) -> None:
        for node in self.nodes:
            _stop(node.proc, timeout=30)
