"""operators.rollout: autoregressive prediction in the channel trajectory layout, the energy band
and non-finite stops, the kinetic energy against its formula."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from operators_tiny import tiny_checkpoint_dict, use_tiny_models, write_channel_file

import datagen
from operators.checkpoint import CheckpointError, atomic_save, load_checkpoint
from operators.data import DataError, load_channel
from operators.rollout import kinetic_energy, rollout, y_weights


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    torch.set_num_threads(1)
    use_tiny_models(monkeypatch)


@pytest.fixture(scope="module")
def chan(tmp_path_factory):
    return write_channel_file(tmp_path_factory.mktemp("rollout") / "c.h5", K=2, S=8)


def _ckpt(path, **kw):
    ck = tiny_checkpoint_dict(**kw)
    atomic_save(ck, path)
    return path


def test_kinetic_energy_matches_its_formula():
    y = -np.cos(np.pi * np.arange(9) / 8)
    w = y_weights(y)
    assert w.sum() == pytest.approx(1.0)
    assert w @ (y**2) == pytest.approx(np.trapezoid(y**2, y) / 2, rel=1e-12)
    u = np.zeros((3, 8, 9, 4))
    x = np.arange(8)[:, None, None] * 2 * np.pi / 8
    u[0] = 3.0 + 2.0 * np.cos(x) * np.ones((1, 9, 4))  # plane mean 3, fluctuation 2 cos x
    # tke: 0.5 * <4 cos^2> = 1 everywhere; total adds 0.5 * 9
    assert kinetic_energy(u, y, "tke") == pytest.approx(1.0)
    assert kinetic_energy(u, y, "total") == pytest.approx(1.0 + 4.5)


def test_rollout_file_is_a_channel_trajectory_file(chan, tmp_path):
    ck = _ckpt(tmp_path / "m.pt", in_steps=2, scale=1.0)
    r = rollout(ck, chan, 1, 5, tmp_path / "r.h5", band=(0.01, 100))
    assert r.stopped_at_step is None and r.steps_completed == 5
    d = datagen.open_dataset(tmp_path / "r.h5")
    ref = datagen.open_dataset(chan)
    assert d.velocity.shape == (1, 7, 8, 9, 4, 3)
    np.testing.assert_array_equal(d.velocity[0, :2], ref.velocity[1, :2])  # the initial window
    model, _ = load_checkpoint(ck)
    x = torch.from_numpy(load_channel(chan).velocity[1, :2])[None]
    with torch.no_grad():
        p1 = model(x)
        p2 = model(torch.cat([x[:, 1:], p1[:, None]], dim=1))
    np.testing.assert_allclose(d.velocity[0, 2], np.moveaxis(p1[0].numpy(), 0, -1), rtol=1e-6)
    np.testing.assert_allclose(d.velocity[0, 3], np.moveaxis(p2[0].numpy(), 0, -1), rtol=1e-5, atol=1e-6)
    for k in ("Re_tau", "nu", "snapshot_dt", "Lx"):
        assert d.scalars[k] == ref.scalars[k]
    np.testing.assert_array_equal(d.coordinates["y"], ref.coordinates["y"])
    g = d.groups["rollout"]
    assert g["reference_trajectory"] == 1 and g["stopped_at_step"] == -1 and g["steps_completed"] == 5
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f["boundary_conditions/y_wall/mask"][()].tolist() == [True] + [False] * 7 + [True]


def test_rollout_stops_when_the_energy_leaves_the_band(chan, tmp_path):
    ck = _ckpt(tmp_path / "m.pt", scale=1.5)  # amplifies the fluctuations every step
    r = rollout(ck, chan, 0, 50, tmp_path / "r.h5")
    assert r.stopped_at_step is not None and r.stopped_at_step < 50 and "left the band" in r.reason
    d = datagen.open_dataset(tmp_path / "r.h5")
    assert d.velocity.shape[1] == 1 + r.steps_completed == r.stopped_at_step
    assert d.groups["rollout"]["stopped_at_step"] == r.stopped_at_step
    e = kinetic_energy(np.moveaxis(d.velocity[0, 1:], -1, 1), d.coordinates["y"])
    e_ref = kinetic_energy(load_channel(chan).velocity, load_channel(chan).y).mean()
    assert np.all((e >= 0.5 * e_ref) & (e <= 2 * e_ref))  # what was written stayed inside


def test_rollout_stops_at_a_non_finite_prediction(chan, tmp_path):
    ck = tiny_checkpoint_dict()
    ck["state_dict"]["net.2.bias"] = torch.tensor([np.inf, 0.0, 0.0])
    atomic_save(ck, tmp_path / "inf.pt")
    r = rollout(tmp_path / "inf.pt", chan, 0, 5, tmp_path / "r.h5")
    assert r.stopped_at_step == 1 and r.reason == "non-finite prediction" and r.steps_completed == 0
    assert np.all(np.isfinite(datagen.open_dataset(tmp_path / "r.h5").velocity))


def test_bad_input_writes_nothing(chan, tmp_path):
    ck = _ckpt(tmp_path / "m.pt")
    with pytest.raises(DataError, match=r"trajectory index \(of the \d+ in .*\) must be an integer in .*got 2"):
        rollout(ck, chan, 2, 3, tmp_path / "r.h5")
    other = _ckpt(tmp_path / "g.pt", grid=(8, 9, 6))
    with pytest.raises(CheckpointError, match="8x9x6 grid"):
        rollout(other, chan, 0, 3, tmp_path / "r.h5")
    box = _ckpt(tmp_path / "b.pt", box=(6.0, 1.5))
    with pytest.raises(CheckpointError, match="box"):
        rollout(box, chan, 0, 3, tmp_path / "r.h5")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable operators checkpoint"):
        rollout(tmp_path / "junk.pt", chan, 0, 3, tmp_path / "r.h5")
    ck2 = tiny_checkpoint_dict()
    ck2["model_config"] = dict(ck2["model_config"], width=6)  # weights of another architecture
    atomic_save(ck2, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        rollout(tmp_path / "w.pt", chan, 0, 3, tmp_path / "r.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.pt", "g.pt", "junk.pt", "m.pt", "w.pt"]
