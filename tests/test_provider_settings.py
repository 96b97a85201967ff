"""Provider settings as an integrator meets them: the strict simulator against the bodies we used to send and the
ones we send now, `ppu providers update` reaching a running bridge, no credentials, HTTP Basic over TLS with a
private CA."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import trustme
from prometheus_client import REGISTRY

from kernel.settings import Settings
from ppu import demo_seed
from providers import electrum
from providers.directory import Directory, Party, ProviderConfig
from providers.http_bridge import request_body
from providers.http_simulator import SimulatorConfig
from schemas.lookup import LookupRequested, LookupRequestedData, LookupResponded
from tests.bridging import (
    GROUP,
    PASSWORD,
    USER,
    bridge,
    committed_all,
    lookup,
    read,
    responses_topic,
    send_request,
    simulator,
)
from tests.conftest import run_ppu
from tests.harness import System, eventually

# What the bridge sent before Electrum ids (issue #11), as a provider built on Electrum's model received it.
OLD_BODY = {
    "time": "2026-11-20T08:00:00.000Z",
    "originator": {
        "institution": {"id": "ppu-switch", "name": "PPU Switch"},
        "terminalId": "PPU00001",
        "merchant": {
            "merchantType": "6012",
            "merchantId": "PPUSWITCH000001",
            "merchantName": {"name": "PPU Switch", "city": "Johannesburg", "region": "GP", "country": "ZA"},
        },
    },
    "client": {"id": "demo-bank", "name": "demo-bank"},
    "settlementEntity": {"id": "prov-delta", "name": "Delta Utilities"},
    "receiver": {"id": "unassigned", "name": "Unassigned"},
    "thirdPartyIdentifiers": [{"institutionId": "ppu-switch", "transactionIdentifier": "x"}],
    "meter": {"meterId": "0401000100"},
}


async def test_the_strict_simulator_refuses_the_body_we_used_to_send() -> None:
    config = SimulatorConfig(USER, PASSWORD)
    lookup_id = str(uuid.uuid4())
    async with simulator(config) as base, httpx.AsyncClient(base_url=base) as c:
        r = await c.post(
            f"/prepaidutility/v3/meterLookups/{lookup_id}", json={**OLD_BODY, "id": lookup_id}, auth=(USER, PASSWORD)
        )
    assert r.status_code == 400 and r.json()["errorType"] == "FORMAT_ERROR"
    fields = {d["field"] for d in r.json()["detailMessage"]}
    assert fields == {
        "/originator/institution/id",
        "/client/id",
        "/settlementEntity/id",
        "/receiver/id",
        "/thirdPartyIdentifiers/0/institutionId",
    }
    assert all(set(d) == {"messageProperty", "field", "error", "invalidValue"} for d in r.json()["detailMessage"])


def _demo_directory(provider: tuple[str, str, str], long_names: bool = False) -> Directory:
    pid, name, electrum_id = provider

    def pad(name: str) -> str:
        return name + "x" * (60 - len(name)) if long_names else name

    return Directory(
        ProviderConfig(pid, Party(electrum_id, pad(name)), "http://x", None, None, 1.0, 1),
        {i: Party(e, pad(n)) for i, n, e in demo_seed.INSTITUTIONS},
        {n: Party(e, pad(n)) for _, n, e in demo_seed.UTILITIES},
    )


@pytest.mark.parametrize("long_names", [False, True], ids=["demo names", "names past the limit"])
@pytest.mark.parametrize("provider", [*demo_seed.PROVIDERS, *[p[:3] for p in demo_seed.HTTP_PROVIDERS]])
def test_bodies_for_every_demo_provider_pass_electrums_constraints(
    provider: tuple[str, str, str], long_names: bool
) -> None:
    settings = Settings(PPU_SWITCH_INSTITUTION_ID=demo_seed.SWITCH_ELECTRUM_ID, PPU_SWITCH_INSTITUTION_NAME="S" * 40)
    for institution, _, _ in [*demo_seed.INSTITUTIONS, (None, "", "")]:
        for _, utility, _ in [*demo_seed.UTILITIES, ("", None, "")]:
            data = LookupRequestedData(
                lookup_id=uuid.uuid4(),
                round_id=uuid.uuid4(),
                meter_number="A" * 20,
                provider_id=provider[0],
                reason="rebroadcast",
                institution_id=institution,
                utility_name=utility,
                deadline=datetime.now(UTC) + timedelta(seconds=5),
            )
            body = request_body(
                LookupRequested.new(data, source="t", correlationid="c"),
                _demo_directory(provider, long_names),
                settings,
            )
            wire = body.model_dump(mode="json", by_alias=True, exclude_none=True)
            assert electrum.violations("MeterLookupRequest", wire) == [], wire
            assert len(wire["settlementEntity"]["name"]) == (40 if long_names else len(provider[1]))


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A private CA and a certificate for 127.0.0.1 it signed: (CA file, chain file, key file)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, chain, key = tmp_path / "ca.pem", tmp_path / "chain.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    yield str(ca_file), str(chain), str(key)


async def test_basic_auth_over_tls_with_a_private_ca(
    bridge_system: System, settings: Settings, db: asyncpg.Connection, tls_files: tuple[str, str, str]
) -> None:
    ca_file, chain, key = tls_files
    config = SimulatorConfig(USER, PASSWORD, supports=re.compile(".*"))
    async with simulator(config, tls=(chain, key)) as base:
        assert base.startswith("https://")
        async with bridge(settings, db, base, ca_file=None):  # the system's CAs do not know the private one
            await send_request(bridge_system, settings, lookup("0401000020", deadline_s=3))
            await eventually(lambda: committed_all(settings, GROUP), what="the bridge to give up at the deadline")
        assert config.calls == 0, "the TLS handshake failed, so nothing reached the provider"
        async with bridge(settings, db, base, ca_file=ca_file):
            await send_request(bridge_system, settings, lookup("0401000021"))
            answers = await read(settings, responses_topic(settings), 1)
    assert LookupResponded.model_validate_json(answers[0][0]).data.meter_number == "0401000021"
    assert config.calls == 1


async def test_a_provider_without_credentials(
    bridge_system: System, settings: Settings, db: asyncpg.Connection
) -> None:
    config = SimulatorConfig(None, None)
    async with simulator(config) as base, bridge(settings, db, base, credentials=None):
        await send_request(bridge_system, settings, lookup("0401000022"))
        answers = await read(settings, responses_topic(settings), 1)
    assert LookupResponded.model_validate_json(answers[0][0]).data.status == "supported"


async def test_providers_update_reaches_a_running_bridge(
    bridge_system: System, settings: Settings, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = SimulatorConfig(USER, PASSWORD), SimulatorConfig("other", "another-secret-456")
    monkeypatch.setenv("PPU_TEST_NEW_CREDENTIALS", "other:another-secret-456")
    reloads = _reloads()
    async with simulator(old) as old_base, simulator(new) as new_base, bridge(settings, db, old_base):
        await send_request(bridge_system, settings, lookup("0401000030"))
        await read(settings, responses_topic(settings), 1)
        done = await asyncio.to_thread(
            run_ppu,
            settings,
            "providers",
            "update",
            "p1",
            "--base-url",
            new_base,
            "--credentials-env",
            "PPU_TEST_NEW_CREDENTIALS",
            "--max-in-flight",
            "2",
        )
        assert done.returncode == 0, done.stderr
        assert "updated" in done.stdout
        await eventually(lambda: _reloaded(reloads + 1), what="the running bridge to re-read its settings")
        await send_request(bridge_system, settings, lookup("0401000031"))
        answers = await read(settings, responses_topic(settings), 2)
    assert [b["meter"]["meterId"] for _, b in old.received] == ["0401000030"]
    assert [b["meter"]["meterId"] for _, b in new.received] == ["0401000031"], "the new URL and credentials"
    assert {LookupResponded.model_validate_json(v).data.meter_number for v, _ in answers} == {
        "0401000030",
        "0401000031",
    }
    audit = await db.fetchrow("SELECT * FROM audit_log WHERE action = 'providers_update'")
    assert audit is not None
    assert audit["target"] == "p1" and audit["details"]["max_in_flight"] == 2
    assert "another-secret" not in str(audit["details"]), "only the variable's name is kept"


def test_registry_commands_refuse_bad_ids_in_one_line(settings: Settings) -> None:
    for args in (
        ["providers", "add", "p9", "--name", "P9", "--electrum-id", "prov-9"],
        ["providers", "add", "p9", "--name", "P9", "--electrum-id", "123456789012"],
        ["institutions", "add", "bank", "--name", "Bank", "--electrum-id", "bank"],
        ["providers", "update", "p9", "--electrum-id", "x1"],
    ):
        done = run_ppu(settings, *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "1-11 digits" in lines[0], done.stderr


async def test_registry_commands_store_electrum_ids(settings: Settings, db: asyncpg.Connection) -> None:
    done = await asyncio.to_thread(
        run_ppu, settings, "institutions", "add", "bank9", "--name", "Bank Nine", "--electrum-id", "77001"
    )
    assert done.returncode == 0, done.stderr
    clash = await asyncio.to_thread(
        run_ppu, settings, "institutions", "add", "bank10", "--name", "Bank Ten", "--electrum-id", "77001"
    )
    assert clash.returncode == 1 and "already belongs to bank9" in clash.stderr
    assert await db.fetchval("SELECT electrum_id FROM institutions WHERE institution_id = 'bank9'") == "77001"
    assert await db.fetchval("SELECT count(*) FROM institutions WHERE institution_id = 'bank10'") == 0
    unknown = await asyncio.to_thread(run_ppu, settings, "providers", "update", "nosuch", "--timeout-ms", "5")
    assert unknown.returncode == 1 and "unknown provider nosuch" in unknown.stderr


def test_the_bridge_refuses_to_start_without_the_switchs_id(settings: Settings) -> None:
    done = run_ppu(settings, "worker", "provider-bridge", "--provider", "p1", drop=("PPU_SWITCH_INSTITUTION_ID",))
    assert done.returncode == 1 and "PPU_SWITCH_INSTITUTION_ID" in done.stderr.strip().splitlines()[-1]


def _reloads() -> float:
    return REGISTRY.get_sample_value("ppu_bridge_settings_reloads_total", {"provider": "p1"}) or 0.0


async def _reloaded(at_least: float) -> bool:
    return _reloads() >= at_least
