"""The launcher's storage format never mistakes a cluster id for an option, and a failed format says why."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from infra.kafka_launcher import HERE, KafkaBroker, _cluster_id, _properties, fetch_jars, format_storage, require_java
from ppu.errors import PpuError
from ppu.settings import Settings


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


@pytest.mark.parametrize(
    "cluster_id", [*_ids_starting_with("-", 4), *_ids_starting_with("_", 2), "--AAAAAAAAAAAAAAAAAAAA"]
)
def test_ids_that_look_like_options_format(tmp_path: Path, cluster_id: str) -> None:
    java, libs = require_java(), fetch_jars(Settings().kafka_version)
    broker = KafkaBroker(tmp_path, 19092, 19093)
    props = tmp_path / "server.properties"
    props.write_text(_properties(broker))
    format_storage(java, f"{libs}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", props, cluster_id)
    meta = (tmp_path / "log" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}" in meta


def test_a_failed_format_prints_what_the_tool_said(tmp_path: Path) -> None:
    java, libs = require_java(), fetch_jars(Settings().kafka_version)
    props = tmp_path / "server.properties"
    props.write_text("process.roles=broker,controller\n")  # no node.id, no log.dirs: the tool refuses
    with pytest.raises(PpuError, match=r"formatting the KRaft log directory failed: .+") as e:
        format_storage(
            java, f"{libs}/*", f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}", props, "AAAAAAAAAAAAAAAAAAAAAA"
        )
    assert "\n" not in str(e.value) and len(str(e.value)) > 60, "one line, with the tool's own words"
