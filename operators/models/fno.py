"""``fno``: the 3-D Fourier neural operator of Li et al. (ICLR 2021), from ``neuraloperator``
(``neuralop.models.FNO``), wrapped to the surrogate contract: the input window is stacked as
channels (in_steps x 3), neuraloperator's grid embedding appends the (x, y, z) coordinates, and
the output is the next snapshot (3 channels)."""
from __future__ import annotations

import torch

from ..registry import register_model
from ._common import SurrogateModel, check_bool, check_int
from ._fourier import FOURIER_DEFAULTS, min_grid, neuralop_modes, validate_fourier


@register_model("fno")
class FNO3d(SurrogateModel):
    """3-D FNO (neuraloperator). Configuration keys and defaults: ``FNO3d.DEFAULTS``;
    model card: ``operators/models/cards/fno.md``."""

    DEFAULTS = dict(FOURIER_DEFAULTS, n_layers=4,
                    channel_mlp=False)   # neuraloperator's per-block channel MLP; off = the classic FNO layer

    def _validate(self, cfg: dict) -> dict:
        cfg = validate_fourier(cfg)
        cfg["n_layers"] = check_int("n_layers", cfg["n_layers"])
        cfg["channel_mlp"] = check_bool("channel_mlp", cfg["channel_mlp"])
        return cfg

    def __init__(self, **config):
        super().__init__(**config)
        from neuralop.models import FNO

        cfg = self._config
        self.fno = FNO(n_modes=neuralop_modes(cfg["modes"]), in_channels=3 * cfg["in_steps"], out_channels=3,
                       hidden_channels=cfg["width"], n_layers=cfg["n_layers"],
                       lifting_channel_ratio=cfg["lifting_ratio"], projection_channel_ratio=cfg["projection_ratio"],
                       positional_embedding="grid", use_channel_mlp=cfg["channel_mlp"])

    def state_dict(self, *args, **kwargs):
        # neuraloperator's BaseModel adds a non-tensor "_metadata" entry to the (shared) state
        # dict; nested inside this wrapper it is an unexpected key for load_state_dict. Our
        # config (model.config) already records the architecture, so the entry is dropped.
        sd = super().state_dict(*args, **kwargs)
        if isinstance(sd.get("_metadata"), dict):
            del sd["_metadata"]
        return sd

    def min_grid(self) -> tuple[int, int, int]:
        return min_grid(self._config["modes"])

    def _forward(self, xn: torch.Tensor) -> torch.Tensor:
        b, t, c, x, y, z = xn.shape
        return self.fno(xn.reshape(b, t * c, x, y, z))
