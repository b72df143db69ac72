"""The implicit factorized transformer (IFactFormer) of Yang, Wang & Wang, "Implicit factorized
transformer approach to fast prediction of turbulent channel flows" (arXiv 2412.18840), in its
parallel (``-m``) and chained (``-o``) forms; the factorized attention follows FactFormer
(Li, Shu & Barati Farimani, arXiv 2305.17560). Written from the papers' description and the
authors' public code (github huiyu-2002/IFactFormer-m), not copied from it.

Layout: the latent field is channels-last (B, X, Y, Z, C). One block is applied ``iterations``
times with shared weights: u <- u + block(u) / L.

The block, for the latent field u:

* ``un = LayerNorm(u)``, values ``v = un Wv`` (heads x dim_head channels);
* per axis a in (x, y, z) an axis sequence ``r_a``: a linear map, the mean over the two other
  axes, then LayerNorm -> Linear(dim, 2 dim) -> GEGLU -> Linear(dim, dim);
* per axis a kernel ``K_a = rot(q_a) rot(k_a)^T`` (B, heads, n_a, n_a), q and k linear in r_a with
  dim_head x kernel_multiplier channels per head, rot the rotary encoding of the 1-D axis
  coordinate; no softmax;
* ``-m`` (parallel): ``o = [K_x v, K_y v, K_z v]`` (each contraction along its own axis,
  concatenated per head: 3 x heads x dim_head channels); ``-o`` (chained): ``o = K_z K_y K_x v``;
* ``InstanceNorm3d(o)`` -> Linear(., dim) -> GELU -> Linear(dim, dim).

The fast path (``fused=True``, the default) computes exactly the same function with less work:
the linear maps in front of the pooling act on the pooled (B, n, C) sequences instead of the
full field (they commute with the mean), the contractions are batched matrix products on a
head-major layout, and the instance normalisation is folded into the following linear layer
(per sample: W diag(1/sigma) o - W (mu/sigma)), so the normalised 1440-channel field is never
formed. ``fused=False`` evaluates the block literally, op by op; the tests compare the two.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..errors import OptionError
from ._common import (
    PAPER_BOX,
    SurrogateModel,
    axis_coordinates,
    check_bool,
    check_choice,
    check_float,
    check_floats,
    check_int,
)

#: Rotary encoding frequency scale of FactFormer: angles are (pos / min_freq) * 10000^(-2i/d).
ROTARY_MIN_FREQ = 1.0 / 64
INSTANCE_NORM_EPS = 1e-5


def rotary(t: torch.Tensor, pos: torch.Tensor, min_freq: float = ROTARY_MIN_FREQ) -> torch.Tensor:
    """Rotary position encoding of a 1-D coordinate.

    Channel pairs (i, i + d/2) of ``t`` are rotated by the angle
    ``theta_i(p) = (p / min_freq) * 10000 ** (-2 i / d)``.

    Parameters
    ----------
    t : torch.Tensor
        (..., n, d), d even.
    pos : torch.Tensor
        (n,) coordinates.
    min_freq : float
        Frequency scale (FactFormer's 1/64).

    Returns
    -------
    torch.Tensor
        Same shape as ``t``.

    Examples
    --------
    >>> t = torch.randn(2, 5, 8)
    >>> rotary(t, torch.zeros(5)).allclose(t)
    True
    """
    d = t.shape[-1]
    half = d // 2
    dtype = torch.promote_types(t.dtype, torch.float32)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, device=t.device, dtype=dtype) / d))
    theta = (pos.to(dtype) / min_freq)[:, None] * inv_freq[None, :]
    cos, sin = theta.cos().to(t.dtype), theta.sin().to(t.dtype)
    t1, t2 = t[..., :half], t[..., half:]
    return torch.cat((t1 * cos - t2 * sin, t2 * cos + t1 * sin), dim=-1)


def contract_x(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out[b,h,i,l,r,c] = sum_j k[b,h,i,j] v[b,h,j,l,r,c]``; v head-major (B, h, X, Y, Z, c)."""
    b, h, x, y, z, c = v.shape
    return torch.matmul(k, v.reshape(b, h, x, y * z * c)).view(b, h, x, y, z, c)


def contract_y(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out[b,h,i,l,r,c] = sum_m k[b,h,l,m] v[b,h,i,m,r,c]``."""
    b, h, x, y, z, c = v.shape
    return torch.matmul(k.unsqueeze(2), v.reshape(b, h, x, y, z * c)).view(b, h, x, y, z, c)


def contract_z(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``out[b,h,i,l,r,c] = sum_s k[b,h,r,s] v[b,h,i,l,s,c]``."""
    b, h, x, y, z, c = v.shape
    return torch.matmul(k[:, :, None, None], v)


def instance_stats(o: torch.Tensor, eps: float = INSTANCE_NORM_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and 1/sqrt(var + eps) over the points axis (-2) of ``o`` (..., N, C).

    The variance is E[o^2] - E[o]^2 from two plain sums: on CPU this is ~100x faster than
    ``torch.var_mean`` over a non-innermost axis, and autograd keeps no extra copy of ``o``."""
    mean = o.mean(dim=-2, keepdim=True)
    var = (o * o).mean(dim=-2, keepdim=True) - mean * mean
    return mean, torch.rsqrt(var.clamp_min(0.0) + eps)


def heads_instance_norm_linear(parts: list[torch.Tensor], weight: torch.Tensor,
                               eps: float = INSTANCE_NORM_EPS) -> torch.Tensor:
    """``Linear(InstanceNorm(o))`` for ``o`` given as head-major pieces, never concatenated.

    Parameters
    ----------
    parts : list of torch.Tensor
        A pieces, each (B, H, N, c); the full channel index of (a, h, j) is h*A*c + a*c + j (the
        per-head concatenation of the pieces). In bfloat16 the statistics are still computed in
        float32 and the products accumulate in float32.
    weight : torch.Tensor
        (D, H*A*c).

    Returns
    -------
    torch.Tensor
        (B, N, D), in float32 at least.
    """
    b, h, n, c = parts[0].shape
    w = weight.view(weight.shape[0], h, len(parts), c)
    out = None
    for a, o in enumerate(parts):
        acc = torch.promote_types(o.dtype, torch.float32)
        mean, s = instance_stats(o.to(acc), eps)                    # (B, H, 1, c)
        w_a = w[:, :, a, :].permute(1, 2, 0).to(acc)                # (H, c, D)
        y = torch.matmul(o, (s.transpose(-1, -2) * w_a).to(o.dtype)).to(acc)   # (B, H, N, D)
        y = y.sum(dim=1) - torch.matmul(mean * s, w_a).sum(dim=1)   # (B, N, D)
        out = y if out is None else out + y
    return out


def contract_parts(kx, ky, kz, v, parallel: bool) -> list[torch.Tensor]:
    """The block's contractions of the head-major values v (B, H, X, Y, Z, c), each returned as
    (B, H, N, c): [K_x v, K_y v, K_z v] (parallel) or [K_z K_y K_x v] (chained)."""
    b, h, x, y, z, c = v.shape
    if parallel:
        parts = [contract_x(kx, v), contract_y(ky, v), contract_z(kz, v)]
    else:
        parts = [contract_z(kz, contract_y(ky, contract_x(kx, v)))]
    return [o.view(b, h, x * y * z, c) for o in parts]


class ContractNormLinear(torch.autograd.Function):
    """``heads_instance_norm_linear(contract_parts(...), weight)`` that keeps only its inputs
    (v, the kernels, the weight) for the backward pass instead of the 3 x heads x dim_head
    contracted field; the backward recomputes the contractions (~10% of the block's products)
    and applies the closed-form instance-norm + linear backward. Float32/float64 only."""

    @staticmethod
    def forward(ctx, v, kx, ky, kz, weight, parallel, eps):
        ctx.parallel, ctx.eps = parallel, eps
        ctx.save_for_backward(v, kx, ky, kz, weight)
        return heads_instance_norm_linear(contract_parts(kx, ky, kz, v, parallel), weight, eps)

    @staticmethod
    def backward(ctx, dy):
        v, kx, ky, kz, weight = ctx.saved_tensors
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(t.requires_grad) for t in (v, kx, ky, kz)]
            parts = contract_parts(*leaves[1:], leaves[0], ctx.parallel)
        b, h, n, c = parts[0].shape
        w = weight.view(weight.shape[0], h, len(parts), c)
        dw = torch.empty_like(w)
        dparts = []
        dy_h = dy.unsqueeze(1)                                          # (B, 1, N, D)
        for a, o in enumerate(parts):
            o = o.detach()
            mean, s = instance_stats(o, ctx.eps)
            on = (o - mean) * s                                         # normalised (B, H, N, c)
            w_a = w[:, :, a, :].permute(1, 2, 0)                        # (H, c, D)
            dw[:, :, a, :] = torch.matmul(on.transpose(-1, -2), dy_h).sum(0).permute(2, 0, 1)
            don = torch.matmul(dy_h, w_a.transpose(-1, -2))             # (B, H, N, c)
            dparts.append(s * (don - don.mean(dim=-2, keepdim=True)
                               - on * (don * on).mean(dim=-2, keepdim=True)))
        want = [t for t in leaves if t.requires_grad]
        grads = iter(torch.autograd.grad(parts, want, dparts)) if want else iter(())
        dv, dkx, dky, dkz = (next(grads) if t.requires_grad else None for t in leaves)
        return dv, dkx, dky, dkz, dw.view_as(weight), None, None


def geglu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return F.gelu(a) * b


class AxisReducer(nn.Module):
    """Pooling reducer: a linear map, the mean over the two other axes, then a gated MLP."""

    def __init__(self, dim: int, latent_dim: int):
        super().__init__()
        self.to_in = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, 2 * dim)
        self.ff_out = nn.Linear(dim, latent_dim)

    def mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.ff_out(geglu(self.ff_in(self.norm(pooled))))


class AxisKernel(nn.Module):
    """Low-rank axis kernel ``K = rot(q) rot(k)^T * scaling`` (B, heads, n, n), no softmax."""

    def __init__(self, latent_dim: int, heads: int, dim_kernel: int, scaling: float):
        super().__init__()
        self.heads, self.dim_kernel, self.scaling = heads, dim_kernel, scaling
        self.to_q = nn.Linear(latent_dim, heads * dim_kernel, bias=False)
        self.to_k = nn.Linear(latent_dim, heads * dim_kernel, bias=False)
        # FactFormer's small initial gain keeps the unnormalised kernel near zero at the start
        nn.init.xavier_uniform_(self.to_q.weight, gain=0.02)
        nn.init.xavier_uniform_(self.to_k.weight, gain=0.02)

    def forward(self, r: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n, _ = r.shape
        q = self.to_q(r).view(b, n, self.heads, self.dim_kernel).transpose(1, 2)
        k = self.to_k(r).view(b, n, self.heads, self.dim_kernel).transpose(1, 2)
        q, k = rotary(q, pos), rotary(k, pos)
        return torch.matmul(q, k.transpose(-1, -2)) * self.scaling


class FactorizedBlock(nn.Module):
    """One factorized-attention block (see the module docstring); ``parallel`` selects -m / -o."""

    def __init__(self, dim: int, heads: int, dim_head: int, kernel_multiplier: int, scaling: float,
                 parallel: bool, fused: bool = True, low_precision: torch.dtype | None = None):
        super().__init__()
        self.dim, self.heads, self.dim_head = dim, heads, dim_head
        self.parallel, self.fused, self.low_precision = parallel, fused, low_precision
        self.in_norm = nn.LayerNorm(dim)
        self.to_v = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_in = nn.Linear(dim, dim, bias=False)
        self.reducers = nn.ModuleList([AxisReducer(dim, dim) for _ in range(3)])
        self.kernels = nn.ModuleList([AxisKernel(dim, heads, dim_head * kernel_multiplier, scaling)
                                      for _ in range(3)])
        n_out = (3 if parallel else 1) * heads * dim_head
        self.out_in = nn.Linear(n_out, dim, bias=False)
        self.out_out = nn.Linear(dim, dim, bias=False)

    def axis_kernels(self, un: torch.Tensor, pos: tuple) -> list[torch.Tensor]:
        """The three axis kernels (B, heads, n_a, n_a) of the normalised field ``un``."""
        other = ((2, 3), (1, 3), (1, 2))
        if self.fused:
            # to_in and each reducer's to_in are linear without bias, so they commute with the mean
            rs = [red.to_in(self.to_in(un.mean(dim=dims))) for red, dims in zip(self.reducers, other, strict=True)]
        else:
            w = self.to_in(un)
            rs = [red.to_in(w).mean(dim=dims) for red, dims in zip(self.reducers, other, strict=True)]
        return [ker(red.mlp(r), p) for ker, red, r, p in zip(self.kernels, self.reducers, rs, pos, strict=True)]

    def forward(self, u: torch.Tensor, pos: tuple) -> torch.Tensor:
        b, x, y, z, _ = u.shape
        un = self.in_norm(u)
        kx, ky, kz = self.axis_kernels(un, pos)
        h, c = self.heads, self.dim_head
        if not self.fused:
            return self._forward_plain(un, kx, ky, kz)
        lp = self.low_precision
        if lp is None:
            v = self.to_v(un)
        else:
            # the three big products (values, contractions, output map) in bfloat16
            v = F.linear(un.to(lp), self.to_v.weight.to(lp))
            kx, ky, kz = kx.to(lp), ky.to(lp), kz.to(lp)
        v = v.view(b, x, y, z, h, c).permute(0, 4, 1, 2, 3, 5).contiguous()
        if torch.is_grad_enabled() and lp is None:
            out = ContractNormLinear.apply(v, kx, ky, kz, self.out_in.weight, self.parallel, INSTANCE_NORM_EPS)
        else:
            out = heads_instance_norm_linear(contract_parts(kx, ky, kz, v, self.parallel), self.out_in.weight)
        return self.out_out(F.gelu(out)).view(b, x, y, z, self.dim)

    def _forward_plain(self, un, kx, ky, kz) -> torch.Tensor:
        b, x, y, z, _ = un.shape
        v = self.to_v(un).view(b, x, y, z, self.heads, self.dim_head)
        if self.parallel:
            o = torch.cat((torch.einsum("bhij,bjlrhc->bilrhc", kx, v),
                           torch.einsum("bhlm,bimrhc->bilrhc", ky, v),
                           torch.einsum("bhrs,bilshc->bilrhc", kz, v)), dim=-1)
        else:
            o = torch.einsum("bhij,bjlrhc->bilrhc", kx, v)
            o = torch.einsum("bhlm,bimrhc->bilrhc", ky, o)
            o = torch.einsum("bhrs,bilshc->bilrhc", kz, o)
        o = o.reshape(b, x, y, z, -1).permute(0, 4, 1, 2, 3)
        o = F.instance_norm(o, eps=INSTANCE_NORM_EPS).permute(0, 2, 3, 4, 1)
        return self.out_out(F.gelu(self.out_in(o)))


class IFactFormer(SurrogateModel):
    """Implicit factorized transformer; the registered subclasses fix the variant."""

    parallel = True
    DEFAULTS = dict(
        in_steps=1,            # the authors' in_time_window (their run directory reads T1)
        dim=96,                # latent width
        heads=5,
        dim_head=96,
        kernel_multiplier=3,   # q/k channels per head = dim_head * kernel_multiplier
        iterations=10,         # L: the one block is applied L times, u <- u + block(u) / L
        fourier_scale=8.0,     # std of the fixed Gaussian Fourier-feature matrix
        kernel_scaling=None,   # None: FactFormer's rule, 1/sqrt(dim_head*km) if km > 4 else 1
        box=PAPER_BOX,         # (Lx, Lz): coordinate scale for the positional encodings
        coords="grid",         # "grid" (contract's grid) or "linspace" (the authors' coordinates)
        fused=True,            # fast exact evaluation of the block (see the module docstring)
        checkpoint=False,      # recompute each iteration in backward (training memory / ~1.3x time)
        compile=False,         # torch.compile the block on first use
        precision="float32",   # "bfloat16": the block's three big products in bfloat16 (fused path)
    )

    def _validate(self, cfg: dict) -> dict:
        cfg["in_steps"] = check_int("in_steps", cfg["in_steps"])
        cfg["dim"] = check_int("dim", cfg["dim"], 6)
        if cfg["dim"] % 6:
            raise OptionError(f"dim must be a multiple of 6 (the lifting is a grouped 3 -> dim/2 map), "
                              f"got {cfg['dim']}")
        cfg["heads"] = check_int("heads", cfg["heads"])
        cfg["dim_head"] = check_int("dim_head", cfg["dim_head"])
        cfg["kernel_multiplier"] = check_int("kernel_multiplier", cfg["kernel_multiplier"])
        if (cfg["dim_head"] * cfg["kernel_multiplier"]) % 2:
            raise OptionError("dim_head * kernel_multiplier must be even (rotary encoding rotates channel "
                              f"pairs), got {cfg['dim_head']} * {cfg['kernel_multiplier']}")
        cfg["iterations"] = check_int("iterations", cfg["iterations"])
        cfg["fourier_scale"] = check_float("fourier_scale", cfg["fourier_scale"])
        if cfg["kernel_scaling"] is not None:
            cfg["kernel_scaling"] = check_float("kernel_scaling", cfg["kernel_scaling"])
        cfg["box"] = check_floats("box", cfg["box"], 2)
        cfg["coords"] = check_choice("coords", cfg["coords"], ("grid", "linspace"))
        for key in ("fused", "checkpoint", "compile"):
            cfg[key] = check_bool(key, cfg[key])
        cfg["precision"] = check_choice("precision", cfg["precision"], ("float32", "bfloat16"))
        if cfg["precision"] == "bfloat16" and not cfg["fused"]:
            raise OptionError("precision='bfloat16' needs fused=True (the literal path runs in float32)")
        return cfg

    def __init__(self, **config):
        super().__init__(**config)
        cfg = self._config
        dim, half = cfg["dim"], cfg["dim"] // 2
        km, dk = cfg["kernel_multiplier"], cfg["dim_head"] * cfg["kernel_multiplier"]
        scaling = cfg["kernel_scaling"]
        if scaling is None:
            scaling = 1.0 / math.sqrt(dk) if km > 4 else 1.0
        # lifting: a grouped 1x1 map 3 -> dim/2 (groups = 3) per time step, GELU, then a map of the
        # whole window (in_steps x dim/2) -> dim without bias; init as PyTorch's Conv (fan-in 1)
        self.lift_weight = nn.Parameter(torch.empty(3, half // 3).uniform_(-1.0, 1.0))
        self.lift_bias = nn.Parameter(torch.empty(3, half // 3).uniform_(-1.0, 1.0))
        self.lift_window = nn.Linear(cfg["in_steps"] * half, dim, bias=False)
        # fixed Gaussian Fourier features of (x, y, z) through a linear layer, added once
        self.register_buffer("fourier_matrix", torch.randn(3, half) * cfg["fourier_scale"])
        self.pos_linear = nn.Linear(dim, dim)
        self.block = FactorizedBlock(dim, cfg["heads"], cfg["dim_head"], km, scaling, self.parallel,
                                     fused=cfg["fused"],
                                     low_precision=torch.bfloat16 if cfg["precision"] == "bfloat16" else None)
        self.head_in = nn.Linear(dim, half, bias=False)
        self.head_out = nn.Linear(half, 3)
        self.__dict__["_compiled_block"] = None

    def authors_parameter_count(self) -> int:
        """Parameters as the authors' ``count_params`` counts them: ours plus the fixed
        Fourier-feature matrix (an untrained ``nn.Parameter`` there, a buffer here)."""
        return sum(p.numel() for p in self.parameters()) + self.fourier_matrix.numel()

    def _block_fn(self):
        if not self._config["compile"]:
            return self.block
        if self._compiled_block is None:
            self.__dict__["_compiled_block"] = torch.compile(self.block)
        return self._compiled_block

    def lift(self, xn: torch.Tensor) -> torch.Tensor:
        """Normalised input (B, T, 3, X, Y, Z) -> latent field (B, X, Y, Z, dim), positions added."""
        b, t, _, x, y, z = xn.shape
        h = xn.permute(0, 3, 4, 5, 1, 2).unsqueeze(-1) * self.lift_weight + self.lift_bias
        u = self.lift_window(F.gelu(h).reshape(b, x, y, z, -1))
        pos = self.coordinates(x, y, z, xn.device)
        grid = torch.stack(torch.meshgrid(*pos, indexing="ij"), dim=-1)          # (X, Y, Z, 3)
        proj = 2 * math.pi * torch.matmul(grid, self.fourier_matrix.to(grid.dtype))
        pe = self.pos_linear(torch.cat((proj.sin(), proj.cos()), dim=-1).to(u.dtype))
        return u + pe

    def coordinates(self, x: int, y: int, z: int, device) -> tuple:
        return axis_coordinates(x, y, z, self._config["box"], self._config["coords"], device=device)

    def _forward(self, xn: torch.Tensor) -> torch.Tensor:
        u = self.lift(xn)
        pos = self.coordinates(*xn.shape[3:], xn.device)
        block = self._block_fn()
        n_iter = self._config["iterations"]
        use_ckpt = self._config["checkpoint"] and self.training and torch.is_grad_enabled()
        for _ in range(n_iter):
            du = _checkpoint(block, u, pos, use_reentrant=False) if use_ckpt else block(u, pos)
            u = u + du / n_iter
        out = self.head_out(F.gelu(self.head_in(u)))
        return out.permute(0, 4, 1, 2, 3)
