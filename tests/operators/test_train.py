"""operators.train: checkpoints, metrics, deterministic resume (also after SIGKILL), the
multi-step loss and training through the divergence-free projection."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from operators_tiny import TinyModel, use_tiny_models, write_channel_file

from operators.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from operators.data import load_channel, normalization_stats, split_trajectories
from operators.train import plane_statistics, relative_l2, rollout_loss, statistics_loss, train

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    torch.set_num_threads(1)
    use_tiny_models(monkeypatch)


@pytest.fixture(scope="module")
def chan(tmp_path_factory):
    return write_channel_file(tmp_path_factory.mktemp("train") / "c.h5", K=3, S=10)


def test_relative_l2_is_per_sample():
    y = torch.ones(2, 3, 2, 3, 2)
    p = y.clone()
    p[0] *= 1.5  # 50 % off in sample 0, exact in sample 1
    assert float(relative_l2(p, y)) == pytest.approx(0.25)


def test_multi_step_loss_feeds_predictions_back():
    calls = []

    def step(x):
        calls.append(x.clone())
        return x[:, -1] + 1.0

    x = torch.zeros(1, 2, 3, 2, 3, 2)
    y = torch.stack([torch.full((1, 3, 2, 3, 2), v) for v in (1.0, 2.0, 4.0)], dim=1)
    loss = rollout_loss(step, x, y)
    # predictions 1, 2, 3 against 1, 2, 4: errors 0, 0, 1/4
    assert float(loss) == pytest.approx(0.25 / 3)
    assert torch.equal(calls[2][:, 0], torch.full((1, 3, 2, 3, 2), 1.0))  # window (pred1, pred2)
    assert torch.equal(calls[2][:, 1], torch.full((1, 3, 2, 3, 2), 2.0))


def test_plane_statistics_match_a_numpy_gold():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((2, 3, 5, 4, 3))
    m, rms, uv = (t.numpy() for t in plane_statistics(torch.from_numpy(u)))
    for b in range(2):
        for j in range(4):
            plane = u[b, :, :, j, :]                              # (3, NX, NZ)
            mean = plane.mean(axis=(1, 2))
            f = plane - mean[:, None, None]
            np.testing.assert_allclose(m[b, :, j], mean, rtol=1e-12)
            np.testing.assert_allclose(rms[b, :, j], np.sqrt((f ** 2).mean(axis=(1, 2))), rtol=1e-12)
            np.testing.assert_allclose(uv[b, j], (f[0] * f[1]).mean(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alpha", [0.5, 0.8, 1.0, 1.7])
def test_statistics_loss_of_scaled_fluctuations_is_analytic(alpha):
    # pred = the target's plane means plus alpha times its fluctuations: the mean misfit is 0, the
    # rms profiles are off by |alpha - 1|, the u'v' profile by |alpha^2 - 1| (relative)
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.standard_normal((3, 3, 6, 5, 4)) + 2.0)
    m = y.mean(dim=(2, 4), keepdim=True)
    pred = m + alpha * (y - m)
    assert float(statistics_loss(pred, y)) == pytest.approx(abs(alpha - 1) + abs(alpha ** 2 - 1), abs=1e-9)


@pytest.mark.parametrize("component", [0, 1, 2])
@pytest.mark.parametrize("amplitude", [0.2, 1.0, 5.0])
def test_statistics_loss_weighs_each_rms_component_equally(component, amplitude):
    # only one component's fluctuations are scaled (by 0.5, leaving the mean): its rms profile is
    # off by 1/2, the others exact, so the rms term is 1/2 / 3 whatever that component's amplitude;
    # the u'v' term is 1/2 when u or v is the scaled one, 0 for w
    rng = np.random.default_rng(3)
    y = torch.from_numpy(rng.standard_normal((2, 3, 6, 5, 4)) + 1.0)
    y[:, component] *= amplitude
    m = y.mean(dim=(2, 4), keepdim=True)
    pred = y.clone()
    pred[:, component] = m[:, component] + 0.5 * (y[:, component] - m[:, component])
    expected = 0.5 / 3 + (0.5 if component < 2 else 0.0)
    assert float(statistics_loss(pred, y)) == pytest.approx(expected, abs=1e-9)


def test_statistics_weight_adds_to_the_multi_step_loss():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((2, 1, 3, 4, 3, 4)))
    y = torch.from_numpy(rng.standard_normal((2, 2, 3, 4, 3, 4)))

    def step(w):
        return 0.5 * w[:, -1]

    plain = rollout_loss(step, x, y)
    p1 = step(x)
    p2 = step(p1[:, None])
    extra = (statistics_loss(p1, y[:, 0]) + statistics_loss(p2, y[:, 1])) / 2
    assert float(rollout_loss(step, x, y, stats_weight=0.3)) == pytest.approx(float(plain + 0.3 * extra), rel=1e-12)


def test_training_writes_checkpoints_and_metrics_and_learns(chan, tmp_path):
    out = tmp_path / "run"
    s = train(chan, out, "tiny", {"in_steps": 2}, epochs=4, batch=2, lr=3e-3, step_size=2, gamma=0.5)
    for name in ("last.pt", "best.pt", "metrics.csv", "metrics.json"):
        assert (out / name).is_file()
    hist = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert [h["lr"] for h in hist] == pytest.approx([3e-3, 3e-3, 1.5e-3, 1.5e-3])  # StepLR(2, 0.5)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,lr,seconds" and len(lines) == 5
    ck = read_checkpoint(out / "best.pt")
    assert ck["epoch"] == s["best_epoch"] and ck["in_steps"] == 2 and ck["grid"] == [8, 9, 4]
    d = load_channel(chan)
    mean, std = normalization_stats(d.velocity, split_trajectories(3, 10).train)
    np.testing.assert_allclose(ck["normalization"]["mean"], mean)
    model, _ = load_checkpoint(out / "best.pt")
    np.testing.assert_allclose(model.mean.numpy(), mean)  # travels in the state_dict
    assert s["test_trajectories"] == [2] and 0 < s["test_one_step_rel_l2"] < 1
    assert s["parameters"] == sum(p.numel() for p in TinyModel(2).parameters())


def _whole_and_resumed(chan, tmp_path, **kw):
    """The last.pt of a 3-epoch run, and of the same run stopped after epoch 1 and resumed."""
    kw = dict(epochs=3, batch=2, lr=2e-3, **kw)
    train(chan, tmp_path / "a", "tiny", {}, **kw)
    train(chan, tmp_path / "b", "tiny", {}, **dict(kw, epochs=1))
    train(chan, tmp_path / "b", "tiny", {}, **kw, resume=True)
    return read_checkpoint(tmp_path / "a" / "last.pt"), read_checkpoint(tmp_path / "b" / "last.pt")


@pytest.mark.parametrize("options, parts", [({"rollout_steps": 2}, ("state_dict",)),
                                            ({"ema": 0.9}, ("state_dict", "raw_state_dict"))])
def test_resume_continues_to_the_same_weights(chan, tmp_path, options, parts):
    a, b = _whole_and_resumed(chan, tmp_path, **options)
    for part in parts:  # with --ema: the average and the optimiser's own weights
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_an_existing_run_needs_resume_or_overwrite(chan, tmp_path):
    from linsolve.core.errors import OptionError

    train(chan, tmp_path / "r", "tiny", {}, epochs=1, batch=4)
    with pytest.raises(OptionError, match="use --resume"):
        train(chan, tmp_path / "r", "tiny", {}, epochs=1, batch=4)
    with pytest.raises(CheckpointError, match="differs in: .*batch"):
        train(chan, tmp_path / "r", "tiny", {}, epochs=2, batch=3, resume=True)
    with pytest.raises(CheckpointError, match="model_config"):  # another model's run
        train(chan, tmp_path / "r", "tiny", {"width": 6}, epochs=2, batch=4, resume=True)
    with pytest.raises(OptionError, match="nothing to resume"):
        train(chan, tmp_path / "new", "tiny", {}, epochs=1, resume=True)


def test_training_with_projection_predicts_divergence_free_fields(chan, tmp_path):
    from operators.projection import Projector

    s = train(chan, tmp_path / "p", "tiny", {}, epochs=1, batch=4, project=True)
    assert s["project"]
    model, ck = load_checkpoint(tmp_path / "p" / "best.pt")
    assert ck["project"] is True
    d = load_channel(chan)
    P = Projector(d.grid, 3.0, 1.5)
    from operators.stepping import predictor

    x = torch.from_numpy(d.velocity[2, :1])[None]
    with torch.no_grad():
        raw = model(x)[0].double().numpy()
        pred = predictor(model, P)(x)[0].double().numpy()
    scale = np.abs(P.divergence(raw)).max()
    assert scale > 1e-3
    assert np.abs(P.divergence(pred)).max() < 1e-5 * scale  # float32 output of a float64 projection


def _train_cmd(data, out, *extra):
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import operators_tiny as t; t.use_tiny_models(); "
            "import torch; torch.set_num_threads(1); from operators.cli import main; main(sys.argv[1:])")
    return [sys.executable, "-c", code, "train", "--model", "tiny", "--data", str(data), "--out", str(out),
            "--epochs", "4", "--batch", "2", "--lr", "2e-3", "--threads", "1", *extra]


def test_resume_after_sigkill_matches_an_uninterrupted_run(chan, tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}", OMP_NUM_THREADS="1")
    kw = dict(epochs=4, batch=2, lr=2e-3, threads=1)
    train(chan, tmp_path / "full", "tiny", {"width": 4}, **kw)
    proc = subprocess.Popen(_train_cmd(chan, tmp_path / "killed", "--model-opt", "width=4"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and read_checkpoint(last)["epoch"] >= 1:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_checkpoint(last)["epoch"] < 4
    train(chan, tmp_path / "killed", "tiny", {"width": 4}, **kw, resume=True)
    a = read_checkpoint(tmp_path / "full" / "last.pt")
    b = read_checkpoint(last)
    assert b["epoch"] == 4
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_a_file_too_short_for_validation_still_trains(tmp_path):
    """Two trajectories of 4 snapshots: the validation tail holds no window; metrics stay valid JSON
    and the training loss chooses best.pt."""
    write_channel_file(tmp_path / "s.h5", K=2, S=4)
    s = train(tmp_path / "s.h5", tmp_path / "r", "tiny", {}, epochs=2, batch=2)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [h["val_loss"] for h in m["epochs"]] == [None, None]
    assert s["best_epoch"] in (1, 2) and s["test_one_step_rel_l2"] > 0


def test_init_starts_from_the_checkpoint_weights(chan, tmp_path):
    train(chan, tmp_path / "a", "tiny", {}, epochs=2, batch=2, lr=3e-3)
    # a learning rate too small to move float32 weights: the fine-tuned run keeps a's weights
    s = train(chan, tmp_path / "b", "tiny", {}, epochs=1, batch=2, lr=1e-30, init=tmp_path / "a" / "best.pt")
    a, b = read_checkpoint(tmp_path / "a" / "best.pt"), read_checkpoint(tmp_path / "b" / "best.pt")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert s["best_val_loss"] == pytest.approx(a["best_val"], rel=1e-6)
    assert b["train_args"]["init_sha256"] is not None
    # a seeded start from scratch is another model
    c = train(chan, tmp_path / "c", "tiny", {}, epochs=1, batch=2, lr=1e-30)
    assert c["best_val_loss"] != pytest.approx(a["best_val"], rel=1e-3)


def test_init_refuses_a_checkpoint_of_another_model_config(chan, tmp_path):
    from linsolve.core.errors import OptionError

    train(chan, tmp_path / "a", "tiny", {}, epochs=1, batch=4)
    with pytest.raises(CheckpointError, match="another model config"):
        train(chan, tmp_path / "b", "tiny", {"width": 6}, epochs=1, batch=4, init=tmp_path / "a" / "best.pt")
    with pytest.raises(OptionError, match="does not exist"):
        train(chan, tmp_path / "b", "tiny", {}, epochs=1, batch=4, init=tmp_path / "missing.pt")
    assert not (tmp_path / "b" / "last.pt").exists()


def test_input_noise_perturbs_training_reproducibly_and_only_training(chan, tmp_path, monkeypatch):
    import operators.train as tr

    seen = []
    real = tr.rollout_loss

    def spy(step, x, y, *args):
        seen.append(x.detach().clone())
        return real(step, x, y, *args)

    monkeypatch.setattr(tr, "rollout_loss", spy)
    kw = dict(epochs=1, batch=4, lr=1e-3, seed=3)
    train(chan, tmp_path / "clean", "tiny", {}, **kw)
    clean = list(seen)
    seen.clear()
    train(chan, tmp_path / "noisy", "tiny", {}, noise=0.1, **kw)
    noisy = list(seen)
    seen.clear()
    train(chan, tmp_path / "again", "tiny", {}, noise=0.1, **kw)
    assert all(torch.equal(a, b) for a, b in zip(noisy, seen, strict=True))  # seeded
    d = load_channel(chan)
    _, std = normalization_stats(d.velocity, split_trajectories(3, 10).train)
    diff = torch.cat([(n - c).transpose(0, 2).reshape(3, -1) for n, c in zip(noisy, clean, strict=True)], dim=1)
    # zero-mean noise with 0.1 x each component's std
    np.testing.assert_allclose(diff.std(dim=1).numpy(), 0.1 * std, rtol=0.15)
    assert abs(float(diff.mean())) < 0.05 * float(std.max())
    with pytest.raises(CheckpointError, match="differs in: .*noise"):
        train(chan, tmp_path / "clean", "tiny", {}, noise=0.2, **dict(kw, epochs=2), resume=True)


@pytest.mark.parametrize("key", ["noise", "stats_weight"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), True])
def test_bad_noise_or_statistics_weight_is_refused(chan, tmp_path, key, bad):
    from linsolve.core.errors import OptionError

    with pytest.raises(OptionError, match=key.replace("_", "-")):
        train(chan, tmp_path / "r", "tiny", {}, epochs=1, **{key: bad})


def test_rollout_score_of_persistence_matches_the_statistics_of_its_first_snapshot(chan):
    from operators.evaluate import TARGETS, statistics_errors
    from operators.train import rollout_score

    d = load_channel(chan)
    ranges = split_trajectories(3, 10).val
    res = rollout_score(lambda x: x[:, -1], d, ranges, 1, torch.device("cpu"), band=(0.0, math.inf))
    # each range's late half repeats its first snapshot; the reference is every range's snapshots
    late = np.concatenate([np.repeat(d.velocity[k, s0:s0 + 1].astype(np.float64), (s1 - s0 - 1) - (s1 - s0 - 1) // 2,
                                     axis=0) for k, s0, s1 in ranges])
    ref = np.concatenate([d.velocity[k, s0:s1] for k, s0, s1 in ranges])
    errors, *_ = statistics_errors(late, ref, d.y, d.nu, d.re_tau * d.nu)
    assert res["steps"] == sum(s1 - s0 - 1 for _, s0, s1 in ranges)
    np.testing.assert_allclose([res["errors"][q] for q in errors], list(errors.values()), rtol=1e-6)
    expected = max(errors[q] / t for q, t in TARGETS.items() if math.isfinite(errors[q]))
    assert res["score"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("steps", [3, 25])
def test_rollout_score_runs_the_given_horizon_against_the_ranges_statistics(chan, steps):
    # persistence for `steps` steps from each range's first snapshot: the late half of the
    # predictions repeats that snapshot, compared with every snapshot of the ranges
    from operators.evaluate import statistics_errors
    from operators.train import rollout_score

    d = load_channel(chan)
    ranges = split_trajectories(3, 10).val
    res = rollout_score(lambda x: x[:, -1], d, ranges, 1, torch.device("cpu"), band=(0.0, math.inf), steps=steps)
    assert res["steps"] == steps * len(ranges)
    late = np.concatenate([np.repeat(d.velocity[k, s0:s0 + 1].astype(np.float64), steps - steps // 2, axis=0)
                           for k, s0, s1 in ranges])
    ref = np.concatenate([d.velocity[k, s0:s1] for k, s0, s1 in ranges])
    errors, *_ = statistics_errors(late, ref, d.y, d.nu, d.re_tau * d.nu)
    np.testing.assert_allclose([res["errors"][q] for q in errors], list(errors.values()), rtol=1e-6)


def test_select_steps_needs_select_rollout(chan, tmp_path):
    from linsolve.core.errors import OptionError

    with pytest.raises(OptionError, match="select_steps needs select='rollout'"):
        train(chan, tmp_path / "q", "tiny", {}, epochs=1, select_steps=10)
    with pytest.raises(OptionError, match="select_steps"):
        train(chan, tmp_path / "q", "tiny", {}, epochs=1, select="rollout", select_steps=0)
    assert not (tmp_path / "q").exists()


def test_rollout_score_of_a_rollout_that_loses_its_energy_marks_the_failure(chan):
    from operators.train import rollout_score

    d = load_channel(chan)
    ranges = split_trajectories(3, 10).val
    mean = torch.from_numpy(d.velocity[ranges[0][0]].mean(axis=(0, 2, 4), keepdims=True))

    def damped(x):  # the plane-mean flow: no turbulent kinetic energy at all
        return mean.expand_as(x[:, -1]).clone()

    res = rollout_score(damped, d, ranges, 1, torch.device("cpu"))
    assert res["steps"] == 0 and res["errors"] is None and res["score"] == pytest.approx(1001.0)


def test_select_rollout_picks_best_by_the_validation_rollout_score(chan, tmp_path):
    s = train(chan, tmp_path / "r", "tiny", {}, epochs=3, batch=4, lr=3e-3, select="rollout")
    hist = json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"]
    scores = [h["val_rollout_score"] for h in hist]
    assert all(sc is not None for sc in scores)
    assert s["best_epoch"] == 1 + int(np.argmin(scores))
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[5] == "val_rollout_score"
    from operators.evaluate import TARGETS

    # each statistic behind the score is recorded, and the score is the largest error/target ratio
    assert {f"val_rollout_{q}" for q in TARGETS} <= set(header)
    for h in hist:
        ratios = [h[f"val_rollout_{q}"] / t for q, t in TARGETS.items() if h[f"val_rollout_{q}"] is not None]
        assert h["val_rollout_score"] == pytest.approx(max(ratios), rel=1e-12)
    from linsolve.core.errors import OptionError

    with pytest.raises(OptionError, match="select must be one of"):
        train(chan, tmp_path / "q", "tiny", {}, epochs=1, select="best")


def test_ema_checkpoint_holds_the_moving_average_of_the_weights(chan, tmp_path, monkeypatch):
    from torch.optim.swa_utils import AveragedModel

    # record the optimiser's weights after every step, then rebuild the average by its formula
    seen = []
    update = AveragedModel.update_parameters

    def spy(self, model):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return update(self, model)

    monkeypatch.setattr(AveragedModel, "update_parameters", spy)
    decay = 0.7
    train(chan, tmp_path / "e", "tiny", {}, epochs=2, batch=2, lr=5e-3, ema=decay)
    ck = read_checkpoint(tmp_path / "e" / "last.pt")
    assert len(seen) > 2
    for k, raw in ck["raw_state_dict"].items():
        if not raw.is_floating_point() or k in ("mean", "std"):
            continue
        avg = seen[0][k].double()
        for w in seen[1:]:
            avg = decay * avg + (1 - decay) * w[k].double()
        torch.testing.assert_close(ck["state_dict"][k].double(), avg, rtol=1e-5, atol=1e-6)
        assert torch.equal(raw, seen[-1][k])  # the optimiser's own weights, for resume
    assert not torch.equal(ck["state_dict"]["net.0.weight"], ck["raw_state_dict"]["net.0.weight"])


def test_resume_with_another_ema_is_refused(chan, tmp_path):
    train(chan, tmp_path / "b", "tiny", {}, epochs=1, batch=2, ema=0.9)
    with pytest.raises(CheckpointError, match="differs in: ema"):
        train(chan, tmp_path / "b", "tiny", {}, epochs=2, batch=2, ema=0.5, resume=True)


def test_run_from_before_ema_and_select_resumes_with_their_defaults(chan, tmp_path):
    # checkpoints written before these options existed lack them: they stand for the defaults
    train(chan, tmp_path / "r", "tiny", {}, epochs=1, batch=4)
    ck = read_checkpoint(tmp_path / "r" / "last.pt")
    for key in ("ema", "select", "select_steps"):
        del ck["train_args"][key]
    torch.save(ck, tmp_path / "r" / "last.pt")
    s = train(chan, tmp_path / "r", "tiny", {}, epochs=2, batch=4, resume=True)
    assert s["epochs"] == 2


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_ema_outside_0_1_is_refused(chan, tmp_path, bad):
    from linsolve.core.errors import OptionError

    with pytest.raises(OptionError, match="ema"):
        train(chan, tmp_path / "x", "tiny", {}, epochs=1, batch=4, ema=bad)
