"""Sub-grid models of the channel solver (WALE, dynamic Smagorinsky) against hand-computed
values on analytic fields and an independent FFT/np.gradient implementation, their
effect on laminar flow, divergence and bulk velocity, the torch path against NumPy,
and the LES run on a dataset's coarse grid (``datagen les``)."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from datagen.channel import ChannelConfig, ChannelDNS, laminar_profile, perturbed_laminar
from datagen.channel.les import CoarseMap, les_grid, run_les
from datagen.channel.sgs import C_WALE, DSM_WIDTH_RATIO
from linsolve.core.errors import OptionError

GRID = dict(nx=12, ny=16, nz=8, stretch=1.6)


def _dns(sgs, grid=GRID, **kw):
    return ChannelDNS(ChannelConfig(grid=grid, dt=1e-3, sgs=sgs, **kw))


def _set(dns, u=None, v=None, w=None):
    g = dns.grid
    z = np.zeros(g.shape)
    dns.set_fields(z if u is None else u, np.zeros((g.ny + 1, g.nx, g.nz)) if v is None else v,
                   z if w is None else w)


def _turbulent_like(sgs, seed=0, grid=GRID):
    return perturbed_laminar(_dns(sgs, grid), amplitude=0.3, seed=seed, cfl_target=None)


# --- the models on analytic fields -------------------------------------------------------------
def test_wale_vanishes_in_pure_shear():
    dns = _dns("wale")
    g = dns.grid
    Y, Z = g.yc[:, None, None], g.zc[None, None, :]
    # any u(y, z) is a pure shear: g has only the entries du/dy, du/dz, so g.g = 0
    u = 3.0 * Y + np.sin(2 * np.pi * Z / g.lz) * (1 - Y**2) + 0 * g.xc[None, :, None]
    _set(dns, u=u)
    assert np.abs(dns.sgs.gradient(dns.u, dns.v, dns.w)[0][1]).max() > 1.0  # a real shear
    assert np.abs(dns.sgs.viscosity(dns.u, dns.v, dns.w)).max() == 0.0


def test_wale_value_for_rigid_rotation_is_analytic():
    """g = [[0, -om, 0], [om, 0, 0], [0, 0, 0]]: S = 0, Sd = om^2 diag(-1/3, -1/3, 2/3),
    so nu_t = (C_w D)^2 (Sd:Sd)^(1/4) = (C_w D)^2 (2/3)^(1/4) om."""
    dns = _dns("wale")
    om = 2.5
    z = np.zeros(dns.grid.shape)
    g = [[z, -om + z, z], [om + z, z, z], [z, z, z]]
    nt = dns.sgs.wale(g)
    delta2 = (dns.grid.dx * dns.grid.dyc * dns.grid.dz) ** (2 / 3)
    expect = C_WALE**2 * delta2 * (2 / 3) ** 0.25 * om
    assert np.abs(nt - expect[:, None, None]).max() <= 1e-14 * expect.max()


@pytest.mark.parametrize("a, b", [(2.0, 0.0), (-1.5, 0.8)])
def test_smagorinsky_form_gives_analytic_value_for_linear_shear(a, b):
    """u = a y, w = b y: |S| = sqrt(a^2 + b^2), so nu_t = C D^2 |S| with D^3 = dx dy dz."""
    dns = _dns("dsm")
    g = dns.grid
    Y = g.yc[:, None, None] + np.zeros(g.shape)
    _set(dns, u=a * Y, w=b * Y)
    grad = dns.sgs.gradient(dns.u, dns.v, dns.w)
    C = 0.0289  # C_s = 0.17
    nt = dns.sgs.smagorinsky(grad, C)
    expect = C * (g.dx * g.dyc * g.dz) ** (2 / 3) * np.hypot(a, b)
    # rows away from the walls (the field is not no-slip there, the difference stencil assumes it)
    assert np.abs(nt[1:-1] - expect[1:-1, None, None]).max() <= 1e-12 * expect.max()
    # the dynamic coefficient of a plane-parallel flow is zero (L = 0): no eddy viscosity
    assert np.abs(dns.sgs.dynamic_coefficient(dns.u, dns.v, dns.w)).max() == 0.0
    assert np.abs(dns.sgs.viscosity(dns.u, dns.v, dns.w)).max() == 0.0


def _gold_dynamic_coefficient(dns):
    """Lilly's C(y) computed independently: gradient by np.roll and np.gradient (walls as
    no-slip points), Simpson's test filter by its transfer function (2 + cos k h)/3 via FFT."""
    g = dns.grid
    f = dns.fields()
    u = 0.5 * (f["u"] + np.roll(f["u"], -1, 1))
    v = 0.5 * (f["v"][1:] + f["v"][:-1])
    w = 0.5 * (f["w"] + np.roll(f["w"], -1, 2))
    ypts = np.concatenate([[-1.0], g.yc, [1.0]])

    def ddy(a):
        pad = np.concatenate([np.zeros((1,) + a.shape[1:]), a, np.zeros((1,) + a.shape[1:])])
        return np.gradient(pad, ypts, axis=0)[1:-1]

    def ddx(a, ax, h):
        return (np.roll(a, -1, ax) - np.roll(a, 1, ax)) / (2 * h)

    gr = np.empty((3, 3) + g.shape)
    gr[0, 0] = (np.roll(f["u"], -1, 1) - f["u"]) / g.dx
    gr[1, 1] = (f["v"][1:] - f["v"][:-1]) / g.dyc[:, None, None]
    gr[2, 2] = (np.roll(f["w"], -1, 2) - f["w"]) / g.dz
    gr[0, 1], gr[0, 2] = ddy(u), ddx(u, 2, g.dz)
    gr[1, 0], gr[1, 2] = ddx(v, 1, g.dx), ddx(v, 2, g.dz)
    gr[2, 0], gr[2, 1] = ddx(w, 1, g.dx), ddy(w)
    S = 0.5 * (gr + gr.transpose(1, 0, 2, 3, 4))
    kx = 2 * np.pi * np.fft.fftfreq(g.nx, g.dx)
    kz = 2 * np.pi * np.fft.fftfreq(g.nz, g.dz)
    T = ((2 + np.cos(kx * g.dx)) / 3)[:, None] * ((2 + np.cos(kz * g.dz)) / 3)[None, :]

    def F(a):
        return np.real(np.fft.ifft2(np.fft.fft2(a, axes=(-2, -1)) * T, axes=(-2, -1)))

    mag = np.sqrt(2 * np.einsum("ij...,ij...->...", S, S))
    Sh = F(S)
    magh = np.sqrt(2 * np.einsum("ij...,ij...->...", Sh, Sh))
    d2 = ((g.dx * g.dyc * g.dz) ** (2 / 3))[:, None, None]
    M = 2 * d2 * (F(mag * S) - DSM_WIDTH_RATIO**2 * magh * Sh)
    vel = np.stack([u, v, w])
    L = F(vel[:, None] * vel[None, :]) - F(vel)[:, None] * F(vel)[None, :]
    return np.einsum("ij...,ij...->...", L, M).mean(axis=(1, 2)) / np.einsum("ij...,ij...->...", M, M).mean(axis=(1, 2))


def test_dynamic_coefficient_matches_independent_implementation():
    dns = _turbulent_like("dsm", seed=3)
    dns.run(5)
    C = dns.sgs.dynamic_coefficient(dns.u, dns.v, dns.w)[:, 0, 0]
    ref = _gold_dynamic_coefficient(dns)
    assert np.abs(C).max() > 1e-3  # a real, non-trivial coefficient
    assert np.abs(C - ref).max() <= 1e-10 * np.abs(ref).max()


def test_dynamic_coefficient_vanishes_where_resolved_stress_and_model_are_orthogonal():
    """u = a cos(kz), v = a sin(kz): the Leonard stress L (from products of u and v, filtered
    in z) has only the 11, 22, 12 entries, the strain (du/dz, dv/dz) only 13 and 23, so
    L_ij M_ij = 0 at every point although neither vanishes: C = 0 by hand."""
    dns = _dns("dsm")
    g, sg = dns.grid, dns.sgs
    kz = 2 * np.pi * 2 / g.lz
    Zc = g.zc[None, None, :] + np.zeros(g.shape)
    u = 1.5 * np.cos(kz * Zc)
    v = np.zeros((g.ny + 1, g.nx, g.nz))
    v[1:-1] = 1.5 * np.sin(kz * g.zc)[None, None, :]
    _set(dns, u=u, v=v)
    C = sg.dynamic_coefficient(dns.u, dns.v, dns.w)[2:-2, 0, 0]  # rows whose stencils miss the walls
    uc, vc, _ = sg.centre_velocity(dns.u, dns.v, dns.w)
    F = sg.test_filter
    L11 = F(uc * uc) - F(uc) ** 2
    S13 = sg.strain(sg.gradient(dns.u, dns.v, dns.w))[4]
    assert np.abs(L11[2:-2]).max() > 0.05 and np.abs(S13[2:-2]).max() > 1.0
    assert np.abs(C).max() < 1e-14  # round-off; Smagorinsky coefficients C_s^2 are O(1e-2)


def test_dynamic_coefficient_is_scale_and_galilean_invariant():
    """L and M are both quadratic in the velocity and the test filter keeps constants, so C is
    unchanged by u -> 3 u and by a uniform spanwise velocity added to the interior."""
    dns = _turbulent_like("dsm", seed=4)
    sg = dns.sgs
    C = sg.dynamic_coefficient(dns.u, dns.v, dns.w)
    assert np.abs(sg.dynamic_coefficient(3 * dns.u, 3 * dns.v, 3 * dns.w) - C).max() <= 1e-12 * np.abs(C).max()
    # the y-derivative at the wall rows sees the shift (no-slip), the interior rows do not
    Cs = sg.dynamic_coefficient(dns.u, dns.v, dns.w + 4.0)
    assert np.abs(Cs[1:-1] - C[1:-1]).max() <= 1e-10 * np.abs(C).max()


def test_dynamic_model_clips_total_viscosity_at_zero():
    dns = _turbulent_like("dsm", seed=5)
    sg = dns.sgs
    u, v, w = (30.0 * a for a in (dns.u, dns.v, dns.w))  # same C, 30x the strain: clipping bites
    nt = sg.viscosity(u, v, w)
    raw = sg.smagorinsky(sg.gradient(u, v, w), sg.last_coefficient)
    assert raw.min() < -dns.nu and raw.max() > 0
    assert np.allclose(nt, np.maximum(raw, -dns.nu), rtol=0, atol=1e-15 * np.abs(raw).max())
    assert nt.min() >= -dns.nu * (1 + 1e-12)


def test_stress_divergence_with_uniform_eddy_viscosity_is_its_laplacian():
    """d/dx_j (nu (du_i/dx_j + du_j/dx_i)) = nu Lap u_i for a divergence-free field: the
    discrete stress divergence reproduces the solver's own Laplacian (away from the wall rows,
    where the sub-grid stress is zero by construction)."""
    dns = _turbulent_like("wale", seed=7)
    o, c = dns.ops, 0.37
    dns.sgs.viscosity = lambda u, v, w, g=None: c + 0.0 * u
    fu, fv, fw = dns.sgs.forcing(dns.u, dns.v, dns.w)
    lu = c * (o.lap_xz(dns.u) + o.apply_tri(o.ly_centre(), dns.u))
    lv = c * (o.lap_xz(dns.v[1:-1]) + o.apply_tri(o.ly_face(), dns.v[1:-1]))
    lw = c * (o.lap_xz(dns.w) + o.apply_tri(o.ly_centre(), dns.w))
    for f, ref in ((fu, lu), (fw, lw)):
        assert np.abs(f[1:-1] - ref[1:-1]).max() <= 1e-10 * np.abs(ref).max()
    assert np.abs(fv - lv).max() <= 1e-10 * np.abs(lv).max()


def test_wale_stress_dissipates_kinetic_energy():
    """nu_t >= 0 (WALE) and the conservative stress divergence: sum u . f dV = -2 nu_t S:S < 0."""
    dns = _turbulent_like("wale", seed=8)
    g = dns.grid
    fu, fv, fw = dns.sgs.forcing(dns.u, dns.v, dns.w)
    vol_c, vol_f = g.dyc[:, None, None], g.dyf[1:-1, None, None]
    rate = (dns.u * fu * vol_c).sum() + (dns.v[1:-1] * fv * vol_f).sum() + (dns.w * fw * vol_c).sum()
    assert dns.sgs.last_nu_t.min() >= 0 and dns.sgs.last_nu_t.max() > 0
    assert rate < 0


# --- the models in the solver ----------------------------------------------------------------
@pytest.mark.parametrize("sgs", ["wale", "dsm"])
def test_poiseuille_stays_laminar_and_unchanged(sgs):
    cfg = ChannelConfig(grid=GRID, dt=5e-3, ub=10.0, sgs=sgs)
    dns = ChannelDNS(cfg)
    g = dns.grid
    U = laminar_profile(g, cfg.nu, cfg.ub)
    u0 = np.broadcast_to(U.reshape(-1, 1, 1), g.shape).copy()
    _set(dns, u=u0)
    dns.run(40)
    f = dns.fields()
    assert np.abs(f["u"] - u0).max() <= 1e-12 * np.abs(u0).max()
    assert np.abs(f["v"]).max() == 0 and np.abs(f["w"]).max() == 0
    assert np.abs(dns.sgs.last_nu_t).max() == 0.0


@pytest.mark.parametrize("sgs", ["wale", "dsm"])
def test_divergence_at_roundoff_with_model(sgs):
    dns = _turbulent_like(sgs, seed=1)
    ub = dns.cfg.ub
    for _ in range(6):
        dns.step()
        assert dns.divergence_max() < 1e-11 * ub
        assert dns.bulk_velocity() == pytest.approx(ub, rel=1e-12)
    assert np.abs(dns.sgs.last_nu_t).max() > 0


@pytest.mark.parametrize("sgs", ["wale", "dsm"])
def test_short_coarse_grid_run_stays_finite_and_keeps_bulk_velocity(sgs):
    """The LES grid of a 16 x 17 x 8 dataset grid (Gauss-Lobatto y faces), 300 steps from a
    strongly perturbed state at Re_tau 180."""
    dns = perturbed_laminar(ChannelDNS(ChannelConfig(grid=les_grid(16, 17, 8, np.pi, np.pi / 2), dt=4e-3,
                                                     sgs=sgs)), amplitude=0.3, seed=2, cfl_target=None)
    m = dns.run(300, check_every=10)
    assert dns.B.all_finite(dns.u, dns.v, dns.w)
    assert m["ub"] == pytest.approx(dns.cfg.ub, rel=1e-12)
    assert m["div_max"] < 1e-11 * dns.cfg.ub
    assert m["sgs_diffusion"] < 0.6 and np.abs(dns.sgs.last_nu_t).max() > 0.1 * dns.nu


@pytest.mark.parametrize("sgs", ["wale", "dsm"])
def test_torch_path_equals_numpy_path(sgs):
    pytest.importorskip("torch")
    a = _turbulent_like(sgs, seed=6)
    b = ChannelDNS(ChannelConfig(**{**json.loads(a.cfg.to_json()), "device": "torch"}))
    f = a.fields()
    b.set_fields(f["u"], f["v"], f["w"])
    na = a.sgs.viscosity(a.u, a.v, a.w)
    nb = b.B.to_numpy(b.sgs.viscosity(b.u, b.v, b.w))
    assert np.abs(na - nb).max() <= 1e-12 * np.abs(na).max()
    a.run(3)
    b.run(3)
    fa, fb = a.fields(), b.fields()
    for k in "uvw":
        assert np.abs(fa[k] - fb[k]).max() <= 1e-10 * np.abs(fa["u"]).max()


def test_unknown_model_is_refused():
    with pytest.raises(OptionError, match="sgs must be one of wale, dsm"):
        ChannelConfig(sgs="smagorinsky")


# --- LES on a dataset's coarse grid ------------------------------------------------------------
def test_coarse_map_round_trip_is_exact_for_resolved_fields():
    from datagen.channel.filtering import coarse_y
    from datagen.channel.grid import ChannelGrid

    g = ChannelGrid(**les_grid(8, 13, 6, 3.0, 1.5))
    assert np.allclose(g.yf, coarse_y(13))
    cm = CoarseMap(g)
    x = (np.arange(8) + 0.5) * g.dx
    z = (np.arange(6) + 0.5) * g.dz
    y = coarse_y(13)
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    prof = (1 - Y**2) * (1 + 0.3 * Y + 0.2 * Y**3)  # degree 5: interpolated exactly in y
    vel = np.stack([prof * (2 + np.cos(2 * np.pi * X / 3.0)), prof * np.sin(2 * np.pi * Z / 1.5),
                    prof * np.cos(2 * np.pi * (X / 3.0 + Z / 1.5))], axis=-1)
    u, v, w = cm.to_staggered(vel)
    # u at the x faces is the same Fourier mode half a cell earlier
    yc = g.yc[:, None, None]
    prof_c = (1 - yc**2) * (1 + 0.3 * yc + 0.2 * yc**3)
    assert np.abs(u - prof_c * (2 + np.cos(2 * np.pi * g.xf[None, :, None] / 3.0))).max() < 1e-12
    back = cm.to_coarse({"u": u, "v": v, "w": w})
    assert np.abs(back - vel).max() <= 1e-12 * np.abs(vel).max()


@pytest.fixture(scope="module")
def channel_file(tmp_path_factory):
    from datagen.channel import generate

    out = tmp_path_factory.mktemp("les") / "dns.h5"
    generate(out, trajectories=2, snapshots=3, every=5, spinup=30, grid=(16, 24, 8), coarse_grid=(8, 9, 4), seed=1)
    return out


@pytest.mark.parametrize("sgs", ["wale", "dsm", None])
def test_les_from_dataset_writes_the_trajectory_layout(channel_file, tmp_path, sgs):
    out = tmp_path / "les.h5"
    res = run_les(channel_file, out, trajectory=-1, sgs=sgs, snapshots=4)
    assert len(res["seconds_per_snapshot"]) == 3
    with h5py.File(channel_file) as fs, h5py.File(out) as f:
        vel = f["t1_fields/velocity"][()]
        assert vel.shape == (1, 4) + fs["t1_fields/velocity"].shape[2:]
        assert np.isfinite(vel).all() and np.abs(vel[:, :, :, [0, -1]]).max() == 0.0
        for name in ("x", "y", "z"):
            assert np.array_equal(f["dimensions"][name][()], fs["dimensions"][name][()])
        assert f["dimensions/time"][()] == pytest.approx(np.arange(4) * fs.attrs["snapshot_dt"], rel=1e-6)
        assert int(f.attrs["n_trajectories"]) == 1 and f.attrs["les_model"] == (sgs or "none")
        assert set(fs) <= set(f) | {"t0_fields"}
        # the start is the filtered DNS state, up to the projection onto the LES grid's
        # divergence-free fields
        start = fs["t1_fields/velocity"][1, 0]
        assert np.linalg.norm(vel[0, 0] - start) <= 0.1 * np.linalg.norm(start)


def test_les_bad_input_is_refused(channel_file, tmp_path):
    with pytest.raises(OptionError, match=r"trajectory \(of the 2 in .*\) must be an integer in \[-2, 1\], got 2"):
        run_les(channel_file, tmp_path / "x.h5", trajectory=2)
    with pytest.raises(OptionError, match="sgs"):
        run_les(channel_file, tmp_path / "x.h5", sgs="smag")
    with pytest.raises(OptionError, match="not a channel trajectory file"):
        (tmp_path / "a.h5").write_bytes(b"")
        h5py.File(tmp_path / "b.h5", "w").close()
        run_les(tmp_path / "b.h5", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_les_cli(channel_file, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "datagen.cli", "les", *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)

    p = run("--from", str(channel_file), "--trajectory", "0", "--sgs", "dsm", "--snapshots", "2", "--out", "l.h5",
            "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stdout == p.stderr == ""
    # progress on stderr that is not a terminal: whole lines, no carriage returns
    p = run("--from", str(channel_file), "--trajectory", "0", "--snapshots", "12", "--out", "n.h5")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert "\r" not in p.stderr and lines[0].startswith("snapshot 10 ")
    assert any(line.startswith("wrote ") for line in lines)
    with h5py.File(tmp_path / "l.h5") as f:
        assert f["t1_fields/velocity"].shape[:2] == (1, 2) and f.attrs["les_model"] == "dsm"
    for extra, needle in ((["--out", "m.h5", "--sgs", "smag"], "--sgs must be"),
                          (["--out", "m.h5", "--trajectory", "7"], "must be an integer in [-2, 1], got 7"),
                          (["--out", "m.h5", "--snapshots", "0"], "snapshots must be"),
                          (["--out", "l.h5"], "exists")):
        p = run("--from", str(channel_file), *extra)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "m.h5").exists()


def test_generate_runs_an_les_with_sgs(tmp_path):
    from datagen.channel import generate

    out = tmp_path / "les.h5"
    generate(out, trajectories=1, snapshots=2, every=3, spinup=10, grid=(12, 16, 8), coarse_grid=(6, 9, 4), seed=2,
             sgs="dsm")
    with h5py.File(out) as f:
        assert json.loads(f.attrs["config"])["sgs"] == "dsm"
        assert np.isfinite(f["t1_fields/velocity"][()]).all()
    p = subprocess.run([sys.executable, "-m", "datagen.cli", "generate", "channel", "--out", "g.h5", "--sgs", "smag",
                        "--quiet"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "sgs must be one of" in lines[0], p.stderr
    assert not (tmp_path / "g.h5").exists() and not (tmp_path / "g.h5.parts").exists()


def test_les_blow_up_writes_nothing_and_says_where(channel_file, tmp_path, monkeypatch):
    from datagen.channel import ChannelBlowUp

    calls = {"n": 0}
    real = ChannelDNS.check

    def check(self):
        calls["n"] += 1
        if calls["n"] == 3:
            self.u[0, 0, 0] = np.nan
        return real(self)

    monkeypatch.setattr(ChannelDNS, "check", check)
    with pytest.raises(ChannelBlowUp, match="blew up before snapshot") as info:
        run_les(channel_file, tmp_path / "x.h5", snapshots=4, steps_per_snapshot=2)
    assert info.value.snapshot >= 1 and not (tmp_path / "x.h5").exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sgs", ["wale", "dsm"])
def test_numba_kernels_match_array_code(sgs):
    dns = _turbulent_like(sgs, seed=9)
    sg = dns.sgs
    assert sg.use_numba
    rng = np.random.default_rng(0)
    u = dns.u + rng.standard_normal(dns.u.shape)
    v = dns.v.copy()
    v[1:-1] += rng.standard_normal(v[1:-1].shape)
    w = dns.w + rng.standard_normal(dns.w.shape)
    got_nt = sg.viscosity(u, v, w)
    got = sg.forcing(u, v, w)
    sg.use_numba = False
    ref_nt = sg.viscosity(u, v, w)
    ref = sg.forcing(u, v, w)
    assert np.abs(got_nt - ref_nt).max() <= 1e-12 * np.abs(ref_nt).max()
    for a, b in zip(got, ref, strict=True):
        assert np.abs(a - b).max() <= 1e-12 * np.abs(b).max()
