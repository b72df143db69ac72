"""Sphinx extension: pages generated from the package's registries and result files.

At ``builder-inited`` (before autosummary reads the sources) it writes, under
``docs/_generated/`` (git-ignored, rewritten on every build, a file touched only when its
text changes so that incremental builds stay incremental):

* ``solvers.md``: every solver of ``linsolve.available_solvers()`` with its SciPy-style
  function, backends, preconditioners, matrix classes, complex support and options with
  their defaults (from the class attributes the solvers declare);
* ``families.md``: every family of ``datagen.available_families()`` with its parameters,
  defaults and allowed ranges (``Family.params``, ``Family.ranges``, ``Family.ordered``);
* ``models.md`` and ``cards/<name>.md``: every model of ``operators.available_models()``
  with its configuration defaults, and its model card;
* ``results/<stem>.md``: one page per ``benchmarks/results/<stem>.md``, which it includes
  (not copies) together with the plots ``<stem>*.png`` beside it;
* ``api_solver_functions.rst.inc`` (included by ``api.rst``) and ``api/linsolve.<name>.rst``:
  the autosummary list and the stub pages of the functions ``linsolve.<name>``, one per
  registered solver.

The tables are therefore the registries as the code has them: a solver registered, an
option added or a range changed shows on the next build, and a test
(``tests/docs/test_docs_site.py``) checks every registered solver is listed.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
RESULTS = ROOT / "benchmarks" / "results"


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, leaving the file untouched when it is unchanged
    (Sphinx rebuilds a page whose source file is newer than its doctree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cell(value) -> str:
    """A value's repr as a Markdown table cell (code-formatted, pipes escaped)."""
    return "`" + repr(value).replace("|", "\\|").replace("`", "'") + "`"


def _text(s: str) -> str:
    return " ".join(str(s).split()).replace("|", "\\|")


def _summary(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    doc = inspect.cleandoc(doc or "")
    return _text(doc.split("\n\n")[0]) if doc else ""


# --- solvers -----------------------------------------------------------------------------
#: the constructor keywords every solver takes (``linsolve.Solver.__init__``)
COMMON_OPTIONS = ("rtol", "atol", "maxiter", "pc", "pc_options", "backend", "warm_start", "callback")


def solver_rows() -> list[dict]:
    """One dict per registered solver, in ``available_solvers()`` order."""
    import linsolve

    rows = []
    for name in linsolve.available_solvers():
        cls = linsolve.solver_class(name)
        rows.append({
            "name": name,
            "function": name.replace("-", "_"),
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "summary": _summary(cls.__doc__),
            "backends": tuple(cls.backends),
            "preconditioners": tuple(cls.preconditioners),
            "supports": tuple(s for s in ("spd", "nonsymmetric", "indefinite") if s in cls.supports),
            "complex": cls.complex_support,
            "scipy": cls.scipy_equivalent,
            "direct": bool(cls.direct),
            "needs_grid": bool(cls.needs_grid),
            "stateful": bool(cls.stateful),
            "options": dict(cls.options),
        })
    return rows


def solvers_page() -> str:
    import linsolve

    sig = inspect.signature(linsolve.Solver.__init__)
    rows = solver_rows()
    out = [
        "# Solver reference",
        "",
        "Generated at build time from `linsolve.available_solvers()` and the class attributes each",
        "solver declares (`backends`, `preconditioners`, `supports`, `complex_support`,",
        "`scipy_equivalent`, `options`), so it cannot drift from the code. Build one with",
        "`linsolve.make_solver(name, **options)`; each also has a SciPy-style function",
        "`linsolve.<function>(A, b, x0=None, *, rtol, atol, maxiter, M, callback, **options) -> (x, info)`",
        "(see {doc}`../api`).",
        "",
        "| solver | function | SciPy counterpart | backends | preconditioners | matrices | complex | kind |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kind = "direct" if r["direct"] else "iterative"
        if r["stateful"]:
            kind += ", learns across solves"
        if r["needs_grid"]:
            kind += ", needs grid geometry"
        out.append(
            f"| [`{r['name']}`](#solver-{r['name']}) | `linsolve.{r['function']}` | "
            f"{'`scipy.sparse.linalg.' + r['scipy'] + '`' if r['scipy'] else '-'} | "
            f"{', '.join(r['backends'])} | {', '.join(r['preconditioners'])} | {', '.join(r['supports'])} | "
            f"{r['complex'] or 'refused'} | {kind} |")
    out += [
        "",
        "*preconditioners*: the names the solver declares and the contract suite exercises; with",
        "`backend=\"petsc\"` any PETSc PC type name is accepted as well ({doc}`../preconditioners`).",
        "*matrices*: the matrix classes the method is meant for (`spd`, `nonsymmetric`, `indefinite`).",
        "*complex*: `native` (complex arithmetic), `real-form` (the equivalent real system of twice the",
        "size) or `refused` (an `UnsupportedInputError`).",
        "",
        "## Options every solver takes",
        "",
        "| option | default |",
        "|---|---|",
    ]
    for k in COMMON_OPTIONS:
        p = sig.parameters[k]
        out.append(f"| `{k}` | {_cell(p.default)} |")
    out += ["", "The stopping rule is `||b - A x|| <= max(rtol ||b||, atol)` for every solver.", ""]
    for r in rows:
        out += [f"(solver-{r['name']})=", f"## `{r['name']}`", "", r["summary"], "",
                f"Class `{r['class']}`; function `linsolve.{r['function']}`; backends "
                f"{', '.join('`' + b + '`' for b in r['backends'])}.", ""]
        if r["options"]:
            out += ["| option | default |", "|---|---|"]
            out += [f"| `{k}` | {_cell(v)} |" for k, v in r["options"].items()]
        else:
            out.append("No options of its own.")
        out.append("")
    return "\n".join(out)


# --- families ----------------------------------------------------------------------------
def family_rows() -> list[dict]:
    import datagen

    rows = []
    for name in datagen.available_families():
        cls = datagen.get_family(name)
        params = []
        for k, (default, help_) in cls.params.items():
            rng = cls.ranges.get(k)
            params.append({"name": k, "default": default, "range": str(rng) if rng is not None else "",
                           "help": _text(help_)})
        rows.append({"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
                     "description": _text(cls.description), "dims": tuple(cls.dims),
                     "symmetric": bool(cls.symmetric), "shared_matrix": bool(cls.shared_matrix),
                     "params": params, "ordered": tuple(cls.ordered)})
    return rows


def families_page() -> str:
    rows = family_rows()
    out = [
        "# Problem family reference",
        "",
        "Generated at build time from `datagen.available_families()` and each family's `params`,",
        "`ranges` and `ordered` declarations (checked when a family is built), so it cannot drift",
        "from the code. On the command line a parameter is `datagen generate FAMILY --param key=value`;",
        "from Python `datagen.get_family(name)(grid=..., **params)`. The channel DNS itself",
        "(`datagen generate channel`) is described in {doc}`../channel`.",
        "",
        "| family | dimensions | SPD by default | one shared matrix | problem |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(f"| [`{r['name']}`](#family-{r['name']}) | {', '.join(f'{d}-D' for d in r['dims'])} | "
                   f"{'yes' if r['symmetric'] else 'no'} | {'yes' if r['shared_matrix'] else 'no'} | "
                   f"{r['description']} |")
    out.append("")
    for r in rows:
        out += [f"(family-{r['name']})=", f"## `{r['name']}`", "", r["description"], "",
                f"Class `{r['class']}`.", ""]
        if r["params"]:
            out += ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
            out += [f"| `{p['name']}` | {_cell(p['default'])} | {p['range'] or '-'} | {p['help']} |"
                    for p in r["params"]]
        else:
            out.append("No parameters.")
        if r["ordered"]:
            out += ["", "Must hold: " + "; ".join(f"`{lo} <= {hi}`" for lo, hi in r["ordered"]) + "."]
        out.append("")
    return "\n".join(out)


# --- models ------------------------------------------------------------------------------
CARDS = ROOT / "operators" / "models" / "cards"


def model_rows() -> list[dict]:
    import operators

    rows = []
    for name in operators.available_models():
        cls = operators.model_class(name)
        rows.append({"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
                     "summary": _summary(cls.__doc__), "defaults": dict(getattr(cls, "DEFAULTS", {})),
                     "card": (CARDS / f"{name}.md") if (CARDS / f"{name}.md").exists() else None})
    return rows


def models_page() -> str:
    rows = model_rows()
    out = [
        "# Surrogate model reference",
        "",
        "Generated at build time from `operators.available_models()` and each model class's",
        "`DEFAULTS`. Build one with `operators.make_model(name, **config)`; every key below may be",
        "given (`operators train --model NAME --model-opt key=value` on the command line).",
        "",
        "| model | class | input steps | model card |",
        "|---|---|---|---|",
    ]
    for r in rows:
        card = f"{{doc}}`cards/{r['name']}`" if r["card"] else "-"
        out.append(f"| [`{r['name']}`](#model-{r['name']}) | `{r['class']}` | "
                   f"{r['defaults'].get('in_steps', '-')} | {card} |")
    out += ["", "```{toctree}", ":hidden:", ""]
    out += [f"cards/{r['name']}" for r in rows if r["card"]]
    out += ["```", ""]
    for r in rows:
        out += [f"(model-{r['name']})=", f"## `{r['name']}`", "", r["summary"], ""]
        if r["defaults"]:
            out += ["| configuration key | default |", "|---|---|"]
            out += [f"| `{k}` | {_cell(v)} |" for k, v in r["defaults"].items()]
        out.append("")
    return "\n".join(out)


def card_page(name: str, card: Path) -> str:
    rel = os.path.relpath(card, GENERATED / "cards").replace(os.sep, "/")
    return f"```{{include}} {rel}\n:relative-images:\n:relative-docs: ../../\n```\n"


# --- results -----------------------------------------------------------------------------
def result_plots(stems: list[str]) -> dict[str, list[str]]:
    """Each PNG of ``benchmarks/results`` under the longest results stem it starts with
    (``bandit_sor_heat_quiet.png`` belongs to ``bandit_sor_heat_quiet.md``, not ``bandit_sor.md``)."""
    plots: dict[str, list[str]] = {s: [] for s in stems}
    for png in sorted(RESULTS.glob("*.png")):
        owners = [s for s in stems if png.stem == s or png.stem.startswith(s + "_")]
        if owners:
            plots[max(owners, key=len)].append(png.name)
    return plots


def result_stems() -> list[str]:
    return sorted(p.stem for p in RESULTS.glob("*.md"))


def result_page(stem: str, plots: list[str]) -> str:
    rel = os.path.relpath(RESULTS, GENERATED / "results").replace(os.sep, "/")
    text = (RESULTS / f"{stem}.md").read_text(encoding="utf-8")
    out = [f"# `{stem}`", "", f"`benchmarks/results/{stem}.md`, included as the benchmark script wrote it.", "",
           f"```{{include}} {rel}/{stem}.md", ":relative-images:", ":heading-offset: 1", "```", ""]
    shown = [p for p in plots if f"]({p})" not in text]
    if shown:
        out += ["## Plots", ""]
        out += [f"![{p}]({rel}/{p})\n" for p in shown]
    return "\n".join(out)


def results_index(stems: list[str]) -> str:
    out = ["# Benchmark results", "",
           "Every results file under `benchmarks/results/`, as its benchmark script last wrote it",
           "(rerunning a script updates its page on the next build). What each script measures:",
           "{doc}`../../benchmarks`.", "", "```{toctree}", ":maxdepth: 1", ""]
    out += stems
    out += ["```", ""]
    return "\n".join(out)


# --- API: the generated SciPy-style functions ----------------------------------------------
def solver_functions_rst() -> str:
    """The autosummary table of ``linsolve.<name>``, included by ``api.rst`` (its toctree is
    relative to ``api.rst``). autosummary does not scan included files for stubs to write, so
    :func:`solver_function_stub` writes them."""
    import linsolve

    names = linsolve.solver_function_names()
    return "\n".join([".. autosummary::", "   :toctree: _generated/api", "", *[f"   {n}" for n in names], ""])


def solver_function_stub(name: str) -> str:
    """The stub page autosummary would write for function ``linsolve.<name>``."""
    title = f"linsolve.{name}"
    return f"{title}\n{'=' * len(title)}\n\n.. currentmodule:: linsolve\n\n.. autofunction:: {name}\n"


def _prune(folder: Path, keep: set[str]) -> None:
    """Delete the pages in ``folder`` not in ``keep``: a page left from a solver, model or
    results file that is gone would be in no toctree, which is a warning (an error under -W)."""
    for p in folder.glob("*"):
        if p.is_file() and p.name not in keep:
            p.unlink()


def generate(app=None) -> None:
    """Write every generated page under ``docs/_generated``."""
    import shutil

    import linsolve

    _write(GENERATED / "solvers.md", solvers_page())
    _write(GENERATED / "families.md", families_page())
    _write(GENERATED / "models.md", models_page())
    cards = {r["name"]: r["card"] for r in model_rows() if r["card"]}
    for name, card in cards.items():
        _write(GENERATED / "cards" / f"{name}.md", card_page(name, card))
    _prune(GENERATED / "cards", {f"{name}.md" for name in cards})
    stems = result_stems()
    plots = result_plots(stems)
    for stem in stems:
        _write(GENERATED / "results" / f"{stem}.md", result_page(stem, plots[stem]))
    _write(GENERATED / "results" / "index.md", results_index(stems))
    _prune(GENERATED / "results", {f"{stem}.md" for stem in stems} | {"index.md"})
    _write(GENERATED / "api_solver_functions.rst.inc", solver_functions_rst())
    # autosummary rewrites the stubs of api.rst's entries after this; clearing the folder
    # first drops the stubs of entries that were removed
    shutil.rmtree(GENERATED / "api", ignore_errors=True)
    for name in linsolve.solver_function_names():
        _write(GENERATED / "api" / f"linsolve.{name}.rst", solver_function_stub(name))


def setup(app):
    # before autosummary (priority 500), which reads the generated autosummary list
    app.connect("builder-inited", generate, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
