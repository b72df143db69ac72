"""The compiled Givens update against an independent reference: NumPy's QR and least squares
of the same Hessenberg matrix."""
import numpy as np
import pytest

from linsolve.recycling.givens_kernels import givens_column


@pytest.mark.parametrize("off", [0, 3])
def test_givens_column_matches_qr_and_lstsq(off):
    rng = np.random.default_rng(7)
    m, beta = 12, 2.5
    H = np.triu(rng.standard_normal((m + 1, m)), -1)  # upper Hessenberg
    cs, sn, Rt = np.empty(m), np.empty(m), np.zeros((m, m))
    g = np.zeros(m + 1)
    g[0] = beta
    for jj in range(m):
        # the kernel reads the column after ``off`` leading entries (GCRO-DR's C rows)
        h = np.concatenate([rng.standard_normal(off), H[:jj + 1, jj]])
        est, colnorm = givens_column(h, off, H[jj + 1, jj], jj, cs, sn, Rt, g)
        rhs = np.zeros(jj + 2)
        rhs[0] = beta
        y, *_ = np.linalg.lstsq(H[:jj + 2, :jj + 1], rhs, rcond=None)
        assert est == pytest.approx(np.linalg.norm(rhs - H[:jj + 2, :jj + 1] @ y), rel=1e-10, abs=1e-13)
        assert colnorm == pytest.approx(np.linalg.norm(H[:jj + 2, jj]), rel=1e-13)
    R = np.linalg.qr(H, mode="r")
    assert np.allclose(np.abs(Rt), np.abs(R), atol=1e-12)
    y = np.linalg.solve(np.triu(Rt), g[:m])
    assert np.allclose(y, np.linalg.lstsq(H, np.eye(m + 1)[0] * beta, rcond=None)[0], atol=1e-10)
