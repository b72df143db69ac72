"""The packages depend one way (``operators`` -> ``datagen`` -> ``linsolve``) and no module imports
itself through others (no import cycles). Every import of
every module (at module level or inside a function) is read from the source, so an import
that only runs on some path (DCDM training, a CLI command) counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what each package may not import
FORBIDDEN = {"linsolve": ("datagen", "operators"), "datagen": ("operators",)}


def _imports(path: Path, package: str) -> set[str]:
    """The top-level packages imported by the module at ``path`` (relative imports resolve
    inside ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(package if node.level else (node.module or "").split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below(package):
    bad = sorted(f"{path.relative_to(ROOT)} imports {name}"
                 for path in (ROOT / package).rglob("*.py")
                 for name in _imports(path, package) if name in FORBIDDEN[package])
    assert not bad, bad


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from datagen import get_family\n    import operators.cli\n"
                      "from . import sibling\n")
    assert _imports(module, "linsolve") == {"datagen", "operators", "linsolve"}


PACKAGES = ("linsolve", "datagen", "operators")


def _module_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (every import, relative ones resolved; a
    package is its ``__init__``; ``from pkg import name`` is an import of ``pkg.name`` when that
    is a module, else of ``pkg``)."""
    mods = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)

    def known(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, (path, is_pkg) in mods.items():
        base = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    origin = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                edges.update(known(f"{origin}.{a.name}") if f"{origin}.{a.name}" in mods else known(origin)
                             for a in node.names)
        graph[name] = {e for e in edges if e and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others():
    assert _cycles(_module_graph(ROOT)) == []


def test_the_cycle_scan_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "linsolve"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from linsolve.b import g\n")
    (pkg / "b.py").write_text("def g():\n    from . import c\n")
    (pkg / "c.py").write_text("import linsolve.a\n")
    (pkg / "d.py").write_text("from linsolve import a\n")
    assert _cycles(_module_graph(tmp_path, ("linsolve",))) == [["linsolve.a", "linsolve.b", "linsolve.c"]]
