"""Imports show the architecture: no import circle among project modules, each one imports on its own.

The module-level import graph is read from the sources with `ast` (imports inside functions and under
`if TYPE_CHECKING:` are not edges); a cycle in it fails with the cycle spelled out. Then every project
module is imported first, in a fresh interpreter, so an import order that only works from one entry point
shows up too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Where each installed package's sources live (pyproject.toml's package-dir mapping).
PACKAGE_DIRS = {
    "pocketgan": REPO / "pocketgan",
    "pocketgan.distill": REPO / "distill",
    "pocketgan.export": REPO / "export",
    "pocketgan.runtime": REPO / "runtime",
    "pocketgan.evals": REPO / "evals",
}


def project_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project."""
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1:] == ("__main__",) or any(p.startswith(".") for p in parts):
                continue
            modules[".".join((package, *parts))] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (a parent package that Python initialises
    on the way is not counted: `pocketgan.export.base` importing `pocketgan.errors` is one edge)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                    base = base.rstrip(".")
                # `from pkg import submodule` imports the submodule; `from module import name`, the module.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_the_registration_lists():
    graph = import_graph(project_modules())
    assert "pocketgan.runtime.base" in graph["pocketgan.runtime.ort"]
    assert "pocketgan.runtime.backends" in graph["pocketgan.runtime"]
    assert not {m for m in graph["pocketgan.runtime.base"] if m.startswith("pocketgan.runtime.")} - {
        "pocketgan.runtime.base"
    }, "runtime.base must not import the backends"


def test_no_import_circle_among_project_modules():
    cycle = find_cycle(import_graph(project_modules()))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module is imported with no project module loaded before it (third-party ones stay cached)."""
    code = textwrap.dedent(
        """
        import importlib, sys, traceback
        names = sys.argv[1:]
        failures = []
        for name in names:
            for loaded in [m for m in sys.modules if m == "pocketgan" or m.startswith("pocketgan.")]:
                del sys.modules[loaded]
            try:
                importlib.import_module(name)
            except Exception:
                failures.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
        print("\\n".join(failures))
        sys.exit(1 if failures else 0)
        """
    )
    names = sorted(project_modules())
    result = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
