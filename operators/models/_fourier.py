"""Configuration shared by the Fourier models (``fno``, ``ifno``): the Fourier modes in the
classic sense of Li et al.'s code and their translation to ``neuraloperator``'s ``n_modes``."""
from __future__ import annotations

from ._common import check_int, check_ints

FOURIER_DEFAULTS = dict(
    in_steps=5,               # the input window of the channel-flow FNO family (Wang et al. 2024, IUFNO-CHL)
    modes=[8, 8, 8],          # kept Fourier modes per axis, as ``modes1..3`` in Li et al.'s code
    width=80,                 # hidden channels
    lifting_ratio=2,          # neuraloperator's lifting_channel_ratio (its default)
    projection_ratio=2,       # neuraloperator's projection_channel_ratio (its default)
)


def validate_fourier(cfg: dict) -> dict:
    cfg["in_steps"] = check_int("in_steps", cfg["in_steps"])
    cfg["modes"] = check_ints("modes", cfg["modes"], 3)
    cfg["width"] = check_int("width", cfg["width"])
    for key in ("lifting_ratio", "projection_ratio"):
        cfg[key] = check_int(key, cfg[key])
    return cfg


def neuralop_modes(modes: list[int]) -> tuple[int, int, int]:
    """``n_modes`` for neuraloperator's SpectralConv that keeps the classic modes: frequencies
    -m..m-1 on x and y (2 m modes, centred) and 0..m-1 of the real FFT on z (n // 2 + 1 = m)."""
    mx, my, mz = modes
    return (2 * mx, 2 * my, 2 * mz - 1)


def min_grid(modes: list[int]) -> tuple[int, int, int]:
    """Smallest grid on which the classic modes exist: nx >= 2 mx, ny >= 2 my, nz // 2 + 1 >= mz."""
    mx, my, mz = modes
    return (2 * mx, 2 * my, max(2 * mz - 2, 2))

