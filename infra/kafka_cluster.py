"""Several Apache Kafka nodes on loopback, from the same cached jars: each node a broker and a KRaft controller
(combined mode, a controller quorum of all nodes), so that losing one node moves partition leadership while the
quorum and the cluster stay up. Used by the tests that need a leader to change (one broker cannot show it)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.kafka_launcher import HERE, _cluster_id, fetch_jars, format_storage, jvm_options, require_java
from infra.processes import free_port, port_accepts, terminate, wait_until
from kernel.errors import PpuError


@dataclass
class Node:
    node_id: int
    data_dir: Path
    port: int
    controller_port: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    nodes: list[Node]
    java: str
    classpath: str
    log4j: str
    voters: str
    stopped: set[int] = field(default_factory=set)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def kill(self, node_id: int) -> None:
        """SIGKILL: a broker that dies without a word (its partitions' leadership moves to the others)."""
        node = self.nodes[node_id - 1]
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(30)
        self.stopped.add(node_id)

    def restart(self, node_id: int, timeout: float = 60.0) -> None:
        _run(self, self.nodes[node_id - 1], timeout)
        self.stopped.discard(node_id)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                terminate(node.proc.pid, timeout=30.0)


def _properties(node: Node, voters: str, size: int) -> str:
    replicas = min(3, size)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={node.data_dir / 'log'}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min(2, replicas)}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min(2, replicas)}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
    )


def _spawn(cluster: Cluster, node: Node) -> None:
    with (node.data_dir / "broker.log").open("ab") as log:
        node.proc = subprocess.Popen(
            [
                cluster.java,
                *jvm_options(node.data_dir, "-Xms128m -Xmx512m"),
                "-cp",
                cluster.classpath,
                cluster.log4j,
                "kafka.Kafka",
                str(node.data_dir / "server.properties"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(node: Node, timeout: float) -> None:
    proc = node.proc
    assert proc is not None
    wait_until(lambda: proc.poll() is not None or port_accepts(node.port), timeout, f"Kafka node {node.node_id}")
    if proc.poll() is not None:
        raise PpuError(f"Kafka node {node.node_id} exited with code {proc.returncode}; see {node.data_dir}")


def _run(cluster: Cluster, node: Node, timeout: float) -> None:
    _spawn(cluster, node)
    _wait(node, timeout)


def respawn_node(kafka_dir: Path, version: str, node_id: int, timeout: float = 60.0) -> int:
    """Starts node `node_id` of a cluster `start_cluster` made in `kafka_dir` again (same ports, same log); its pid.
    For `ppu stack` clusters, whose nodes outlive the process that started them."""
    data_dir = (kafka_dir / f"node{node_id}").resolve()
    props = (data_dir / "server.properties").read_text()
    port = int(props.split("listeners=PLAINTEXT://127.0.0.1:", 1)[1].split(",", 1)[0])
    voters = props.split("controller.quorum.voters=", 1)[1].split("\n", 1)[0]
    node = Node(node_id, data_dir, port, 0)
    cluster = Cluster(
        [node], require_java(), f"{fetch_jars(version)}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", voters
    )
    _run(cluster, node, timeout)
    assert node.proc is not None
    return node.proc.pid


def start_cluster(data_dir: Path, version: str, size: int = 3, timeout: float = 90.0) -> Cluster:
    java, libs = require_java(), fetch_jars(version)
    nodes = [Node(i, (data_dir / f"node{i}").resolve(), free_port(), free_port()) for i in range(1, size + 1)]
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    cluster = Cluster(nodes, java, f"{libs}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", voters)
    cluster_id = _cluster_id()
    for node in nodes:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        props = node.data_dir / "server.properties"
        props.write_text(_properties(node, voters, size))
        format_storage(java, cluster.classpath, cluster.log4j, props, cluster_id)
    try:
        for node in nodes:  # all at once: the controller quorum needs a majority up to elect a leader
            _spawn(cluster, node)
        for node in nodes:
            _wait(node, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
