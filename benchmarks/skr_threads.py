"""Equal thread counts for the SKR benchmarks (``benchmarks/skr*.py``), and a record of them.

Import this module before NumPy: it sets every thread-count variable that the libraries read
at load time to ``SKR_THREADS`` (default 1) unless the caller set it already, so that the
competitors run on the same number of cores. PETSc runs in this one process (no MPI ranks,
and its own kernels are sequential); BLAS is OpenBLAS, loaded twice (NumPy's and SciPy's,
which numba's ``np.dot`` calls); numba's kernels here are not parallel, but its thread pool
is pinned too; PyTorch is not used by these benchmarks. ``threads()`` reads the counts back
from the loaded libraries, for the results file.
"""
from __future__ import annotations

import os

THREADS = os.environ.get("SKR_THREADS", "1")
VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
for _v in VARIABLES:
    os.environ.setdefault(_v, THREADS)


def _openblas_threads() -> dict:
    """Threads of every OpenBLAS this process has loaded (read from the library itself)."""
    import ctypes

    out = {}
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        return {"openblas": "unknown (no /proc/self/maps)"}
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                     "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(handle, name, None)
            if fn is not None:
                out[os.path.basename(lib)] = int(fn())
                break
    return out


def threads() -> dict:
    """Thread counts as the loaded libraries report them, plus the environment variables."""
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS)
    import scipy.linalg  # noqa: F401  (loads SciPy's)

    info = {"env": {v: os.environ.get(v) for v in VARIABLES}, "blas": _openblas_threads()}
    try:
        import numba

        info["numba"] = numba.get_num_threads()
    except ImportError:
        info["numba"] = None
    try:
        from petsc4py import PETSc

        info["petsc_processes"] = PETSc.COMM_WORLD.getSize()
    except ImportError:
        info["petsc_processes"] = None
    info["torch"] = "not used"
    return info


def describe(info: dict) -> str:
    """One line for the Markdown results."""
    blas = ", ".join(f"{k} {v}" for k, v in info["blas"].items()) or "unknown"
    return (f"Threads: BLAS {blas}; numba {info['numba']}; PETSc {info['petsc_processes']} process(es), "
            f"sequential kernels; OMP_NUM_THREADS={info['env']['OMP_NUM_THREADS']}; PyTorch not used.")
