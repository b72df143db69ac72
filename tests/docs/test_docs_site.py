"""The documentation site builds with warnings as errors, and its reference tables are the
registries: every registered solver, family and model, and every benchmark results file,
has its entry (docs/_ext/registry_pages.py generates them at build time)."""
from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import datagen
import linsolve
import operators
from linsolve.core import registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _pages():
    spec = importlib.util.spec_from_file_location("registry_pages", DOCS / "_ext" / "registry_pages.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _section_names(page: str, prefix: str) -> set[str]:
    return set(re.findall(rf"^\({prefix}-(.+)\)=$", page, flags=re.M))


def test_solver_table_lists_every_registered_solver():
    page = _pages().solvers_page()
    assert _section_names(page, "solver") == set(linsolve.available_solvers())
    for name in linsolve.available_solvers():
        cls = linsolve.solver_class(name)
        assert f"| [`{name}`](#solver-{name}) | `linsolve.{name.replace('-', '_')}` |" in page
        for option, default in cls.options.items():
            assert f"| `{option}` | `{default!r}` |" in page, (name, option)


def test_solver_table_follows_the_registry(monkeypatch):
    """A solver registered later appears, with its options, without touching the docs."""
    base = registry.solver_class("cg")
    late = type("LateCG", (base,), {"options": {**base.options, "shift": 0.5}, "__doc__": "A late solver."})
    monkeypatch.setitem(registry._REGISTRY, "late-cg", late)
    page = _pages().solvers_page()
    assert "late-cg" in _section_names(page, "solver")
    assert "| `shift` | `0.5` |" in page and "A late solver." in page


def test_family_table_lists_every_family_with_its_ranges():
    page = _pages().families_page()
    assert _section_names(page, "family") == set(datagen.available_families())
    darcy = datagen.get_family("darcy")
    for key, (default, _help) in darcy.params.items():
        allowed = str(darcy.ranges[key]) if key in darcy.ranges else "-"
        assert f"| `{key}` | `{default!r}` | {allowed} |" in page, key
    assert "`size_min <= size_max`" in page  # poisson_obstacles' ordered pair


def test_model_table_lists_every_model():
    page = _pages().models_page()
    assert _section_names(page, "model") == set(operators.available_models())
    for name in operators.available_models():
        for key in operators.model_class(name).DEFAULTS:
            assert f"| `{key}` |" in page


def test_every_results_file_gets_a_page_with_its_plots():
    pages = _pages()
    stems = pages.result_stems()
    assert "skr" in stems and "dcdm" in stems
    plots = pages.result_plots(stems)
    assert "bandit_sor_heat_quiet.png" in plots["bandit_sor_heat_quiet"] and "bandit_sor_heat_quiet.png" not in plots["bandit_sor"]
    page = pages.result_page("channel_les", plots["channel_les"])
    assert "benchmarks/results/channel_les.md" in page and "channel_les_spectra.png" in page


@pytest.mark.slow
def test_site_builds_with_warnings_as_errors(tmp_path):
    """``make docs`` in a temporary output folder: Sphinx with -W (a warning fails the build)."""
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    solvers = html.unescape((out / "_generated" / "solvers.html").read_text(encoding="utf-8"))
    for name in linsolve.available_solvers():
        assert f'id="solver-{name}"' in solvers, name
    api = (out / "api.html").read_text(encoding="utf-8")
    for fname in linsolve.solver_function_names():
        assert (out / "_generated" / "api" / f"linsolve.{fname}.html").exists(), fname
        assert f"linsolve.{fname}" in api
    for stem in _pages().result_stems():
        assert (out / "_generated" / "results" / f"{stem}.html").exists(), stem
    for page in ("index", "skr", "bandit_sor", "dcdm", "channel", "surrogates", "hdf5_format", "status"):
        assert (out / f"{page}.html").exists(), page
