"""Saving and loading DCDM weights, and the models shipped with the package.

A weights file is a ``torch.save`` of ``{"format", "version", "config", "state_dict"}``,
read back with ``weights_only=True`` (no pickled code runs), so loading is safe and
deterministic. Every shipped model ``weights/<name>.pt`` has a model card
``weights/<name>.json`` (machine-readable, with the file's SHA-256) and ``<name>.md``.
Anything wrong (missing, corrupt, altered, wrong architecture or shapes) raises
``ModelError``, a ``linsolve.SolverError``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

from linsolve.core.errors import SolverError

FORMAT = "linsolve-dcdm"
VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODELS = {2: "dcdm-2d", 3: "dcdm-3d"}


_CACHE: dict = {}


class ModelError(SolverError):
    """A DCDM weights file or model specification that cannot be used."""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_models() -> dict[str, dict]:
    """Model cards of the shipped models, by name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(WEIGHTS_DIR.glob("*.json"))
            if p.with_suffix(".pt").exists()}


def save_model(model, path, card: dict | None = None) -> Path:
    """Write ``model`` (config and weights) to ``path``; with ``card``, also the model card
    as ``.json`` (with the weights' SHA-256) and ``.md`` beside it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "config": dict(model.config), "state_dict": state}, buf)
    path.write_bytes(buf.getvalue())
    if card is not None:
        card = {"name": path.stem, **card, "config": dict(model.config), "sha256": sha256(path),
                "weights_bytes": path.stat().st_size}
        path.with_suffix(".json").write_text(json.dumps(card, indent=1, default=float) + "\n")
        path.with_suffix(".md").write_text(card_markdown(card))
    return path


def card_markdown(card: dict) -> str:
    lines = [f"# DCDM model `{card['name']}`", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    for key in ("config", "training", "final_loss", "measured"):
        if key in card:
            lines.append(f"## {key.replace('_', ' ')}")
            lines.append("")
            value = card[key]
            if isinstance(value, dict):
                lines += [f"- **{k}**: {v}" for k, v in value.items()]
            elif isinstance(value, list):
                lines += [f"- {json.dumps(v, default=float)}" for v in value]
            else:
                lines.append(str(value))
            lines.append("")
    lines.append(f"SHA-256 of the weights: `{card.get('sha256', '?')}`")
    return "\n".join(lines) + "\n"


def _read(path: Path, expected_sha: str | None = None) -> dict:
    import torch

    if not path.is_file():
        raise ModelError(f"DCDM weights file {str(path)!r} does not exist")
    if expected_sha is not None and sha256(path) != expected_sha:
        raise ModelError(f"DCDM weights file {str(path)!r} does not match the SHA-256 in its model card "
                         "(corrupt or replaced); reinstall the package or retrain")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ModelError(f"DCDM weights file {str(path)!r} is corrupt or not a torch file: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{str(path)!r} is not a DCDM weights file (no {FORMAT!r} format tag)")
    if blob.get("version") != VERSION:
        raise ModelError(f"DCDM weights file {str(path)!r} has format version {blob.get('version')!r}; "
                         f"this linsolve reads version {VERSION}")
    if not isinstance(blob.get("config"), dict) or not isinstance(blob.get("state_dict"), dict):
        raise ModelError(f"DCDM weights file {str(path)!r} lacks its config or state_dict")
    return blob


def model_from_blob(blob: dict, where: str = "weights"):
    """Build the network of ``blob['config']`` and load ``blob['state_dict']`` after
    checking every parameter name and shape."""
    from linsolve.learned.dcdm.model import build_model

    try:
        model = build_model(blob["config"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"DCDM {where}: invalid model config {blob['config']!r}: {exc}") from exc
    expected = model.state_dict()
    got = blob["state_dict"]
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise ModelError(f"DCDM {where} do not fit the architecture: missing {missing or 'none'}, "
                         f"unexpected {extra or 'none'}")
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise ModelError(f"DCDM {where}: parameter {k!r} has shape {tuple(got[k].shape)}, "
                             f"the architecture needs {tuple(v.shape)}")
        if not bool(got[k].isfinite().all()):
            raise ModelError(f"DCDM {where}: parameter {k!r} contains NaN or Inf")
    model.load_state_dict(got, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_model(spec=None, dim: int | None = None):
    """The network for ``spec``: None (the shipped default for ``dim``), a shipped name
    (see ``shipped_models()``), a path to a weights file, or a ``torch.nn.Module``."""
    import torch

    if isinstance(spec, torch.nn.Module):
        return spec
    if spec is None:
        if dim not in DEFAULT_MODELS:
            raise ModelError(f"no shipped DCDM model for a {dim}-D grid; pass model=<weights file>")
        spec = DEFAULT_MODELS[dim]
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelError(f"model must be a shipped name, a weights path or a torch Module, got "
                         f"{type(spec).__name__}")
    cards = shipped_models()
    if isinstance(spec, str) and spec in cards:
        path = WEIGHTS_DIR / f"{spec}.pt"
        key = (str(path), cards[spec].get("sha256"))
        if key not in _CACHE:  # shipped weights are read once per process (frozen, eval mode)
            _CACHE[key] = model_from_blob(_read(path, cards[spec].get("sha256")), f"model {spec!r}")
        model = _CACHE[key]
    elif isinstance(spec, str) and not spec.endswith(".pt") and os.sep not in spec and not Path(spec).exists():
        raise ModelError(f"unknown DCDM model {spec!r}; shipped: {', '.join(cards) or 'none'} "
                         "(or pass a path to a .pt weights file)")
    else:
        path = Path(spec)
        model = model_from_blob(_read(path), f"weights {str(path)!r}")
    if dim is not None and getattr(model, "dim", dim) != dim:
        raise ModelError(f"DCDM model {str(spec)!r} is {model.dim}-D but the grid is {dim}-D")
    return model
