"""The `operators` command: train -> rollout -> evaluate end to end, exit codes, one-line errors,
nothing written on bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from operators_tiny import tiny_checkpoint_dict, use_tiny_models, write_channel_file

import datagen
from operators.checkpoint import atomic_save
from operators.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    torch.set_num_threads(1)
    use_tiny_models(monkeypatch)


def run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(map(str, args)))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_channel_file(d / "c.h5", K=3, S=10)
    v = np.moveaxis(datagen.open_dataset(d / "c.h5").velocity, -1, -1).copy()
    v[0, 2, 1, 1, 1, 1] = np.nan
    write_channel_file(d / "nan.h5", velocity=v)
    atomic_save(tiny_checkpoint_dict(grid=(8, 9, 6)), d / "grid6.pt")
    (d / "text.h5").write_text("not hdf5")
    return d


def test_train_rollout_evaluate(work, tmp_path, capsys):
    rc, out, err = run(capsys, "train", "--model", "tiny", "--data", work / "c.h5", "--out", tmp_path / "run",
                       "--epochs", "2", "--batch", "4", "--model-opt", "in_steps=2", "--threads", "1")
    assert rc == 0, err
    assert "epoch 2/2" in out and "one-step relative L2" in out and err == ""
    rc, out, err = run(capsys, "rollout", "--checkpoint", tmp_path / "run" / "best.pt", "--data", work / "c.h5",
                       "--trajectory", "2", "--steps", "6", "--out", tmp_path / "r.h5", "--band", "0.01,100")
    assert rc == 0, err
    assert datagen.open_dataset(tmp_path / "r.h5").velocity.shape == (1, 8, 8, 9, 4, 3)
    rc, out, err = run(capsys, "evaluate", tmp_path / "r.h5", "--reference", work / "c.h5", "--out", tmp_path / "rep")
    assert rc == 0, err
    assert (tmp_path / "rep" / "report.md").is_file() and "step-1 error" in out
    p = subprocess.run([sys.executable, "-m", "datagen.cli", "inspect", str(tmp_path / "r.h5")], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert p.returncode == 0 and "1 trajectories" in p.stdout, p.stderr


def test_rollout_leaving_the_band_exits_1_with_one_line(work, tmp_path, capsys):
    atomic_save(tiny_checkpoint_dict(scale=1.5), tmp_path / "m.pt")
    rc, out, err = run(capsys, "rollout", "--checkpoint", tmp_path / "m.pt", "--data", work / "c.h5", "--steps", "50",
                       "--out", tmp_path / "r.h5")
    assert rc == 1 and err.count("\n") == 1 and "rollout stopped at step" in err and "left the band" in err
    g = datagen.open_dataset(tmp_path / "r.h5").groups["rollout"]
    assert 1 <= g["stopped_at_step"] < 50 and g["steps_completed"] == g["stopped_at_step"] - 1


@pytest.mark.parametrize("cmd", [
    ["train", "--model", "tiny", "--data", "{w}/text.h5", "--out", "{t}/o"],
    ["train", "--model", "tiny", "--data", "{w}/nan.h5", "--out", "{t}/o"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--model-opt", "width"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--epochs", "0"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--device", "tpu"],
    ["train", "--model", "tiny", "--data", "{w}/missing.h5", "--out", "{t}/o"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--noise", "-1"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--init", "{t}/missing.pt"],
    ["train", "--model", "tiny", "--data", "{w}/c.h5", "--out", "{t}/o", "--init", "{w}/grid6.pt"],
    ["rollout", "--checkpoint", "{w}/grid6.pt", "--data", "{w}/c.h5", "--out", "{t}/o"],
    ["rollout", "--checkpoint", "{t}/m.pt", "--data", "{w}/c.h5", "--trajectory", "3", "--out", "{t}/o"],
    ["rollout", "--checkpoint", "{t}/m.pt", "--data", "{w}/nan.h5", "--out", "{t}/o"],
    ["rollout", "--checkpoint", "{t}/m.pt", "--data", "{w}/text.h5", "--out", "{t}/o"],
    ["rollout", "--checkpoint", "{w}/c.h5", "--data", "{w}/c.h5", "--out", "{t}/o"],
    ["rollout", "--checkpoint", "{t}/m.pt", "--data", "{w}/c.h5", "--out", "{t}/o", "--band", "2,3"],
    ["evaluate", "{w}/text.h5", "--reference", "{w}/c.h5", "--out", "{t}/o"],
    ["evaluate", "{w}/nan.h5", "--reference", "{w}/c.h5", "--out", "{t}/o"],
    ["evaluate", "{w}/c.h5", "--reference", "{w}/c.h5", "--out", "{t}/o", "--trajectory", "7"],
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(work, tmp_path, capsys, cmd):
    atomic_save(tiny_checkpoint_dict(), tmp_path / "m.pt")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [c.format(w=work, t=tmp_path) for c in cmd]
    rc, out, err = run(capsys, *args)
    assert rc == 2, (err, out)
    assert err.count("\n") == 1 and err.startswith("operators: error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_entry_point_reports_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "operators.cli", "evaluate", str(tmp_path / "none.h5"), "--reference",
                        str(tmp_path / "none.h5"), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "does not exist" in p.stderr, p.stderr


def test_models_lists_the_registry(capsys):
    rc, out, err = run(capsys, "models")
    assert rc == 0, err
    for name in ("ifactformer-m", "ifactformer-o", "fno", "ifno"):
        assert name in out
    assert "1,163,187" in out  # the paper's ifactformer-m size


@pytest.mark.parametrize("model,opts", [
    ("ifactformer-m", ["dim=6", "heads=1", "dim_head=4", "iterations=1"]),
    ("fno", ["in_steps=2", "modes=[2,2,2]", "width=4", "n_layers=1"]),
])
def test_registry_models_train_and_roll_out(work, tmp_path, capsys, model, opts):
    import json

    rc, out, err = run(capsys, "train", "--model", model, "--data", work / "c.h5", "--out", tmp_path / "run",
                       "--epochs", "1", "--batch", "4", "--project", *sum((["--model-opt", o] for o in opts), []))
    assert rc == 0, err
    cfg = json.loads((tmp_path / "run" / "metrics.json").read_text())["summary"]["model_config"]
    if "box" in cfg:
        assert cfg["box"] == pytest.approx([3.0, 1.5])  # the data's box, not the paper's
    rc, out, err = run(capsys, "rollout", "--checkpoint", tmp_path / "run" / "best.pt", "--data", work / "c.h5",
                       "--trajectory", "2", "--steps", "3", "--out", tmp_path / "r.h5", "--band", "0,100")
    assert rc == 0, err
    g = datagen.open_dataset(tmp_path / "r.h5").groups["rollout"]
    assert g["model"] == model and bool(g["project"]) and g["steps_completed"] == 3
    # resuming it as another model is refused
    rc, out, err = run(capsys, "train", "--model", "tiny", "--data", work / "c.h5", "--out", tmp_path / "run",
                       "--epochs", "2", "--batch", "4", "--project", "--resume")
    assert rc == 2 and "differs in: model" in err and err.count("\n") == 1
