"""prunebench's packages import downward only, in a stated order, and no file imports itself in a circle.

A package is the first name under ``prunebench`` (``pruning`` for ``prunebench.pruning.selection``;
``spec`` for ``prunebench.spec.prune``). Every import counts, including those inside functions:
a lazy import dodges the import-time error, not the dependency. The graph is read from the
source with ``ast``, so the test needs nothing installed and imports nothing it checks.

KNOWN_CYCLES is empty: any cycle fails, with its path. (It was an allow-list while the last
cycles were removed; a listed cycle that no longer exists fails too, so it cannot go stale.)

LAYERS states the order: a package may import only packages of a lower layer, so an import that
goes upward, or sideways within a layer, fails with its file and line. The order is the one the
imports had when it was written down; change it on purpose, with the reason, not to pass a test.
The same circle check also runs over files (modules), where a package-level graph cannot see it,
once at run time and once counting type-only imports too.
"""

from __future__ import annotations

import ast
import functools
from collections import deque
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "prunebench"
ROOT = "prunebench"  # prunebench/__init__.py: the curated API, a package of its own here

# Each entry: the packages of one strongly connected component of the package graph.
KNOWN_CYCLES: set[frozenset[str]] = set()

# Lowest first. Why each sits where it does:
LAYERS: list[set[str]] = [
    {"errors", "latency_names", "modes", "compress", "target", "lazy"},  # import nothing of prunebench
    {"registry", "config_file", "plugins", "executors"},  # errors only: executors run any job function
    {"data"},
    {"models"},
    {"metrics"},  # measures models on data
    {"pruning"},  # scores read metrics' helpers; masks are checked against models
    {"catalog"},  # the vocabulary: schedules and retraining modes with their rules; strategies, models, datasets
    {"spec"},  # validates a spec against the catalog and the registries
    {"record", "devices", "config"},  # a run's record holds its spec; a device is checked against a spec;
    # config: the spec's names re-exported under their first home, for plugins (nothing inside imports it)
    {"train", "store"},  # one training loop; the results database reads records
    {"experiment"},  # one run: train, prune, retrain, measure, store
    {"plan", "reproduce"},  # many runs through the executors; published reproductions
    {"report", "api"},  # reads the store and plans; the Python API over one model
    {"demo"},  # a whole comparison and its report
    {"cli", ROOT},  # the entry points: the command line, the curated ``import prunebench``
]

Edges = dict[str, dict[str, list[str]]]  # package -> imported package -> ["file:line", ...]


def package_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ROOT if parts == ("__init__",) else parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.AST, path: Path) -> list[str]:
    """Dotted names an import statement refers to, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        here = module_name(path).split(".")
        if path.name != "__init__.py":
            here = here[:-1]  # a module's relative imports start from its package
        anchor = here[: len(here) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    # `from prunebench import data` imports a package; `from prunebench import Mask` the root.
    return [f"{base}.{alias.name}" for alias in node.names]


def target_package(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) == 1:
        return ROOT
    first = parts[1]
    exists = (PACKAGE_DIR / first).is_dir() or (PACKAGE_DIR / f"{first}.py").is_file()
    return first if exists else ROOT  # a name re-exported by prunebench/__init__.py


def is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` imports exist for annotations only and never run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those inside ``if TYPE_CHECKING:`` blocks."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if is_type_checking_block(node):
            stack.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


@functools.cache
def parsed_files(annotations: bool = False) -> tuple[tuple[Path, tuple[ast.AST, ...]], ...]:
    """Every file of the package with its runtime nodes (``annotations``: with those of ``if
    TYPE_CHECKING:`` blocks too), parsed once for all the tests here."""
    trees = [(path, ast.parse(path.read_text(), filename=str(path))) for path in sorted(PACKAGE_DIR.rglob("*.py"))]
    return tuple((path, tuple(ast.walk(tree) if annotations else runtime_nodes(tree))) for path, tree in trees)


def import_graph() -> Edges:
    edges: Edges = {}
    for path, nodes in parsed_files():
        source = package_of(path)
        for node in nodes:
            for name in imported_modules(node, path):
                target = target_package(name)
                if target is not None and target != source:
                    where = f"{path.relative_to(PACKAGE_DIR)}:{node.lineno}"
                    edges.setdefault(source, {}).setdefault(target, []).append(where)
    return edges


def module_graph(annotations: bool = False) -> Edges:
    """The same graph over files: module -> imported module -> import sites.

    ``from prunebench.pruning import selection`` names the file ``pruning/selection.py``; ``from
    prunebench.pruning import Mask`` names ``pruning/__init__.py``, which re-exports it.
    ``annotations``: type-only imports count too.
    """
    files = parsed_files(annotations)
    paths = {module_name(path) for path, _ in files}
    edges: Edges = {}
    for path, nodes in files:
        source = module_name(path)
        for node in nodes:
            for name in imported_modules(node, path):
                parts = name.split(".")
                while parts and ".".join(parts) not in paths:
                    parts.pop()  # the longest prefix that is a file: a name inside it was imported
                target = ".".join(parts)
                if target and target != source:
                    where = f"{path.relative_to(PACKAGE_DIR)}:{node.lineno}"
                    edges.setdefault(source, {}).setdefault(target, []).append(where)
    return edges


def upward_imports(edges: Edges, layers: list[set[str]]) -> list[str]:
    """Each import of a package that is not in a lower layer than the importer, with its sites."""
    level = {package: index for index, layer in enumerate(layers) for package in layer}
    found = []
    for source, targets in sorted(edges.items()):
        for target, sites in sorted(targets.items()):
            if level[target] >= level[source]:
                found.append(f"{source} (layer {level[source]}) imports {target} (layer {level[target]}) at {', '.join(sites)}")
    return found


def strongly_connected(edges: Edges) -> list[frozenset[str]]:
    """Components of more than one package (each holds at least one cycle), by reachability:
    the graph has a dozen nodes, so clarity beats Tarjan."""
    nodes = set(edges) | {t for targets in edges.values() for t in targets}
    reach = {n: reachable(edges, n) for n in nodes}
    components = {frozenset(m for m in nodes if m in reach[n] and n in reach[m]) | {n} for n in nodes}
    return sorted((c for c in components if len(c) > 1), key=sorted)


def reachable(edges: Edges, start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, {}))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, {}))
    return seen


def cycle_path(edges: Edges, component: frozenset[str]) -> str:
    """The shortest cycle through the component's first package, each step with an import site."""
    start = min(component)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(edges.get(node, {})):
            if target == start:
                steps = [node]
                while steps[-1] != start:
                    steps.append(previous[steps[-1]])
                order = [*reversed(steps), start]
                return " -> ".join(
                    [start, *(f"{b} ({edges[a][b][0]})" for a, b in zip(order, order[1:]))]
                )
            if target in component and target not in previous and target != start:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"{sorted(component)} holds no cycle")


def test_the_graph_sees_imports_at_module_level_and_inside_functions() -> None:
    edges = import_graph()
    assert "spec" in edges["train"]  # train/loop.py, at module level
    assert "executors" in edges["cli"]  # cli.py imports its commands' packages inside functions
    assert ROOT not in edges.get("spec", {})


def test_the_training_loop_takes_augmentation_from_data_not_from_a_dataset_loader() -> None:
    names = {n for path in (PACKAGE_DIR / "train" / "loop.py", PACKAGE_DIR / "train" / "batches.py")  # the loop and its batches
             for node in ast.walk(ast.parse(path.read_text())) for n in imported_modules(node, path)}
    assert "prunebench.data.augment.random_crop_flip" in names
    assert not any(n.startswith("prunebench.data.cifar") for n in names)


def test_cycle_detection_finds_a_cycle_and_its_path() -> None:
    edges: Edges = {"a": {"b": ["a.py:1"]}, "b": {"c": ["b.py:2"]}, "c": {"a": ["c.py:3"]}, "d": {"a": ["d.py:4"]}}
    (component,) = strongly_connected(edges)
    assert component == {"a", "b", "c"}
    assert cycle_path(edges, component) == "a -> b (a.py:1) -> c (b.py:2) -> a (c.py:3)"


def test_no_new_import_cycle_between_packages() -> None:
    edges = import_graph()
    found = set(strongly_connected(edges))
    new = [c for c in sorted(found, key=sorted) if c not in KNOWN_CYCLES]
    gone = [sorted(c) for c in sorted(KNOWN_CYCLES - found, key=sorted)]
    problems = [f"new import cycle: {cycle_path(edges, c)}" for c in new]
    problems += [f"cycle {' <-> '.join(c)} is gone: remove it from KNOWN_CYCLES" for c in gone]
    assert not problems, "\n".join(problems)


def test_planning_imports_the_single_run_and_the_single_run_knows_nothing_of_planning() -> None:
    edges = import_graph()
    assert "experiment" in edges["plan"]  # plan/jobs.py runs one job through the pipeline
    assert "plan" not in reachable(edges, "experiment")


def test_every_package_has_exactly_one_layer() -> None:
    packages = {package_of(path) for path in PACKAGE_DIR.rglob("*.py")}
    placed = [package for layer in LAYERS for package in layer]
    assert len(placed) == len(set(placed)), "a package is listed in two layers"
    assert set(placed) == packages, f"unplaced: {sorted(packages - set(placed))}; gone: {sorted(set(placed) - packages)}"


def test_an_upward_or_sideways_import_is_found_with_its_site() -> None:
    edges: Edges = {"low": {}, "high": {"low": ["high.py:3"]}, "side": {"high": ["side.py:7"]}}
    assert upward_imports(edges, [{"low"}, {"high", "side"}]) == [
        "side (layer 1) imports high (layer 1) at side.py:7"]
    edges["low"]["high"] = ["low.py:1"]
    assert upward_imports(edges, [{"low"}, {"high", "side"}])[0] == "low (layer 0) imports high (layer 1) at low.py:1"


def test_packages_import_only_lower_layers() -> None:
    problems = upward_imports(import_graph(), LAYERS)
    assert not problems, "\n".join(problems)


def test_the_module_graph_resolves_files_and_re_exports() -> None:
    edges = module_graph()
    assert "prunebench.errors" in edges["prunebench.registry"]  # a module imported by its dotted name
    assert "prunebench.pruning" not in edges.get("prunebench.pruning.selection", {})  # not its own package


def test_no_import_circle_between_files() -> None:
    edges = module_graph()
    problems = [f"import circle: {cycle_path(edges, c)}" for c in strongly_connected(edges)]
    assert not problems, "\n".join(problems)


def test_no_import_circle_between_files_even_for_annotations() -> None:
    """Type-only imports (``if TYPE_CHECKING:``) run no code, but a circle among them still means
    two files must be read together (as catalog and config once were): none either."""
    edges = module_graph(annotations=True)
    # catalog's lookups name the strategies' types for annotations only: seen here, not at run time
    assert "prunebench.pruning.scores.base" in edges["prunebench.catalog"]
    assert "prunebench.pruning.scores.base" not in module_graph()["prunebench.catalog"]
    problems = [f"import circle: {cycle_path(edges, c)}" for c in strongly_connected(edges)]
    assert not problems, "\n".join(problems)
