"""The map of the house holds: no import cycles (imports inside functions count), each layer imports only downward,
modules stay small, one home per concept."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "extractors", "model", "workflows")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_imports(path: Path) -> set[str]:
    """Project modules ``path`` imports anywhere in its body (top level and inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in found if m.split(".")[0] in PACKAGES}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {name: {m for m in _project_imports(p) if m in modules and m != name} for name, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_anywhere(graph):
    # A package's __init__ importing its own submodules is how packages work, not a cycle between concepts.
    edges = {m: {d for d in deps if not (m.endswith("__init__") or d == m.rpartition(".")[0])}
             for m, deps in graph.items()}
    edges = {m: {d for d in deps if not (d.startswith(m + ".") or m.startswith(d + "."))} for m, deps in edges.items()}
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_arrays_import_nothing_of_the_project(graph):
    assert graph["pipeline.arrays"] == set()


def test_inference_users_never_import_the_trainer(graph):
    for user in ("workflows.predict", "workflows.evaluate", "workflows.report", "workflows.runs",
                 "workflows.inference"):
        assert "workflows.train" not in graph[user], f"{user} imports the trainer"


def test_the_library_never_imports_the_commands(graph):
    for module, deps in graph.items():
        if not module.startswith("workflows.commands") and module != "workflows.cli":
            assert not any(d.startswith("workflows.commands") for d in deps), f"{module} imports a command"


def test_lower_layers_never_import_workflows(graph):
    for module, deps in graph.items():
        if module.split(".")[0] in ("pipeline", "extractors", "model"):
            assert not any(d.startswith("workflows") for d in deps), f"{module} imports workflows"


def test_modules_stay_under_400_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_only_the_edge_starts_dask_clusters():
    starters = []
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            text = p.read_text()
            if "LocalCluster(" in text or "Client(" in text.replace("get_client(", ""):
                starters.append(str(p.relative_to(ROOT)))
    assert starters == ["workflows/cluster.py"], starters


def test_one_atomic_writer_and_one_file_hasher():
    offenders = []
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            if p.name == "files.py":
                continue
            text = p.read_text()
            if "os.replace(" in text or ".replace(path)" in text or "hashlib" in text or "mkstemp(" in text:
                offenders.append(str(p.relative_to(ROOT)))
    assert not offenders, f"hand-written atomic writes or hashers outside pipeline/files.py: {offenders}"


def test_streams_are_read_through_the_views():
    """Issue 18 item 6: one home for "which rows belong to a segment": the project reads streams only in
    pipeline/views.py (the store defines read_stream; benchmarks may read raw tables)."""
    readers = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                     if ".read_stream(" in p.read_text())
    assert readers == ["pipeline/views.py"], readers
