"""Family parameters given as --param: a value the type conversion would silently change,
or a NaN, is a FamilyError naming the parameter (int(2.7) would give 2; int(1e308) does not
fit the int64 that HDF5 stores it in)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from datagen_run import one_line, run_datagen

from datagen.family import FamilyError, get_family


@pytest.mark.parametrize("family,key,value", [
    ("heat", "checkpoint", 2.5),
    ("heat", "checkpoint", 1e308),
    ("heat", "checkpoint", float("nan")),
    ("heat", "checkpoint", 10 ** 30),
    ("heat", "dt", float("nan")),
    ("poisson_obstacles", "velocity_scale", float("nan")),
    ("helmholtz", "k_max", "nan"),
    ("poisson", "degree", True),
])
def test_lossy_or_nan_parameter_is_rejected(family, key, value):
    with pytest.raises(FamilyError, match=rf"parameter {key}\b"):
        get_family(family)(grid=32, **{key: value})


def test_exact_conversions_give_the_default_type():
    fam = get_family("poisson")(grid=16, degree=3.0)
    assert fam.p["degree"] == 3 and type(fam.p["degree"]) is int
    fam = get_family("heat")(grid=16, dt=1, checkpoint="10")
    assert fam.p["dt"] == 1.0 and type(fam.p["dt"]) is float and fam.p["checkpoint"] == 10


@pytest.mark.parametrize("tau", ["1e-10", "1e-300"])
def test_overflowing_family_parameters_are_one_line_naming_them(tau, tmp_path):
    # darcy --param tau=1e-10 (GRF variance ~1e20, exp overflows) is one line naming the
    # parameter, without NumPy RuntimeWarnings
    p = run_datagen("generate", "darcy", "--n", "2", "--grid", "8", "--param", f"tau={tau}", "--out", "a.h5",
                 cwd=tmp_path)
    assert p.returncode == 2
    line = one_line(p)
    assert "sampled NaN or Inf" in line and "'tau'" in line and "--param" in line
    assert list(tmp_path.iterdir()) == []


def test_scalars_hold_the_sampled_value_not_an_unused_family_setting(tmp_path):
    # helmholtz variant=skr samples k ~ U(0, k_max) per system: /scalars/k holds those values
    # with sample_varying=True, not the indefinite variant's fixed k (unused here)
    p = run_datagen("generate", "helmholtz", "--n", "4", "--grid", "12", "--param", "variant=skr", "--quiet",
                 "--out", "h.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "h.h5", "r") as f:
        k = f["scalars/k"]
        assert k.shape == (4,) and bool(k.attrs["sample_varying"])
        np.testing.assert_array_equal(k[()], f["parameters/k"][()].astype(np.float32))
        assert np.all((k[()] >= 0) & (k[()] <= 1.0))
        assert list(f["scalars"].attrs["field_names"]).count("k") == 1


@pytest.mark.parametrize("param", ["tau=1e-2", "tau=4e-3"])
def test_family_values_beyond_float32_are_refused_before_solving(param, tmp_path):
    # darcy tau=1e-2 on 8x8 samples a coefficient of 1.8e39 (sample 6), beyond float32: the
    # run is refused in one line before solving, instead of storing inf or stopping after
    # some chunks with advice to resume (which would fail there again)
    p = run_datagen("generate", "darcy", "--n", "20", "--grid", "8", "--chunk", "2", "--order", "none", "--param",
                 param, "--out", "a.h5", cwd=tmp_path)
    assert p.returncode == 2
    assert "beyond the float32 range" in one_line(p) and "--param" in p.stderr
    assert list(tmp_path.iterdir()) == []
