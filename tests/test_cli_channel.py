"""`datagen generate channel ...`: the DNS dataset path of the CLI (tiny grid)."""
from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

ARGS = ["generate", "channel", "--grid", "16,32,16", "--box", "3.0,1.5", "--coarse-grid", "8,9,4", "--trajectories", "2",
        "--snapshots", "3", "--every", "4", "--spinup", "40", "--dt", "0.002", "--quiet"]


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "datagen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("channel")
    p = _run(*ARGS, "--out", "a.h5", cwd=d)
    assert p.returncode == 0, p.stderr
    return d


def test_channel_dataset_layout_and_reproducible(generated):
    d = generated
    with h5py.File(d / "a.h5", "r") as f:
        vel = f["t1_fields/velocity"][()]
        assert vel.shape == (2, 3, 8, 9, 4, 3)
        assert vel.dtype == np.float32 and np.all(np.isfinite(vel))
        assert int(f.attrs["n_trajectories"]) == 2
        assert f["scalars/Re_tau"][()] == pytest.approx(180.0)
        # different seeds give different trajectories
        assert not np.array_equal(vel[0], vel[1])
    p = _run(*ARGS, "--out", "b.h5", cwd=d)
    assert p.returncode == 0, p.stderr
    with h5py.File(d / "a.h5", "r") as fa, h5py.File(d / "b.h5", "r") as fb:
        np.testing.assert_array_equal(fa["t1_fields/velocity"][()], fb["t1_fields/velocity"][()])


def test_channel_inspect_and_validate(generated):
    p = _run("inspect", "a.h5", cwd=generated)
    assert p.returncode == 0 and "2 trajectories" in p.stdout, p.stderr
    p = _run("validate", "a.h5", cwd=generated)
    assert p.returncode == 0 and "every field finite" in p.stdout
    p = _run("plot", "a.h5", "--trajectory", "1", "--snapshot", "2", "--out", "a.png", cwd=generated)
    assert p.returncode == 0, p.stderr
    assert (generated / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra,needle", [
    ([], "exists"),
    (["--filter", "gauss"], "box or spectral"),
    (["--restart", "/nonexistent.npz", "--overwrite"], "does not exist"),
])
def test_channel_bad_input_exit_2(generated, extra, needle):
    p = _run(*ARGS, "--out", "a.h5", *extra, cwd=generated)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0]


def test_channel_options_rejected_for_other_families(tmp_path):
    p = _run("generate", "darcy", "--n", "2", "--out", "x.h5", "--re-tau", "395", cwd=tmp_path)
    assert p.returncode == 2 and "only to the channel" in p.stderr
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("extra,needle", [
    (["--grid", "0"], "grid must be 3"),
    (["--grid", "16,32"], "grid must be 3"),
    (["--coarse-grid", "8,0,4"], "coarse_grid must be 3"),
    (["--box", "3.0,1.5,2.0"], "box must be 2"),
    (["--box", "-3.0,1.5"], "box must be 2"),
    # found inside the DNS set-up: used to leave g.h5.parts/ behind
    (["--re-tau", "nan"], "re_tau must be positive"),
    (["--solver", "nosuch"], "unknown solver 'nosuch'"),
    # options of the other families: were silently ignored
    (["--n", "3"], "--n does not apply to the channel problem"),
    (["--param", "a=1"], "--param does not apply"),
])
def test_channel_bad_geometry_exit_2_writes_nothing(tmp_path, extra, needle):
    # these were a ValueError traceback (exit 1) from unpacking the grid, after .parts/ was created
    p = _run("generate", "channel", "--out", "g.h5", "--quiet", *extra, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert list(tmp_path.iterdir()) == []
