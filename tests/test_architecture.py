"""The package shows its architecture: the ground below, one folder per wing, the face on top, and no circles.

Read from the source with `ast`, so imports made only for type annotations,
or inside a function, count like any other. The rules are docs/architecture.md's.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3s3

PACKAGE = Path(s3s3.__file__).parent
GROUND = {"config", "errors", "retry", "outcome", "logs", "names"}
FACE = {"cli", "services", "client", "api", "status", "doctor", "scripts", "data", "__main__", "__init__"}
WINGS = {"store", "copy", "state", "sync", "listen", "audit"}
# What each part may import besides itself and the ground.
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "store": set(),
    "copy": {"store"},
    "state": {"store"},
    "sync": {"store", "copy", "state"},
    "listen": {"store", "copy", "state"},
    "audit": {"store", "copy", "state", "sync"},
}


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the package, by dotted name (a package by its __init__'s)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


MODULES = dict(modules())


def imported(name: str, path: Path) -> set[str]:
    """The s3s3 modules `name` imports, anywhere in it; `from pkg import mod` is an import of pkg.mod."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: a relative import (s3s3 imports absolutely)"
            base = node.module or ""
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def part(module: str) -> str:
    """Which part of the architecture a module belongs to: the ground, a wing, or the face."""
    head = module.split(".")[1] if "." in module else "__init__"
    if head in WINGS:
        return head
    return "ground" if head in GROUND else "face"


def test_the_ground_and_every_wing_import_only_downward() -> None:
    wrong = [
        f"{module} ({part(module)}) imports {other} ({part(other)})"
        for module, others in GRAPH.items()
        for other in sorted(others)
        if part(module) != "face"
        and part(other) not in {part(module), "ground", *ALLOWED[part(module)]}
    ]
    assert wrong == []


def test_the_listener_and_the_bucket_sync_never_import_each_other() -> None:
    crossing = [(m, o) for m, others in GRAPH.items() for o in others if {part(m), part(o)} == {"sync", "listen"}]
    assert crossing == []


def test_only_the_face_imports_the_audit() -> None:
    importers = {m for m, others in GRAPH.items() if any(part(o) == "audit" for o in others)}
    assert {part(m) for m in importers} <= {"audit", "face"}, sorted(importers)


def circle_through(start: str) -> list[str] | None:
    """A chain of imports from `start` back to itself, if there is one."""
    seen: set[str] = set()
    path = [start]

    def walk(node: str) -> list[str] | None:
        for other in sorted(GRAPH[node]):
            if other == start:
                return [*path, start]
            if other not in seen:
                seen.add(other)
                path.append(other)
                if (found := walk(other)) is not None:
                    return found
                path.pop()
        return None

    return walk(start)


def test_no_module_imports_itself_through_others() -> None:
    circles = {name: circle for name in GRAPH if (circle := circle_through(name)) is not None}
    assert circles == {}


def test_the_root_holds_at_most_fourteen_modules_and_the_wings_are_packages() -> None:
    root = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert len(root) <= 14, sorted(root)
    assert packages >= WINGS
    assert {Path(name).stem for name in root} <= GROUND | FACE


def test_every_module_belongs_to_a_known_part() -> None:
    heads = {m.split(".")[1] for m in MODULES if "." in m}
    assert heads <= GROUND | FACE | WINGS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_holds_every_package_and_each_of_its_modules_imports(tmp_path: Path) -> None:
    # Given a wheel built from this tree
    root = PACKAGE.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(root)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = tmp_path.glob("s3s3-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # Then it holds every module and data file of the source tree
    expected = {str(p.relative_to(root)) for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert expected - set(names) == set()
    # And every module imports from it alone (the dependencies from this environment, not the source tree)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    purelib = sysconfig.get_paths()["purelib"]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(unpacked)!r}, {purelib!r}]\n" + script,
         *sorted(m for m in MODULES if m != "s3s3.__main__")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
