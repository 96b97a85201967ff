"""Waiting for an operator command's result event (the console's Confirm support, `ppu send confirm-support`):
one consumer of the command-results topic, without a group (every partition is its own), reading from its end;
each waiter registers the command id before the command is sent, so a fast result is never missed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from schemas.commands import CommandResult, CommandResultData

log = structlog.get_logger()


class CommandResults:
    def __init__(self, bootstrap: str, topic_name: str) -> None:
        self.topic_name = topic_name
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="latest"
        )
        self.waiting: dict[uuid.UUID, asyncio.Future[CommandResultData]] = {}
        self.pinned = asyncio.Event()  # every partition's position resolved: later results will be read
        self.task: asyncio.Task[None] | None = None

    async def start(self, within: float = 10.0) -> None:
        """Returns once every partition's end is pinned (or after `within` seconds, when the topic is not there
        yet: results are read once it is)."""
        await self.consumer.start()
        self.consumer.subscribe([self.topic_name])
        self.task = asyncio.ensure_future(self._read())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pinned.wait(), within)
        if not self.pinned.is_set():
            log.warning("command results topic not found; results will be read once it is", topic=self.topic_name)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()

    def expect(self, command_id: uuid.UUID) -> asyncio.Future[CommandResultData]:
        future: asyncio.Future[CommandResultData] = asyncio.get_running_loop().create_future()
        self.waiting[command_id] = future
        return future

    async def wait(
        self, future: asyncio.Future[CommandResultData], command_id: uuid.UUID, seconds: float
    ) -> CommandResultData | None:
        """The result, or None when it did not come within `seconds`."""
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            return None
        finally:
            self.waiting.pop(command_id, None)

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            if not self.pinned.is_set() and self.consumer.assignment():
                for tp in self.consumer.assignment():
                    await self.consumer.position(tp)  # "latest" resolved now: the end at this moment
                self.pinned.set()
            for record in (r for rs in batch.values() for r in rs):
                try:
                    result = CommandResult.model_validate_json(record.value or b"").data
                except ValidationError:
                    continue  # not ours to judge: the results topic's consumers dead-letter nothing
                future = self.waiting.get(result.command_id)
                if future is not None and not future.done():
                    future.set_result(result)
