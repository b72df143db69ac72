"""The ``linsolve`` command: ``linsolve solvers`` lists the registry, ``linsolve bench``
compares solvers side by side on a matrix file.

Bad input exits with status 2 and one line on stderr naming the problem.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np
import typer

from .cli_support import check_output_path, print_table, run_app
from .errors import SolverError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sparse linear solvers behind one interface: list them, benchmark them.")


class CLIError(SolverError):
    pass


def parse_value(text: str):
    """'3' -> 3, '1e-8' -> 1e-8, 'true' -> True, '{"a": 1}' -> dict, else the string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise CLIError(f"malformed JSON option value {text!r}: {exc.msg}") from None
    return text


def parse_solver_spec(spec: str) -> tuple[str, dict]:
    """``cg:pc=amg:rtol=1e-8`` -> ("cg", {"pc": "amg", "rtol": 1e-8}). Options that are not
    Solver keywords (nor the solver's own) go to PETSc's options database for PETSc solvers."""
    # split only at a colon that starts the next key=value, so JSON values may hold colons
    # (cg:pc=ilutp:pc_options={"fill_factor": 2})
    name, _, rest = spec.partition(":")
    if not name:
        raise CLIError(f"empty solver specification {spec!r}")
    opts = {}
    for p in [p for p in re.split(r":(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)", rest) if p]:
        if "=" not in p:
            raise CLIError(f"solver option {p!r} in {spec!r} is not key=value")
        k, v = p.split("=", 1)
        opts[k.strip()] = parse_value(v)
    return name, opts


def split_specs(text: str) -> list[str]:
    """``--solvers`` split at the commas outside JSON values (``{...}``, ``[...]``, strings)."""
    specs, depth, quoted, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "{[":
            depth += 1
        elif not quoted and ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0 and not quoted:
            specs.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    specs.append("".join(cur))
    return [sp.strip() for sp in specs if sp.strip()]


def load_matrix(path: Path):
    """MatrixMarket (.mtx, .mtx.gz), SciPy .npz, or PETSc binary (.petsc, .dat, .bin)."""
    import scipy.io
    import scipy.sparse as sp

    if not path.exists():
        raise CLIError(f"matrix file {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"matrix file {str(path)!r} is a directory")
    name = path.name.lower()
    try:
        if name.endswith((".mtx", ".mtx.gz", ".mm")):
            return sp.csr_matrix(scipy.io.mmread(str(path)))
        if name.endswith(".npz"):
            return sp.load_npz(str(path)).tocsr()
        if name.endswith((".petsc", ".dat", ".bin")):
            from .petsc_utils import aij_to_csr, petsc

            PETSc = petsc("reading PETSc binary files")
            viewer = PETSc.Viewer().createBinary(str(path), "r", comm=PETSc.COMM_SELF)
            M = PETSc.Mat().create(comm=PETSc.COMM_SELF)
            M.load(viewer)
            return aij_to_csr(M)
    except SolverError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise CLIError(f"could not read matrix {str(path)!r}: {exc}") from None
    raise CLIError(f"unknown matrix format for {str(path)!r}; use .mtx, .npz or PETSc binary (.petsc/.dat/.bin)")


def load_rhs(path: Path, n: int) -> np.ndarray:
    import scipy.io

    if not path.exists():
        raise CLIError(f"right-hand side file {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"right-hand side file {str(path)!r} is a directory")
    try:
        if path.suffix == ".npy":
            b = np.load(str(path))
        elif path.name.endswith((".mtx", ".mm")):
            b = np.asarray(scipy.io.mmread(str(path)).todense() if hasattr(scipy.io.mmread(str(path)), "todense")
                           else scipy.io.mmread(str(path)))
        else:
            b = np.loadtxt(str(path))
        b = np.asarray(b)
        if np.iscomplexobj(b):  # a cast would drop the imaginary part with only a warning
            raise CLIError(f"right-hand side {str(path)!r} is complex ({b.dtype}); only real systems are supported")
        b = np.asarray(b, dtype=np.float64).reshape(-1)
    except SolverError:
        raise
    except Exception as exc:  # noqa: BLE001 - a parse failure or non-numeric entries
        raise CLIError(f"could not read right-hand side {str(path)!r}: {exc}") from None
    if b.shape[0] != n:
        raise CLIError(f"right-hand side has length {b.shape[0]} but the matrix is {n} x {n}")
    return b


def _split_options(name: str, opts: dict) -> dict:
    """Route unknown keys of PETSc-backed solvers into petsc_options."""
    from .registry import solver_class

    cls = solver_class(name)
    base_keys = {"rtol", "atol", "maxiter", "pc", "pc_options", "backend", "warm_start"}
    known = base_keys | set(cls.options)
    extra = {k: v for k, v in opts.items() if k not in known}
    if extra and "petsc_options" in cls.options:
        opts = {k: v for k, v in opts.items() if k in known}
        opts["petsc_options"] = {**(opts.get("petsc_options") or {}), **extra}
    return opts


def run_bench(A, b, specs: list[str], repeat: int, rtol: float, atol: float, maxiter: int | None) -> list[dict]:
    from .registry import make_solver

    rows = []
    for spec in specs:
        name, opts = parse_solver_spec(spec)
        opts = _split_options(name, {"rtol": rtol, "atol": atol, "maxiter": maxiter, **opts})
        times, res = [], None
        for _ in range(repeat):
            solver = make_solver(name, **opts)  # fresh each repeat: no state carried over
            res = solver.solve(A, b)
            times.append(res.wall_time)
        rows.append({"solver": spec, "iterations": res.iterations, "time_s": statistics.median(times),
                     "relative_residual": res.relative_residual, "converged": res.converged,
                     "reason": res.reason})
    best = min(r["time_s"] for r in rows)
    for r in rows:
        r["time_vs_fastest"] = r["time_s"] / best if best > 0 else float("nan")
    return rows


@app.command()
def solvers():
    """List registered solvers with their backends, preconditioners and options."""
    from .registry import available_solvers, solver_class

    rows = []
    for name in available_solvers():
        cls = solver_class(name)
        rows.append((name, ",".join(sorted(cls.supports)), ",".join(cls.backends), ",".join(cls.preconditioners),
                     ", ".join(f"{k}={v!r}" for k, v in cls.options.items())))
    print_table("linsolve solvers", ("name", "matrices", "backends", "preconditioners (tested)", "options"), rows)


@app.command()
def bench(
    matrix: Path = typer.Argument(..., help="MatrixMarket .mtx, SciPy .npz or PETSc binary file"),
    solvers_: str = typer.Option("cg,gmres,bicgstab", "--solvers",
                                 help="comma-separated specs NAME[:key=value...], e.g. cg:pc=amg,petsc:ksp_type=bcgs"),
    rhs: Path | None = typer.Option(None, "--rhs", help="right-hand side (.npy, .mtx or text); default A @ ones"),
    repeat: int = typer.Option(3, "--repeat", min=1, help="repeats; the median time is reported"),
    rtol: float = typer.Option(1e-8, "--rtol"),
    atol: float = typer.Option(0.0, "--atol"),
    maxiter: int | None = typer.Option(None, "--maxiter"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the table as JSON here"),
):
    """Solve one system with several solvers side by side and print a comparison table."""
    from rich.console import Console
    from rich.table import Table

    A = load_matrix(matrix)
    if A.shape[0] != A.shape[1]:
        raise CLIError(f"matrix {str(matrix)!r} is not square: {A.shape}")
    b = load_rhs(rhs, A.shape[0]) if rhs is not None else A @ np.ones(A.shape[0])
    specs = split_specs(solvers_)
    if not specs:
        raise CLIError(f"--solvers {solvers_!r} names no solver")
    if json_out is not None:  # before the solves, not after minutes of them
        check_output_path(json_out, "--json", replaces=False, error=CLIError)
    rows = run_bench(A, b, specs, repeat, rtol, atol, maxiter)
    table = Table(title=f"{matrix.name}: n={A.shape[0]}, nnz={A.nnz}, rtol={rtol:g}, median of {repeat}")
    for col in ("solver", "iterations", "time [s]", "x fastest", "rel. residual", "converged"):
        table.add_column(col, justify="right" if col != "solver" else "left")
    for r in rows:
        table.add_row(r["solver"], str(r["iterations"]), f"{r['time_s']:.4g}", f"{r['time_vs_fastest']:.2f}",
                      f"{r['relative_residual']:.2e}", "yes" if r["converged"] else f"NO ({r['reason']})")
    Console().print(table)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps({"matrix": str(matrix), "n": A.shape[0], "nnz": int(A.nnz),
                                            "rows": rows}, indent=1))
        except OSError as exc:
            raise CLIError(f"cannot write --json {str(json_out)!r}: {exc.strerror or exc}") from None


def main(argv=None):
    run_app(app, "linsolve", argv)


if __name__ == "__main__":
    main()
