"""The shipped developed Re_tau 180 state (``re180-reduced``) and the ``surrogate`` preset
that starts from it."""
from __future__ import annotations

import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from datagen.channel import PRESETS, generate
from datagen.channel.states import SHIPPED_STATES, load_state, resolve_restart, shipped_state_path
from datagen.channel.stats import compare_with_reference, load_reference, plane_sample, wall_units
from linsolve.core.errors import OptionError


@pytest.fixture(scope="module")
def state():
    return load_state("re180-reduced")


def test_shipped_state_is_small_and_on_the_reduced_box_grid(state):
    path = shipped_state_path("re180-reduced")
    assert path.stat().st_size < 4e6
    g = state.grid
    assert (g.nx, g.ny, g.nz) == (32, 64, 48)
    assert g.lx == pytest.approx(math.pi) and g.lz == pytest.approx(math.pi / 2)
    assert state.cfg.re_tau == 180.0 and state.cfg.dt == 2e-3
    assert state.t > 30  # developed: well past the transition (t ~ 15 h/u_tau from a laminar start)


def test_shipped_state_is_divergence_free_to_round_off(state):
    assert state.divergence_max() < 1e-11 * state.cfg.ub
    assert state.bulk_velocity() == pytest.approx(state.cfg.ub, rel=1e-12)


def test_shipped_state_is_developed_turbulence(state):
    # one snapshot: laminar flow at the same bulk velocity would give Re_tau 92 and no fluctuations
    p = wall_units(plane_sample(state), 1, state.grid.yc, state.nu)
    assert p["re_tau"] == pytest.approx(180.0, rel=0.05)
    i = int(np.argmax(p["u_rms_plus"]))
    assert 2.2 <= p["u_rms_plus"][i] <= 3.2 and 8 <= p["y_plus"][i] <= 25
    assert 0.5 <= np.max(-p["uv_plus"]) <= 1.0
    # mean profile against Moser, Kim & Mansour (1999), y+ 5..150, as the validation does (there <= 5%
    # for the time average; one snapshot is allowed a little more)
    cmp = compare_with_reference(p, load_reference())
    assert cmp["mean_U_rms_rel_err_5_150"] < 0.08


def test_shipped_state_runs_stably_at_the_preset_step(state):
    dns = load_state("re180-reduced")
    m = dns.run(20, check_every=5)
    assert m["cfl"] < 1.0 and dns.divergence_max() < 1e-11 * dns.cfg.ub


def test_resolve_restart_takes_a_name_or_a_path(tmp_path):
    assert resolve_restart("re180-reduced") == shipped_state_path("re180-reduced")
    p = tmp_path / "x.npz"
    p.write_bytes(b"")
    assert resolve_restart(str(p)) == p and resolve_restart(p) == p
    with pytest.raises(OptionError, match="does not exist .*re180-reduced"):
        resolve_restart("re180-full")
    with pytest.raises(OptionError, match="unknown shipped channel state"):
        shipped_state_path("nosuch")
    assert set(SHIPPED_STATES) == {"re180-reduced"}


def test_surrogate_preset_keeps_the_paper_snapshot_spacing_in_wall_units(state):
    sur, paper = PRESETS["surrogate"], PRESETS["paper"]
    assert sur["restart"] == "re180-reduced" and sur["spinup"] == 0
    # Delta t+ = Delta t u_tau^2 / nu = Delta t Re_tau (units h, u_tau): 36 in both
    dt_plus = sur["every"] * state.cfg.dt * sur["re_tau"]
    assert dt_plus == pytest.approx(paper["every"] * paper["dt"] * paper["re_tau"], rel=1e-12)
    assert dt_plus == pytest.approx(36.0)
    assert tuple(sur["grid"]) == (state.grid.nx, state.grid.ny, state.grid.nz) and sur["dt"] == state.cfg.dt


def test_surrogate_preset_starts_from_the_shipped_state(tmp_path, state):
    out = generate(tmp_path / "s.h5", preset="surrogate", trajectories=2, snapshots=2, every=3, decorrelate=2)
    assert not (tmp_path / "s.h5.parts" / "spinup.npz").exists()  # no spin-up
    with h5py.File(out, "r") as f:
        vel = f["t1_fields/velocity"][()]
        assert vel.shape == (2, 2, 16, 17, 8, 3)
        np.testing.assert_allclose(f["trajectory_start_time"][()], state.t + 2 * 2e-3, rtol=1e-12)
        assert f.attrs["snapshot_dt"] == pytest.approx(3 * 2e-3)
    # turbulent from the first snapshot: streamwise fluctuations of order u_tau near the wall
    u = vel[:, 0, :, 1:-1, :, 0]
    assert np.all(u.std(axis=(1, 3)) > 0.3)
    assert not np.allclose(vel[0], vel[1])  # the seeded perturbations differ


def test_generate_dt_overrides_a_restart_checkpoint(tmp_path):
    out = generate(tmp_path / "s.h5", restart="re180-reduced", trajectories=1, snapshots=2, every=2, decorrelate=0,
                   dt=1e-3, coarse_grid=(16, 17, 8))
    with h5py.File(out, "r") as f:
        assert f.attrs["dt"] == pytest.approx(1e-3)
        np.testing.assert_allclose(f["dimensions/time"][()], [0.0, 2e-3], rtol=1e-5)


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_restart_by_name_and_unknown_name(tmp_path):
    p = _run("generate", "channel", "--restart", "re180-reduced", "--trajectories", "1", "--snapshots", "2",
             "--every", "2", "--out", "a.h5", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["t1_fields/velocity"].shape == (1, 2, 16, 17, 8, 3)
    p = _run("generate", "channel", "--preset", "surrogate", "--restart", "re180-full", "--out", "b.h5", cwd=tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "re180-reduced" in lines[0], p.stderr
    assert not (tmp_path / "b.h5").exists() and not (tmp_path / "b.h5.parts").exists()

