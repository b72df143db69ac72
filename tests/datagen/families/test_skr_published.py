"""The ``skr_published`` stencil of darcy/helmholtz: the matrices of the SKR paper's
published generator (github.com/wanghong1700/NO-DataGen-SKR), checked entry by entry
against the rule its ``scipy.sparse.diags`` call produces, written out here as a loop."""
import numpy as np
import pytest

from datagen.family import FamilyError, get_family
from linsolve import gallery


def published_rule(a_full: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Dense reference, one entry at a time. Rows are interior nodes (i, j) in row-major
    order, R = i n + j. The generator passes diags() the east/west/south neighbour's
    coefficient and, for the north coupling (offset -n), the flattened
    ``a_full[:-2, 1:-1]`` started at position n - 2, so row R receives entry R - 2 of
    that vector (diags() drops the two surplus entries at the end)."""
    n = a_full.shape[0] - 2
    north = a_full[:-2, 1:-1].reshape(-1)
    A = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            R = i * n + j
            A[R, R] = 4.0 * a_full[i + 1, j + 1] - shift
            if j > 0:
                A[R, R - 1] = -a_full[i + 1, j]
            if j < n - 1:
                A[R, R + 1] = -a_full[i + 1, j + 2]
            if i < n - 1:
                A[R, R + n] = -a_full[i + 2, j + 1]
            if i > 0:
                A[R, R - n] = -north[R - 2]
    return A


def _darcy(**kw):
    return get_family("darcy")(stencil="skr_published", **kw)


def _helm(**kw):
    return get_family("helmholtz")(variant="skr", stencil="skr_published", **kw)


@pytest.mark.parametrize("n", [4, 7])
def test_darcy_published_matches_entrywise_rule(n):
    a = np.random.default_rng(n).uniform(0.5, 3.0, (n + 2, n + 2))
    s = _darcy(grid=n, f=2.0).assemble({"a": a})
    np.testing.assert_allclose(s.A.toarray(), published_rule(a), rtol=1e-15, atol=0)
    np.testing.assert_allclose(s.b, 2.0 / (n - 1) ** 2)
    assert s.meta["stencil"] == "skr_published" and s.A.shape == (n * n, n * n)


def test_darcy_published_4x4_hand_entries():
    a = np.arange(36, dtype=float).reshape(6, 6) + 1.0  # a[i, j] = 6 i + j + 1 on the padded grid
    A = _darcy(grid=4).assemble({"a": a}).A.toarray()
    # row R = 5 is node (1, 1) of the interior, padded (2, 2): diagonal 4 a[2, 2] = 60
    assert A[5, 5] == 60.0
    assert A[5, 4] == -a[2, 1] and A[5, 6] == -a[2, 3] and A[5, 9] == -a[3, 2]
    # north coupling: the neighbour's value would be a[1, 2] = 9; two entries back in the
    # flattened a[:-2, 1:-1] wraps to the end of its previous row: a[0, 4] = 5
    assert A[5, 1] == -5.0
    assert A[6, 2] == -a[1, 1]  # node (1, 2), padded (2, 3): a[1, 1] instead of a[1, 3]
    # row 4 = node (1, 0): two entries back wraps to the end of the previous interior row, a[0, 3]
    assert A[4, 0] == -a[0, 3]
    assert A[4, 3] == 0.0 and A[3, 4] == 0.0  # no coupling across the row ends


def test_darcy_published_differs_from_skr_only_in_the_north_coupling():
    n = 6
    fam = _darcy(grid=n)
    (p,) = fam.sample(1, np.random.default_rng(5))
    A = fam.assemble(p).A.toarray()
    inner = fam.input_fields(p)["a"]
    B = get_family("darcy")(grid=n, stencil="skr").assemble({"a": inner}).A.toarray()
    D = A - B
    rows, cols = np.nonzero(np.abs(D) > 1e-14)
    assert rows.size > 0 and set((rows - cols).tolist()) == {n}
    # the same coefficient in every node: the slip has no effect and both are 3 L
    c = _darcy(grid=n).assemble({"a": np.full((n + 2, n + 2), 3.0)}).A.toarray()
    np.testing.assert_allclose(c, 3.0 * gallery.poisson2d(n).toarray(), rtol=1e-15)


def test_darcy_published_can_be_indefinite_where_skr_is_not():
    n = 16
    fam = _darcy(grid=n)
    (p,) = fam.sample(1, np.random.default_rng(1))
    pub = np.linalg.eigvals(fam.assemble(p).A.toarray())
    skr = np.linalg.eigvals(get_family("darcy")(grid=n, stencil="skr").assemble(
        {"a": fam.input_fields(p)["a"]}).A.toarray())
    assert skr.real.min() > 0.05  # similar to D^1/2 L D^1/2
    assert pub.real.min() < -0.01


def test_darcy_published_sampling():
    n = 10
    fam = _darcy(grid=n)
    ps = fam.sample(3, np.random.default_rng(2))
    again = fam.sample(3, np.random.default_rng(2))
    for p, q in zip(ps, again, strict=True):
        np.testing.assert_array_equal(p["a"], q["a"])
        assert p["a"].shape == (n + 2, n + 2) and np.all(p["a"] > 0)
        # FNO's field drops the mean mode: log a averages to zero over the periodic padded grid
        assert abs(np.log(p["a"]).mean()) < 1e-12
        assert fam.input_fields(p)["a"].shape == (n, n)
        np.testing.assert_array_equal(fam.input_fields(p)["a"], p["a"][1:-1, 1:-1])
        assert fam.features(p).shape == ((n + 2) ** 2,)
    assert np.std(np.log(ps[0]["a"])) > 0.1
    assert fam.coordinates()["x"].shape == (n,) and fam.coefficient_shape() == (n + 2, n + 2)
    # existing stencils keep the unpadded field with its mean mode
    (q,) = get_family("darcy")(grid=n, stencil="skr").sample(1, np.random.default_rng(2))
    assert q["a"].shape == (n, n)


def test_darcy_published_callable_coefficient_on_padded_nodes():
    n = 5
    s = _darcy(grid=n).assemble_fields(lambda x, y: 1.0 + x + 2.0 * y, 1.0)
    x = np.arange(n + 2) / (n + 1)
    X, Y = np.meshgrid(x, x, indexing="ij")
    np.testing.assert_allclose(s.A.toarray(), published_rule(1.0 + X + 2.0 * Y), rtol=1e-14)


def test_helmholtz_published():
    n = 6
    fam = _helm(grid=n)
    ps = fam.sample(4, np.random.default_rng(3))
    for p in ps:
        assert 0 <= p["k"] < 1 and p["a"].shape == (n + 2, n + 2)
        s = fam.assemble(p)
        h = 1.0 / (n - 1)
        np.testing.assert_allclose(s.A.toarray(), published_rule(p["a"], shift=h**2 * p["k"] ** 2), rtol=1e-14)
        np.testing.assert_allclose(s.b, h**2)
        # the published ordering compares the coefficient fields only
        np.testing.assert_array_equal(fam.features(p), p["a"].reshape(-1))
    assert fam.input_fields(ps[0])["a"].shape == (n, n)
    # other variants are untouched: skr keeps k in the features and its unpadded field
    q = get_family("helmholtz")(grid=n, variant="skr").sample(1, np.random.default_rng(3))[0]
    assert get_family("helmholtz")(grid=n, variant="skr").features(q).shape == (n * n + 1,)


@pytest.mark.parametrize("make,word", [
    (lambda: get_family("darcy")(grid=(4, 4, 4), stencil="skr_published"), "square"),
    (lambda: get_family("darcy")(grid=(6, 5), stencil="skr_published"), "square"),
    (lambda: get_family("darcy")(grid=2, stencil="skr_published"), "3 x 3"),
    (lambda: get_family("helmholtz")(grid=40, stencil="skr_published"), "variant=skr"),
])
def test_published_bad_grids(make, word):
    with pytest.raises(FamilyError, match=word):
        make()


def test_published_bad_fields():
    fam = _darcy(grid=5)
    with pytest.raises(FamilyError, match=r"shape \(5, 5\).*\(7, 7\)"):
        fam.assemble({"a": np.ones((5, 5))})
    with pytest.raises(FamilyError, match="positive"):
        fam.assemble({"a": -np.ones((7, 7))})
    with pytest.raises(FamilyError, match="homogeneous"):
        fam.assemble_fields(np.ones((7, 7)), 1.0, g=1.0)
    with pytest.raises(FamilyError, match="wavenumber"):
        _helm(grid=5).assemble({"a": np.ones((7, 7)), "k": -1.0})
