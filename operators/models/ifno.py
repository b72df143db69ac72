"""``ifno``: the implicit Fourier neural operator (Li, Peng, Yuan & Wang, "Long-term predictions of
turbulence by implicit U-Net enhanced Fourier neural operator" and their IFNO): ONE Fourier layer
(``neuralop``'s spectral convolution plus a pointwise linear skip, GELU) with shared weights is
applied L times as the implicit update u <- u + layer(u) / L, between neuraloperator's grid
embedding + lifting and its projection (the same pieces as ``fno``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model
from ._common import SurrogateModel, check_int
from ._fourier import FOURIER_DEFAULTS, min_grid, neuralop_modes, validate_fourier


@register_model("ifno")
class IFNO3d(SurrogateModel):
    """Implicit 3-D FNO. Configuration keys and defaults: ``IFNO3d.DEFAULTS``;
    model card: ``operators/models/cards/ifno.md``."""

    DEFAULTS = dict(FOURIER_DEFAULTS, iterations=40)

    def _validate(self, cfg: dict) -> dict:
        cfg = validate_fourier(cfg)
        cfg["iterations"] = check_int("iterations", cfg["iterations"])
        return cfg

    def __init__(self, **config):
        super().__init__(**config)
        from neuralop.layers.channel_mlp import ChannelMLP
        from neuralop.layers.embeddings import GridEmbeddingND
        from neuralop.layers.spectral_convolution import SpectralConv

        cfg = self._config
        width, cin = cfg["width"], 3 * cfg["in_steps"]
        self.embedding = GridEmbeddingND(in_channels=cin, dim=3, grid_boundaries=[[0.0, 1.0]] * 3)
        self.lifting = ChannelMLP(in_channels=cin + 3, out_channels=width,
                                  hidden_channels=cfg["lifting_ratio"] * width, n_layers=2, n_dim=3)
        self.spectral = SpectralConv(width, width, n_modes=neuralop_modes(cfg["modes"]))
        self.skip = nn.Conv3d(width, width, kernel_size=1, bias=False)
        self.projection = ChannelMLP(in_channels=width, out_channels=3,
                                     hidden_channels=cfg["projection_ratio"] * width, n_layers=2, n_dim=3,
                                     non_linearity=F.gelu)

    def min_grid(self) -> tuple[int, int, int]:
        return min_grid(self._config["modes"])

    def layer(self, u: torch.Tensor) -> torch.Tensor:
        """The shared Fourier layer: GELU(spectral(u) + skip(u))."""
        return F.gelu(self.spectral(u) + self.skip(u))

    def _forward(self, xn: torch.Tensor) -> torch.Tensor:
        b, t, c, x, y, z = xn.shape
        u = self.lifting(self.embedding(xn.reshape(b, t * c, x, y, z)))
        n_iter = self._config["iterations"]
        for _ in range(n_iter):
            u = u + self.layer(u) / n_iter
        return self.projection(u)
