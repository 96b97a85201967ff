"""The import direction: a module imports its own package or a package of a lower layer, never one above it.

The layers, bottom first (README "Architecture"). The domain also imports no I/O library: its rules run on
loaded rows, so its unit tests need no broker and no database.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: list[str | tuple[str, ...]] = [
    "kernel",  # settings, errors, topic names, logs, connections
    "schemas",  # the message contracts
    "domain",  # the rules, pure
    "db",  # migrations and SQL repositories
    "infra",  # local launchers and topic administration
    "messaging",  # what every consumer shares: decoding, dead letters, retries, metrics
    ("workers", "providers"),  # peers that never import each other: the flows' workers; the HTTP bridge
    "operations",  # tenancy and views shared by the console and the CLI
    "console",  # the web console
    "bench",
    "faults",
    "ppu",  # the CLI and the composition root
]
IO_LIBRARIES = {"asyncpg", "aiokafka", "httpx", "kernel.dbconn", "kernel.connections", "socket", "subprocess"}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


RANK = {name: i for i, layer in enumerate(LAYERS) for name in ((layer,) if isinstance(layer, str) else layer)}


def upward_imports(package: str, root: Path = ROOT) -> list[str]:
    """Imports of a package above this one's layer, or of a peer in the same layer."""
    wrong = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imports(path):
            top = module.split(".")[0]
            if top in RANK and top != package and RANK[top] >= RANK[package]:
                where = "is above" if RANK[top] > RANK[package] else "is a peer of"
                wrong.append(f"{path.relative_to(root)}:{line} imports {module} ({top} {where} {package})")
    return wrong


@pytest.mark.parametrize("package", sorted(RANK))
def test_no_module_imports_upward(package: str) -> None:
    assert upward_imports(package) == []


def test_every_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(RANK)


def test_the_domain_does_no_io() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "domain").rglob("*.py"))
        for line, module in imports(path)
        if any(module == lib or module.startswith(lib + ".") for lib in IO_LIBRARIES)
    ]
    assert wrong == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a kernel module that imports the CLI is reported."""
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "bad.py").write_text("def f():\n    from ppu.cli import main\n")
    assert upward_imports("kernel", tmp_path) == ["kernel/bad.py:2 imports ppu.cli (ppu is above kernel)"]


def test_the_check_sees_a_peer_import(tmp_path: Path) -> None:
    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "bad.py").write_text("from workers.runtime import ConsumerRuntime\n")
    assert upward_imports("providers", tmp_path) == [
        "providers/bad.py:1 imports workers.runtime (workers is a peer of providers)"
    ]
