"""operators.data: channel trajectories read through datagen.open_dataset, split by trajectory,
windows and training-split normalisation."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from operators_tiny import write_channel_file

import datagen
from operators.data import (
    DataError,
    WindowDataset,
    load_channel,
    normalization_stats,
    split_trajectories,
    windows,
)


@pytest.fixture(scope="module")
def chan(tmp_path_factory):
    return write_channel_file(tmp_path_factory.mktemp("data") / "c.h5", K=3, S=10)


def test_open_dataset_gives_the_stored_trajectories(chan):
    d = datagen.open_dataset(chan)
    with h5py.File(chan, "r") as f:
        np.testing.assert_array_equal(d.velocity, f["t1_fields/velocity"][()])
        assert d.scalars["snapshot_dt"] == pytest.approx(0.1)
        assert d.n_trajectories == 3 and d.time.shape == (10,)


def test_load_channel_is_channels_first_with_grid_and_scalars(chan):
    d = load_channel(chan)
    with h5py.File(chan, "r") as f:
        raw = f["t1_fields/velocity"][()]
    assert d.velocity.shape == (3, 10, 3, 8, 9, 4) and d.grid == (8, 9, 4)
    np.testing.assert_array_equal(d.velocity[1, 4, 2], raw[1, 4, ..., 2])
    np.testing.assert_allclose(d.y, -np.cos(np.pi * np.arange(9) / 8), atol=1e-6)
    assert d.nu == pytest.approx(1 / 180) and d.re_tau == pytest.approx(180) and d.snapshot_dt == pytest.approx(0.1)


def test_split_is_by_trajectory_never_by_snapshot():
    s = split_trajectories(6, 50)
    assert s.test == [(5, 0, 50)] and s.val == [(4, 0, 50)] and s.train == [(k, 0, 50) for k in range(4)]
    assert not set(s.train_trajectories) & set(s.test_trajectories)
    s = split_trajectories(3, 50)  # too few for a whole validation trajectory: a contiguous tail
    assert s.test == [(2, 0, 50)] and s.train == [(0, 0, 40), (1, 0, 40)] and s.val == [(0, 40, 50), (1, 40, 50)]
    with pytest.raises(DataError, match="at least one must remain"):
        split_trajectories(1, 50)


def test_windows_stay_inside_their_range():
    w = windows([(0, 0, 6), (2, 3, 8)], in_steps=2, horizon=2)
    assert w == [(0, 0), (0, 1), (0, 2), (2, 3), (2, 4)]
    for k, s in w:  # inputs and targets inside the range
        lo, hi = {0: (0, 6), 2: (3, 8)}[k]
        assert lo <= s and s + 4 <= hi


def test_window_dataset_pairs_and_seeded_order(chan):
    d = load_channel(chan)
    ds = WindowDataset(d.velocity, [(0, 0, 10)], in_steps=2, horizon=1)
    x, y = ds[3]
    np.testing.assert_array_equal(x.numpy(), d.velocity[0, 3:5])
    np.testing.assert_array_equal(y.numpy(), d.velocity[0, 5:6])
    a = [b[0].numpy() for b in ds.batches(3, seed=1, epoch=2)]
    b = [b[0].numpy() for b in ds.batches(3, seed=1, epoch=2)]
    c = [b[0].numpy() for b in ds.batches(3, seed=1, epoch=3)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_normalisation_uses_the_training_split_only(chan):
    d = load_channel(chan)
    s = split_trajectories(3, 10)
    mean, std = normalization_stats(d.velocity, s.train)
    blk = np.concatenate([d.velocity[k, a:b] for k, a, b in s.train]).astype(np.float64)
    np.testing.assert_allclose(mean, blk.mean(axis=(0, 2, 3, 4)), rtol=1e-6)
    np.testing.assert_allclose(std, blk.std(axis=(0, 2, 3, 4)), rtol=1e-5)
    v = d.velocity.copy()
    v[2] *= 100  # the held-out trajectory does not enter
    v[0, 9] *= 100  # nor the validation tail
    m2, s2 = normalization_stats(v, s.train)
    np.testing.assert_array_equal(m2, mean)
    np.testing.assert_array_equal(s2, std)


def test_bad_files_are_data_errors(tmp_path, chan):
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_channel(tmp_path / "t.txt")
    with pytest.raises(DataError, match="does not exist"):
        load_channel(tmp_path / "none.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a datagen file"):
        load_channel(tmp_path / "plain.h5")
    v = load_channel(chan).velocity
    v = np.moveaxis(v, 2, -1).copy()
    v[1, 3, 2, 2, 2, 0] = np.nan
    write_channel_file(tmp_path / "nan.h5", velocity=v)
    with pytest.raises(DataError, match="NaN/Inf velocity .*trajectory 1, snapshot 3"):
        load_channel(tmp_path / "nan.h5")
    with pytest.raises(DataError, match=r"trajectory index \(of the \d+ in .*\) must be an integer in \[0, \d+\], got 3"):
        load_channel(chan).trajectory(3)


def test_a_file_of_solved_systems_is_refused(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "datagen.cli", "generate", "poisson", "--n", "2", "--grid", "8",
                        "--out", str(tmp_path / "p.h5"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with pytest.raises(DataError, match="solved systems"):
        load_channel(tmp_path / "p.h5")
