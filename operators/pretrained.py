"""Shipped checkpoints: ``operators/pretrained/<name>.pt`` with a model card ``<name>.json``.

The card records how the checkpoint was made and what it measured: ``name``, ``model``,
``file``, ``sha256`` (of the .pt file), ``parameters``, ``grid``, ``data_command``,
``training_command``, ``training_time_s``, ``metrics`` (dict), and free-text ``notes``. Loading
checks, in order: the card exists and is well-formed, the checkpoint's checksum, its format, that
the weights fit the model the card names (every shape), and the parameter count.
"""
from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint, sha256_file

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
CARD_KEYS = ("name", "model", "file", "sha256", "parameters", "grid", "data_command", "training_command",
             "training_time_s", "metrics")


class PretrainedError(CheckpointError):
    """A shipped checkpoint that is missing, fails its checksum or does not match its card."""


def available_pretrained(directory=None) -> list[str]:
    d = Path(directory) if directory is not None else PRETRAINED_DIR
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def write_card(checkpoint, directory, name: str, *, data_command: str, training_command: str,
               training_time_s: float, metrics: dict, notes: str = "") -> Path:
    """Copy ``checkpoint`` (inference part only) to ``directory/<name>.pt`` and write its card.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint of ``operators train``.
    directory : str or Path
        Usually ``operators/pretrained``.
    name : str
        The name ``load_pretrained`` takes.
    data_command, training_command : str
        The command lines that made the data and the checkpoint.
    training_time_s : float
    metrics : dict
        Measured numbers (e.g. one-step test error, rollout statistics errors).
    notes : str

    Returns
    -------
    Path
        The card.
    """
    from datagen.storage.atomic import atomic_write_text

    from .checkpoint import atomic_save

    ck = read_checkpoint(checkpoint)
    slim = {k: v for k, v in ck.items() if k not in ("optimizer", "scheduler", "rng", "raw_state_dict", "ema_state")}
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pt = d / f"{name}.pt"
    atomic_save(slim, pt)
    model = model_from_checkpoint(slim, pt)
    card = {"name": name, "model": ck["model"], "file": pt.name, "sha256": sha256_file(pt),
            "parameters": int(sum(p.numel() for p in model.parameters())), "grid": list(ck["grid"]),
            "model_config": ck["model_config"], "project": bool(ck["project"]), "data_command": data_command,
            "training_command": training_command, "training_time_s": float(training_time_s), "metrics": metrics,
            "notes": notes, "format": ck["format"], "format_version": ck["format_version"]}
    path = d / f"{name}.json"
    atomic_write_text(path, json.dumps(card, indent=1, sort_keys=True))
    return path


def load_pretrained(name: str, directory=None, device: str = "cpu"):
    """Load a shipped model by name, checked against its model card.

    Parameters
    ----------
    name : str
        E.g. ``"ifactformer-m-cpu"``; ``available_pretrained()`` lists them.
    directory : str or Path, optional
        Where to look (default ``operators/pretrained/``).
    device : str

    Returns
    -------
    torch.nn.Module
        In eval mode, with ``model.card`` (the model card) and ``model.checkpoint_meta`` (grid, box,
        normalisation, in_steps, project) attached.

    Raises
    ------
    PretrainedError
        Unknown name (listing the known ones), a missing or malformed card, a checksum mismatch,
        a checkpoint of another format, weights that do not fit the model, a parameter count
        that differs from the card.

    Examples
    --------
    >>> model = load_pretrained("ifactformer-m-cpu")        # doctest: +SKIP
    >>> model.card["metrics"]                              # doctest: +SKIP
    """
    d = Path(directory) if directory is not None else PRETRAINED_DIR
    card_path = d / f"{name}.json"
    if not isinstance(name, str) or not name or "/" in name or not card_path.is_file():
        known = available_pretrained(d)
        raise PretrainedError(f"no pretrained model {name!r} in {str(d)!r}; known: {', '.join(known) or 'none'}")
    try:
        card = json.loads(card_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PretrainedError(f"model card {str(card_path)!r} is not valid JSON ({exc})") from None
    if not isinstance(card, dict):
        raise PretrainedError(f"model card {str(card_path)!r} is not a JSON object")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise PretrainedError(f"model card {str(card_path)!r} lacks {', '.join(missing)}")
    pt = d / str(card["file"])
    if not pt.is_file():
        raise PretrainedError(f"{str(pt)!r} (named by {card_path.name}) does not exist")
    digest = sha256_file(pt)
    if digest != card["sha256"]:
        raise PretrainedError(f"{str(pt)!r} fails its checksum: sha256 {digest[:16]}..., the card says "
                              f"{str(card['sha256'])[:16]}... (damaged or replaced file)")
    ck = read_checkpoint(pt)
    if ck["model"] != card["model"]:
        raise PretrainedError(f"{str(pt)!r} holds model {ck['model']!r}, its card says {card['model']!r}")
    if list(ck["grid"]) != list(card["grid"]):
        raise PretrainedError(f"{str(pt)!r} is for grid {ck['grid']}, its card says {card['grid']}")
    model = model_from_checkpoint(ck, pt, device)
    n = int(sum(p.numel() for p in model.parameters()))
    if n != int(card["parameters"]):
        raise PretrainedError(f"{str(pt)!r} has {n} parameters, its card says {card['parameters']}")
    model.card = card
    model.checkpoint_meta = {k: ck[k] for k in ("grid", "box", "normalization", "in_steps", "project", "model_config")}
    return model
