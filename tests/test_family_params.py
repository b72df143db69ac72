"""Family parameters given as --param: a value the type conversion would silently change,
or a NaN, is a FamilyError naming the parameter (int(2.7) used to give 2, int(1e308) an
HDF5 object-dtype traceback at the end of the run)."""
from __future__ import annotations

import pytest

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


def test_exact_conversions_still_work():
    fam = get_family("poisson")(grid=16, degree=3.0)
    assert fam.p["degree"] == 3 and type(fam.p["degree"]) is int
    fam = get_family("heat")(grid=16, dt=1, checkpoint="10")
    assert fam.p["dt"] == 1.0 and type(fam.p["dt"]) is float and fam.p["checkpoint"] == 10
