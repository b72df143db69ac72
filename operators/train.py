"""Training a surrogate on channel trajectories: AdamW, StepLR, per-sample relative L2 loss (the
paper's defaults), an optional multi-step (autoregressive) loss and divergence-free projection,
an atomic checkpoint after every epoch (``last.pt``, and ``best.pt`` by validation loss), metrics
per epoch as CSV and JSON, and ``resume`` after a kill that ends with the same weights as an
uninterrupted run on the same device (data order a function of (seed, epoch); RNG, optimiser and
scheduler states in the checkpoint)."""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from datagen.storage.atomic import atomic_write_text
from linsolve.core.errors import OptionError
from linsolve.core.validation import check_choice, check_int, check_real

from . import checkpoint as _ck
from .checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    read_checkpoint,
    sha256_file,
)
from .data import ChannelData, WindowDataset, load_channel, normalization_stats, split_trajectories
from .stepping import make_projector, predictor, resolve_device

#: the paper's optimisation settings
DEFAULTS = dict(epochs=30, batch=5, lr=5e-4, weight_decay=0.01, step_size=5, gamma=0.7, rollout_steps=1, seed=0,
                test=1, noise=0.0, stats_weight=0.0, select="val-loss", select_steps=None, ema=0.0)
#: how ``best.pt`` is chosen
SELECT = ("val-loss", "rollout")
#: arguments a resumed run must share with the run it continues (``epochs`` may grow)
RESUME_KEYS = ("model", "model_config", "data_sha256", "batch", "lr", "weight_decay", "step_size", "gamma",
               "rollout_steps", "seed", "test", "project", "noise", "stats_weight",
               "select", "select_steps", "init_sha256", "ema")
#: the value a checkpoint written before an argument existed stands for
RESUME_ABSENT = {"ema": 0.0, "select": "val-loss", "select_steps": None}


def relative_l2(pred, target):
    """Mean over the batch of ||pred - target|| / ||target|| per sample (the paper's loss)."""
    b = pred.shape[0]
    diff = (pred - target).reshape(b, -1).norm(dim=1)
    ref = target.reshape(b, -1).norm(dim=1).clamp_min(1e-12)
    return (diff / ref).mean()


def plane_statistics(u):
    """The x-z plane statistics of velocity fields u (B, 3, NX, NY, NZ): the mean profiles
    (B, 3, NY), the rms profiles of the fluctuations (B, 3, NY) and the shear stress u'v' (B, NY)."""
    m = u.mean(dim=(2, 4))
    f = u - m[:, :, None, :, None]
    rms = (f * f).mean(dim=(2, 4)).clamp_min(1e-12).sqrt()
    uv = (f[:, 0] * f[:, 1]).mean(dim=(1, 3))
    return m, rms, uv


def statistics_loss(pred, target):
    """Relative L2 misfit of the plane statistics of ``pred`` against those of ``target``, mean over
    the batch: the mean-velocity profiles (the three components together: the mean flow is
    streamwise), the rms profile of each component separately, averaged over the three, and the
    u'v' profile; the sum of the three terms.

    Each rms profile counts on its own because the targets judge u', v' and w' separately; pooled,
    the streamwise rms (about twice the others near the wall) would decide the misfit alone."""
    mp, rp, sp = plane_statistics(pred)
    mt, rt, st = plane_statistics(target)
    rms = sum(relative_l2(rp[:, c], rt[:, c]) for c in range(rp.shape[1])) / rp.shape[1]
    return relative_l2(mp, mt) + rms + relative_l2(sp, st)


def rollout_loss(step, x, y, stats_weight: float = 0.0):
    """Mean over ``y.shape[1]`` autoregressive steps from the window ``x`` of the relative L2 error,
    plus ``stats_weight`` times the plane-statistics misfit (:func:`statistics_loss`).

    The relative L2 error alone is minimised by the conditional mean of the next state, whose
    fluctuations are weaker than the flow's wherever consecutive snapshots are only partly
    correlated; fed back autoregressively, such a model loses its turbulent kinetic energy. The
    statistics term asks each predicted snapshot for the target's fluctuation amplitude and shear
    stress profile, so the rollout keeps them."""
    import torch

    loss = 0.0
    for k in range(y.shape[1]):
        pred = step(x)
        loss = loss + relative_l2(pred, y[:, k])
        if stats_weight:
            loss = loss + stats_weight * statistics_loss(pred, y[:, k])
        if k + 1 < y.shape[1]:
            x = torch.cat([x[:, 1:], pred[:, None]], dim=1)
    return loss / y.shape[1]


def rollout_score(step, data: ChannelData, ranges, in_steps: int, device, band=(0.5, 2.0),
                  steps: int | None = None) -> dict:
    """Judge a model by autoregressive rollouts of the validation ranges, as ``operators
    evaluate`` judges a long rollout.

    From the first window of every range ``(k, s0, s1)`` the model predicts the rest of the range,
    or ``steps`` steps (no gradients); the late half of those predictions, pooled, is compared with
    every snapshot of the ranges (:func:`operators.evaluate.statistics_errors`), as ``operators
    evaluate`` compares a rollout longer than its reference with the reference's time average.
    Late statistics drift over long rollouts, so a horizon like the evaluation's (1000 steps)
    judges what the evaluation will see better than the length of a validation trajectory.

    Parameters
    ----------
    step : callable
        The predictor (model, projected or not).
    data : ChannelData
    ranges : list of (k, s0, s1)
        The validation ranges of a :class:`~operators.data.Split`.
    in_steps : int
    device : torch.device
    band : (lo, hi)
        A rollout whose turbulent kinetic energy leaves [lo, hi] x its range's mean, or that
        goes non-finite, fails.
    steps : int, optional
        Steps predicted from each range's first window (default: to the end of the range).

    Returns
    -------
    dict
        ``score``: the largest ratio of a late-statistics error to its target
        (``operators.evaluate.TARGETS``; <= 1 when every target is met), or, for a failed rollout,
        ``1000 + the fraction of steps it did not complete``; ``errors``; ``steps``.
    """
    import torch

    from .evaluate import TARGETS, statistics_errors
    from .rollout import kinetic_energy

    preds, refs, done, total = [], [], 0, 0
    for k, s0, s1 in ranges:
        ref = np.asarray(data.velocity[k, s0:s1])
        if len(ref) - in_steps < 1:
            continue
        n = steps if steps is not None else len(ref) - in_steps
        total += n
        e_ref = float(np.mean(kinetic_energy(ref, data.y)))
        x = torch.from_numpy(np.ascontiguousarray(ref[:in_steps]))[None].to(device)
        mine = []
        with torch.no_grad():
            for _ in range(n):
                y = step(x)
                arr = y[0].double().cpu().numpy()
                e = float(kinetic_energy(arr, data.y))
                if not (np.isfinite(e) and band[0] * e_ref <= e <= band[1] * e_ref):
                    return {"score": 1000.0 + (total - done) / total, "errors": None, "steps": done}
                mine.append(arr)
                done += 1
                x = torch.cat([x[:, 1:], y[:, None].to(x.dtype)], dim=1)
        preds += mine[len(mine) // 2:]
        refs.append(ref)
    if not preds:
        return {"score": math.nan, "errors": None, "steps": 0}
    errors, *_ = statistics_errors(np.stack(preds), np.concatenate(refs), data.y, data.nu,
                                   data.re_tau * data.nu)
    # a statistic undefined on these snapshots (NaN: e.g. no shear stress peak) does not count
    ratios = [errors[q] / t for q, t in TARGETS.items() if math.isfinite(errors[q])]
    return {"score": max(ratios, default=math.nan), "errors": errors, "steps": done}


def evaluate_one_step(step, dataset: WindowDataset, batch: int, device) -> float:
    """Mean one-step relative L2 over every window of ``dataset`` (no gradients)."""
    import torch

    if len(dataset) == 0:
        return float("nan")
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in dataset.batches(batch):
            x, y = x.to(device), y.to(device)
            pred = step(x)
            b = x.shape[0]
            err = ((pred - y[:, 0]).reshape(b, -1).norm(dim=1) / y[:, 0].reshape(b, -1).norm(dim=1).clamp_min(1e-12))
            total += float(err.sum())
            n += b
    return total / n


def _check_args(a: dict) -> None:
    for k in ("epochs", "batch", "step_size", "rollout_steps"):
        check_int(k.replace("_", "-"), a[k], 1)
    for k in ("lr", "gamma"):
        check_real(k, a[k], 0.0, low_open=True)
    check_real("weight-decay", a["weight_decay"], 0.0)
    check_int("seed", a["seed"], 0)
    check_real("ema", a.get("ema", 0.0), 0.0, 1.0, high_open=True)
    for k in ("noise", "stats_weight"):
        check_real(k.replace("_", "-"), a.get(k, 0.0), 0.0)


def _load_init(net, model: str, path, ds: ChannelData, mean, std) -> str:
    """Load the weights of checkpoint ``path`` into ``net`` after checking that it is a checkpoint of
    the same model, config and grid trained with the same normalisation; returns its SHA-256."""
    ck = read_checkpoint(path)
    what = f"init checkpoint {str(path)!r}"
    if ck.get("model") != model:
        raise CheckpointError(f"{what} is a {ck.get('model')!r} model, not {model!r}")
    if json.dumps(ck.get("model_config"), sort_keys=True) != json.dumps(dict(net.config), sort_keys=True):
        raise CheckpointError(f"{what} has another model config: {ck.get('model_config')} != {dict(net.config)}")
    if list(ck.get("grid", [])) != list(ds.grid):
        raise CheckpointError(f"{what} is for grid {ck.get('grid')}, the data's is {list(ds.grid)}")
    norm = ck.get("normalization", {})
    if not (np.allclose(norm.get("mean", np.nan), mean, rtol=1e-6, atol=1e-9)
            and np.allclose(norm.get("std", np.nan), std, rtol=1e-6, atol=1e-9)):
        raise CheckpointError(f"{what} was trained with another normalisation (other training data or split)")
    net.load_state_dict(ck["state_dict"])
    return sha256_file(path)


def train(data, out, model: str = "ifactformer-m", model_config: dict | None = None, *, epochs: int = 30,
          batch: int = 5, lr: float = 5e-4, weight_decay: float = 0.01, step_size: int = 5, gamma: float = 0.7,
          rollout_steps: int = 1, project: bool = False, device: str = "cpu", seed: int = 0, test: int = 1,
          noise: float = 0.0, stats_weight: float = 0.0, select: str = "val-loss", select_steps=None, init=None,
          ema: float = 0.0, threads: int | None = None,
          resume: bool = False, overwrite: bool = False, log=None, progress=None) -> dict:
    """Train ``model`` on the trajectories of ``data``; write checkpoints and metrics under ``out``.

    Parameters
    ----------
    data : str or Path
        A channel trajectory file (``datagen generate channel``).
    out : str or Path
        Run directory: ``last.pt`` (every epoch), ``best.pt`` (lowest validation loss),
        ``metrics.csv``, ``metrics.json``.
    model : str
        Registry name (``operators.available_models()``).
    model_config : dict, optional
        Overrides of the model's default config (e.g. ``{"dim": 48, "L": 4}``).
    epochs, batch, lr, weight_decay, step_size, gamma :
        AdamW(lr, weight_decay) with StepLR(step_size, gamma), ``batch`` windows per step.
    rollout_steps : int
        K > 1: the loss is the mean relative L2 over K autoregressive steps.
    project : bool
        Project every prediction onto the divergence-free fields (``operators.projection``),
        also inside the loss (gradients flow through the projection).
    device : str
        ``cpu`` or ``cuda``.
    seed : int
        Seeds the weights and the data order.
    test : int
        Trajectories held out for testing (the last ones of the file).
    noise : float
        Training-input noise: Gaussian, with standard deviation ``noise`` times each velocity
        component's standard deviation over the training snapshots, added to the input window
        of every training batch (not to the targets, nor in validation and testing). A model that
        sees perturbed inputs learns to pull a state back towards the data, which keeps long
        autoregressive rollouts from drifting (Sanchez-Gonzalez et al. 2020). 0 turns it off.
    stats_weight : float
        Weight of the plane-statistics term of the loss (:func:`rollout_loss`): the misfit of each
        prediction's mean, rms and u'v' profiles against the target's. 0 gives the paper's loss.
    select : {"val-loss", "rollout"}
        What chooses ``best.pt``: the one-step validation loss, or the statistics of rollouts of
        the validation trajectories (:func:`rollout_score`; what the one-step loss does not see).
    select_steps : int, optional
        With ``select="rollout"``: the steps of each validation rollout (default: the length of
        the validation trajectory). Give the evaluation's horizon (e.g. 1000).
    init : str or Path, optional
        Start from the weights of this checkpoint (same model, config and grid; fine-tuning,
        e.g. with another ``rollout_steps`` or ``noise``) instead of a seeded initialisation.
        The optimiser and scheduler start afresh.
    ema : float
        Decay of an exponential moving average of the weights, updated after every optimiser
        step (``torch.optim.swa_utils.AveragedModel``; 0.99 averages over about the last 100
        steps). With ``ema > 0`` validation, selection, the held-out test and the checkpoints'
        ``state_dict`` use the averaged weights (the optimiser's own are kept for ``resume``):
        an average over many steps does not swing from one epoch to the next as the last step's
        weights do. 0 turns it off.
    threads : int, optional
        ``torch.set_num_threads``.
    resume : bool
        Continue the run in ``out`` from ``last.pt`` (same arguments; ``epochs`` may grow).
    overwrite : bool
        Replace an existing run in ``out``.
    log : callable, optional
        Receives one line per epoch.
    progress : callable, optional
        ``progress(epoch, batch_index, n_batches)`` after each optimiser step.

    Returns
    -------
    dict
        The final metrics (also in ``metrics.json``).

    Raises
    ------
    OptionError, DataError, CheckpointError
        Bad arguments, an unusable data file, a run in ``out`` that does not match.

    Examples
    --------
    >>> train("train.h5", "runs/ifm", "ifactformer-m", epochs=2, batch=5)   # doctest: +SKIP
    """
    import torch

    args = dict(epochs=epochs, batch=batch, lr=lr, weight_decay=weight_decay, step_size=step_size, gamma=gamma,
                rollout_steps=rollout_steps, seed=seed, noise=noise, stats_weight=stats_weight, ema=ema)
    _check_args(args)
    check_choice("select", select, SELECT)
    select_steps = check_int("select_steps", select_steps, 1, allow_none=True)
    if select_steps is not None and select != "rollout":
        raise OptionError("select_steps needs select='rollout'")
    if init is not None and not Path(init).is_file():
        raise OptionError(f"init checkpoint {str(init)!r} does not exist")
    if check_int("threads", threads, 1, allow_none=True) is not None:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    out = Path(out)
    last = out / "last.pt"
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {str(out)!r} exists and is not a directory")
    if resume and not last.exists():
        raise OptionError(f"nothing to resume: {str(last)!r} does not exist")
    if not resume and last.exists() and not overwrite:
        raise OptionError(f"{str(out)!r} holds a run (last.pt); use --resume to continue it or --overwrite")
    ds = load_channel(data)
    split = split_trajectories(ds.n_trajectories, ds.n_snapshots, test=test)
    for key in ("Lx", "Lz"):
        if key not in ds.attrs:
            raise OptionError(f"{str(data)!r} has no root attribute {key!r} (the box length)")
    data_sha = sha256_file(data)

    cfg = dict(model_config or {})
    torch.manual_seed(seed)
    net = _ck.build_model(model, cfg)
    if "box" in net.config and "box" not in cfg:
        # models whose positional encodings scale with the box lengths get the data's box
        cfg["box"] = [float(ds.attrs["Lx"]), float(ds.attrs["Lz"])]
        torch.manual_seed(seed)
        net = _ck.build_model(model, cfg)
    in_steps = int(net.in_steps)
    need = in_steps + rollout_steps
    train_set = WindowDataset(ds.velocity, split.train, in_steps, rollout_steps)
    val_set = WindowDataset(ds.velocity, split.val, in_steps, 1)
    test_set = WindowDataset(ds.velocity, split.test, in_steps, 1)
    if len(train_set) == 0:
        raise OptionError(f"no training window: the training snapshots ({split.train}) are shorter than "
                          f"in_steps + rollout_steps = {need}")
    mean, std = normalization_stats(ds.velocity, split.train)
    net.set_normalization(torch.from_numpy(mean), torch.from_numpy(std))
    init_sha = None
    if init is not None:
        init_sha = _load_init(net, model, init, ds, mean, std)
    net.to(dev)
    # per-channel noise scale, broadcast over (B, T, 3, NX, NY, NZ)
    noise_std = torch.as_tensor(float(noise) * std, dtype=torch.float32, device=dev).reshape(1, 1, 3, 1, 1, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    projector = make_projector(ds) if project else None
    step = evaluated = predictor(net, projector)
    averaged = None
    if ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        # the averaged copy is the model that is validated, selected, tested and saved
        averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(float(ema)))
        evaluated = predictor(averaged.module, projector)
    meta = dict(model=model, model_config=dict(net.config), data_sha256=data_sha, batch=batch, lr=lr,
                weight_decay=weight_decay, step_size=step_size, gamma=gamma, rollout_steps=rollout_steps,
                seed=seed, test=test, project=bool(project), noise=float(noise),
                stats_weight=float(stats_weight), select=select, select_steps=select_steps,
                init_sha256=init_sha, ema=float(ema))
    history: list[dict] = []
    start_epoch, best_val, best_epoch = 1, math.inf, 0
    if resume:
        ck = read_checkpoint(last, map_location=dev)
        saved = ck.get("train_args", {})
        differ = [k for k in RESUME_KEYS
                  if json.dumps(saved.get(k, RESUME_ABSENT.get(k)), sort_keys=True) != json.dumps(meta[k], sort_keys=True)]
        if differ:
            raise CheckpointError(f"{str(last)!r} is a run with other arguments (differs in: {', '.join(differ)}); "
                                  "use another --out or --overwrite")
        net.load_state_dict(ck["raw_state_dict"] if averaged is not None else ck["state_dict"])
        if averaged is not None:
            averaged.load_state_dict(ck["ema_state"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"]["torch"])
        if dev.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], dev)
        history = list(ck["history"])
        start_epoch = int(ck["epoch"]) + 1
        best_val, best_epoch = float(ck["best_val"]), int(ck["best_epoch"])
    else:
        if out.exists() and overwrite:
            for name in ("last.pt", "best.pt", "metrics.csv", "metrics.json"):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)

    base = dict(format=FORMAT, format_version=FORMAT_VERSION, model=model, model_config=dict(net.config),
                in_steps=in_steps, grid=list(ds.grid), box=[float(ds.attrs["Lx"]), float(ds.attrs["Lz"])],
                re_tau=ds.re_tau, nu=ds.nu, snapshot_dt=ds.snapshot_dt,
                normalization={"mean": mean.tolist(), "std": std.tolist()}, project=bool(project),
                data={"path": str(Path(data).resolve()), "sha256": data_sha, "split": split.to_dict()},
                train_args=meta)

    for epoch in range(start_epoch, epochs + 1):
        t0 = time.perf_counter()
        net.train()
        total, nb = 0.0, 0
        n_batches = math.ceil(len(train_set) / batch)
        for x, y in train_set.batches(batch, seed=seed, epoch=epoch):
            x, y = x.to(dev), y.to(dev)
            if noise:
                x = x + noise_std * torch.randn(x.shape, dtype=x.dtype, device=dev)
            opt.zero_grad(set_to_none=True)
            loss = rollout_loss(step, x, y, stats_weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {float(loss)} in epoch {epoch}")
            loss.backward()
            opt.step()
            if averaged is not None:
                averaged.update_parameters(net)
            total += float(loss.detach())
            nb += 1
            if progress:
                progress(epoch, nb, n_batches)
        lr_now = opt.param_groups[0]["lr"]
        sched.step()
        net.eval()
        if averaged is not None:
            averaged.eval()
        val = evaluate_one_step(evaluated, val_set, batch, dev)
        seconds = time.perf_counter() - t0
        row = dict(epoch=epoch, train_loss=total / nb, val_loss=val, lr=lr_now, seconds=seconds)
        score = val
        if select == "rollout":
            rs = rollout_score(evaluated, ds, split.val, in_steps, dev, steps=select_steps)
            row["val_rollout_score"] = score = rs["score"]
            # the statistics behind the score, one column each (empty for a failed rollout)
            row.update({f"val_rollout_{q}": e for q, e in (rs["errors"] or {}).items()})
        history.append(row)
        # no validation window (a very short file): the training loss chooses best.pt
        score = score if math.isfinite(score) else row["train_loss"]
        if score < best_val or best_epoch == 0:
            best_val, best_epoch = score, epoch
        weights = dict(state_dict=net.state_dict()) if averaged is None else dict(
            state_dict=averaged.module.state_dict(), raw_state_dict=net.state_dict(), ema_state=averaged.state_dict())
        state = dict(base, **weights, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                     rng={"torch": torch.get_rng_state(),
                          "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None},
                     epoch=epoch, history=history, best_val=best_val, best_epoch=best_epoch)
        atomic_save(state, last)
        if best_epoch == epoch:
            atomic_save(state, out / "best.pt")
        _write_metrics(out, history, None)
        if log:
            log(f"epoch {epoch}/{epochs}: train {row['train_loss']:.4g}, val {val:.4g}"
                + (f", val rollout score {row['val_rollout_score']:.4g}" if select == "rollout" else "")
                + f", lr {lr_now:.3g}, "
                f"{seconds:.1f} s" + (" (best)" if best_epoch == epoch else ""))

    # the held-out trajectories, with the best weights
    best = read_checkpoint(out / "best.pt", map_location=dev)
    net.load_state_dict(best["state_dict"])
    net.eval()
    test_err = evaluate_one_step(predictor(net, projector), test_set, batch, dev)
    params = sum(p.numel() for p in net.parameters())
    summary = dict(model=model, model_config=dict(net.config), parameters=int(params), project=bool(project),
                   best_epoch=best_epoch, best_val_loss=best_val, test_one_step_rel_l2=test_err,
                   test_trajectories=split.test_trajectories, epochs=len(history),
                   seconds_per_epoch=float(np.median([h["seconds"] for h in history])) if history else None,
                   device=str(dev), threads=torch.get_num_threads())
    _write_metrics(out, history, summary)
    return summary


def _write_metrics(out: Path, history: list[dict], summary: dict | None) -> None:
    buf = io.StringIO()
    fields = ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    fields += [k for k in ("val_rollout_score",) if any(k in h for h in history)]
    fields += sorted({k for h in history for k in h if k.startswith("val_rollout_") and k not in fields})
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for h in history:
        w.writerow(h)
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    atomic_write_text(out / "metrics.json", json.dumps(_finite({"epochs": history, "summary": summary}), indent=1,
                                                      default=_json_default, allow_nan=False))


def _finite(o):
    """NaN/inf (e.g. the loss of an empty validation set) as null: metrics.json stays valid JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
