"""The array-namespace shim: the DNS is written once against ``Backend`` and runs on
NumPy (CPU) or PyTorch (CPU or CUDA) arrays. Only the handful of operations the solver
needs are wrapped; everything else is plain arithmetic that both libraries share."""
from __future__ import annotations

import numpy as np

from linsolve.core.errors import OptionError


class Backend:
    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        if self.device in ("cpu", "numpy"):
            self.name = "numpy"
            self.xp = np
        elif self.device.startswith("cuda") or self.device == "torch":
            try:
                import torch
            except ImportError as exc:  # pragma: no cover - torch is a dependency
                raise OptionError(f"device {device!r} needs PyTorch, which is not installed") from exc
            tdev = "cpu" if self.device == "torch" else self.device
            if tdev.startswith("cuda") and not torch.cuda.is_available():
                raise OptionError(f"device {device!r} asked for but torch.cuda.is_available() is False")
            self.name = "torch"
            self.xp = torch
            self.tdevice = torch.device(tdev)
        else:
            raise OptionError(f"device must be 'cpu', 'torch' or 'cuda[:N]', got {device!r}")

    # creation and transfer
    def zeros(self, shape):
        if self.name == "numpy":
            return np.zeros(shape)
        return self.xp.zeros(shape, dtype=self.xp.float64, device=self.tdevice)

    def asarray(self, a):
        if self.name == "numpy":
            return np.array(a, dtype=np.float64)
        return self.xp.as_tensor(np.asarray(a, dtype=np.float64), device=self.tdevice).clone()

    def to_numpy(self, a) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(a)
        return a.detach().cpu().numpy()

    def col(self, a):
        """A 1-D y-profile as an array broadcasting over (y, x, z)."""
        return self.asarray(np.asarray(a, dtype=np.float64).reshape(-1, 1, 1))

    # shifts in the periodic directions (axis 1 = x, axis 2 = z): a[i+1] and a[i-1]
    def next(self, a, axis):
        if self.name == "numpy":
            return np.roll(a, -1, axis=axis)
        return self.xp.roll(a, -1, dims=axis)

    def prev(self, a, axis):
        if self.name == "numpy":
            return np.roll(a, 1, axis=axis)
        return self.xp.roll(a, 1, dims=axis)

    def amax_abs(self, a) -> float:
        return float(abs(a).max())

    def all_finite(self, *arrays) -> bool:
        if self.name == "numpy":
            return all(bool(np.isfinite(a).all()) for a in arrays)
        return all(bool(self.xp.isfinite(a).all()) for a in arrays)

    def rfft2(self, a):
        if self.name == "numpy":
            import scipy.fft as sfft

            return sfft.rfftn(a, axes=(1, 2))
        return self.xp.fft.rfftn(a, dim=(1, 2))

    def irfft2(self, a, s):
        if self.name == "numpy":
            import scipy.fft as sfft

            return sfft.irfftn(a, s=s, axes=(1, 2))
        return self.xp.fft.irfftn(a, s=s, dim=(1, 2))

    def plane_mean(self, a):
        """Mean over the periodic x-z planes, kept as a (ny, 1, 1) column."""
        if self.name == "numpy":
            return a.mean(axis=(1, 2), keepdims=True)
        return a.mean(dim=(1, 2), keepdim=True)

    def copy(self, a):
        return a.copy() if self.name == "numpy" else a.clone()
