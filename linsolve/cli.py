"""The ``linsolve`` command: ``linsolve solvers`` lists the registry, ``linsolve bench``
compares solvers side by side on a matrix file.

Bad input exits with status 2 and one line on stderr naming the problem.

Under ``mpiexec -n P`` (P > 1) ``linsolve bench`` distributes the matrix over the P
processes: a PETSc binary file is loaded in parallel (MatLoad, PETSc's row distribution);
a MatrixMarket or .npz file is read by every process, which keeps its own rows. Each solve's
time is the slowest process's, and process 0 alone prints the table, writes --json and
reports errors.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import typer

from linsolve.cli_support import check_output_path, print_table, run_app
from linsolve.core.errors import SolverError
from linsolve.core.spec import parse_solver_spec, split_solver_options

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Sparse linear solvers behind one interface: list them, benchmark them.")


class CLIError(SolverError):
    pass


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
            from linsolve.petsc_support.utils import aij_to_csr, petsc

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


def mpi_world_size() -> int:
    """Processes of the MPI job this process was started in (1 outside ``mpiexec``), from the
    launcher's environment (MPICH's Hydra: PMI_SIZE; Open MPI; PMIx), so that a run outside
    mpiexec never initialises PETSc or MPI for it."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


def mpi_world_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 0


class _Distributed:
    """The bench's matrix spread over PETSc's COMM_WORLD."""

    def __init__(self):
        from linsolve.petsc_support.parallel import Layout
        from linsolve.petsc_support.utils import petsc

        self.PETSc = petsc("linsolve bench under mpiexec")
        self.comm = self.PETSc.COMM_WORLD
        self.rank, self.size = self.comm.getRank(), self.comm.getSize()
        self.layout = Layout(0, 0, self.comm)  # the global sums and maxima

    def collective(self, fn):
        """``fn()`` on process 0; its error is raised on every process (the others would
        otherwise wait for process 0 in the first solve; only process 0's line is printed)."""
        err = None
        if self.rank == 0:
            try:
                fn()
            except SolverError as exc:
                err = exc
        if self.layout.any(err is not None):
            raise err if err is not None else CLIError("failed on MPI process 0")

    def load(self, path: Path):
        """The matrix of ``path`` as an MPIAIJ Mat with PETSc's row distribution."""
        PETSc = self.PETSc
        name = path.name.lower()
        if name.endswith((".petsc", ".dat", ".bin")):
            self.collective(lambda: _check_file(path, "matrix"))
            try:
                viewer = PETSc.Viewer().createBinary(str(path), "r", comm=self.comm)
                M = PETSc.Mat().create(comm=self.comm)
                M.setType(PETSc.Mat.Type.AIJ)
                M.load(viewer)
                viewer.destroy()
            except PETSc.Error as exc:
                raise CLIError(f"could not read matrix {str(path)!r}: PETSc error code {exc.ierr}") from None
            return M
        A = load_matrix(path)  # every process reads the file and keeps its rows
        if A.shape[0] != A.shape[1]:
            raise CLIError(f"matrix {str(path)!r} is not square: {A.shape}")
        n = A.shape[0]
        nl = n // self.size + (1 if self.rank < n % self.size else 0)  # PetscSplitOwnership
        start = sum(n // self.size + (1 if r < n % self.size else 0) for r in range(self.rank))
        loc = A[start:start + nl].tocsr()
        loc.sort_indices()
        it = PETSc.IntType
        M = PETSc.Mat().createAIJ(size=((nl, n), (nl, n)), csr=(loc.indptr.astype(it), loc.indices.astype(it),
                                                               loc.data.astype(PETSc.ScalarType)), comm=self.comm)
        M.assemble()
        return M

    def rhs(self, M, path: Path | None):
        if path is None:  # A @ ones, as in a serial run
            ones, b = M.createVecs()
            ones.set(1.0)
            M.mult(ones, b)
            return b
        s, e = M.getOwnershipRange()
        return load_rhs(path, M.getSize()[0])[s:e].copy()

    def slowest(self, seconds: float) -> float:
        return self.layout.max(seconds)


def _check_file(path: Path, what: str):
    if not path.exists():
        raise CLIError(f"{what} file {str(path)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"{what} file {str(path)!r} is a directory")


def run_bench(A, b, specs: list[str], repeat: int, rtol: float, atol: float, maxiter: int | None,
              slowest=None) -> list[dict]:
    """Each spec's solver on (A, b), ``repeat`` times from a fresh solver; ``slowest`` maps a
    process's time to the slowest process's (distributed runs)."""
    from linsolve.core.registry import make_solver

    rows = []
    for spec in specs:
        name, opts = parse_solver_spec(spec)
        opts = split_solver_options(name, {"rtol": rtol, "atol": atol, "maxiter": maxiter, **opts})
        times, res = [], None
        for _ in range(repeat):
            solver = make_solver(name, **opts)  # fresh each repeat: no state carried over
            res = solver.solve(A, b)
            times.append(res.wall_time if slowest is None else slowest(res.wall_time))
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
    from linsolve.core.registry import available_solvers, solver_class

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
    """Solve one system with several solvers side by side and print a comparison table.
    Under ``mpiexec -n P`` the matrix is distributed over the P processes (see the module
    docstring) and process 0 reports."""
    from rich.console import Console
    from rich.table import Table

    specs = split_specs(solvers_)
    if not specs:
        raise CLIError(f"--solvers {solvers_!r} names no solver")
    dist = _Distributed() if mpi_world_size() > 1 else None
    if dist is not None and dist.size == 1:
        dist = None  # (a launcher's variables without a parallel MPI job)
    if dist is None:
        A = load_matrix(matrix)
        if A.shape[0] != A.shape[1]:
            raise CLIError(f"matrix {str(matrix)!r} is not square: {A.shape}")
        b = load_rhs(rhs, A.shape[0]) if rhs is not None else A @ np.ones(A.shape[0])
        n, nnz, slowest, report = A.shape[0], int(A.nnz), None, True
    else:
        A = dist.load(matrix)
        n, m = A.getSize()
        if n != m:
            raise CLIError(f"matrix {str(matrix)!r} is not square: {(n, m)}")
        b = dist.rhs(A, rhs)
        nnz = int(A.getInfo(dist.PETSc.Mat.InfoType.GLOBAL_SUM)["nz_used"])
        slowest, report = dist.slowest, dist.rank == 0
    if json_out is not None:  # before the solves, not after minutes of them
        check = lambda: check_output_path(json_out, "--json", replaces=False, error=CLIError)  # noqa: E731
        check() if dist is None else dist.collective(check)
    rows = run_bench(A, b, specs, repeat, rtol, atol, maxiter, slowest)
    if not report:
        return
    where = "" if dist is None else f", {dist.size} MPI processes (slowest process's time)"
    table = Table(title=f"{matrix.name}: n={n}, nnz={nnz}, rtol={rtol:g}, median of {repeat}{where}")
    for col in ("solver", "iterations", "time [s]", "x fastest", "rel. residual", "converged"):
        table.add_column(col, justify="right" if col != "solver" else "left")
    for r in rows:
        table.add_row(r["solver"], str(r["iterations"]), f"{r['time_s']:.4g}", f"{r['time_vs_fastest']:.2f}",
                      f"{r['relative_residual']:.2e}", "yes" if r["converged"] else f"NO ({r['reason']})")
    Console().print(table)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps({"matrix": str(matrix), "n": n, "nnz": nnz,
                                            "mpi_processes": 1 if dist is None else dist.size,
                                            "rows": rows}, indent=1))
        except OSError as exc:
            raise CLIError(f"cannot write --json {str(json_out)!r}: {exc.strerror or exc}") from None


class _WithoutErrorLine:
    """stderr of an MPI process other than 0: drops the one-line error that process 0 also
    prints (a bad option fails on every process), keeps everything else (PETSc's messages)."""

    def __init__(self, stream):
        self.stream, self._drop_newline = stream, False

    def write(self, text):
        if text.startswith("linsolve: error:"):
            self._drop_newline = True
            return len(text)
        if self._drop_newline and text == "\n":
            self._drop_newline = False
            return 1
        self._drop_newline = False
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def main(argv=None):
    if mpi_world_size() > 1 and mpi_world_rank() != 0:
        sys.stderr = _WithoutErrorLine(sys.stderr)
    run_app(app, "linsolve", argv)


if __name__ == "__main__":
    main()
