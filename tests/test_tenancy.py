"""Tenant isolation, as a property: institutions with overlapping meters, providers and utilities drive attempts,
answers and commands; then, for every console page and every API endpoint (walked from the OpenAPI document, so
a new endpoint is covered without a new test) and every institution, nothing that belongs only to another
institution appears; and every write by one institution leaves the others' views and routing unchanged."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from domain.routing import decide
from kernel.passwords import hash_password
from kernel.settings import Settings
from tests.console_server import login, serving
from tests.harness import PASSWORD, System, eventually, running
from workers.outbox_relay import unpublished
from workers.routing_context import load_context

SEED = 20261128
NAMES = ["aardvark", "bison", "cougar"]
SHARED_PROVIDERS = ["shared-one", "shared-two"]
METERS = [f"0601{i:06d}" for i in range(6)]
UTILITIES = [("util-north", "North Utility"), ("util-south", "South Utility")]
PAGES = ["/ppu/meters?q=0601", "/ppu/providers", "/ppu/routing", "/ppu/audit"]


@dataclass
class Institution:
    name: str
    institution_id: str = ""
    electrum_id: str = ""
    provider: str = ""  # enabled for this institution only
    provider_name: str = ""
    provider_electrum_id: str = ""
    users: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = NAMES.index(self.name) + 1
        self.institution_id = f"inst-{self.name}"
        self.electrum_id = f"5{n}00001"
        self.provider = f"only-{self.name}"
        self.provider_name = f"{self.name.title()} Exclusive Vending"
        self.provider_electrum_id = f"6{n}00001"
        self.users = [f"admin-{self.name}", f"oper-{self.name}"]

    @property
    def providers(self) -> list[str]:
        return [*SHARED_PROVIDERS, self.provider]

    def own_tokens(self) -> list[str]:
        """What no other institution may ever see."""
        return [
            self.institution_id,
            self.electrum_id,
            self.provider,
            self.provider_name,
            self.provider_electrum_id,
            *self.users,
            *self.attempts,
        ]


INSTITUTIONS = [Institution(n) for n in NAMES]


async def _seed(db: asyncpg.Connection) -> None:
    pw = hash_password(PASSWORD)
    for i in INSTITUTIONS:
        await db.execute(
            "INSERT INTO institutions VALUES ($1, $2, $3)", i.institution_id, i.name.title(), i.electrum_id
        )
        await db.execute(
            "INSERT INTO providers (provider_id, name, electrum_id) VALUES ($1, $2, $3)",
            i.provider,
            i.provider_name,
            i.provider_electrum_id,
        )
        await db.executemany(
            "INSERT INTO console_users (institution_id, username, password_hash, role) VALUES ($1, $2, $3, $4)",
            [(i.institution_id, i.users[0], pw, "admin"), (i.institution_id, i.users[1], pw, "operator")],
        )
    await db.executemany(
        "INSERT INTO providers (provider_id, name, electrum_id) VALUES ($1, $2, $3)",
        [(p, f"Shared {p}", f"700000{n}") for n, p in enumerate(SHARED_PROVIDERS)],
    )
    await db.executemany(
        "INSERT INTO institution_providers VALUES ($1, $2)",
        [(i.institution_id, p) for i in INSTITUTIONS for p in i.providers],
    )
    await db.executemany("INSERT INTO utilities (utility_id, name) VALUES ($1, $2)", UTILITIES)


def _answer(meter: str, provider: str) -> str:
    """Which providers support which meter: fixed by the seed, so every run drives the same story."""
    return "supported" if random.Random(f"{SEED}{meter}{provider}").random() < 0.5 else "not_supported"


@pytest.fixture
async def story(settings: Settings, topics: list[str], db: asyncpg.Connection) -> AsyncIterator[System]:
    await _seed(db)
    for i in INSTITUTIONS:
        i.attempts.clear()  # this test's story only
    all_providers = [*SHARED_PROVIDERS, *(i.provider for i in INSTITUTIONS)]
    from infra.topic_admin import admin_client, apply

    assert settings.kafka_bootstrap_servers is not None
    async with admin_client(settings.kafka_bootstrap_servers) as admin:
        await apply(admin, settings.topic_prefix, all_providers)
    rng = random.Random(SEED)
    long_rounds = settings.model_copy(update={"round_deadline_seconds": 600.0})
    async with running(long_rounds) as s:
        # First sight of every meter, by a random institution: every provider is asked and answers.
        for meter in METERS:
            who = rng.choice(INSTITUTIONS)
            who.attempts.append(str((await s.attempt(meter, institution=who.institution_id)).data.attempt_id))
        for p in all_providers:
            for request in await s.requests(p, len(METERS)):
                await s.respond(request, _answer(request.data.meter_number, p), utility=rng.choice(UTILITIES)[1])
        # Every institution buys for overlapping meters: decided at once, among its own providers.
        for i in INSTITUTIONS:
            for meter in rng.sample(METERS, 4):
                i.attempts.append(str((await s.attempt(meter, institution=i.institution_id)).data.attempt_id))
        total = sum(len(i.attempts) for i in INSTITUTIONS)
        await eventually(lambda: db.fetchval("SELECT count(*) = $1 FROM routing_decisions", total), what="decisions")
        yield s


async def _client(base: str, i: Institution, user: int = 0) -> tuple[httpx.AsyncClient, str]:
    c = httpx.AsyncClient(base_url=base, timeout=30)
    r = await login(c, i.users[user], institution=i.institution_id)
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


async def _get_paths(c: httpx.AsyncClient) -> list[str]:
    """Every GET endpoint of the API, its path parameters filled with every value they can take here."""
    spec = (await c.get("/api/v1/openapi.json")).json()
    fill = {"meter_number": METERS, "utility_id": [u for u, _ in UTILITIES]}
    paths = []
    for template, ops in spec["paths"].items():
        if "get" not in ops:
            continue
        names = re.findall(r"{(\w+)}", template)
        assert all(n in fill for n in names), f"add values for {names} of {template} to this test"
        variants = [template]
        for n in names:
            variants = [v.replace("{" + n + "}", value) for v in variants for value in fill[n]]
        query = "?q=0601" if template.endswith("/meters") else ""
        paths += [v + query for v in variants]
    return paths


async def _views(c: httpx.AsyncClient) -> dict[str, str]:
    views = {}
    for path in await _get_paths(c):
        r = await c.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        views[path] = r.text
    return views


async def _routing(db: asyncpg.Connection, institution_id: str) -> list[Any]:
    """What routing would decide for this institution on every meter (a fixed attempt id), and whether its next
    attempt would rebroadcast: read through the loader the lookup worker uses."""
    ctx = await load_context(db, METERS, [institution_id])
    probe = uuid.UUID(int=SEED)
    return [
        (
            m,
            institution_id in ctx.meters[m].marked_by,
            decide(
                probe,
                ctx.candidates(ctx.meters[m], institution_id),
                ctx.prefs(ctx.meters[m], institution_id),
                ctx.meters[m].preferred.get(institution_id),
            ),
        )
        for m in METERS
    ]


def _filled(template: str, writer: Institution) -> list[str]:
    """Every meter, every utility, every one of the writer's own providers."""
    fill = {"meter_number": METERS, "utility_id": [u for u, _ in UTILITIES], "provider_id": writer.providers}
    paths = [template]
    for name in re.findall(r"{(\w+)}", template):
        paths = [p.replace("{" + name + "}", value) for p in paths for value in fill[name]]
    return paths


def _leaks(text: str, viewer: Institution) -> list[str]:
    return [t for other in INSTITUTIONS if other is not viewer for t in other.own_tokens() if t in text]


async def test_no_institution_sees_anything_of_another(
    story: System, settings: Settings, db: asyncpg.Connection
) -> None:
    async with serving(settings) as (base, _):
        # Each institution's operator confirms support on two meters first, through the API.
        for n, i in enumerate(INSTITUTIONS):
            c, token = await _client(base, i, user=1)
            try:
                for meter in METERS[n : n + 2]:
                    r = await c.post(f"/api/v1/meters/{meter}/confirm-support", headers={"X-CSRF-Token": token})
                    assert r.status_code == 202 and r.json()["outcome"] == "marked", (
                        r.text,
                        await db.fetch("SELECT * FROM audit_log"),
                        [m[0] for m in await unpublished(db) if "command" in m[0]],
                    )
            finally:
                await c.aclose()
        for viewer in INSTITUTIONS:
            c, _ = await _client(base, viewer)
            try:
                views = await _views(c)
                for path in [*PAGES, *(f"/ppu/meters/{m}" for m in METERS)]:
                    r = await c.get(path)
                    assert r.status_code == 200, path
                    views[path] = r.text
            finally:
                await c.aclose()
            assert len(views) >= len(PAGES) + 2 * len(METERS)
            for path, text in views.items():
                assert _leaks(text, viewer) == [], f"{viewer.name} sees another institution's data at {path}"
            own = "".join(views.values())
            assert viewer.provider_name in own and any(a in own for a in viewer.attempts), "its own data is there"


WRITES: dict[str, Any] = {
    # path template → (method, body) as the writing institution sends it; {own} is one of its own providers.
    "/api/v1/meters/{meter_number}/confirm-support": ("post", None),
    "/api/v1/meters/{meter_number}/preference": ("put", {"provider_id": "{own}"}),
    "/api/v1/utilities/{utility_id}/preferences/{provider_id}": ("put", {"kind": "ranked", "rank": 1}),
    "/api/v1/confirm-support/bulk": ("post", {"meter_numbers": METERS}),
}


async def test_every_write_by_one_institution_leaves_the_others_unchanged(
    story: System, settings: Settings, db: asyncpg.Connection
) -> None:
    async with serving(settings) as (base, _):
        clients = {i.name: await _client(base, i) for i in INSTITUTIONS}
        try:
            spec = (await clients[NAMES[0]][0].get("/api/v1/openapi.json")).json()
            writes = [
                (t, m) for t, ops in spec["paths"].items() for m in ops if m in ("post", "put", "delete", "patch")
            ]
            writes = [(t, m) for t, m in writes if t != "/api/v1/session"]  # one's own login and logout
            missing = [t for t, _ in writes if t not in WRITES]
            assert not missing, f"add an example write for {missing} to WRITES"
            for writer in INSTITUTIONS:
                others = [i for i in INSTITUTIONS if i is not writer]
                before = {
                    o.name: (await _views(clients[o.name][0]), await _routing(db, o.institution_id)) for o in others
                }
                c, token = clients[writer.name]
                for template, (method, body) in WRITES.items():
                    for path in _filled(template, writer):
                        sent = {k: (writer.provider if v == "{own}" else v) for k, v in (body or {}).items()}
                        r = await c.request(method, path, headers={"X-CSRF-Token": token}, json=sent if body else None)
                        assert r.status_code < 300, (writer.name, path, r.status_code, r.text)
                # And what it may not do: name another institution's provider.
                stranger = others[0].provider
                for path, body in (
                    (f"/api/v1/meters/{METERS[0]}/preference", {"provider_id": stranger}),
                    (f"/api/v1/utilities/{UTILITIES[1][0]}/preferences/{stranger}", {"kind": "excluded"}),
                ):
                    r = await c.put(path, headers={"X-CSRF-Token": token}, json=body)
                    assert r.status_code == 403, (path, r.status_code)
                for o in others:
                    views, routing = before[o.name]
                    assert await _views(clients[o.name][0]) == views, f"{writer.name}'s writes changed {o.name}'s view"
                    assert await _routing(db, o.institution_id) == routing, f"... and {o.name}'s routing"
                mine = await _routing(db, writer.institution_id)
                assert next(marked for m, marked, _ in mine if m == METERS[-1]), "the writer's own write took effect"
        finally:
            for c, _ in clients.values():
                await c.aclose()
