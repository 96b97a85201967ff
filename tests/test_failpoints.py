"""Failpoints kill the process exactly at the N-th pass, and nowhere when unset."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from pydantic import ValidationError

from kernel.settings import Settings
from workers.failpoints import Failpoints

PASS_TWICE = """
from workers.failpoints import Failpoints
points = Failpoints({spec!r})
for n in (1, 2, 3):
    points.hit("after_publish")
    print(n, flush=True)
"""


def passes(spec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PASS_TWICE.format(spec=spec)], capture_output=True, text=True)


def test_the_process_dies_at_the_nth_pass() -> None:
    died = passes("after_publish:2")
    assert died.returncode == -signal.SIGKILL and died.stdout.split() == ["1"]


def test_unset_or_other_places_do_nothing() -> None:
    for spec in ("", "after_db_commit:1"):
        lived = passes(spec)
        assert lived.returncode == 0 and lived.stdout.split() == ["1", "2", "3"], spec


@pytest.mark.parametrize("spec", ["after_publish", "after_publish:0", "nowhere:1", "after_publish:x"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad failpoint"):
        Failpoints(spec)
    with pytest.raises(ValidationError):
        Settings(PPU_FAILPOINTS=spec)
