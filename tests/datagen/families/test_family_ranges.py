"""Family parameter values outside their meaningful range (a negative time step, q_min >
q_max, an obstacle as wide as the domain, ...) are one FamilyError at construction naming
the parameter, its value and what is allowed; the CLI reports it in one line, exit 2."""
from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from datagen.cli import app
from datagen.family import (
    COUNT,
    POSITIVE,
    FamilyError,
    Interval,
    available_families,
    check_order,
    check_range,
    get_family,
)
from datagen.pipeline import parts_dir

# the smallest grid each family accepts with its default parameters (helmholtz: k h <= 0.5
# for k = 16; thermal: the slot on cell faces; channel-pressure: 3-D with even nx, nz)
GRID = {"darcy": 8, "helmholtz": 32, "poisson": 8, "thermal": (40, 64), "heat": 8, "poisson_obstacles": 8,
        "channel-pressure": (8, 12, 6)}

BAD = [
    # family, parameter, bad value, fragment of the allowed range in the message
    ("darcy", "alpha", 0.0, "(0, inf)"),
    ("darcy", "alpha", -2.5, "(0, inf)"),
    ("darcy", "tau", -7.0, "(0, inf)"),
    ("darcy", "tau", math.inf, "(0, inf)"),
    ("darcy", "sigma", -1.0, "[0, inf)"),
    ("darcy", "f", -math.inf, "(-inf, inf)"),
    ("helmholtz", "alpha", -1.0, "(0, inf)"),
    ("helmholtz", "tau", 0.0, "(0, inf)"),
    ("helmholtz", "k", -16.0, "[0, inf)"),
    ("helmholtz", "k_max", -1.0, "[0, inf)"),  # unused by the default variant, still meaningless
    ("helmholtz", "f", math.inf, "(-inf, inf)"),
    ("helmholtz", "sigma", "-3", "[0, inf)"),
    ("poisson", "degree", -1, "an integer in [0, inf)"),
    ("thermal", "conductivity", 0.0, "(0, inf)"),
    ("thermal", "conductivity", -1.0, "(0, inf)"),
    ("thermal", "t_min", -math.inf, "(-inf, inf)"),
    ("thermal", "t_max", math.inf, "(-inf, inf)"),
    ("thermal", "q_min", -math.inf, "(-inf, inf)"),
    ("thermal", "q_max", math.inf, "(-inf, inf)"),
    ("heat", "dt", 0.0, "(0, inf)"),
    ("heat", "dt", -1e-3, "(0, inf)"),
    ("heat", "amplitude", math.inf, "(-inf, inf)"),
    ("heat", "radius", 0.0, "(0, inf)"),
    ("heat", "checkpoint", 0, "an integer in [1, inf)"),
    ("poisson_obstacles", "n_obstacles", -1, "an integer in [0, inf)"),
    ("poisson_obstacles", "size_min", 0.0, "(0, 0.5)"),
    ("poisson_obstacles", "size_max", 0.5, "(0, 0.5)"),
    ("poisson_obstacles", "velocity_scale", 0.0, "(0, inf)"),
    ("poisson_obstacles", "velocity_scale", math.inf, "(0, inf)"),
    ("channel-pressure", "re_tau", -180.0, "(0, inf)"),
    ("channel-pressure", "lx", 0.0, "(0, inf)"),
    ("channel-pressure", "lz", -1.0, "(0, inf)"),
    ("channel-pressure", "stretch", 10.0, "[0, 10)"),
    ("channel-pressure", "stretch", -0.1, "[0, 10)"),
    ("channel-pressure", "dt", 0.0, "(0, inf)"),
    ("channel-pressure", "spinup", -1, "an integer in [0, inf)"),
    ("channel-pressure", "stride", 0, "an integer in [1, inf)"),
]

ORDERED = [("thermal", "t_min", 5.0, "t_max", 1.0), ("thermal", "q_min", 1.0, "q_max", -1.0),
           ("poisson_obstacles", "size_min", 0.2, "size_max", 0.1)]

# values at the edge of the allowed range, which must still construct
EDGE_VALID = [
    ("darcy", {"sigma": 0.0}), ("helmholtz", {"variant": "skr", "k_max": 0.0}), ("poisson", {"degree": 0}),
    ("thermal", {"t_min": 7.0, "t_max": 7.0, "q_min": 5.0, "q_max": 50.0}), ("heat", {"amplitude": -3.0}),
    ("heat", {"checkpoint": 1}), ("poisson_obstacles", {"n_obstacles": 0, "size_min": 0.1, "size_max": 0.1}),
    ("channel-pressure", {"stretch": 0.0, "spinup": 0}),
]


def _make(family, **params):
    return get_family(family)(grid=GRID[family], **params)


def test_grid_table_covers_every_registered_family():
    # a new family must be added to this file's tables (and declare its ranges)
    assert set(GRID) == set(available_families()) - {"toy"}


@pytest.mark.parametrize("family", sorted(GRID))
def test_defaults_construct(family):
    fam = _make(family)
    assert fam.p == {k: v[0] for k, v in fam.params.items()}


@pytest.mark.parametrize("family", sorted(GRID))
def test_every_numeric_parameter_has_a_declared_range(family):
    cls = get_family(family)
    numeric = {k for k, (default, _) in cls.params.items()
               if isinstance(default, (int, float)) and not isinstance(default, bool)}
    assert numeric <= set(cls.ranges), numeric - set(cls.ranges)
    for k, allowed in cls.ranges.items():
        assert cls.params[k][0] in allowed, (k, cls.params[k][0], allowed)


@pytest.mark.parametrize("family,key,value,allowed", BAD, ids=[f"{f}-{k}={v}" for f, k, v, _ in BAD])
def test_bad_value_is_one_family_error_naming_parameter_value_and_range(family, key, value, allowed):
    with pytest.raises(FamilyError) as err:
        _make(family, **{key: value})
    msg = str(err.value)
    assert re.search(rf"\bparameter {re.escape(key)}=", msg), msg
    assert allowed in msg, msg
    shown = msg.split(f"parameter {key}=", 1)[1]
    assert shown.startswith((repr(value), repr(float(value)))), msg
    assert "\n" not in msg


@pytest.mark.parametrize("family,lo,lo_v,hi,hi_v", ORDERED)
def test_reversed_sampling_range_is_refused(family, lo, lo_v, hi, hi_v):
    with pytest.raises(FamilyError, match=rf"{lo}={lo_v!r} and {hi}={hi_v!r} .*must satisfy {lo} <= {hi}"):
        _make(family, **{lo: lo_v, hi: hi_v})


@pytest.mark.parametrize("family,params", EDGE_VALID, ids=[f for f, _ in EDGE_VALID])
def test_values_at_the_edge_of_the_range_construct(family, params):
    fam = _make(family, **params)
    for k, v in params.items():
        assert fam.p[k] == v or float(fam.p[k]) == v  # sigma is a string parameter ('auto')


def test_bad_value_fails_before_any_sampling(monkeypatch):
    # the sampling routine is never reached: validation happens in the constructor
    cls = get_family("heat")
    monkeypatch.setattr(cls, "sample", lambda *a, **k: pytest.fail("sampled with a bad parameter"))
    with pytest.raises(FamilyError, match="dt"):
        cls(grid=8, dt=-1.0)


def test_interval_membership_and_text():
    half_open = Interval(0.0, 0.5, low_open=True, high_open=True)
    assert 0.25 in half_open and 0.0 not in half_open and 0.5 not in half_open
    assert str(half_open) == "in (0, 0.5)"
    assert str(Interval(1, 2)) == "in [1, 2]" and str(COUNT) == "an integer in [0, inf)"
    assert math.nan not in Interval() and math.inf not in Interval() and -1e308 in Interval()
    assert 1e-300 in POSITIVE and 0.0 not in POSITIVE


@pytest.mark.parametrize("value", [-1.0, math.nan, True, "x", None])
def test_check_range_refuses(value):
    with pytest.raises(FamilyError, match=r"parameter p=.* of family 'fam' must be in \[0, 1\] \(a probability\)"):
        check_range("p", value, 0.0, 1.0, family="fam", why="a probability")


def test_check_range_and_order_accept_valid_values():
    check_range("p", 1.0, 0.0, 1.0)
    check_range("p", 0, 0.0, 1.0)
    check_order("a", 1.0, "b", 1.0)
    with pytest.raises(FamilyError, match="a <= b"):
        check_order("a", 2.0, "b", 1.0)


def test_cli_bad_family_value_is_one_line_exit_2(tmp_path):
    out = tmp_path / "t.h5"
    res = CliRunner().invoke(app, ["generate", "thermal", "--n", "2", "--grid", "40,64", "--param", "q_min=1",
                                   "--param", "q_max=0", "--out", str(out), "--quiet"])
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("datagen: error:") and "q_min=1.0 and q_max=0.0" in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not out.exists() and not parts_dir(out).exists()
