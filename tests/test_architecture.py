"""The package's architecture, checked from the source: no import cycles, layers imported bottom up,
Dagster confined to `defs/`.

The import graph is read with `ast` (nothing is imported), so a violation is reported even when it
sits in a function body or behind `if TYPE_CHECKING:`: a lazy import still couples the two modules,
and STYLE.md calls a function-local import that dodges a cycle a sign the seam is wrong.

The checker is a handful of pure functions over that graph; the tests at the bottom run them on a
small fake package with one violation of each kind, so a checker that stopped finding anything
would fail there rather than pass silently on the real tree.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lerobot_assets"

# Bottom up: a package may import only packages of a strictly lower rank (or itself).
# A new sub-package must be added here, at the rank its imports put it.
LAYERS: dict[str, int] = {
    "format": 0,
    "stats": 1,
    "video": 2,
    "byteindex": 2,
    "recording": 3,
    "loading": 3,
    "tools": 4,
    "sources": 5,
    "checks": 5,
    "train": 5,
    "home": 6,
    "annotate": 6,
    "sql": 7,
    "evaluate": 7,
    "defs": 8,
    "cli": 8,
}
# Imports between packages of the same rank that are allowed anyway: the CLI starts Dagster runs.
SAME_RANK_ALLOWED: frozenset[tuple[str, str]] = frozenset({("cli", "defs")})

# Where Dagster may be imported: anywhere in `defs`; in `cli` only inside functions, so that
# `lerobot-assets validate` and friends start without loading Dagster.
DAGSTER_PACKAGE = "defs"
LAZY_DAGSTER_PACKAGE = "cli"


# ---------------------------------------------------------------------------------------------
# The graph


@dataclass(frozen=True)
class Import:
    """One imported name: `source` imports `target` at `path:line`."""

    source: str  # dotted name of the importing module
    target: str  # dotted name imported: a module of the package when `internal`, else as written
    internal: bool
    lazy: bool  # inside a function body (runs on call, not on import)
    path: Path
    line: int
    text: str  # the import statement's first source line, for the failure message

    def where(self, root: Path) -> str:
        rel = self.path.relative_to(root.parent) if self.path.is_relative_to(root.parent) else self.path
        return f"{rel}:{self.line}: {self.text}"


def discover_modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package_dir` (`__init__.py` names its
    package)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve_internal(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of `name` that is a module of the package (`a.b.Thing` -> `a.b`)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def _targets(module: str, node: ast.Import | ast.ImportFrom, modules: Mapping[str, Path]) -> list[str]:
    """The dotted names one import statement imports, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        # `from . import x` in a package's __init__ means the package itself; in a module, its parent.
        is_package = modules[module].name == "__init__.py"
        parts = module.split(".")
        base = parts[: len(parts) - node.level + (1 if is_package else 0)]
        stem = ".".join(base + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    # `from pkg import module` depends on `pkg.module`; `from mod import name` on `mod`.
    return [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]


def _import_nodes(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function (or lambda) body."""

    def walk(node: ast.AST, lazy: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, lazy
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inner)

    return walk(tree, False)


def collect_imports(modules: Mapping[str, Path]) -> list[Import]:
    """Every import of every module, internal targets resolved to modules of the package."""
    found: list[Import] = []
    for module, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        for node, lazy in _import_nodes(ast.parse(source, filename=str(path))):
            seen: set[str] = set()
            for name in _targets(module, node, modules):
                internal = _resolve_internal(name, modules)
                target = internal or name
                if target in seen:
                    continue
                seen.add(target)
                found.append(Import(module, target, internal is not None, lazy, path, node.lineno, lines[node.lineno - 1].strip()))
    return found


def module_edges(imports: Iterable[Import]) -> list[Import]:
    """The imports that are edges of the module graph.

    An import of the module's own package (or any ancestor) is left out: importing any module runs
    its ancestors' `__init__` first anyway, so that edge exists for every module and would make every
    `__init__` that re-exports its submodules a cycle."""
    return [imp for imp in imports if imp.internal and imp.target != imp.source and not imp.source.startswith(imp.target + ".")]


def package_of(module: str) -> str | None:
    """The sub-package a module belongs to (`pkg.video.encode` -> `video`; a module directly under
    the package is its own package, `pkg.util` -> `util`); None for the root `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_edges(edges: Iterable[Import]) -> list[Import]:
    """The module edges that cross from one sub-package to another."""
    out = []
    for imp in edges:
        src, dst = package_of(imp.source), package_of(imp.target)
        if src is not None and dst is not None and src != dst:
            out.append(imp)
    return out


def strongly_connected(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (the cycles), each sorted,
    in a stable order (Tarjan's algorithm)."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


# ---------------------------------------------------------------------------------------------
# The rules: each returns a list of human-readable problems, empty when the rule holds.


def module_cycles(imports: Iterable[Import], root: Path) -> list[str]:
    """Each cycle between modules, with its members and the imports that close it."""
    edges = module_edges(imports)
    problems = []
    for component in strongly_connected([], [(i.source, i.target) for i in edges]):
        members = set(component)
        inside = [i.where(root) for i in edges if i.source in members and i.target in members]
        problems.append(f"module cycle {' <-> '.join(component)}:\n    " + "\n    ".join(sorted(inside)))
    return problems


def package_cycles(imports: Iterable[Import], root: Path) -> list[str]:
    """Each cycle between sub-packages, with its members and the imports between them."""
    edges = package_edges(module_edges(imports))
    pairs = [(package_of(i.source), package_of(i.target)) for i in edges]
    problems = []
    for component in strongly_connected([], [(a, b) for a, b in pairs if a and b]):
        members = set(component)
        inside = [
            f"{package_of(i.source)} -> {package_of(i.target)}  {i.where(root)}"
            for i in edges
            if package_of(i.source) in members and package_of(i.target) in members
        ]
        problems.append(f"package cycle {' <-> '.join(component)}:\n    " + "\n    ".join(sorted(inside)))
    return problems


def unranked_packages(modules: Iterable[str], layers: Mapping[str, int]) -> list[str]:
    """Sub-packages without a layer: each must be given a rank before its imports can be judged."""
    packages = {p for p in map(package_of, modules) if p is not None}
    return [
        f"package {p!r} has no layer: add it to LAYERS in tests/test_architecture.py at the rank its imports put it"
        for p in sorted(packages - set(layers))
    ]


def layer_violations(
    imports: Iterable[Import],
    root: Path,
    layers: Mapping[str, int],
    allowed: frozenset[tuple[str, str]] = frozenset(),
) -> list[str]:
    """Each import of a package of the same or a higher rank (unranked packages are reported by
    `unranked_packages`, not here)."""
    problems = []
    for imp in package_edges(module_edges(imports)):
        src, dst = package_of(imp.source), package_of(imp.target)
        if src is None or dst is None or src not in layers or dst not in layers or (src, dst) in allowed:
            continue
        if layers[dst] >= layers[src]:
            problems.append(
                f"{src} (rank {layers[src]}) imports {dst} (rank {layers[dst]}): {imp.source} -> {imp.target}\n    {imp.where(root)}"
            )
    return sorted(problems)


def is_dagster(name: str) -> bool:
    top = name.split(".")[0]
    return top == "dagster" or top.startswith("dagster_")


def dagster_violations(
    imports: Iterable[Import],
    root: Path,
    dagster_package: str = DAGSTER_PACKAGE,
    lazy_package: str = LAZY_DAGSTER_PACKAGE,
) -> list[str]:
    """Each Dagster import outside `dagster_package`, except function-level ones in `lazy_package`."""
    problems = []
    for imp in imports:
        if imp.internal or not is_dagster(imp.target):
            continue
        package = package_of(imp.source)
        if package == dagster_package or (package == lazy_package and imp.lazy):
            continue
        how = "module-level " if package == lazy_package else ""
        problems.append(f"{how}dagster import in {imp.source}\n    {imp.where(root)}")
    return sorted(problems)


# ---------------------------------------------------------------------------------------------
# The real tree


def _real_imports() -> list[Import]:
    return collect_imports(discover_modules(PACKAGE_DIR))


def _fail_if(problems: list[str], what: str) -> None:
    assert not problems, f"{len(problems)} {what}:\n" + "\n".join(problems)


def test_the_graph_sees_the_package() -> None:
    """Guards the rules below against passing on an empty graph: edges every version of the package
    has (the writer writes the format; the Dagster layer wraps the library) must be found."""
    edges = module_edges(_real_imports())
    crossings = {(package_of(i.source), package_of(i.target)) for i in package_edges(edges)}
    assert {("recording", "format"), ("defs", "format")} <= crossings
    assert len(edges) > 100


def test_no_module_cycles() -> None:
    _fail_if(module_cycles(_real_imports(), PACKAGE_DIR), "import cycle(s) between modules")


def test_no_package_cycles() -> None:
    _fail_if(package_cycles(_real_imports(), PACKAGE_DIR), "import cycle(s) between packages")


def test_every_package_has_a_layer() -> None:
    _fail_if(unranked_packages(discover_modules(PACKAGE_DIR), LAYERS), "package(s) without a layer")


def test_packages_import_only_lower_layers() -> None:
    _fail_if(
        layer_violations(_real_imports(), PACKAGE_DIR, LAYERS, SAME_RANK_ALLOWED),
        "import(s) of a package at the same or a higher layer (order, bottom up: "
        + ", ".join(f"{p}={r}" for p, r in sorted(LAYERS.items(), key=lambda kv: kv[1]))
        + ")",
    )


def test_dagster_only_in_defs() -> None:
    _fail_if(
        dagster_violations(_real_imports(), PACKAGE_DIR),
        "dagster import(s) outside lerobot_assets/defs/ (cli/ may import it inside functions only)",
    )


# ---------------------------------------------------------------------------------------------
# The checker, on a fake package with one violation of each kind


def _write_tree(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


FAKE_LAYERS = {"low": 0, "mid": 1, "top": 2, "cli": 2, "defs": 2}

FAKE_FILES = {
    "fake/__init__.py": "",
    "fake/low/__init__.py": "from .a import A\n",
    # a <-> b: a module cycle inside `low`, closed by a function-level import.
    "fake/low/a.py": "from fake.low import b\nA = 1\n",
    "fake/low/b.py": """\
        def f():
            from . import a
            return a.A
        """,
    # An upward import, low -> mid, which with mid -> low also makes a package cycle.
    "fake/low/c.py": "import fake.mid.m\n",
    "fake/mid/__init__.py": "",
    "fake/mid/m.py": "from ..low.a import A\n",
    # dagster outside defs (module level), and the same in cli at module level and lazily.
    "fake/mid/d.py": "import dagster as dg\n",
    "fake/cli/__init__.py": """\
        from dagster_k8s import k8s_job_executor

        def run():
            import dagster
            return dagster
        """,
    "fake/defs/__init__.py": "import dagster\nfrom fake.mid import m\n",
    # cli -> defs (same rank: allowed by the exception) and top -> cli (same rank: not allowed).
    "fake/cli/main.py": "from fake import defs\n",
    "fake/top.py": "from fake.cli import main\n",
    "fake/extra/__init__.py": "",
}


def _fake(tmp_path: Path) -> tuple[Path, list[Import]]:
    _write_tree(tmp_path, FAKE_FILES)
    root = tmp_path / "fake"
    return root, collect_imports(discover_modules(root))


def test_resolution_of_relative_and_from_imports(tmp_path: Path) -> None:
    root, imports = _fake(tmp_path)
    got = {(i.source, i.target, i.lazy, i.line) for i in imports if i.internal}
    assert got == {
        ("fake.low", "fake.low.a", False, 1),  # relative, from a package __init__
        ("fake.low.a", "fake.low.b", False, 1),  # `from pkg import module` -> the module
        ("fake.low.b", "fake.low.a", True, 2),  # relative, from a module, inside a function
        ("fake.low.c", "fake.mid.m", False, 1),
        ("fake.mid.m", "fake.low.a", False, 1),  # `from ..low.a import A`
        ("fake.defs", "fake.mid.m", False, 2),
        ("fake.cli.main", "fake.defs", False, 1),
        ("fake.top", "fake.cli.main", False, 1),
    }
    external = {(i.source, i.target, i.lazy) for i in imports if not i.internal}
    assert external == {
        ("fake.mid.d", "dagster", False),
        ("fake.cli", "dagster_k8s", False),
        ("fake.cli", "dagster", True),
        ("fake.defs", "dagster", False),
    }


def test_checker_reports_the_module_cycle(tmp_path: Path) -> None:
    root, imports = _fake(tmp_path)
    assert module_cycles(imports, root) == [
        "module cycle fake.low.a <-> fake.low.b:\n    fake/low/a.py:1: from fake.low import b\n    fake/low/b.py:2: from . import a"
    ]


def test_checker_reports_the_package_cycle(tmp_path: Path) -> None:
    root, imports = _fake(tmp_path)
    assert package_cycles(imports, root) == [
        "package cycle low <-> mid:\n"
        "    low -> mid  fake/low/c.py:1: import fake.mid.m\n"
        "    mid -> low  fake/mid/m.py:1: from ..low.a import A"
    ]


def test_checker_reports_upward_and_same_rank_imports(tmp_path: Path) -> None:
    root, imports = _fake(tmp_path)
    assert layer_violations(imports, root, FAKE_LAYERS, frozenset({("cli", "defs")})) == [
        "low (rank 0) imports mid (rank 1): fake.low.c -> fake.mid.m\n    fake/low/c.py:1: import fake.mid.m",
        "top (rank 2) imports cli (rank 2): fake.top -> fake.cli.main\n    fake/top.py:1: from fake.cli import main",
    ]
    # Without the exception, cli -> defs is a same-rank import like any other.
    assert (
        "cli (rank 2) imports defs (rank 2): fake.cli.main -> fake.defs\n    fake/cli/main.py:1: from fake import defs"
        in layer_violations(imports, root, FAKE_LAYERS)
    )


def test_checker_reports_packages_without_a_layer(tmp_path: Path) -> None:
    _write_tree(tmp_path, FAKE_FILES)
    assert unranked_packages(discover_modules(tmp_path / "fake"), FAKE_LAYERS) == [
        "package 'extra' has no layer: add it to LAYERS in tests/test_architecture.py at the rank its imports put it"
    ]


def test_checker_reports_dagster_outside_defs(tmp_path: Path) -> None:
    root, imports = _fake(tmp_path)
    assert dagster_violations(imports, root) == [
        "dagster import in fake.mid.d\n    fake/mid/d.py:1: import dagster as dg",
        "module-level dagster import in fake.cli\n    fake/cli/__init__.py:1: from dagster_k8s import k8s_job_executor",
    ]


def test_strongly_connected_components() -> None:
    # Two separate cycles, a self-loop-free chain and a lone node: only the cycles come back.
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "f"), ("f", "e"), ("g", "h")]
    assert strongly_connected(["z"], edges) == [["a", "b", "c"], ["e", "f"]]
