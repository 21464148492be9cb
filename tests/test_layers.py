"""Imports point downward only: the rooms of the house and their order.

The source of ``connector/`` and ``mde_simulator/`` is parsed (no module is
imported) and every import, at module level or inside a function, is an
arrow from one module to another. The rooms, lowest first:

- ``core``: the manifest-backed model and pure rules (errors, text, sdk,
  severity, manifest, validation, config, artifacts mapping, ...);
- ``http``: ``connector/http/`` (auth, transport, the API clients);
- ``actions``: ``connector/actions/``;
- ``runtime``: ``connector/runtime/`` (engine, playbooks, poller, store);
- ``console``: ``connector/console/`` (the web console);
- ``cli``: ``connector/cli/`` and ``connector/__main__``.

A module may import its own room or a lower one, never a higher one, and
the arrows have no cycle. The simulator (``mde_simulator``) imports nothing
from ``connector``, and ``connector`` reaches the simulator only from the
``simulator`` and ``demo`` commands.

To see the graph itself: ``python -m tests.test_layers`` prints every arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "mde_simulator")

#: Rooms from lowest to highest; a module's room is the first prefix that matches.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("connector",)),
    ("http", ("connector.http",)),
    ("actions", ("connector.actions",)),
    ("runtime", ("connector.runtime",)),
    ("console", ("connector.console",)),
    ("cli", ("connector.cli", "connector.__main__")),
)
#: The only connector modules allowed to import the simulator.
SIMULATOR_USERS = frozenset({"connector.cli.demo", "connector.cli.main"})


def _module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str, modules: dict[str, Path]) -> str:
    """The known module ``name`` lives in (``a.b.c`` -> ``a.b`` if c is a name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (parsed, not run).

    A string naming a module in a ``(module, help)`` command table counts as
    an import too: ``connector.cli.main`` imports its commands that way.
    """
    modules = _module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _target(module, path.name == "__init__.py", node)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value.split(".")[0] in PACKAGES and node.value in modules):
                targets.add(node.value)
        owners = {_owner(t, modules) for t in targets if t.split(".")[0] in PACKAGES}
        graph[module] = {o for o in owners if o and o != module}
    return graph


def layer_of(module: str) -> int:
    """The index of the room ``module`` belongs to (the longest matching prefix)."""
    best, best_len = -1, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_sees_the_known_arrows() -> None:
    graph = import_graph()
    assert "connector.errors" in graph["connector.sdk"]
    assert "connector.runtime.store" in graph["connector.runtime.poller"]
    assert "mde_simulator.cli" in graph["connector.cli.main"]  # through the command table


def test_no_import_runs_upward() -> None:
    upward = []
    for module, targets in import_graph().items():
        if not module.startswith("connector"):
            continue
        for target in targets:
            if target.startswith("connector") and layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) -> "
                              f"{target} ({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports running to a higher room:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_simulator_imports_nothing_from_the_connector() -> None:
    wrong = {m: sorted(t for t in ts if t.startswith("connector"))
             for m, ts in import_graph().items() if m.startswith("mde_simulator")}
    assert not {m: ts for m, ts in wrong.items() if ts}


def test_the_connector_reaches_the_simulator_only_from_its_commands() -> None:
    users = {m for m, ts in import_graph().items()
             if m.startswith("connector") and any(t.startswith("mde_simulator") for t in ts)}
    assert users <= SIMULATOR_USERS, sorted(users - SIMULATOR_USERS)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _cycles(graph) == expected


def test_every_connector_module_has_a_room() -> None:
    assert all(layer_of(m) >= 0 for m in import_graph() if m.startswith("connector"))
    assert layer_of("connector.http.client") > layer_of("connector.manifest")
    assert layer_of("connector.cli.main") > layer_of("connector.runtime.store")


if __name__ == "__main__":
    for source, targets in sorted(import_graph().items()):
        for dest in sorted(targets):
            print(f"{source} -> {dest}")
