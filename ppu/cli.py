"""`ppu`: the one command-line entry point. Every failure is one readable line and a non-zero exit code."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys

import click
import uvloop
from aiokafka.errors import KafkaError

from kernel.errors import PpuError
from kernel.logs import configure_for_command
from ppu.cli_infra import contracts, db, demo, stack, topics
from ppu.run_all import demo_traffic

# Commands whose modules load only when they run (click's documented lazy-group pattern): a worker does not import
# the console, and none imports matplotlib (the bench's report) or the fault scenarios.
LAZY = {
    "worker": "ppu.cli_ops:worker",
    "send": "ppu.cli_send:send",
    "meter": "ppu.cli_send:meter",
    "run": "ppu.run_all:run",
    "console": "ppu.cli_console:console",
    "users": "ppu.cli_console:users",
    "provider-sim": "ppu.cli_simulators:provider_sim",
    "providers": "ppu.cli_providers:providers",
    "institutions": "ppu.cli_institutions:institutions",
    "utilities": "ppu.cli_institutions:utilities",
    "dlq": "ppu.cli_dlq:dlq",
    "bench": "bench.run:bench",
    "soak": "bench.soak_report:soak",
    "faults": "faults.run:faults",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY:
            return super().get_command(ctx, cmd_name)
        module, attr = LAZY[cmd_name].split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """PPU meter lookup and rebroadcasting."""


for group in (stack, db, topics, contracts, demo):
    cli.add_command(group)
demo.add_command(demo_traffic)


def main(argv: list[str] | None = None) -> None:
    # The workers spend a fifth of their CPU in the event loop itself (socket writes, selector, callbacks:
    # bench/profiles); uvloop runs the same asyncio API on libuv for less. Every command, bench peers included.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    configure_for_command()  # long-running commands switch to JSON logs themselves
    try:
        code = cli.main(args=argv, prog_name="ppu", standalone_mode=False)
        if isinstance(code, int):  # outside standalone mode click returns Exit's code instead of raising
            sys.exit(code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        print(f"ppu: {e.format_message()}", file=sys.stderr)
        sys.exit(2)
    except PpuError as e:
        print(f"ppu: {e}", file=sys.stderr)
        sys.exit(1)
    except KafkaError as e:
        print(f"ppu: Kafka error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        print(f"ppu: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        if os.environ.get("PPU_DEBUG"):
            raise
        print(f"ppu: unexpected {type(e).__name__}: {e} (PPU_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
