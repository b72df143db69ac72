"""The packages depend one way: ``operators`` -> ``datagen`` -> ``linsolve``. Every import of
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
