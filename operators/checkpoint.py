"""Checkpoints of surrogate models: one ``torch.save`` dict, written atomically (temp file, fsync,
rename), loaded with ``weights_only=True`` and checked before use.

Keys: ``format`` ("operators-checkpoint"), ``format_version``, ``model`` (registry name),
``model_config`` (the model's full config), ``in_steps``, ``state_dict``, ``grid`` [NX, NY, NZ],
``box`` [Lx, Lz], ``re_tau``, ``nu``, ``snapshot_dt``, ``normalization`` {mean, std} (training split
only), ``project`` (trained with the divergence-free projection), ``data`` {path, sha256, split},
``train_args``; training state: ``epoch``, ``optimizer``, ``scheduler``, ``rng``, ``history``,
``best_val``, ``best_epoch``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from datagen.storage.atomic import atomic_path  # the atomic writes of every datagen file
from linsolve.core.errors import OptionError

FORMAT = "operators-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "model", "model_config", "in_steps", "state_dict", "grid", "box",
            "normalization", "project")


class CheckpointError(OptionError):
    """A checkpoint that is missing, damaged, of another format, or does not fit the data."""


def build_model(name: str, config: dict):
    """The registry's ``make_model`` (a seam the tests replace with a small model)."""
    from .factory import make_model

    return make_model(name, **config)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for blk in iter(lambda: fh.read(chunk), b""):
            h.update(blk)
    return h.hexdigest()


def atomic_save(obj, path) -> None:
    """``torch.save`` to ``path`` so that the file appears complete or not at all."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load and check a checkpoint dict (no model built).

    Raises
    ------
    CheckpointError
        Missing file, not a torch file, another format or version, missing keys.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist" if not path.exists()
                              else f"checkpoint {str(path)!r} is not a regular file")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError) as exc:
        why = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{str(path)!r} is not a readable operators checkpoint ({why})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an operators checkpoint (format != {FORMAT!r})")
    if ck.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint format version {ck.get('format_version')!r}; "
                              f"this version reads {FORMAT_VERSION}")
    missing = [k for k in REQUIRED if k not in ck]
    if missing:
        raise CheckpointError(f"{str(path)!r} is damaged: key {missing[0]!r} missing")
    return ck


def model_from_checkpoint(ck: dict, path="checkpoint", device="cpu"):
    """Rebuild the model of a checkpoint dict and load its weights (strict: every shape checked)."""
    import torch

    from linsolve.core.errors import SolverError

    from .errors import OperatorError

    try:
        model = build_model(ck["model"], dict(ck["model_config"]))
    except (SolverError, OperatorError) as exc:
        raise CheckpointError(f"{str(path)!r}: cannot rebuild model {ck['model']!r}: {exc}") from None
    try:
        model.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{str(path)!r}: the weights do not fit model {ck['model']!r} with the stored "
                              f"config ({first})") from None
    return model.to(torch.device(device)).eval()


def load_checkpoint(path, device="cpu"):
    """A checkpoint's model (eval mode, on ``device``) and its dict.

    Parameters
    ----------
    path : str or Path
    device : str

    Returns
    -------
    model : torch.nn.Module
    ck : dict
        The checkpoint (see the module docstring).

    Raises
    ------
    CheckpointError

    Examples
    --------
    >>> model, ck = load_checkpoint("runs/ifm/best.pt")        # doctest: +SKIP
    """
    ck = read_checkpoint(path)
    return model_from_checkpoint(ck, path, device), ck


def check_fits(ck: dict, data, path="checkpoint") -> None:
    """Refuse data the checkpoint was not trained for: another grid, box or Reynolds number."""
    import math

    grid = tuple(int(n) for n in ck["grid"])
    if grid != data.grid:
        raise CheckpointError(f"{str(path)!r} was trained on a {'x'.join(map(str, grid))} grid; "
                              f"{str(data.path)!r} is {'x'.join(map(str, data.grid))}")
    lx, lz = (float(v) for v in ck["box"])
    dlx = float(data.attrs.get("Lx", lx))
    dlz = float(data.attrs.get("Lz", lz))
    if not (math.isclose(lx, dlx, rel_tol=1e-5) and math.isclose(lz, dlz, rel_tol=1e-5)):
        raise CheckpointError(f"{str(path)!r} was trained on a box {lx:.4g} x {lz:.4g}; {str(data.path)!r} "
                              f"is {dlx:.4g} x {dlz:.4g}")
    if "re_tau" in ck and not math.isclose(float(ck["re_tau"]), data.re_tau, rel_tol=1e-5):
        raise CheckpointError(f"{str(path)!r} was trained at Re_tau {ck['re_tau']:g}; {str(data.path)!r} is at "
                              f"{data.re_tau:g}")
