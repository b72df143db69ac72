"""The surrogate models of ``operators``: the factorized contractions and the rotary encoding
against plain gold versions, the IFactFormer block against an independent re-evaluation, the
implicit update and weight sharing, pinned parameter counts, shapes, normalisation, seeding,
rebuild from config, errors, and a CUDA run where a GPU exists."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import operators  # noqa: E402
from operators.errors import (  # noqa: E402
    DuplicateModelError,
    NonFiniteError,
    OptionError,
    ShapeError,
    UnknownModelError,
)
from operators.models.factorized import (  # noqa: E402
    ContractNormLinear,
    contract_x,
    contract_y,
    contract_z,
    heads_instance_norm_linear,
    rotary,
)

torch.set_num_threads(1)

# small configurations that keep every test fast
SMALL = {
    "ifactformer-m": dict(dim=12, heads=2, dim_head=4, iterations=3),
    "ifactformer-o": dict(dim=12, heads=2, dim_head=4, iterations=3),
    "fno": dict(width=8, modes=[2, 2, 2], n_layers=2, in_steps=2),
    "ifno": dict(width=8, modes=[2, 2, 2], iterations=3, in_steps=2),
}


def _input(model, shape=(6, 5, 4), batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.in_steps, 3, *shape, generator=g)


def _small(name, seed=0, **over):
    torch.manual_seed(seed)
    return operators.make_model(name, **{**SMALL[name], **over})


def _energise(model, factor=50.0):
    """Scale the q/k maps up: with their 0.02 initial gain the axis kernels are ~1e-3 and the
    chained (-o) kernel product ~1e-9, below the instance norm's eps, so the block output would
    be ~0 and the tests below could not see it."""
    with torch.no_grad():
        for ker in model.block.kernels:
            ker.to_q.weight.mul_(factor)
            ker.to_k.weight.mul_(factor)
    return model


# ----------------------------------------------------------------------------- contractions

def _loop_gold(k, v, axis):
    """out[..., i, ...] = sum_j k[b, h, i, j] v[..., j, ...] along ``axis`` (2, 3 or 4), by loops."""
    k, v = k.double().numpy(), v.double().numpy()
    out = np.zeros_like(v)
    b_, h_ = v.shape[:2]
    n = v.shape[axis]
    for b in range(b_):
        for h in range(h_):
            vv = np.moveaxis(v[b, h], axis - 2, 0)
            oo = np.zeros_like(vv)
            for i in range(n):
                for j in range(n):
                    oo[i] += k[b, h, i, j] * vv[j]
            out[b, h] = np.moveaxis(oo, 0, axis - 2)
    return out


def test_single_axis_contractions_match_loop_gold():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 3, 4, 5, 3, 2, generator=g)
    for fn, axis in ((contract_x, 2), (contract_y, 3), (contract_z, 4)):
        n = v.shape[axis]
        k = torch.randn(2, 3, n, n, generator=g)
        np.testing.assert_allclose(fn(k, v).double().numpy(), _loop_gold(k, v, axis), rtol=1e-5, atol=1e-5)


def test_chained_contraction_equals_full_separable_kernel():
    # K_z K_y K_x v is the action of the 3-D kernel Kx(i,j) Ky(l,m) Kz(r,s): one full einsum
    g = torch.Generator().manual_seed(2)
    v = torch.randn(2, 2, 4, 5, 3, 3, generator=g, dtype=torch.float64)
    kx, ky, kz = (torch.randn(2, 2, n, n, generator=g, dtype=torch.float64) for n in (4, 5, 3))
    full = torch.einsum("bhij,bhlm,bhrs->bhilrjms", kx, ky, kz)
    gold = torch.einsum("bhilrjms,bhjmsc->bhilrc", full, v)
    chained = contract_z(kz, contract_y(ky, contract_x(kx, v)))
    torch.testing.assert_close(chained, gold)
    # the order of the single-axis contractions does not matter
    torch.testing.assert_close(contract_x(kx, contract_y(ky, contract_z(kz, v))), gold)


def test_instance_norm_folded_into_linear_matches_instance_norm3d():
    # channels (head h, piece a, j) in the order h*A*c + a*c + j, as the per-head concatenation
    g = torch.Generator().manual_seed(3)
    b, h, (x, y, z), c, d = 2, 3, (4, 5, 6), 4, 7
    parts = [torch.randn(b, h, x * y * z, c, generator=g, dtype=torch.float64) * (a + 1) + 2 * a - 1
             for a in range(2)]
    w = torch.randn(d, h * 2 * c, generator=g, dtype=torch.float64)
    full = torch.cat([p.view(b, h, x, y, z, c) for p in parts], dim=-1)          # b h x y z (2c)
    full = full.permute(0, 1, 5, 2, 3, 4).reshape(b, h * 2 * c, x, y, z)
    gold = torch.nn.InstanceNorm3d(h * 2 * c).double()(full).permute(0, 2, 3, 4, 1) @ w.t()
    out = heads_instance_norm_linear(parts, w).view(b, x, y, z, d)
    torch.testing.assert_close(out, gold)


@pytest.mark.parametrize("parallel", [True, False])
def test_memory_lean_backward_passes_gradcheck(parallel):
    # ContractNormLinear keeps only (v, kernels, weight) and differentiates by hand: finite differences
    g = torch.Generator().manual_seed(31)
    b, h, (x, y, z), c, d = 1, 2, (3, 4, 2), 2, 3
    v = torch.randn(b, h, x, y, z, c, generator=g, dtype=torch.float64, requires_grad=True)
    ks = [torch.randn(b, h, n, n, generator=g, dtype=torch.float64, requires_grad=True) for n in (x, y, z)]
    w = torch.randn(d, h * (3 if parallel else 1) * c, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: ContractNormLinear.apply(*t, parallel, 1e-5), (v, *ks, w))


# ----------------------------------------------------------------------------- rotary encoding

def test_rotary_is_the_complex_rotation_of_its_formula():
    g = torch.Generator().manual_seed(4)
    d, n = 12, 7
    t = torch.randn(2, n, d, generator=g, dtype=torch.float64)
    pos = torch.rand(n, generator=g, dtype=torch.float64) * 4
    i = torch.arange(d // 2, dtype=torch.float64)
    theta = 64.0 * pos[:, None] * 10000.0 ** (-2 * i / d)                 # (p / min_freq) 10000^(-2i/d)
    z = torch.complex(t[..., : d // 2], t[..., d // 2:]) * torch.exp(1j * theta)
    gold = torch.cat((z.real, z.imag), dim=-1)
    torch.testing.assert_close(rotary(t, pos), gold)


def test_rotary_scores_depend_only_on_coordinate_differences():
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(1, 4, 8, generator=g, dtype=torch.float64), torch.randn(1, 4, 8, generator=g,
                                                                               dtype=torch.float64)
    pos = torch.tensor([0.0, 0.3, 1.1, 2.0], dtype=torch.float64)
    s1 = rotary(q, pos) @ rotary(k, pos).transpose(-1, -2)
    s2 = rotary(q, pos + 0.77) @ rotary(k, pos + 0.77).transpose(-1, -2)
    torch.testing.assert_close(s1, s2)


# ----------------------------------------------------------------------------- the block, independently

def _gold_block(block, u, pos):
    """The factorized block evaluated from its weights without any of the model's helpers:
    pooling on the full field, complex-number rotary, a full separable-kernel einsum and a
    hand-written instance normalisation, all in float64."""
    p = {k: t.double() for k, t in block.state_dict().items()}
    u = u.double()
    heads, dh = block.heads, block.dim_head
    un = F.layer_norm(u, (u.shape[-1],), p["in_norm.weight"], p["in_norm.bias"])
    v = un @ p["to_v.weight"].t()
    w = un @ p["to_in.weight"].t()
    kernels = []
    for a, dims in enumerate(((2, 3), (1, 3), (1, 2))):
        r = (w @ p[f"reducers.{a}.to_in.weight"].t()).mean(dim=dims)
        r = F.layer_norm(r, (r.shape[-1],), p[f"reducers.{a}.norm.weight"], p[f"reducers.{a}.norm.bias"])
        r = r @ p[f"reducers.{a}.ff_in.weight"].t() + p[f"reducers.{a}.ff_in.bias"]
        half = r.shape[-1] // 2
        r = F.gelu(r[..., :half]) * r[..., half:]
        r = r @ p[f"reducers.{a}.ff_out.weight"].t() + p[f"reducers.{a}.ff_out.bias"]
        qk = []
        for name in ("to_q", "to_k"):
            t = (r @ p[f"kernels.{a}.{name}.weight"].t()).view(r.shape[0], r.shape[1], heads, -1)
            d = t.shape[-1]
            i = torch.arange(d // 2, dtype=torch.float64)
            theta = 64.0 * pos[a].double()[:, None] * 10000.0 ** (-2 * i / d)
            z = torch.complex(t[..., : d // 2], t[..., d // 2:]) * torch.exp(1j * theta)[:, None, :]
            qk.append(torch.cat((z.real, z.imag), dim=-1))
        kernels.append(torch.einsum("bihd,bjhd->bhij", *qk) * block.kernels[a].scaling)
    kx, ky, kz = kernels
    v = v.view(*v.shape[:4], heads, dh)
    if block.parallel:
        eye = [torch.eye(n, dtype=torch.float64).expand(u.shape[0], heads, n, n) for n in u.shape[1:4]]
        parts = [torch.einsum("bhij,bhlm,bhrs,bjmshc->bilrhc", *ks, v)
                 for ks in ((kx, eye[1], eye[2]), (eye[0], ky, eye[2]), (eye[0], eye[1], kz))]
        o = torch.cat(parts, dim=-1)
    else:
        o = torch.einsum("bhij,bhlm,bhrs,bjmshc->bilrhc", kx, ky, kz, v)
    o = o.reshape(*o.shape[:4], -1)
    mu = o.mean(dim=(1, 2, 3), keepdim=True)
    var = ((o - mu) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    o = (o - mu) / torch.sqrt(var + 1e-5)
    y = F.gelu(o @ p["out_in.weight"].t())
    return y @ p["out_out.weight"].t()


@pytest.mark.parametrize("name", ["ifactformer-m", "ifactformer-o"])
@pytest.mark.parametrize("fused", [True, False])
def test_block_matches_independent_gold(name, fused):
    model = _energise(_small(name, seed=7, fused=fused)).double()
    g = torch.Generator().manual_seed(8)
    u = torch.randn(2, 6, 5, 4, 12, generator=g, dtype=torch.float64)
    pos = model.coordinates(6, 5, 4, "cpu")
    pos = tuple(t.double() for t in pos)
    out = model.block(u, pos)
    gold = _gold_block(model.block, u, pos)
    assert gold.abs().max() > 0.1
    torch.testing.assert_close(out, gold, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", ["ifactformer-m", "ifactformer-o"])
def test_fused_and_plain_paths_agree_in_value_and_gradient(name):
    fused, plain = _energise(_small(name, seed=9, fused=True)), _energise(_small(name, seed=9, fused=False))
    x = _input(fused)
    yf, yp = fused(x), plain(x)
    torch.testing.assert_close(yf, yp, rtol=1e-4, atol=1e-5)
    yf.square().sum().backward()
    yp.square().sum().backward()
    for (n, a), b in zip(fused.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=n)


@pytest.mark.parametrize("name", ["ifactformer-m", "ifactformer-o"])
def test_bfloat16_products_stay_close_to_float32(name):
    full = _energise(_small(name, seed=10))
    half = _energise(_small(name, seed=10, precision="bfloat16"))
    x = _input(full)
    with torch.no_grad():
        a, b = full(x), half(x)
        du_a = full.block(full.lift(x), full.coordinates(6, 5, 4, "cpu"))
        du_b = half.block(half.lift(x), half.coordinates(6, 5, 4, "cpu"))
    assert b.dtype == torch.float32
    rel = ((du_a - du_b).norm() / du_a.norm()).item()
    assert 1e-6 < rel < 2e-2            # bfloat16 was used, and its ~3 digits held
    assert ((a - b).norm() / a.norm()).item() < 2e-2


# ----------------------------------------------------------------------------- implicit update, weight sharing

@pytest.mark.parametrize("name", ["ifactformer-m", "ifactformer-o", "ifno"])
def test_parameter_count_does_not_depend_on_iterations(name):
    counts = {sum(p.numel() for p in _small(name, iterations=n).parameters()) for n in (1, 2, 7)}
    assert len(counts) == 1


@pytest.mark.parametrize("name", ["ifactformer-m", "ifactformer-o"])
def test_implicit_update_applies_one_block_l_times(name):
    x = _input(_small(name))
    for n_iter in (1, 3):
        model = _energise(_small(name, seed=11, iterations=n_iter))
        with torch.no_grad():
            u = model.lift(x)
            pos = model.coordinates(*x.shape[3:], "cpu")
            for _ in range(n_iter):
                u = u + model.block(u, pos) / n_iter
            gold = model.head_out(F.gelu(model.head_in(u))).permute(0, 4, 1, 2, 3)
            torch.testing.assert_close(model(x), gold)
    # and L matters: the same weights with L = 1 and L = 3 give different predictions
    m1, m3 = _energise(_small(name, seed=11, iterations=1)), _small(name, seed=11, iterations=3)
    m3.load_state_dict(m1.state_dict())
    assert not torch.allclose(m1(x), m3(x))


def test_activation_checkpointing_gives_the_same_gradients():
    a = _small("ifactformer-m", seed=12)
    b = _small("ifactformer-m", seed=12, checkpoint=True)
    x = _input(a)
    a(x).square().sum().backward()
    b(x).square().sum().backward()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- parameter counts

def _count(model):
    return sum(p.numel() for p in model.parameters())


FNO_DEFAULT_COUNT = 52_484_083     # complex spectral weights counted once (numel)
IFNO_DEFAULT_COUNT = 13_143_043


def test_parameter_counts_of_default_configs_are_pinned():
    torch.manual_seed(0)
    m = operators.make_model("ifactformer-m")
    o = operators.make_model("ifactformer-o")
    assert _count(m) == 1_163_187
    # the authors' count_params also counts the fixed 3 x 48 Fourier-feature matrix
    assert m.authors_parameter_count() == 1_163_331
    # -o: the output layer sees heads x dim_head = 480 channels instead of 3 x 480
    assert _count(o) == 1_163_187 - 2 * 480 * 96
    assert _count(operators.make_model("fno")) == FNO_DEFAULT_COUNT
    assert _count(operators.make_model("ifno")) == IFNO_DEFAULT_COUNT


def test_authors_printed_count_is_the_five_step_window():
    # the authors' notebook prints count_params: 1181763; with our architecture that is exactly
    # the count with a 5-snapshot input window (the lifting map grows by 4 x 48 x 96)
    torch.manual_seed(0)
    m5 = operators.make_model("ifactformer-m", in_steps=5)
    assert m5.authors_parameter_count() == 1_181_763


# ----------------------------------------------------------------------------- contract: shapes, normalisation

ALL = sorted(SMALL)


def test_registry_lists_the_four_models():
    assert operators.available_models() == ["fno", "ifactformer-m", "ifactformer-o", "ifno"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(6, 5, 4), (4, 9, 6)])
def test_output_shape_on_non_cubic_grids(name, shape):
    model = _small(name)
    x = _input(model, shape=shape, batch=3)
    y = model(x)
    assert y.shape == (3, 3, *shape) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_float64_input_is_converted(name):
    model = _small(name)
    x = _input(model)
    torch.testing.assert_close(model(x.double()), model(x))


@pytest.mark.parametrize("name", ALL)
def test_normalisation_round_trip(name):
    # a model with statistics (m, s) on x equals the same weights with (0, 1) on (x - m) / s,
    # de-normalised by (m, s)
    model = _small(name)
    x = _input(model) * 3 + 2
    mean, std = torch.tensor([1.5, -0.2, 0.3]), torch.tensor([0.7, 0.1, 2.0])
    with torch.no_grad():
        y0 = model((x - mean.view(1, 1, 3, 1, 1, 1)) / std.view(1, 1, 3, 1, 1, 1))
        model.set_normalization(mean, std)
        y1 = model(x)
    torch.testing.assert_close(y1, y0 * std.view(1, 3, 1, 1, 1) + mean.view(1, 3, 1, 1, 1), rtol=1e-4, atol=1e-5)
    # the statistics travel in the state_dict
    other = _small(name, seed=99)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.norm_mean, mean)
    torch.testing.assert_close(other.norm_std, std)


def test_zero_head_predicts_the_mean_field():
    model = _small("ifactformer-m")
    model.set_normalization(np.array([0.9, 0.01, -0.02]), np.array([0.2, 0.05, 0.1]))
    with torch.no_grad():
        model.head_out.weight.zero_()
        model.head_out.bias.copy_(torch.tensor([1.0, 0.0, -2.0]))
        y = model(_input(model))
    gold = torch.tensor([0.9 + 0.2, 0.01, -0.02 - 0.2]).view(1, 3, 1, 1, 1).expand_as(y)
    torch.testing.assert_close(y, gold)


@pytest.mark.parametrize("mean,std,err", [
    ([0.0, 0.0], [1.0, 1.0, 1.0], ShapeError),
    ([0.0, float("nan"), 0.0], [1.0, 1.0, 1.0], NonFiniteError),
    ([0.0, 0.0, 0.0], [1.0, 0.0, 1.0], OptionError),
])
def test_bad_normalisation_statistics_are_refused(mean, std, err):
    model = _small("ifactformer-m")
    with pytest.raises(err):
        model.set_normalization(mean, std)
    assert torch.equal(model.norm_std, torch.ones(3))


# ----------------------------------------------------------------------------- seeding, rebuild

@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_weights_and_output(name):
    a, b, c = _small(name, seed=5), _small(name, seed=5), _small(name, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    x = _input(a)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", ALL)
def test_rebuild_from_name_and_config(name):
    model = _small(name, seed=3)
    cfg = json.loads(json.dumps(model.config))          # JSON-serialisable, full config
    assert set(cfg) == set(type(model).DEFAULTS)
    assert model.in_steps == cfg["in_steps"]
    twin = operators.make_model(model.name, **cfg)
    twin.load_state_dict(model.state_dict())             # strict: same architecture
    x = _input(model)
    torch.testing.assert_close(twin(x), model(x))
    assert twin.config == model.config


# ----------------------------------------------------------------------------- errors

def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as exc:
        operators.make_model("factformer")
    assert isinstance(exc.value, ValueError)
    assert "ifactformer-m" in str(exc.value) and "fno" in str(exc.value)


@pytest.mark.parametrize("name,bad", [
    ("ifactformer-m", dict(widht=8)),
    ("ifactformer-m", dict(dim=0)),
    ("ifactformer-m", dict(dim=20)),              # not a multiple of 6
    ("ifactformer-m", dict(heads=2.5)),
    ("ifactformer-m", dict(iterations=True)),
    ("ifactformer-o", dict(coords="uniform")),
    ("ifactformer-o", dict(box=[1.0])),
    ("ifactformer-o", dict(dim_head=3, kernel_multiplier=1)),   # rotary needs an even size
    ("ifactformer-m", dict(precision="float16")),
    ("ifactformer-m", dict(precision="bfloat16", fused=False)),
    ("fno", dict(modes=[2, 2])),
    ("fno", dict(width=-4)),
    ("ifno", dict(iterations=0)),
    ("ifno", dict(in_steps="2")),
])
def test_bad_config_is_an_option_error(name, bad):
    with pytest.raises(OptionError) as exc:
        operators.make_model(name, **{**SMALL[name], **bad})
    assert isinstance(exc.value, ValueError)
    assert list(bad)[0] in str(exc.value)


@pytest.mark.parametrize("name", ["fno", "ifno"])
def test_grid_too_small_for_the_fourier_modes(name):
    model = _small(name, modes=[2, 2, 4])
    with pytest.raises(OptionError, match="too small"):
        model(_input(model, shape=(6, 5, 4)))          # nz = 4 has rfft modes 0..2 only


@pytest.mark.parametrize("name", ALL)
def test_wrong_input_shape_is_a_shape_error(name):
    model = _small(name)
    with pytest.raises(ShapeError):
        model(torch.zeros(1, model.in_steps + 1, 3, 6, 5, 4))
    with pytest.raises(ShapeError):
        model(torch.zeros(1, model.in_steps, 2, 6, 5, 4))
    with pytest.raises(ShapeError):
        model(torch.zeros(model.in_steps, 3, 6, 5, 4))


def test_duplicate_registration_is_refused():
    from operators.registry import register_model

    with pytest.raises(DuplicateModelError):
        @register_model("fno")
        class Again(torch.nn.Module):
            pass
    assert operators.model_class("fno").__name__ != "Again"


# ----------------------------------------------------------------------------- GPU

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", ALL)
def test_cuda_forward_backward_matches_cpu(name):
    cpu = _small(name, seed=21)
    gpu = _small(name, seed=21).cuda()
    x = _input(cpu, shape=(8, 9, 6))
    y_cpu, y_gpu = cpu(x), gpu(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-3, atol=1e-4)
    y_cpu.square().mean().backward()
    y_gpu.square().mean().backward()
    for (n, p), q in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-2, atol=1e-4, msg=n)
