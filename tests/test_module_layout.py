"""The core's module layout (docs/design.md rule 9): no import cycles, no function-local imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

# The conversion core (docs/design.md's module table); other modules keep their own rules.
CORE_MODULES = [
    "_adapt", "_api", "_batches", "_dtypes", "_errors", "_kinds", "_memory", "_options", "_plan",
    "_planner", "_python", "_to_numpy", "_to_torch", "_transfer", "_transfer_plan", "_tree",
]  # fmt: skip
CORE = [Path(__file__).parent.parent / "src" / "tensorbridge" / f"{m}.py" for m in CORE_MODULES]


def _relative_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


def test_core_has_no_import_cycle():
    """The core modules import one another along a tree, never in a cycle."""
    graph = {p.stem: _relative_imports(p) & {q.stem for q in CORE} for p in CORE}
    done: set[str] = set()

    def visit(module: str, stack: tuple[str, ...]) -> None:
        assert module not in stack, " → ".join((*stack, module))
        if module in done:
            return
        for dep in graph[module]:
            visit(dep, (*stack, module))
        done.add(module)

    for module in graph:
        visit(module, ())


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_imports_at_the_top(path):
    """A core module imports everything at module level (no import hidden in a function)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            assert not inner, f"{path.name}: {node.name} imports inside the function"
