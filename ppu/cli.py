"""`ppu`: the one command-line entry point. Every failure is one readable line and a non-zero exit code."""

from __future__ import annotations

import os
import sys

import click
from aiokafka.errors import KafkaError

from ppu.cli_infra import contracts, db, demo, stack, topics
from ppu.errors import PpuError
from ppu.logs import configure_for_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """PPU meter lookup and rebroadcasting."""


for group in (stack, db, topics, contracts, demo):
    cli.add_command(group)


def _register_late_commands() -> None:
    # Imported here so that `ppu --help` and the infra commands do not pay for the worker modules.
    from ppu.cli_ops import register

    register(cli)


def main(argv: list[str] | None = None) -> None:
    configure_for_command()  # long-running commands switch to JSON logs themselves
    _register_late_commands()
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
