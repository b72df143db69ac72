"""The Examples sections of the public API's docstrings run as doctests, so a documented
example cannot rot.

The public API is what users import: every name in ``__all__`` of ``linsolve``, ``datagen``
and ``operators`` (``linsolve.__all__`` as read at run time, so one function per registered
solver), the packages' own docstrings, the methods of the public classes and the functions
of public submodules (``linsolve.gallery``). Each example runs with a copy of its module's
globals, as ``doctest`` and ``pytest --doctest-modules`` run it. An example
that needs what a test cannot have (a GPU, a large download) says ``# doctest: +SKIP``.
"""
from __future__ import annotations

import doctest
import importlib
import inspect
import types

import pytest

PACKAGES = ("linsolve", "datagen", "operators")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def public_objects() -> list[tuple[str, object]]:
    """(dotted name, object) of each package and each name in its ``__all__``."""
    out = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        out.append((pkg_name, pkg))
        for name in pkg.__all__:
            out.append((f"{pkg_name}.{name}", getattr(pkg, name)))
    return out


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests, seen = [], set()
    for dotted, obj in public_objects():
        if isinstance(obj, types.ModuleType) and dotted not in PACKAGES:
            found = finder.find(obj, dotted)  # a public submodule (gallery, errors): its functions too
        elif isinstance(obj, types.ModuleType):
            found = [t for t in finder.find(obj, dotted) if t.name == dotted]  # the package docstring alone
        elif not (inspect.isclass(obj) or callable(obj)):
            continue  # a constant (linsolve.FLUID): its docstring is its type's
        else:
            found = finder.find(obj, dotted)
        for t in found:
            key = (t.filename, t.lineno, t.docstring)
            if t.examples and key not in seen:
                seen.add(key)
                tests.append(t)
    return tests


def _params():
    return [pytest.param(t, id=t.name) for t in sorted(_doctests(), key=lambda t: t.name)]


def test_the_public_api_has_examples():
    names = {t.name for t in _doctests()}
    for required in ("linsolve.make_solver", "linsolve.gmres", "linsolve.gcrodr", "linsolve.SolveResult",
                     "datagen.open_dataset", "datagen.get_family", "operators.make_model"):
        assert required in names, f"{required} has no Examples section"


def _needs_petsc(name: str) -> bool:
    """The function of a solver that runs on PETSc alone (``linsolve.petsc``)."""
    import linsolve

    fname = name.removeprefix("linsolve.")
    return any(n.replace("-", "_") == fname and linsolve.solver_class(n).backends == ("petsc",)
               for n in linsolve.available_solvers())


@pytest.mark.parametrize("test", _params())
def test_docstring_example_runs(test, tmp_path, monkeypatch, request):
    if _needs_petsc(test.name):
        request.getfixturevalue("petsc")  # required under make test and in CI, else skipped
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # files an example writes land here
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=report.append)  # globals: a copy of the defining module's, as doctest does
    assert result.failed == 0, "".join(report)
