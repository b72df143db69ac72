"""Assembly time of every problem family (sample + assemble one system), and the direct CSR
construction of the finite-volume Darcy matrix against the usual COO -> CSR route on the
same coefficient field, side by side in one process.

    python -m benchmarks.bench_family_assembly [--grid 128] [--repeat 15] [--threads 1]

Target (issue 3): a 128 x 128 darcy system in a few milliseconds.
"""
from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from benchmarks.common import markdown_table, median_time, set_threads, thread_count, write_results
from datagen import get_family
from datagen.stencils import Mesh, fv_diffusion


def coo_fv_diffusion(K: np.ndarray) -> sp.csr_matrix:
    """The textbook vectorised route: row/col/value triplets per direction, then COO -> CSR
    (sorting and duplicate summation). Same matrix as ``fv_diffusion`` on the unit square."""
    n0, n1 = K.shape
    h0, h1 = 1.0 / n0, 1.0 / n1
    idx = np.arange(K.size).reshape(K.shape)
    rows, cols, vals = [], [], []
    diag = np.zeros(K.shape)
    for axis, h in ((0, h0), (1, h1)):
        lo = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        hi = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        T = 2 * K[lo] * K[hi] / (K[lo] + K[hi]) / h**2
        diag[lo] += T
        diag[hi] += T
        rows += [idx[lo].ravel(), idx[hi].ravel()]
        cols += [idx[hi].ravel(), idx[lo].ravel()]
        vals += [-T.ravel(), -T.ravel()]
        for edge in (0, -1):
            sl = (edge, slice(None)) if axis == 0 else (slice(None), edge)
            diag[sl] += 2 * K[sl] / h**2
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel())
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(K.size, K.size)).tocsr()


FAMILIES = [("darcy", {}), ("darcy", {"stencil": "skr"}), ("helmholtz", {"k": 32.0}),
            ("helmholtz", {"variant": "skr"}), ("poisson", {}), ("thermal", {}), ("heat", {})]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--threads", type=thread_count, default=1, help="threads of NumPy/SciPy's BLAS and numba")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    n, rep = args.grid, args.repeat
    rng = np.random.default_rng(0)

    rows = []
    for name, kw in FAMILIES:
        # thermal: square cells with the slot on cell faces and about n^2 cells in all
        nx = max(20, round(n * 0.8 / 20) * 20)
        grid = (nx, nx * 8 // 5) if name == "thermal" else n
        fam = get_family(name)(grid=grid, **kw)
        params = fam.sample(rep, rng)
        fam.assemble(params[0])  # build shared matrices / warm caches once
        it = iter(params[1:] + params[:1])
        t_asm, sysm = median_time(lambda: fam.assemble(next(it)), repeat=rep)  # noqa: B023
        t_smp, _ = median_time(lambda: fam.sample(1, rng), repeat=rep)  # noqa: B023
        label = name + "".join(f" {k}={v}" for k, v in kw.items())
        rows.append({"family": label, "grid": "x".join(map(str, fam.grid)), "unknowns": sysm.A.shape[0],
                     "nnz": int(sysm.A.nnz), "sample_ms": 1e3 * t_smp, "assemble_ms": 1e3 * t_asm})

    # Same K, two assembly routes; check they agree before timing.
    K = get_family("darcy")(grid=n).sample(1, np.random.default_rng(1))[0]["a"]
    mesh = Mesh((n, n))
    A_direct, A_coo = fv_diffusion(mesh, K), coo_fv_diffusion(K)
    assert abs(A_direct - A_coo).max() <= 1e-12 * abs(A_coo).max()
    t_direct, _ = median_time(lambda: fv_diffusion(mesh, K), repeat=rep)
    t_coo, _ = median_time(lambda: coo_fv_diffusion(K), repeat=rep)
    compare = [{"route": "direct CSR (datagen.stencils.fv_diffusion)", "ms": 1e3 * t_direct, "ratio": 1.0},
               {"route": "COO -> CSR (scipy)", "ms": 1e3 * t_coo, "ratio": t_coo / t_direct}]

    darcy_ms = next(r["assemble_ms"] for r in rows if r["family"] == "darcy")
    target = {"darcy_128_assemble_ms": darcy_ms, "target_ms": 5.0, "met": bool(darcy_ms <= 5.0 or n != 128)}
    md = (f"# Family assembly ({rep} repeats, medians)\n\n" + markdown_table(rows) +
          f"\n## FV Darcy matrix, {n}x{n}: direct CSR vs COO\n\n" + markdown_table(compare) +
          f"\nTarget: 128x128 darcy assembly in a few ms (<= 5 ms): {darcy_ms:.2f} ms, "
          f"{'met' if target['met'] else 'missed'}.\n")
    write_results("family_assembly", {"grid": n, "repeat": rep, "families": rows, "fv_routes": compare,
                                      "target": target}, md)
    print(md)


if __name__ == "__main__":
    main()
