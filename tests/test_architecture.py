"""The house rules of docs/architecture.md, checked: imports flow one way (doors ->
services -> models -> db), no area imports a door, no two areas import each other
(directly or around a circle), and every module stays small enough to read in one
sitting."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "doorvoer"
DOORS = frozenset({"web", "sftp", "cli"})  # where requests come in
# Where the node is put together: they start doors, and nothing imports them but a door.
ROOTS = frozenset({"app", "demo", "__main__"})
MAX_LINES = 400


def _modules() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if "migrations" not in p.parts]


def _area(module: str) -> str | None:
    """The area (first name under `doorvoer`) of a dotted module name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "doorvoer" else None


def _area_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports at run time: at the top and inside functions alike
    (a lazy import is a dependency all the same); imports for type checking only are
    not, since they never run."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    """Area -> the other areas it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _modules():
        here = _area_of(path)
        for module in _imports(path):
            there = _area(module)
            if (there is not None and there != here and (SRC / there).exists()) or \
                    (there is not None and there != here and (SRC / f"{there}.py").exists()):
                edges[here].add(there)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports between areas, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_no_two_areas_import_each_other() -> None:
    assert _cycle(_graph()) is None, "a circle of imports between areas"


def test_no_area_imports_a_door() -> None:
    wrong = sorted(f"{area} imports {door}" for area, targets in _graph().items()
                   for door in targets & DOORS if area not in DOORS | ROOTS)
    assert wrong == []


def test_no_door_imports_another_door() -> None:
    wrong = sorted(f"{door} imports {other}" for door, targets in _graph().items()
                   if door in DOORS for other in targets & DOORS)
    assert wrong == []


def test_nothing_imports_where_the_node_is_put_together() -> None:
    wrong = sorted(f"{area} imports {root}" for area, targets in _graph().items()
                   for root in targets & ROOTS if area not in DOORS | ROOTS)
    assert wrong == []


def test_every_module_is_short_enough_to_read_in_one_sitting() -> None:
    long = {str(p.relative_to(SRC)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_area_keeps_its_exceptions_in_errors_py() -> None:
    """An exception class is declared in an `errors.py` (or is a module's private
    one), so each door can map every area's errors in one place."""
    elsewhere = []
    for path in _modules():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    isinstance(b, ast.Name) and (b.id.endswith(("Error", "Exception"))
                                                 or b.id in {"Denied", "UserError"})
                    for b in node.bases):
                elsewhere.append(f"{path.relative_to(SRC)}: {node.name}")
    assert elsewhere == []


@pytest.mark.parametrize("case", ["cycle", "door", "long"])
def test_the_checks_themselves_catch_what_they_look_for(case: str, tmp_path: Path) -> None:
    """The rules above would fail on a breach (mutation check of the checker)."""
    if case == "cycle":
        assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
        assert _cycle({"a": {"b"}, "b": set()}) is None
    elif case == "door":
        module = tmp_path / "m.py"
        module.write_text("from typing import TYPE_CHECKING\nimport doorvoer.web.app\n"
                          "if TYPE_CHECKING:\n    from doorvoer.sftp import server\n"
                          "def f():\n    from doorvoer.cli import app\n")
        found = {_area(m) for m in _imports(module)}
        assert found >= {"web", "cli"} and "sftp" not in found
    else:
        assert MAX_LINES == 400
