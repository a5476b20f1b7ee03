"""No import loops between crystalbench's modules (issue #20).

import-linter's `acyclic_siblings` contract compares packages; this test looks at single modules, and counts
the imports import-linter's static graph weighs the same as any other: lazy ones inside functions too (a loop
closed at call time is still a loop a reader has to untangle). Only imports under `if TYPE_CHECKING:` are
left out, because they never run. A found loop is printed module by module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import crystalbench

ROOT = Path(crystalbench.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The crystalbench modules `path` imports (a `from package import module` counts as the module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    out.add(sub)
                elif target in modules:
                    out.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py") if "templates" not in p.relative_to(ROOT).parts}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None (iterative depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert len(graph) > 100
    assert "crystalbench.contract.record" in graph["crystalbench.runtime.stages"]
    # lazy imports count: the built-in executor plugin imports its executors only when one is asked for
    assert "crystalbench.runtime.executors.local" in graph["crystalbench.runtime.executors.builtin"]


def test_the_finder_reports_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_loops_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def test_the_contract_and_the_runtime_never_import_the_package_init():
    graph = import_graph()
    back = sorted(m for m, deps in graph.items()
                  if m.startswith(("crystalbench.contract", "crystalbench.runtime")) and "crystalbench" in deps)
    assert not back, back
