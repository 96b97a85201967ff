"""The launcher's storage format never mistakes a cluster id for an option, and a failed format says why."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.kafka_launcher import (
    HERE,
    KafkaBroker,
    _cluster_id,
    _properties,
    fetch_jars,
    format_storage,
    jvm_options,
    require_java,
)
from kernel.errors import PpuError
from kernel.settings import Settings


def _ids_starting_with(prefix: str, count: int) -> list[str]:
    """Real KRaft ids (16 random bytes, URL-safe base64) whose first character is `prefix`."""
    found: list[str] = []
    while len(found) < count:
        raw = uuid.uuid4().bytes
        candidate = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        if candidate.startswith(prefix):
            found.append(candidate)
    return found


def test_generated_ids_are_kraft_ids() -> None:
    for _ in range(200):
        cid = _cluster_id()
        assert len(cid) == 22 and len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_formats_with_ids_that_look_like_options_never_flake(tmp_path: Path) -> None:
    """20 formats with the launcher's own ids, plus 20 that surely look like options: before the fix about 1 format
    in 64 failed, those whose id starts with "-". Two at a time (one JVM each, a few seconds of CPU each: 200 random
    ids, as this test once had, took 4-5 minutes of the suite on 2 cores and found nothing the 20 chosen ones miss)."""
    java, libs = require_java(), fetch_jars(Settings().kafka_version)
    ids = [_cluster_id() for _ in range(20)] + _ids_starting_with("-", 16) + _ids_starting_with("_", 3)
    ids.append("--AAAAAAAAAAAAAAAAAAAA")

    def one(n: int) -> str:
        folder = tmp_path / str(n)
        folder.mkdir()
        props = folder / "server.properties"
        props.write_text(_properties(KafkaBroker(folder, 19092, 19093)))
        format_storage(java, f"{libs}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", props, ids[n])
        return (folder / "log" / "meta.properties").read_text()

    with ThreadPoolExecutor(max_workers=2) as pool:
        metas = list(pool.map(one, range(len(ids))))
    assert all(f"cluster.id={cid}" in meta for cid, meta in zip(ids, metas, strict=True))


def test_a_failed_format_prints_what_the_tool_said(tmp_path: Path) -> None:
    java, libs = require_java(), fetch_jars(Settings().kafka_version)
    props = tmp_path / "server.properties"
    props.write_text("process.roles=broker,controller\n")  # no node.id, no log.dirs: the tool refuses
    with pytest.raises(PpuError, match=r"formatting the KRaft log directory failed: .+") as e:
        format_storage(
            java, f"{libs}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", props, "AAAAAAAAAAAAAAAAAAAAAA"
        )
    assert "\n" not in str(e.value) and len(str(e.value)) > 60, "one line, with the tool's own words"


def test_the_brokers_jvm_options_are_taken_as_kafkas_scripts_take_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HEAP_OPTS", raising=False)
    monkeypatch.delenv("KAFKA_JVM_PERFORMANCE_OPTS", raising=False)
    own = jvm_options(tmp_path, "-Xms1m -Xmx2m")
    assert own[:3] == ["-Xms1m", "-Xmx2m", "-XX:+UseG1GC"]
    assert own[-1].startswith(f"-Xlog:gc:file={tmp_path / 'gc.log'}:")
    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G")
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", "-XX:+UseZGC  -Djava.awt.headless=true")
    assert jvm_options(tmp_path, "-Xms1m -Xmx2m")[:4] == ["-Xmx1G", "-Xms1G", "-XX:+UseZGC", "-Djava.awt.headless=true"]
