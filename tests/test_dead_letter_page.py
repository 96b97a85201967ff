"""The console's dead-letter page, for the deployment's admins only: counted, inspected (headers, text, hex),
replayed after the fix — applied once however often it is replayed — and audited; another institution's admin
sees no link and gets 403."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from kernel.passwords import hash_password
from kernel.settings import Settings
from tests.conftest import run_ppu
from tests.console_server import login, serving
from tests.harness import PASSWORD, eventually, running, seed_reference


async def test_deployment_admin_replays_a_dead_letter_once(
    settings: Settings, topics: list[str], db: asyncpg.Connection
) -> None:
    await seed_reference(db)
    await db.execute("INSERT INTO institutions (institution_id, name) VALUES ('ops', 'Switch operations')")
    await db.execute(
        "INSERT INTO console_users (institution_id, username, password_hash, role) VALUES ('ops', 'root', $1, 'admin')",
        hash_password(PASSWORD),
    )
    done = await asyncio.to_thread(run_ppu, settings, "institutions", "operator", "ops")
    assert done.returncode == 0, done.stderr
    async with running(settings.model_copy(update={"max_message_bytes": 200})) as system:
        attempt = await system.attempt("0401000066")  # larger than 200 bytes: dead-lettered at decode
        await eventually(  # the record is behind the lookup worker: dead-lettered, not pending
            lambda: db.fetchval(
                "SELECT sum(greatest(next_offset, 0)) = 1 FROM consumer_offsets WHERE group_id = $1",
                settings.topic_prefix + "ppu-lookup-worker",
            ),
            what="the oversized attempt dead-lettered",
        )
    async with running(settings), serving(settings) as (base, _):  # the fix: the default size limit
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            await login(c, "ada")  # i1's admin: dead letters are not i1's to see
            assert "Dead letters" not in (await c.get("/ppu/meters")).text
            assert (await c.get("/ppu/dead-letters")).status_code == 403
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            token = (await login(c, "root", institution="ops")).json()["csrf_token"]
            assert 'href="/ppu/dead-letters"' in (await c.get("/ppu/meters")).text

            async def listed() -> str | None:
                page = (await c.get("/ppu/dead-letters", params={"stage": "decode"})).text
                return page if "decode/MessageTooLarge" in page else None

            page = await eventually(listed, what="the dead letter listed")
            counts = page.split('id="dlq-counts"', 1)[1].split("</table>", 1)[0]
            assert "purchase-attempts.dlq" in counts and "decode/MessageTooLarge</td><td>1</td>" in counts
            ref = page.split('data-ref="', 1)[1].split('"', 1)[0]
            shown = (await c.get(f"/ppu/dead-letters/{ref}")).text
            assert "MessageTooLarge" in shown and str(attempt.data.attempt_id) in shown
            assert '<dd id="dlq-replayable">yes</dd>' in shown
            hex_part = shown.split('id="dlq-hex">', 1)[1].split("</pre>", 1)[0]
            assert hex_part.startswith("00000000  7b 22 73 70")  # '{"sp', as hex
            for _ in range(2):  # replaying twice changes nothing: the inbox knows the message id
                r = await c.post("/ppu/dead-letters/replay", data={"csrf_token": token, "refs": [ref]})
                assert r.status_code == 200 and f"<code>{ref}</code>: replayed to" in r.text
            r = await c.post("/ppu/dead-letters/replay", data={"csrf_token": "forged", "refs": [ref]})
            assert r.status_code == 403
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) FROM purchase_attempts WHERE attempt_id = $1", attempt.data.attempt_id
            ),
            what="the replayed attempt applied",
        )
    assert await db.fetchval("SELECT count(*) FROM purchase_attempts") == 1
    assert await db.fetchval("SELECT count(*) FROM lookup_rounds") == 1, "one round, not one per replay"
    audit = await db.fetch("SELECT actor, institution_id, outcome FROM audit_log WHERE action = 'dlq_replay'")
    assert [tuple(a) for a in audit] == [("root", "ops", "ok")] * 2
