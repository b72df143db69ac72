"""Review (session 3): orderings, solve_sequence and the channel-flow API from Python."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gold_ordering import gold_greedy

import linsolve
from linsolve import LinearSystem, OptionError, ShapeError, order_systems, solve_sequence
from linsolve.ordering import path_length


@pytest.mark.parametrize("memory", [1 << 28, 0])  # distance-matrix path and GEMV path
@pytest.mark.parametrize("offset", [1e6, -3e7])
def test_greedy_is_the_nearest_neighbour_walk_for_features_far_from_the_origin(memory, offset):
    # Parameters like a Reynolds number near 10^6 varying by 10^-3: the expanded distance
    # |x|^2 - 2 x.y + |y|^2 lost the gaps to rounding and the walk went astray.
    rng = np.random.default_rng(0)
    X = offset + 1e-3 * rng.standard_normal((50, 3))
    got = order_systems(X, "greedy", memory=memory)
    gold = gold_greedy(X)
    assert np.array_equal(got, gold)
    assert path_length(X, got) == pytest.approx(path_length(X, gold), rel=1e-12)


@pytest.mark.parametrize("memory", [1 << 28, 0])
def test_greedy_with_duplicate_and_near_duplicate_rows_matches_gold(memory):
    rng = np.random.default_rng(1)
    base = 100.0 * rng.standard_normal((12, 4))
    X = np.concatenate([base, base, base + 1e-9 * rng.standard_normal(base.shape)])
    X = X[rng.permutation(len(X))]
    assert np.array_equal(order_systems(X, "greedy", start=7, memory=memory), gold_greedy(X, start=7))


@pytest.mark.parametrize("method", ["greedy", "fft"])
@pytest.mark.parametrize("start", [True, 1.5, "1", None])
def test_start_that_is_not_an_index_is_an_option_error(method, start):
    # start=True gave [1, 0, 0, 0, 0] (D[:, True] masks every column): not a permutation
    X = np.random.default_rng(2).standard_normal((5, 3))
    with pytest.raises(OptionError, match="start"):
        order_systems(X, method, start=start)


def test_numpy_integer_start_is_accepted():
    X = np.random.default_rng(2).standard_normal((5, 3))
    assert np.array_equal(order_systems(X, "greedy", start=np.int64(3)), gold_greedy(X, start=3))


@pytest.mark.parametrize("option", ["fft_modes", "n_components", "curve_dims", "cell_size"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_fft_options_must_be_positive_integers(option, value):
    # cell_size=-1 walked no cell and returned uninitialised memory as the "order"
    F = np.random.default_rng(3).standard_normal((20, 8, 8))
    with pytest.raises(OptionError, match=option):
        order_systems(F, "fft", **{option: value})


def test_fft_seed_that_is_not_an_integer_is_an_option_error():
    with pytest.raises(OptionError, match="seed"):
        order_systems(np.random.default_rng(3).standard_normal((20, 8, 8)), "fft", seed="a")


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 4)])
@pytest.mark.parametrize("method", ["greedy", "fft"])
def test_complex_features_are_refused_by_every_method(shape, method):
    # the fft method cast (N, nx, ny) complex fields to real with only a ComplexWarning
    rng = np.random.default_rng(4)
    F = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ShapeError, match="complex"):
            order_systems(F, method)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.bool_])
@pytest.mark.parametrize("method", ["greedy", "fft"])
def test_other_real_dtypes_give_a_permutation(dtype, method):
    F = (np.random.default_rng(5).standard_normal((30, 8, 8)) * 4).astype(dtype)
    o = order_systems(F, method, start=4)
    assert o[0] == 4 and np.array_equal(np.sort(o), np.arange(30))
    if method == "greedy":
        assert np.array_equal(o, gold_greedy(F.astype(np.float64), start=4))


def _sequence(N=4, seed=0):
    import scipy.sparse as sp

    from linsolve import gallery
    rng = np.random.default_rng(seed)
    A = gallery.poisson2d(6)
    return [(A + 0.1 * i * sp.identity(A.shape[0]), rng.standard_normal(A.shape[0])) for i in range(N)]


@pytest.mark.parametrize("order", [None, [3, 2, 1, 0]])
def test_ordering_options_with_no_ordering_method_are_refused(order):
    # start=2 was dropped without a word when order was None or a permutation
    with pytest.raises(OptionError, match="start"):
        solve_sequence("cg", _sequence(), order=order, start=2)


def test_ordering_options_with_a_method_are_used():
    seq = solve_sequence("cg", _sequence(), order="greedy", features=[[0.0], [1.0], [2.0], [3.0]], start=2)
    assert seq.order.tolist() == [2, 1, 0, 3]


def test_scalar_features_are_a_shape_error():
    with pytest.raises(ShapeError, match="features describe 0 systems"):
        solve_sequence("cg", _sequence(), order="greedy", features=3.0)


def test_meta_features_of_different_sizes_are_a_shape_error():
    systems = [LinearSystem(A, b, meta={"features": np.zeros(1 + (i == 2))}) for i, (A, b) in enumerate(_sequence())]
    with pytest.raises(ShapeError, match="same size"):
        solve_sequence("cg", systems, order="greedy")


def test_results_come_back_in_the_original_order_with_warm_start_along_the_order():
    # each result is the solution of its own system (dense reference); a repeated system
    # solved right after its twin starts from that solution and needs no iteration
    systems = _sequence(5)
    systems.append((systems[1][0].copy(), systems[1][1].copy()))
    order = [5, 1, 0, 4, 2, 3]
    seq = solve_sequence(linsolve.make_solver("cg", warm_start=True, rtol=1e-10), systems, order=order)
    assert seq.order.tolist() == order
    for (A, b), r in zip(systems, seq.results, strict=True):
        assert np.allclose(r.x, np.linalg.solve(A.toarray(), b), rtol=1e-8, atol=1e-10)
    assert seq.results[1].iterations == 0 and seq.results[5].iterations > 0


# --- the channel-flow API from Python ---------------------------------------------------
_G = dict(nx=8, ny=16, nz=8)


@pytest.mark.parametrize("kw, needle", [
    (dict(cfl_limit=float("nan")), "cfl_limit"),   # switched the CFL blow-up check off
    (dict(cfl_limit=-1.0), "cfl_limit"),
    (dict(ub=float("nan")), "ub"),                  # NonFiniteError from the first pressure solve
    (dict(drive="pressure_gradient", dpdx=float("nan")), "dpdx"),   # SciPy's ValueError
    (dict(dt=True), "dt"),                          # ran with dt = 1
    (dict(re_tau="180"), "re_tau"),                 # TypeError
    (dict(grid=dict(_G, lx=float("inf"))), "box lengths"),   # NaN pressure matrix
    (dict(grid=dict(_G, nq=3)), "nq"),              # TypeError from ChannelGrid
    (dict(grid=dict(_G, nx=None)), "nx"),           # TypeError from int()
    (dict(grid=[8, 16, 8]), "dict"),                # TypeError
    (dict(grid=dict(_G, stretch=None)), "stretch"),  # TypeError
])
def test_channel_config_refuses_bad_values_when_built(kw, needle):
    from datagen.channel import ChannelConfig

    with pytest.raises(OptionError, match=needle):
        ChannelConfig(**{"grid": _G, **kw})


def test_channel_config_accepts_reverse_flow_and_numpy_numbers():
    from datagen.channel import ChannelConfig, ChannelDNS, perturbed_laminar

    cfg = ChannelConfig(re_tau=np.float64(180.0), dt=np.float32(1e-3), ub=-5.0,
                        grid=dict(nx=np.int64(8), ny=16, nz=8, lx=np.float64(np.pi)))
    dns = perturbed_laminar(ChannelDNS(cfg), seed=0)
    dns.run(2, check_every=1)
    assert dns.bulk_velocity() == pytest.approx(-5.0, rel=1e-12)


def _small_dns(seed=0, **kw):
    from datagen.channel import ChannelConfig, ChannelDNS, perturbed_laminar

    return perturbed_laminar(ChannelDNS(ChannelConfig(grid=_G, dt=1e-3, **kw)), seed=seed)


def test_checkpoint_override_that_is_not_a_config_field_is_refused(tmp_path):
    from datagen.channel import load_checkpoint, save_checkpoint

    path = save_checkpoint(_small_dns(), tmp_path / "c.npz")
    with pytest.raises(OptionError, match="dtt"):
        load_checkpoint(path, dtt=1e-4)   # was accepted, and the run kept dt = 1e-3
    assert load_checkpoint(path, dt=5e-4).cfg.dt == 5e-4


def test_checkpoint_with_a_config_key_channelconfig_lacks_is_an_option_error(tmp_path):
    import json

    from datagen.channel import load_checkpoint

    np.savez(tmp_path / "c.npz", u=np.zeros(1), v=np.zeros(1), w=np.zeros(1), t=0.0, step=0,
             config=json.dumps({"re_tau": 180.0, "foo": 1}))
    with pytest.raises(OptionError, match="not a channel checkpoint"):
        load_checkpoint(tmp_path / "c.npz")


def test_checkpoint_round_trip_continues_bit_for_bit(tmp_path):
    from datagen.channel import load_checkpoint, save_checkpoint

    a = _small_dns(seed=3)
    a.run(4)
    b = load_checkpoint(save_checkpoint(a, tmp_path / "c.npz"))
    assert (b.t, b.step_count, b.cfg) == (a.t, a.step_count, a.cfg)
    a.run(4)
    b.run(4)
    for k in "uvw":
        assert np.array_equal(a.fields()[k], b.fields()[k])


def test_same_seed_same_flow_other_seed_other_flow():
    a, b, c = _small_dns(seed=1), _small_dns(seed=1), _small_dns(seed=2)
    for d in (a, b, c):
        d.run(3)
    assert all(np.array_equal(a.fields()[k], b.fields()[k]) for k in "uvw")
    assert not np.allclose(a.fields()["u"], c.fields()["u"])


@pytest.mark.parametrize("kw, needle", [
    (dict(nsteps=2, check_every=0), "check_every"),   # ZeroDivisionError after the first step
    (dict(nsteps=2.7), "nsteps"),                     # ran 2 steps
    (dict(nsteps=-1), "nsteps"),
])
def test_run_refuses_step_counts_that_are_not_counts(kw, needle):
    dns = _small_dns()
    with pytest.raises(OptionError, match=needle):
        dns.run(**kw)
    assert dns.step_count == 0


def test_set_fields_refuses_non_finite_values():
    # NaN fields were taken and became a ChannelBlowUp advising a smaller dt, steps later
    dns = _small_dns()
    f = dns.fields()
    f["w"][3, 2, 1] = np.nan
    with pytest.raises(OptionError, match="NaN"):
        dns.set_fields(f["u"], f["v"], f["w"])


@pytest.mark.parametrize("coarse", [(4.5, 9, 4), (4, 9.2, 4), (True, 9, 4), (float("inf"), 9, 4)])
def test_coarse_filter_refuses_fractional_sizes(coarse):
    from datagen.channel import ChannelGrid
    from datagen.channel.filtering import CoarseFilter

    with pytest.raises(OptionError, match="integers"):
        CoarseFilter(ChannelGrid(**_G), coarse)   # int() truncated 4.5 to 4


@pytest.mark.parametrize("kw, needle", [
    (dict(grid=(8.5, 16, 8)), "grid"), (dict(coarse_grid=(4, 9.5, 4)), "coarse_grid"), (dict(seed=1.5), "seed"),
    (dict(seed=-1), "seed"),
])
def test_channel_generate_refuses_fractional_sizes_and_seeds_before_any_work(kw, needle, tmp_path):
    from datagen.channel import generate

    args = dict(grid=(8, 16, 8), coarse_grid=(4, 9, 4), trajectories=1, snapshots=1, every=1, spinup=0)
    with pytest.raises(OptionError, match=needle):
        generate(tmp_path / "c.h5", **{**args, **kw})
    assert list(tmp_path.iterdir()) == []


def test_box_filter_keeps_a_constant_and_damps_a_mode_by_the_box_transfer_function():
    # independent reference: the top-hat average of cos(k x) over a width D is sinc-weighted
    from datagen.channel import ChannelGrid
    from datagen.channel.filtering import CoarseFilter

    g = ChannelGrid(nx=32, ny=16, nz=8)
    f = CoarseFilter(g, (8, 9, 4), "box")
    k = 2 * 2 * np.pi / g.lx
    a = np.broadcast_to(np.cos(k * g.xc)[None, :, None], g.shape).copy()
    out = f(a, wall_value_zero=False)
    D = g.lx / 8
    want = np.sin(k * D / 2) / (k * D / 2) * np.cos(k * f.x)
    assert np.allclose(out, want[:, None, None], atol=1e-12)
    assert np.allclose(f(np.full(g.shape, 2.5), wall_value_zero=False), 2.5, atol=1e-12)


def _fields(n, g=16, seed=0):
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(g) * g
    amp = (1 + k[:, None] ** 2 + k[None, :] ** 2) ** -2.0
    return np.fft.ifft2(amp * (rng.standard_normal((n, g, g)) + 1j * rng.standard_normal((n, g, g)))).real


@pytest.mark.parametrize("scale", [1e300, 1e-300])
@pytest.mark.parametrize("memory", [1 << 28, 0])
def test_greedy_and_path_length_at_the_ends_of_the_float_range(scale, memory):
    # 1e300: the squared distances overflowed and greedy returned -1s, path_length inf;
    # 1e-300: they underflowed to 0 and every system tied
    X = np.random.default_rng(6).standard_normal((30, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(order_systems(X * scale, "greedy", memory=memory), gold_greedy(X))
        assert path_length(X * scale) == pytest.approx(scale * path_length(X), rel=1e-12)


@pytest.mark.parametrize("scale, offset", [(1e300, 0.0), (1e-300, 0.0), (1e-3, 1e6)])
@pytest.mark.parametrize("fields", [True, False])
def test_fft_order_does_not_depend_on_the_units_of_the_features(scale, offset, fields):
    # float32 features: 1e300 became inf, 1e-300 zero, and an offset of 10^6 left nothing of
    # variations of 10^-3, so the order was noise
    F = _fields(200) if fields else np.random.default_rng(7).standard_normal((200, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = order_systems(F * scale + offset, "fft")
    assert np.array_equal(got, order_systems(F, "fft"))


def test_ragged_features_are_a_shape_error():
    with pytest.raises(ShapeError, match="ragged"):
        order_systems([np.zeros(3), np.zeros(4)], "greedy")
    with pytest.raises(ShapeError, match="ragged"):
        path_length([np.zeros(3), np.zeros(4)])


def test_curve_dims_beyond_the_hilbert_key_is_an_option_error():
    with pytest.raises(OptionError, match="curve_dims"):   # was a 'negative shift count'
        order_systems(_fields(40), "fft", n_components=64, curve_dims=64)
    assert np.array_equal(np.sort(order_systems(_fields(40), "fft", n_components=32, curve_dims=63)), np.arange(40))


# --- linsolve.sequences ------------------------------------------------------------------
def test_iteration_table_counts_a_diverged_sor_run_as_maxiter():
    # Gauss-Seidel on [[1, 3], [3, 1]] grows ~9x per sweep until the residual overflows; the
    # table counted the sweeps to the overflow (about 330) as if it had converged
    import scipy.sparse as sp

    from linsolve.sequences import iteration_table
    from linsolve.sor_kernels import as_kernel_data
    from linsolve.young import iteration_count

    A = sp.csr_matrix(np.array([[1.0, 3.0], [3.0, 1.0]]))
    b = np.array([1.0, -2.0])
    table = iteration_table([(A, b, 0.0)], [1.0, 1.5], maxiter=5000)
    assert table.tolist() == [[5000, 5000]]
    assert [iteration_count(as_kernel_data(A), b, w, maxiter=5000) for w in (1.0, 1.5)] == [5000, 5000]


@pytest.mark.parametrize("omegas", [[0.0], [np.nan], [2.5], [[1.0, 1.2]], ["a"]])
def test_iteration_table_refuses_omegas_outside_zero_two(omegas):
    # 0: ZeroDivisionError in the kernel; nan: 1 iteration; [[...]]: a numba TypingError
    from linsolve.sequences import iteration_table, shifted_laplacian_sequence

    with pytest.raises(OptionError, match="omegas"):
        iteration_table(shifted_laplacian_sequence(T=2), omegas)


@pytest.mark.parametrize("kw", [dict(grid=0), dict(grid=2.5), dict(seed=-1), dict(seed=1.5)])
def test_shifted_laplacian_sequence_refuses_bad_grid_and_seed(kw):
    from linsolve.sequences import shifted_laplacian_sequence

    with pytest.raises(OptionError, match=next(iter(kw))):
        shifted_laplacian_sequence(T=2, **kw)


# --- channel statistics ------------------------------------------------------------------
def test_stats_round_trip_and_a_file_of_another_grid_is_refused(tmp_path):
    from datagen.channel.stats import QUANTITIES, StatsAccumulator, plane_sample

    dns = _small_dns()
    acc = StatsAccumulator(dns.grid.ny)
    ref = {q: np.zeros(dns.grid.ny) for q in QUANTITIES}
    for _ in range(3):
        dns.run(1)
        acc.add(dns)
        f = dns.fields()   # independent: centre values by hand, plane means
        uc = 0.5 * (f["u"] + np.roll(f["u"], -1, axis=1))
        vc = 0.5 * (f["v"][1:] + f["v"][:-1])
        ref["UV"] += (uc * vc).mean(axis=(1, 2))
        ref["UU"] += (uc * uc).mean(axis=(1, 2))
    assert set(plane_sample(dns)) == set(QUANTITIES)
    acc.close_block(dns.t)
    for q in ("UV", "UU"):
        assert np.allclose(acc.blocks[0][q], ref[q], rtol=1e-13, atol=1e-15)
    acc.save(tmp_path / "s.npz")
    back = StatsAccumulator.load(tmp_path / "s.npz", dns.grid.ny)
    assert back.blocks[0]["n"] == 3
    assert all(np.array_equal(back.blocks[0][q], acc.blocks[0][q]) for q in QUANTITIES)
    with pytest.raises(OptionError, match="16 cells"):
        StatsAccumulator.load(tmp_path / "s.npz", 12)   # was taken as is


def test_wall_units_without_samples_is_an_option_error():
    from datagen.channel.stats import QUANTITIES, wall_units

    with pytest.raises(OptionError, match="sample"):
        wall_units({q: np.zeros(16) for q in QUANTITIES}, 0, np.linspace(-0.9, 0.9, 16), 1 / 180)


def test_greedy_distance_matrix_stays_within_the_memory_budget():
    # the expression sq - 2 X X^T + sq held three N x N temporaries: twice the budget
    import tracemalloc

    X = np.random.default_rng(8).standard_normal((1500, 4))
    budget = 1500 * 1500 * 8
    tracemalloc.start()
    try:
        order = order_systems(X, "greedy", memory=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(order, order_systems(X, "greedy", memory=0))   # the GEMV path, gold-checked above
    assert peak <= 1.1 * budget + (1 << 20)


@pytest.mark.parametrize("order", [None, [3, 1, 0, 2]])
def test_features_with_a_given_order_give_its_path_length(order):
    # features= were ignored without a word unless order named a method
    feats = np.array([[0.0], [1.0], [3.0], [6.0]])
    seq = solve_sequence("cg", _sequence(), order=order, features=feats)
    perm = np.arange(4) if order is None else np.array(order)
    assert seq.path_length == pytest.approx(sum(abs(feats[perm[i + 1], 0] - feats[perm[i], 0]) for i in range(3)))
    with pytest.raises(ShapeError, match="features describe 3"):
        solve_sequence("cg", _sequence(), order=order, features=feats[:3])
    assert solve_sequence("cg", _sequence(), order=order).path_length is None


@pytest.mark.parametrize("nx, needle", [(16.5, "nx"), (3.5, "integer")])
def test_regrid_refuses_fractional_sizes(nx, needle):
    from datagen.channel.checkpoint import regrid

    with pytest.raises(OptionError, match=needle):   # int() ran 16.5 as 16; 3.5 was 'even, got 3'
        regrid(_small_dns(), nx, 8)


def test_regrid_refuses_an_unknown_override_and_keeps_the_flow_divergence_free():
    from datagen.channel.checkpoint import regrid

    dns = _small_dns()
    with pytest.raises(OptionError, match="dtt"):
        regrid(dns, 16, 8, dtt=1e-4)
    fine = regrid(dns, 16, 8, dt=5e-4)
    assert fine.grid.nx == 16 and fine.cfg.dt == 5e-4
    assert fine.divergence_max() < 1e-10
    assert fine.bulk_velocity() == pytest.approx(dns.bulk_velocity(), rel=1e-12)


@pytest.mark.parametrize("kw, needle", [(dict(cfl_target=-0.5), "cfl_target"), (dict(cfl_target=float("nan")), "cfl_target"),
                                        (dict(cfl_target=0.5, dt_max=float("nan")), "dt_max"),
                                        (dict(cfl_target=0.5, dt_max=-1e-3), "dt_max")])
def test_run_refuses_a_bad_cfl_target_or_dt_max(kw, needle):
    dns = _small_dns()
    with pytest.raises(OptionError, match=needle):   # ValueError from log10/floor in adapt_dt
        dns.run(2, check_every=1, **kw)
    assert dns.step_count == 0


# --- linsolve.gallery ----------------------------------------------------------------------
@pytest.mark.parametrize("make", ["poisson2d", "poisson3d", "convdiff2d", "vardiff2d", "helmholtz2d"])
@pytest.mark.parametrize("n", [0, -1, 2.5, "4", True])
def test_gallery_sizes_must_be_positive_integers(make, n):
    from linsolve import gallery

    with pytest.raises(OptionError, match="n must be a positive integer"):
        gallery.GALLERY[make](n)   # SciPy's 'Diagonal length', ZeroDivisionError, TypeError


@pytest.mark.parametrize("call, needle", [
    (lambda g: g.convection_diffusion2d(4, peclet=float("nan")), "peclet"),   # a NaN matrix
    (lambda g: g.convection_diffusion2d(4, peclet=-5.0), "peclet"),   # downwind: not the M-matrix promised
    (lambda g: g.variable_diffusion2d(4, contrast=0.5), "contrast"),
    (lambda g: g.variable_diffusion2d(4, contrast=float("inf")), "contrast"),
    (lambda g: g.helmholtz2d(4, k=float("nan")), "k must"),   # a NaN matrix
    (lambda g: g.random_spd(4, cond=0.0), "cond"),
    (lambda g: g.random_spd(0), "n must"),
])
def test_gallery_coefficients_are_checked(call, needle):
    from linsolve import gallery

    with pytest.raises(OptionError, match=needle):
        call(gallery)


def test_gallery_smallest_sizes_against_dense_references():
    from linsolve import gallery

    assert gallery.poisson2d(1).toarray().tolist() == [[4.0]]
    assert gallery.poisson3d(np.int64(1)).toarray().tolist() == [[6.0]]
    C = gallery.convection_diffusion2d(3, peclet=0.0).toarray()
    assert np.allclose(C, gallery.poisson2d(3, scaled=True).toarray())
    S = gallery.random_spd(5, cond=1.0)
    assert np.allclose(S, np.eye(5))
