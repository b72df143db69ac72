"""Statistics of stored coarse channel trajectories (``datagen.channel.stats.coarse_profiles`` and
``coarse_spectra``, used by the LES benchmark and ``operators evaluate``) on velocity fields whose
moments and spectra are known by hand."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.channel.stats import coarse_profiles, coarse_spectra
from linsolve.core.errors import OptionError


def _y(ny):
    return -np.cos(np.pi * np.arange(ny) / (ny - 1))


def test_profiles_of_a_field_with_known_moments():
    NX, NY, NZ = 8, 9, 4
    y = _y(NY)
    x = np.arange(NX) * 2 * np.pi / NX
    env = 1 - y**2
    u = np.zeros((2, 3, NX, NY, NZ))
    for t, ph in enumerate((0.0, 0.7)):
        c = np.cos(x + ph)[:, None, None] * env[None, :, None] * np.ones((1, 1, NZ))
        # u' = 2 c, v' = y c (antisymmetric, as in a channel): <u'v'> = 2 y <c^2> = y env^2
        u[t, 0] = 10 * env[None, :, None] + 2 * c
        u[t, 1] = y[None, :, None] * c
        u[t, 2] = 0.5
    p = coarse_profiles(np.moveaxis(u, 1, -1), y, nu=0.01, u_tau=2.0)
    half = 5
    assert p["y_plus"] == pytest.approx((1 + y[:half]) * 2.0 / 0.01)
    assert p["U_plus"] == pytest.approx(10 * env[:half] / 2.0)
    assert p["u_rms_plus"] == pytest.approx(np.sqrt(2.0) * env[:half] / 2.0)  # rms of 2 cos = sqrt 2
    assert p["v_rms_plus"] == pytest.approx(np.abs(y[:half]) * env[:half] / np.sqrt(2.0) / 2.0)
    assert p["w_rms_plus"] == pytest.approx(np.zeros(half), abs=1e-12)
    assert p["uv_plus"] == pytest.approx(y[:half] * env[:half] ** 2 / 4.0)  # <u'v'> / u_tau^2 < 0 below


def test_spectra_put_a_single_mode_where_it_belongs():
    NX, NY, NZ = 16, 9, 8
    x = np.arange(NX) * 2 * np.pi / NX
    z = np.arange(NZ) * 2 * np.pi / NZ
    u = np.zeros((1, 3, NX, NY, NZ))
    u[0, 0] = 3 * np.cos(2 * x)[:, None, None] + 1.0  # kx = 2, amplitude 3
    u[0, 2] = 2 * np.sin(3 * z)[None, None, :]  # kz = 3, amplitude 2
    s = coarse_spectra(np.moveaxis(u, 1, -1), _y(NY), nu=0.01, lx=2 * np.pi, lz=2 * np.pi)
    assert s["kx"] == pytest.approx(np.arange(NX // 2 + 1)) and s["kz"] == pytest.approx(np.arange(NZ // 2 + 1))
    ex = np.zeros(NX // 2 + 1)
    ex[2] = 0.5 * 9 / 2  # 0.5 <(3 cos)^2>
    ex[0] = 0.5 * 4 / 2  # the w mode is uniform in x
    np.testing.assert_allclose(s["near"]["E_x"], ex, atol=1e-12)
    ez = np.zeros(NZ // 2 + 1)
    ez[3] = 0.5 * 4 / 2
    ez[0] = 0.5 * 9 / 2
    np.testing.assert_allclose(s["centre"]["E_z"], ez, atol=1e-12)
    for where in ("near", "centre"):  # Parseval: the fluctuating energy, in either direction
        assert s[where]["E_x"].sum() == pytest.approx(0.5 * (9 + 4) / 2)
        assert s[where]["E_z"].sum() == pytest.approx(0.5 * (9 + 4) / 2)


def test_coarse_statistics_on_analytic_fields():
    from datagen.channel.filtering import coarse_y

    NX, NY, NZ, lx, lz, nu = 8, 17, 6, 3.0, 1.5, 1 / 180
    y = coarse_y(NY)
    x, z = np.arange(NX) * lx / NX, np.arange(NZ) * lz / NZ
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    U = 10 * (1 - Y**2)
    env = 1 - Y**2
    vel = np.zeros((3, NX, NY, NZ, 3))
    for t in range(3):  # the fluctuation travels in x; statistics are unchanged
        vel[t, ..., 0] = U + 2.0 * env * np.cos(2 * np.pi * 2 * X / lx + t)
        vel[t, ..., 1] = -0.5 * Y * env * np.cos(2 * np.pi * 2 * X / lx + t)  # antisymmetric, as in a channel
        vel[t, ..., 2] = 1.0 * env * np.sin(2 * np.pi * Z / lz)
    p = coarse_profiles(vel, y, nu)
    half = (NY + 1) // 2
    e = env[0, :half, 0]
    assert np.allclose(p["U_plus"], U[0, :half, 0], atol=1e-12)
    assert np.allclose(p["u_rms_plus"], 2.0 * e / np.sqrt(2), atol=1e-12)
    assert np.allclose(p["w_rms_plus"], 1.0 * e / np.sqrt(2), atol=1e-12)
    assert np.allclose(p["uv_plus"], -0.5 * y[:half] * e**2, atol=1e-12)   # <u'v'> = a b / 2
    assert p["u_tau_wall"] == pytest.approx(np.sqrt(nu * 10 * (1 - y[1] ** 2) / (1 + y[1])), rel=1e-12)
    s = coarse_spectra(vel, y, nu, lx, lz, y_plus=15)
    j = int(np.argmin(np.abs((1 + y[:half]) / nu - 15)))
    assert s["y_plus_near"] == pytest.approx((1 + y[j]) / nu)
    Euu = s["near"]["Euu_x"]
    assert Euu[2] == pytest.approx((2.0 * env[0, j, 0]) ** 2 / 2, rel=1e-12)
    assert np.abs(np.delete(Euu, 2)).max() < 1e-12 * Euu[2]
    # spanwise: u' does not vary in z (all its energy at k_z = 0); w' sits at k_z = 2 pi / lz
    assert s["near"]["Euu_z"].sum() == pytest.approx(Euu.sum(), rel=1e-12)
    assert s["centre"]["Eww_z"][1] == pytest.approx(1.0 / 2, rel=1e-12)


def test_coarse_statistics_refuse_a_velocity_of_another_grid():
    y = -np.cos(np.pi * np.arange(9) / 8)
    with pytest.raises(OptionError, match="is not"):
        coarse_profiles(np.zeros((2, 4, 8, 4, 3)), y, 0.01)
    with pytest.raises(OptionError, match="is not"):
        coarse_spectra(np.zeros((2, 4, 9, 4, 2)), y, 0.01, 1.0, 1.0)


def test_coarse_profiles_do_not_depend_on_the_chunking():
    rng = np.random.default_rng(0)
    y = -np.cos(np.pi * np.arange(9) / 8)
    vel = rng.standard_normal((150, 4, 9, 4, 3))  # more snapshots than one chunk (64)
    p = coarse_profiles(vel, y, 0.01)
    flat = np.moveaxis(vel, 2, 0).reshape(9, -1, 3)  # (NY, samples, component)
    var = flat.var(axis=1)
    half = 5
    assert p["u_rms_plus"] == pytest.approx(np.sqrt(0.5 * (var[:half, 0] + var[::-1][:half, 0])), rel=1e-12)
