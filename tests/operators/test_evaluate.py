"""operators.evaluate: per-step error, late statistics (datagen's coarse profiles and spectra, tested
on hand-computed fields in test_channel_coarse_stats.py), the report files, and files without rollout
metadata (LES/DNS in the same layout, among them a real `datagen les` file)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from operators_tiny import write_channel_file

from linsolve.core.errors import OptionError
from operators.data import DataError, load_channel
from operators.evaluate import FIGURES, evaluate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    write_channel_file(d / "ref.h5", K=2, S=12)
    v = load_channel(d / "ref.h5").velocity
    v = np.moveaxis(v, 2, -1)
    write_channel_file(d / "same.h5", velocity=v)
    w = v.copy()
    w[..., 0] *= 1.1
    write_channel_file(d / "scaled.h5", velocity=w)
    return d


def test_a_file_equal_to_the_reference_has_zero_errors(files, tmp_path):
    rep = evaluate(files / "same.h5", files / "ref.h5", tmp_path / "rep")
    assert rep["per_step"]["step"] == list(range(1, 12))
    assert max(rep["per_step"]["rel_l2"]) == 0.0
    assert rep["reference_trajectories"] == [0, 1]
    for q, e in rep["statistics"]["errors"].items():
        if q.endswith("rms_plus") or q == "U_plus":
            assert e < 0.2, q  # late half of the same trajectories vs all of them: small, not zero
    for name in ("report.json", "report.md", *FIGURES):
        assert (tmp_path / "rep" / name).is_file(), name
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["grid"] == [8, 9, 4]


def test_a_scaled_velocity_gives_its_scale_as_error(files, tmp_path):
    rep = evaluate(files / "scaled.h5", files / "ref.h5", tmp_path / "rep", late=1.0)
    # u is 1.1 x the reference everywhere; the per-step error is the mean over both trajectories
    st = rep["statistics"]["errors"]
    # late=1.0 averages snapshots 1..S-1 (the first is the initial condition) against all of them
    assert st["U_plus"] == pytest.approx(0.1, rel=2e-2)
    ref = load_channel(files / "ref.h5")
    e1 = np.mean([np.linalg.norm(0.1 * ref.velocity[k, 1, 0]) / np.linalg.norm(ref.velocity[k, 1]) for k in (0, 1)])
    assert rep["per_step"]["rel_l2"][0] == pytest.approx(e1, rel=1e-4)


def test_bad_input_writes_nothing(files, tmp_path):
    write_channel_file(tmp_path / "g.h5", K=1, S=4, grid=(8, 9, 6))
    with pytest.raises(DataError, match="8x9x6 grid"):
        evaluate(tmp_path / "g.h5", files / "ref.h5", tmp_path / "rep")
    with pytest.raises(DataError, match=r"trajectory index \(of the \d+ in .*\) must be an integer in .*got 5"):
        evaluate(files / "same.h5", files / "ref.h5", tmp_path / "rep", trajectory=5)
    with pytest.raises(OptionError, match="late"):
        evaluate(files / "same.h5", files / "ref.h5", tmp_path / "rep", late=0)
    assert not (tmp_path / "rep").exists()
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "x").write_text("")
    with pytest.raises(OptionError, match="not empty"):
        evaluate(files / "same.h5", files / "ref.h5", tmp_path / "rep")


def test_an_les_file_is_compared_with_its_source_trajectory(files, tmp_path):
    import h5py

    ref = load_channel(files / "ref.h5")
    v = np.moveaxis(ref.velocity[1:2], 2, -1).copy()  # "LES" of the last trajectory, 5 % off in u
    v[..., 0] *= 1.05
    write_channel_file(tmp_path / "les.h5", velocity=v)
    with h5py.File(tmp_path / "les.h5", "r+") as f:  # as datagen les marks its output
        f.attrs["les_source_trajectory"] = -1
        f.attrs["les_model"] = "wale"
    rep = evaluate(tmp_path / "les.h5", files / "ref.h5", tmp_path / "rep")
    assert rep["reference_trajectories"] == [1]
    e1 = np.linalg.norm(0.05 * ref.velocity[1, 1, 0]) / np.linalg.norm(ref.velocity[1, 1])
    assert rep["per_step"]["rel_l2"][0] == pytest.approx(e1, rel=1e-4)


def test_a_datagen_les_file_is_read_by_inspect_open_dataset_and_evaluate(tmp_path):
    """The real chain: a tiny `datagen generate channel` file, `datagen les` on its last
    trajectory, then `datagen inspect`, `datagen.open_dataset` and `operators evaluate`."""
    import subprocess
    import sys

    import datagen
    from datagen.channel import generate

    src = tmp_path / "dns.h5"
    generate(src, trajectories=2, snapshots=3, every=5, spinup=30, grid=(16, 24, 8), coarse_grid=(8, 9, 4), seed=1)

    def cli(module, *args):
        p = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=tmp_path,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout

    cli("datagen.cli", "les", "--from", str(src), "--sgs", "wale", "--snapshots", "4", "--out", "les.h5", "--quiet")
    assert "les.h5" in cli("datagen.cli", "inspect", "les.h5")
    les = datagen.open_dataset(tmp_path / "les.h5")
    assert les.velocity.shape == (1, 4, 8, 9, 4, 3) and les.attrs["les_model"] == "wale"
    cli("operators.cli", "evaluate", "les.h5", "--reference", str(src), "--out", "rep", "--quiet")
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["reference_trajectories"] == [1] and rep["rollout_info"]["les_model"] == "wale"
    # the LES starts from the filtered DNS's snapshot 0 and is compared with its snapshots 1 and 2
    ref = load_channel(src).velocity[1]
    pred = load_channel(tmp_path / "les.h5").velocity[0]
    expect = [np.linalg.norm(pred[s] - ref[s]) / np.linalg.norm(ref[s]) for s in (1, 2)]
    assert rep["per_step"]["rel_l2"] == pytest.approx(expect, rel=1e-5)
    assert 0 < rep["per_step"]["rel_l2"][0] < 0.5
    for name in ("report.md", *FIGURES):
        assert (tmp_path / "rep" / name).is_file(), name
