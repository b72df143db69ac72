"""`datagen generate channel ...`: the DNS dataset path of the CLI (tiny grid)."""
from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from datagen_run import CHANNEL, one_line, run_datagen

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
    # found inside the DNS set-up, and still nothing is left behind
    (["--re-tau", "nan"], "re_tau must be a finite number > 0"),
    (["--solver", "nosuch"], "unknown solver 'nosuch'"),
    # options of the other families: refused, not ignored
    (["--n", "3"], "--n does not apply to the channel problem"),
    (["--param", "a=1"], "--param does not apply"),
])
def test_channel_bad_geometry_exit_2_writes_nothing(tmp_path, extra, needle):
    # each is one line on stderr, exit 2, and nothing is written (no .parts/ either)
    p = _run("generate", "channel", "--out", "g.h5", "--quiet", *extra, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert list(tmp_path.iterdir()) == []


def test_channel_bad_coarse_grid_refused_before_the_spin_up(tmp_path):
    # checked before the spin-up, so nothing is left behind and the corrected command runs
    # without --overwrite
    p = run_datagen(*CHANNEL, "--coarse-grid", "16,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 2
    assert "finer than the DNS grid" in one_line(p)
    assert list(tmp_path.iterdir()) == []
    p = run_datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_channel_blow_up_is_one_line_and_leaves_nothing(tmp_path):
    # a spin-up that blows up is one line (no NumPy overflow warnings) and leaves no
    # g.h5.parts/, so the command with a smaller dt runs without --resume or --overwrite
    p = run_datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--dt", "10", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 1
    assert "the DNS blew up" in one_line(p) and p.stdout == ""
    assert list(tmp_path.iterdir()) == []
    p = run_datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_channel_resume_with_other_settings_does_not_advise_resume(tmp_path):
    # the error names the differing settings and --overwrite, and does not advise the
    # --resume that has just failed
    p = run_datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "g.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    before = (tmp_path / "g.h5").read_bytes()
    args = [a if a != "2" else "3" for a in CHANNEL]  # --snapshots 3 (and --every 3)
    p = run_datagen(*args, "--coarse-grid", "4,5,4", "--out", "g.h5", "--resume", cwd=tmp_path)
    assert p.returncode == 2
    line = one_line(p)
    assert "different configuration" in line and "every, snapshots" in line and "--overwrite" in line
    assert "--resume continues" not in line
    assert (tmp_path / "g.h5").read_bytes() == before
    p = run_datagen(*args, "--coarse-grid", "4,5,4", "--out", "g.h5", "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["t1_fields/velocity"].shape[:2] == (1, 3)


def test_channel_resume_with_a_damaged_run_configuration_is_one_line(tmp_path):
    # OUT.parts/config.json that is not JSON is one line, exit 2, naming --overwrite
    args = [*CHANNEL, "--coarse-grid", "4,5,4", "--out", "c.h5"]
    assert run_datagen(*args, cwd=tmp_path).returncode == 0
    for text in ("garbage", "[1]"):
        (tmp_path / "c.h5.parts" / "config.json").write_text(text)
        p = run_datagen(*args, "--resume", cwd=tmp_path)
        assert p.returncode == 2 and "is damaged" in one_line(p) and "--overwrite" in p.stderr
    assert run_datagen(*args, "--overwrite", cwd=tmp_path).returncode == 0


def test_channel_resume_recomputes_a_damaged_trajectory_shard(tmp_path):
    # a trajectory shard that does not open is not taken as finished: --resume recomputes it
    args = [*CHANNEL, "--trajectories", "2", "--coarse-grid", "4,5,4", "--out", "c.h5"]
    assert run_datagen(*args, cwd=tmp_path).returncode == 0
    before = (tmp_path / "c.h5").read_bytes()
    (tmp_path / "c.h5.parts" / "traj_0001.h5").write_text("junk")
    p = run_datagen(*args, "--resume", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (tmp_path / "c.h5").read_bytes() == before  # recomputed to the same bytes
