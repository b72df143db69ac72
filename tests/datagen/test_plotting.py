"""`datagen plot` of channel trajectory files (DNS, LES, rollouts): the plotted quantities
against hand-computed ones on a small hand-written file, the figure file, bad input."""
from __future__ import annotations

import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from datagen.plotting import trajectory_snapshot
from datagen.storage import FORMAT, StoreError

K, S, NX, NY, NZ = 2, 3, 6, 9, 4


def _write_trajectory_file(path, vel, re_tau=180.0, scalars=True):
    """The channel trajectory layout's parts that plotting reads, written by hand."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format=FORMAT, dataset_name="channel_flow", n_trajectories=vel.shape[0], n_spatial_dims=3)
        d = f.create_group("dimensions")
        d["x"] = (np.arange(vel.shape[2]) * 0.5).astype(np.float32)
        d["y"] = (-np.cos(np.pi * np.arange(vel.shape[3]) / (vel.shape[3] - 1))).astype(np.float32)
        d["z"] = (np.arange(vel.shape[4]) * 0.25).astype(np.float32)
        d["time"] = (0.2 * np.arange(vel.shape[1])).astype(np.float32)
        if scalars:
            f.create_group("scalars")["Re_tau"] = np.float32(re_tau)
        else:
            f.attrs["Re_tau"] = re_tau
        f.create_group("t1_fields")["velocity"] = vel.astype(np.float32)
    return path


@pytest.fixture
def vel():
    return np.random.default_rng(3).uniform(0.0, 20.0, (K, S, NX, NY, NZ, 3)).astype(np.float32)


@pytest.mark.parametrize("scalars", [True, False])
def test_trajectory_snapshot_matches_hand_computed_quantities(tmp_path, vel, scalars):
    path = _write_trajectory_file(tmp_path / "t.h5", vel, scalars=scalars)
    d = trajectory_snapshot(path, trajectory=1, snapshot=2)
    u = vel[1, 2, ..., 0].astype(np.float64)
    # y_j = -cos(pi j / 8): y+ = 180 (1 - cos(pi j / 8)) is 0, 13.70, 52.72, ... so j = 1 is nearest 15
    assert d["j_wall"] == 1 and d["y_plus_wall"] == pytest.approx(180 * (1 - math.cos(math.pi / 8)), rel=1e-6)
    assert d["j_centre"] == 4 and d["k_xy"] == 2 and d["re_tau"] == pytest.approx(180.0)
    assert d["time"] == pytest.approx(0.4)
    np.testing.assert_array_equal(d["u_xz_wall"], u[:, 1, :])
    np.testing.assert_array_equal(d["u_xz_centre"], u[:, 4, :])
    np.testing.assert_array_equal(d["u_xy"], u[:, :, 2])
    # mean profile: plane average, lower point j paired with its mirror NY-1-j (centre with itself)
    U = [sum(u[i, j, k] for i in range(NX) for k in range(NZ)) / (NX * NZ) for j in range(NY)]
    want = [0.5 * (U[j] + U[NY - 1 - j]) for j in range(5)]
    np.testing.assert_allclose(d["U_plus"], want, rtol=1e-12)
    Um = [sum(float(vel[1, s, i, j, k, 0]) for s in range(S) for i in range(NX) for k in range(NZ)) / (S * NX * NZ)
          for j in range(NY)]
    np.testing.assert_allclose(d["U_plus_mean"], [0.5 * (Um[j] + Um[NY - 1 - j]) for j in range(5)], rtol=1e-10)
    np.testing.assert_allclose(d["y_plus_profile"], 180 * (1 - np.cos(np.pi * np.arange(5) / 8)), rtol=1e-6, atol=1e-4)


def test_trajectory_snapshot_refuses_out_of_range_index(tmp_path, vel):
    path = _write_trajectory_file(tmp_path / "t.h5", vel)
    with pytest.raises(StoreError, match=r"trajectory \(of the 2 in the file\) must be an integer in \[0, 1\], got 2"):
        trajectory_snapshot(path, trajectory=2)
    with pytest.raises(StoreError, match=r"snapshot \(of the \d+ in the file\) must be an integer in .*got -1"):
        trajectory_snapshot(path, snapshot=-1)


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_plot_trajectory_writes_png(tmp_path, vel):
    _write_trajectory_file(tmp_path / "t.h5", vel)
    p = _run("plot", "t.h5", "--trajectory", "1", "--snapshot", "2", "--out", "fig.png", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = (tmp_path / "fig.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert sorted(q.name for q in tmp_path.iterdir()) == ["fig.png", "t.h5"]  # no temporary left


def _nan_file(path, vel):
    vel = vel.copy()
    vel[0, 0, 1, 2, 3, 0] = np.nan
    return _write_trajectory_file(path, vel)


def _no_velocity_file(path, vel):
    _write_trajectory_file(path, vel)
    with h5py.File(path, "a") as f:
        del f["t1_fields/velocity"]
    return path


def _wrong_shape_file(path, vel):
    return _write_trajectory_file(path, vel[..., :2])


@pytest.mark.parametrize("make,extra,needle", [
    (_write_trajectory_file, ["--trajectory", "2"], "--trajectory (of the 2 in the file) must be an integer in [0, 1], got 2"),
    (_write_trajectory_file, ["--snapshot", "3"], "--snapshot (of the 3 in the file) must be an integer in [0, 2], got 3"),
    (_write_trajectory_file, ["--index", "1"], "not --index"),
    (_nan_file, [], "non-finite velocity"),
    (_no_velocity_file, [], "not a channel trajectory file"),
    (_wrong_shape_file, [], "t1_fields/velocity has shape"),
])
def test_plot_trajectory_bad_input_exit_2_writes_nothing(tmp_path, vel, make, extra, needle):
    make(tmp_path / "t.h5", vel)
    p = _run("plot", "t.h5", *extra, "--out", "fig.png", cwd=tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "fig.png").exists()


def test_plot_sample_file_refuses_trajectory_options(tmp_path):
    p = _run("generate", "darcy", "--n", "2", "--grid", "8", "--out", "d.h5", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = _run("plot", "d.h5", "--snapshot", "1", "--out", "fig.png", cwd=tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "--index" in lines[0], p.stderr
    assert not (tmp_path / "fig.png").exists()
