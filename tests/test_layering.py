"""The package's layers: no import circle, and no import from a lower layer to a higher one.

Every module of ``vlmid`` is read with ``ast`` (nothing is imported): each ``import vlmid...`` and
``from ... import ...`` at module level and inside functions, absolute and relative, is an edge
from the module to the module it names (``from vlmid.models import load_clip`` names the package
``vlmid.models``; ``from . import quality`` in ``vlmid/models/build.py`` names ``vlmid.models.quality``).

``python tests/test_layering.py`` prints every circle and every upward import.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlmid"

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("foundation", "where things live, result files with provenance, statistics, timing and FLOPs, the "
                   "optimiser step, verdict words, counted work",
     ("vlmid.paths", "vlmid.harness.results", "vlmid.uncertainty", "vlmid.pareto", "vlmid.profiling", "vlmid.optim",
      "vlmid.verdict", "vlmid.harness.plan")),   # the harness's two low-level helpers: they import only paths
    ("params", "each notebook's parameters as a dataclass: a leaf over the foundation",
     ("vlmid.params",)),
    ("data", "Fashion-MNIST, the scenes, COCO / Flickr8k / CIFAR-10 on disk",
     ("vlmid.data",)),
    ("metrics", "caption metrics, the grounded score, zero-shot accuracy",
     ("vlmid.metrics",)),
    ("models", "the tiny BLIP and CLIP, their build and shipped checkpoints, the paper checkpoints",
     ("vlmid.models",)),
    ("science", "what the study is about: ID, pruning, token reduction, compression, retrieval",
     ("vlmid.id", "vlmid.pruning", "vlmid.tokens", "vlmid.compress", "vlmid.retrieval")),
    ("experiments", "one module per notebook: its steps, headline and claims",
     ("vlmid.experiments",)),
    ("harness", "claims gathered, report, notebook runner, paper plans and inputs, stand-ins, the course on nbgrader",
     ("vlmid", "vlmid.claims", "vlmid.harness")),
)

# Violations in modules that other work is changing, each with the change that removes it. The
# tests below fail on any violation not listed here; the listed ones are an expected failure
# (test_the_listed_violations_are_gone) until that change lands, then this table empties.
KNOWN: dict[tuple[str, str], str] = {}   # violations being fixed elsewhere (none)


# ---- reading the imports ---------------------------------------------------------------------
def modules(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package's ``__init__``) for every module under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported vlmid module: first line that imports it}."""
    mods = modules(package)
    root = package.name

    def known(name: str) -> str:
        while name not in mods:  # an attribute of a module: the module
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, (path, is_package) in mods.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names]
            for target in targets:
                if target == root or target.startswith(root + "."):
                    target = known(target)
                    if target != name:
                        edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the longest listed name that is ``module`` or a package holding it
    (the root package ``vlmid`` counts only for itself)."""
    best, where = "", None
    for i, (_, _, names) in enumerate(LAYERS):
        for n in names:
            if (module == n or (n != "vlmid" and module.startswith(n + "."))) and len(n) > len(best):
                best, where = n, i
    return where


# ---- what is checked -------------------------------------------------------------------------
def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle (a path that returns to its start) per group of modules that import each other
    (a strongly connected component); :func:`describe_cycle` names the whole group."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(set(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)

    out = []
    for group in groups:
        start = min(group)
        path, seen = [start], {start}
        while True:  # walk inside the group until a module repeats: that stretch is a circle
            nxt = min(w for w in graph[path[-1]] if w in group)
            if nxt in seen:
                out.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return sorted(out)


def upward_imports(graph: dict[str, dict[str, int]]) -> list[tuple[str, str, int, str, str]]:
    """(importer, imported, line, importer's layer, imported's layer) for each import of a higher layer."""
    out = []
    for a, edges in sorted(graph.items()):
        for b, line in sorted(edges.items()):
            la, lb = layer_of(a), layer_of(b)
            if la is not None and lb is not None and lb > la:
                out.append((a, b, line, LAYERS[la][0], LAYERS[lb][0]))
    return out


def _path(module: str) -> str:
    path, _ = modules()[module]
    return str(path.relative_to(PACKAGE.parent))


def describe_cycle(graph, circle: list[str]) -> str:
    group = _group(graph, circle[0])
    more = f"; the modules that import each other: {', '.join(sorted(group))}" if len(group) > len(circle) - 1 else ""
    return " -> ".join(circle) + "  (" + ", ".join(
        f"{_path(a)}:{graph[a][b]}" for a, b in zip(circle, circle[1:])) + ")" + more


def _group(graph, start: str) -> set[str]:
    """The modules reachable from ``start`` that reach it back."""
    def reach(adj, v):
        seen, todo = {v}, [v]
        while todo:
            for w in adj.get(todo.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen
    back = {}
    for a, edges in graph.items():
        for b in edges:
            back.setdefault(b, set()).add(a)
    return reach(graph, start) & reach(back, start)


def describe_upward(v) -> str:
    a, b, line, la, lb = v
    return f"{a} ({la}) imports {b} ({lb}) at {_path(a)}:{line}"


# ---- the tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_reader_sees_relative_absolute_and_function_level_imports(graph):
    assert "vlmid.paths" in graph["vlmid.models.build"]                # from ..paths import ... (module level)
    assert "vlmid.data.scenes" in graph["vlmid.models.build"]          # from ..data.scenes import ... (in a function)
    assert "vlmid.models.quality" in graph["vlmid.models.build"]       # from . import quality (a module, not the package)
    assert "vlmid.verdict" in graph["vlmid.experiments.pruning"]
    assert "vlmid.data.base" in graph["vlmid.data"]                    # a package's __init__ resolves from itself


def test_cycles_finds_a_circle_and_only_circles():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) == []


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) is None] == []
    listed = [n for _, _, names in LAYERS for n in names]
    assert len(listed) == len(set(listed)), "a name is listed in two layers"


def test_no_import_circle(graph):
    found = [c for c in cycles(graph) if not any(pair in KNOWN for pair in zip(c, c[1:]))]
    assert not found, "import circles:\n" + "\n".join(describe_cycle(graph, c) for c in found)


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    found = [v for v in upward_imports(graph) if v[:2] not in KNOWN]
    assert not found, "upward imports:\n" + "\n".join(describe_upward(v) for v in found)


def main() -> int:
    g = import_graph()
    circles, upward = cycles(g), upward_imports(g)
    for c in circles:
        print("circle:", describe_cycle(g, c))
    for v in upward:
        print("upward:", describe_upward(v) + ("   [known: " + KNOWN[v[:2]] + "]" if v[:2] in KNOWN else ""))
    for m in sorted(m for m in g if layer_of(m) is None):
        print("no layer:", m)
    print(f"{len(g)} modules, {sum(map(len, g.values()))} imports, {len(circles)} circles, {len(upward)} upward imports")
    return 1 if circles or upward else 0


if __name__ == "__main__":
    sys.exit(main())
