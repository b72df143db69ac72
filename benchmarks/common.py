"""Shared plumbing for benchmarks: machine description, equal thread counts for every
competitor, repeated timing with medians, and writing results as JSON plus a Markdown table
under benchmarks/results/.

Thread counts: every benchmark runs its competitors on the same number of threads
(``--threads``, default 1) through ``set_threads``, and ``write_results`` records what
``thread_counts`` reads back from the loaded libraries. Importing this module before NumPy
(``python -m benchmarks.NAME`` imports the ``benchmarks`` package, which imports it, first)
also sets the thread variables that OpenMP, OpenBLAS and MKL read only when they load.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: where results go; BENCH_RESULTS_DIR redirects a smoke run away from the committed results
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")

#: variables that OpenMP (PyTorch's intra-op pool), OpenBLAS and MKL read once, when they load
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_BLAS_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
             "openblas_set_num_threads64_", "openblas_set_num_threads")
_REQUESTED: list[int] = []  # the count of the last set_threads call, for thread_counts
_BLAS_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
             "openblas_get_num_threads64_", "openblas_get_num_threads")


def thread_count(text: str) -> int:
    """``argparse`` type of ``--threads``: a positive integer, else a one-line usage error.

    Examples
    --------
    >>> thread_count("2")
    2
    """
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def requested_threads(argv: list[str] | None = None, default: int = 1) -> int:
    """The thread count a benchmark was asked for before it parses its options: the value of
    ``--threads N`` (or ``--threads=N``) in ``argv`` (default ``sys.argv``), else the
    ``BENCH_THREADS`` variable, else ``default``."""
    argv = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value is not None and value.isdigit() and int(value) >= 1:
            return int(value)
    env = os.environ.get("BENCH_THREADS", "")
    return int(env) if env.isdigit() and int(env) >= 1 else default


def preset_thread_env(n: int | None = None) -> None:
    """Set ``THREAD_ENV`` to ``n`` (default ``requested_threads()``) while NumPy is not loaded
    yet; an explicit ``--threads`` overrides the environment, otherwise a value already set
    is kept. Later changes go through ``set_threads``, which acts on the loaded libraries."""
    if "numpy" in sys.modules:
        return
    explicit = n is not None or any(a == "--threads" or a.startswith("--threads=") for a in sys.argv[1:])
    value = str(n if n is not None else requested_threads())
    for var in THREAD_ENV:
        if explicit:
            os.environ[var] = value
        else:
            os.environ.setdefault(var, value)


def _openblas_libs() -> list[str]:
    """Paths of every OpenBLAS loaded in this process (NumPy's and SciPy's are separate
    copies), from /proc/self/maps; empty where that file does not exist."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({ln.split()[-1] for ln in f
                           if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        return []


def _blas_call(names: tuple[str, ...], *args) -> dict:
    out = {}
    for lib in _openblas_libs():
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in names:
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int if not args else None
                out[os.path.basename(lib)] = fn(*args) if args else int(fn())
                break
    return out


def set_threads(n: int, torch: bool | None = None) -> dict:
    """Run every library this process uses on ``n`` threads; return ``thread_counts()``.

    Sets ``THREAD_ENV`` (read by libraries loaded later and by child processes), every loaded
    OpenBLAS through its C API (``openblas_set_num_threads``), numba's thread count (its pool,
    ``NUMBA_NUM_THREADS``, stays as large as it started, all cores by default), and
    PyTorch's intra-op and inter-op threads (PyTorch takes the inter-op count once per
    process, before its first inter-op work; a later call leaves it, and the returned record
    shows it). PETSc needs nothing: the benchmarks run it in one
    process, and its kernels are sequential (no OpenMP in this build; ``thread_counts`` says).

    Parameters
    ----------
    n : int
        Threads for every library, at least 1.
    torch : bool or None
        Set PyTorch's threads: None (default) where PyTorch is imported or importable (a
        library may import it later, and it defaults to all cores), False never.

    Returns
    -------
    dict
        ``thread_counts()`` after the change.

    Raises
    ------
    ValueError
        ``n`` is not a positive integer.

    Examples
    --------
    >>> set(set_threads(1)["openblas"].values())
    {1}
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    _REQUESTED[:] = [n]
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's)

    _blas_call(_BLAS_SET, ctypes.c_int(n))
    if "numba" not in sys.modules and n > (os.cpu_count() or 1):
        os.environ["NUMBA_NUM_THREADS"] = str(n)  # numba's pool, all cores by default, caps its count
    if importlib.util.find_spec("numba") is not None:
        import numba

        if n > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads={n} exceeds numba's pool of {numba.config.NUMBA_NUM_THREADS} "
                             "(NUMBA_NUM_THREADS, fixed when numba started)")
        numba.set_num_threads(n)
    if torch is None:
        torch = "torch" in sys.modules or importlib.util.find_spec("torch") is not None
    if torch:
        import torch as _torch

        _torch.set_num_threads(n)
        try:
            _torch.set_num_interop_threads(n)
        except RuntimeError:  # allowed once, before any inter-op work; thread_counts tells
            pass
    return thread_counts()


def thread_counts(requested: int | None = None) -> dict:
    """The thread counts in effect, as the loaded libraries report them.

    Parameters
    ----------
    requested : int or None
        The count asked for, recorded beside the readings (default: that of the last
        ``set_threads`` call, None if there was none).

    Returns
    -------
    dict
        ``openblas`` (threads of each loaded OpenBLAS, from ``openblas_get_num_threads``),
        ``numba``, ``torch_intra_op`` and ``torch_inter_op`` (or "not loaded"), ``petsc``
        (processes in ``COMM_WORLD`` and whether the build has OpenMP), and ``env``
        (``THREAD_ENV`` and ``NUMBA_NUM_THREADS``).

    Examples
    --------
    >>> _ = set_threads(1)
    >>> thread_counts()["env"]["OMP_NUM_THREADS"]
    '1'
    """
    if requested is None and _REQUESTED:
        requested = _REQUESTED[0]
    info: dict = {"requested": requested,
                  "env": {v: os.environ.get(v) for v in (*THREAD_ENV, "NUMBA_NUM_THREADS")},
                  "openblas": _blas_call(_BLAS_GET)}
    numba = sys.modules.get("numba")
    info["numba"] = numba.get_num_threads() if numba is not None else "not loaded"
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_intra_op"], info["torch_inter_op"] = torch.get_num_threads(), torch.get_num_interop_threads()
    else:
        info["torch_intra_op"] = info["torch_inter_op"] = "not loaded"
    petsc = sys.modules.get("petsc4py.PETSc")
    if petsc is not None:
        info["petsc"] = {"processes": petsc.COMM_WORLD.getSize(), "openmp": bool(petsc.Sys.hasExternalPackage("openmp"))}
    else:
        info["petsc"] = "not loaded"
    return info


def describe_threads(info: dict) -> str:
    """One line for a Markdown header: the thread counts of ``thread_counts()``, or of an
    older record that earlier results files hold (re-rendered by some benchmarks)."""
    if "openblas" not in info and "blas" not in info:  # an older record: print it as it is
        return "Threads: " + ", ".join(f"{k} {v}" for k, v in info.items()) + "."
    if "blas" in info:  # the SKR benchmarks' record before thread_counts existed
        blas = ", ".join(f"{k} {v}" for k, v in info["blas"].items()) or "unknown"
        return (f"Threads: BLAS {blas}; numba {info['numba']}; PETSc {info['petsc_processes']} process(es), "
                f"sequential kernels; OMP_NUM_THREADS={info['env']['OMP_NUM_THREADS']}; PyTorch not used.")
    blas = ", ".join(f"{k.split('-')[0].removeprefix('lib')} {v}" for k, v in info["openblas"].items()) or "none loaded"
    petsc = info["petsc"]
    petsc = (f"{petsc['processes']} process(es){', OpenMP' if petsc['openmp'] else ', sequential kernels'}"
             if isinstance(petsc, dict) else petsc)
    asked = f"{info['requested']} requested; " if info.get("requested") is not None else ""
    return (f"Threads: {asked}OpenBLAS {blas}; numba {info['numba']}; PyTorch intra-op {info['torch_intra_op']}, "
            f"inter-op {info['torch_inter_op']}; PETSc {petsc}; OMP_NUM_THREADS={info['env']['OMP_NUM_THREADS']}.")


preset_thread_env()


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                            text=True, check=False).stdout.strip()
    except OSError:
        pass
    import numpy
    import scipy

    info["numpy"], info["scipy"] = numpy.__version__, scipy.__version__
    try:
        from petsc4py import PETSc

        info["petsc"] = ".".join(map(str, PETSc.Sys.getVersion()))
    except ImportError:
        info["petsc"] = None
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return info


def median_time(fn, repeat: int = 3):
    """Run ``fn`` ``repeat`` times; return (median seconds, last return value)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, payload: dict, markdown: str, threads: dict | None = None) -> tuple[Path, Path]:
    """Write benchmarks/results/<name>.json and <name>.md with the machine description and the
    thread counts (``threads``, default ``thread_counts()`` of this process now, after the
    competitors loaded their libraries; pass the competitors' own where they ran in other
    processes) in the JSON and the Markdown header."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    threads = thread_counts() if threads is None else threads
    payload = {"machine": machine(), "thread_counts": threads, **payload}
    jpath, mpath = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    jpath.write_text(json.dumps(payload, indent=1, default=float))
    m = payload["machine"]
    header = (f"Machine: {m.get('cpu_model', m['processor'])}, {m['cpus']} CPUs, {m.get('mem_total', '?')}, "
              f"Python {m['python']}, NumPy {m['numpy']}, SciPy {m['scipy']}, PETSc {m['petsc']}; "
              f"commit {m.get('git_commit', '?')}, {m['date']}.\n{describe_threads(threads)}\n\n")
    mpath.write_text(header + markdown)
    return jpath, mpath
