"""Apache Kafka 4.x in KRaft mode from its Maven Central jars: fetch (cached), format, start, stop.

The jars are resolved by the small Maven project in infra/kafka/pom.xml into a cache outside git, so a second
start reuses them. The broker runs combined (broker + controller) on free loopback ports.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra.processes import free_port, pid_alive, port_accepts, port_is_free, terminate, wait_until
from kernel.errors import PpuError

HERE = Path(__file__).resolve().parent / "kafka"


def cache_dir(version: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ppu" / f"kafka-{version}" / "libs"


# The broker's collector (G1, Java 17's default) with its own pause goal. Kafka's start scripts (bin/kafka-run-class.sh)
# ask G1 for 20 ms pauses and a fixed 1 GiB heap: measured three times on this machine's two cores, the paced lookup p99
# did not move beyond noise either way (README, stops 42, 45 and 50), so the smaller heap stays. With it, ~210 MB live
# in ~460 MB committed sits at G1's marking threshold: a concurrent cycle every 20-90 s, which a slow 100 ms window can
# show (bench/results/20261208-paced-stalls.md); a fixed 1 GiB heap did not mark in 14 minutes. Either is set the way
# Kafka's scripts take it, from KAFKA_HEAP_OPTS and KAFKA_JVM_PERFORMANCE_OPTS.
KAFKA_JVM_PERFORMANCE_OPTS = "-XX:+UseG1GC"
GC_LOG = "gc.log"


def jvm_options(data_dir: Path, heap: str) -> list[str]:
    """The broker's JVM options: `KAFKA_HEAP_OPTS` (else `heap`) and `KAFKA_JVM_PERFORMANCE_OPTS` (else G1's own
    goals), and its collector's pauses logged to `data_dir/gc.log`, each with its time (two files of 20 MB at most)."""
    gc_log = f"-Xlog:gc:file={data_dir / GC_LOG}:time,uptime:filecount=2,filesize=20M"
    return [
        *shlex.split(os.environ.get("KAFKA_HEAP_OPTS") or heap),
        *shlex.split(os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or KAFKA_JVM_PERFORMANCE_OPTS),
        gc_log,
    ]


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise PpuError(
            "Java 17 or newer is needed for the Kafka broker: install a JDK (apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        raise PpuError(f"Kafka 4 needs Java 17 or newer; `java -version` says: {out.splitlines()[0] if out else '?'}")
    return java


def fetch_jars(version: str) -> Path:
    libs = cache_dir(version)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PpuError("Maven is needed once to fetch the Kafka jars: install it (apt-get install maven)")
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(HERE / "pom.xml"),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        raise PpuError(f"Maven could not fetch Kafka {version}: {tail[0]}")
    marker.touch()
    return libs


@dataclass
class KafkaBroker:
    data_dir: Path
    port: int
    controller_port: int
    pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _properties(b: KafkaBroker) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{b.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{b.port},CONTROLLER://127.0.0.1:{b.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{b.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={b.data_dir / 'log'}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Topics come from topics.yaml (`ppu topics apply`), never from a typo in a producer.
            "auto.create.topics.enable=false",
            "",
        ]
    )


def start(data_dir: Path, version: str, port: int | None = None, timeout: float = 60.0) -> KafkaBroker:
    java = require_java()
    libs = fetch_jars(version)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ports_file = data_dir / "ports.json"
    saved = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    broker = KafkaBroker(
        data_dir, port or saved.get("port") or free_port(), saved.get("controller_port") or free_port()
    )
    for p in (broker.port, broker.controller_port):
        if not port_is_free(p):
            raise PpuError(f"port {p} on 127.0.0.1 is taken; stop what uses it or set a different port")
    ports_file.write_text(json.dumps({"port": broker.port, "controller_port": broker.controller_port}))
    props = data_dir / "server.properties"
    props.write_text(_properties(broker))
    classpath = f"{libs}/*"
    log4j = f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}"
    if not (data_dir / "log" / "meta.properties").exists():
        format_storage(java, classpath, log4j, props, _cluster_id())
    with (data_dir / "broker.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                java,
                *jvm_options(data_dir, "-Xms256m -Xmx768m"),
                "-cp",
                classpath,
                log4j,
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    broker.pid = proc.pid
    try:
        wait_until(lambda: proc.poll() is not None or port_accepts(broker.port), timeout, "the Kafka broker")
    except PpuError:
        terminate(proc.pid)
        raise
    if proc.poll() is not None:
        raise PpuError(f"the Kafka broker exited with code {proc.returncode}; see {data_dir / 'broker.log'}")
    return broker


def format_storage(java: str, classpath: str, log4j: str, props: Path, cluster_id: str) -> None:
    """Formats the KRaft log directory; a failure is one line with what the storage tool said (its stderr)."""
    fmt = subprocess.run(
        # `--cluster-id=…` as one argument, so that an id starting with "-" (1 in 64 of them) is never read as an
        # option.
        [
            java,
            "-cp",
            classpath,
            log4j,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(props),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        said = " ".join((fmt.stderr.strip() or fmt.stdout.strip()).split())[-300:]
        raise PpuError(f"formatting the KRaft log directory failed: {said}")


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding (what `random-uuid` prints).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def stop(pid: int) -> None:
    if pid_alive(pid):
        terminate(pid, timeout=30.0)
