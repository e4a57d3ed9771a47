"""The engine's shape, checked from the source: layers that import only downwards, no import cycle
(lazy imports inside functions included), each method in its own package, no module far over 400
lines, and the packages pyproject installs matching the tree."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"agentrt": ROOT / "agentrt", "agentrt.tools": ROOT / "tools", "agentrt.graphs": ROOT / "graphs"}

# Lowest first. A module may import its own layer and the ones below, never one above. Every
# command-line module (``*.cli``) sits with the commands, whatever package it is in.
LAYERS = [
    ("foundation", ["agentrt.errors", "agentrt.paths", "agentrt.jsonl", "agentrt.loading", "agentrt.sqlite_health",
                    "agentrt.trajectory", "agentrt.training", "agentrt.console", "agentrt.processes", "agentrt.once",
                    "agentrt.store_schema"]),
    ("models", ["agentrt.tool", "agentrt.models"]),
    ("runtime", ["agentrt.tool_runner", "agentrt.agent", "agentrt.runner", "agentrt.trajectory_store",
                 "agentrt.manifest", "agentrt.checkpoints"]),
    ("shared subsystems", ["agentrt.retrieval", "agentrt.critics", "agentrt.qa"]),
    ("methods", ["agentrt.sim_rag", "agentrt.cr_planner", "agentrt.rft"]),
    ("server", ["agentrt.server"]),
    ("commands", ["agentrt.bench", "agentrt.cli", "agentrt.__main__"]),
    ("tools and graphs (never imported by the engine)", ["agentrt.tools", "agentrt.graphs"]),
]
METHODS = ["agentrt.sim_rag", "agentrt.cr_planner", "agentrt.rft"]
MAX_LINES = 420  # "about 400"


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for file in folder.rglob("*.py"):
            parts = [p for p in file.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = file
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for name, file in mods.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        named: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):  # lazy imports too
            if isinstance(node, ast.Import):
                named |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                named |= {module} | {f"{module}.{a.name}" for a in node.names}
        edges = set()
        for target in named:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def layer_of(module: str) -> int | None:
    if module == "agentrt":  # the public surface: it names everything, lazily
        return None
    if module.endswith(".cli"):
        return next(i for i, (name, _) in enumerate(LAYERS) if name == "commands")
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def method_of(module: str) -> str | None:
    return next((m for m in METHODS if module == m or module.startswith(m + ".")), None)


def test_imports_go_only_downwards_and_methods_stay_apart() -> None:
    problems = []
    for module, deps in import_graph().items():
        mine = layer_of(module)
        if mine is None:
            continue
        for dep in deps:
            theirs = layer_of(dep)
            if theirs is not None and theirs > mine:
                problems.append(f"{module} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[theirs][0]})")
            elif method_of(module) and method_of(dep) and method_of(module) != method_of(dep) \
                    and not module.endswith(".cli"):
                problems.append(f"{module} imports another method's {dep}: share it through a lower layer")
    assert not problems, "\n".join(sorted(problems))


def test_no_import_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_a_layer_test_that_sees_a_violation_fails() -> None:
    """The checks above read real imports: a runner importing the server would be caught."""
    graph = import_graph()
    assert "agentrt.agent" in graph["agentrt.runner"]
    assert layer_of("agentrt.server.app") > layer_of("agentrt.runner")  # type: ignore[operator]


def test_no_module_is_far_over_400_lines() -> None:
    long = {name: n for name, f in modules().items() if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_installed_packages_match_the_tree() -> None:
    """tools/ and graphs/ install as agentrt.tools and agentrt.graphs, never as top-level packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name for name, file in modules().items() if file.name == "__init__.py"}
    assert set(config["packages"]) == packages
    assert config["package-dir"] == {"agentrt.tools": "tools", "agentrt.graphs": "graphs"}
