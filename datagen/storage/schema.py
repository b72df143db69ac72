"""The layout of a generated file: The Well's layout plus the groups that make it auditable,
and the checks that a file conforms to it.

A finished file of a steady family holds::

    /                          @dataset_name @grid_type="cartesian" @n_spatial_dims
                               @n_trajectories @simulation_parameters (+ one attr each)
                               @format="datagen-well" @format_version @problem
                               @config (JSON, the keys `datagen generate --config` reads)
                               @command (the command line that produced the file)
                               @input_fields @output_fields (the x / y split of the fields)
    /dimensions                @spatial_dims; time float32(1); x, y[, z] float32 coordinates
    /boundary_conditions/<bc>  @associated_dims @associated_fields @sample_varying
                               @time_varying; @bc_type in The Well's vocabulary (WALL, OPEN,
                               PERIODIC) and @datagen_bc_type the family's own kind
                               (dirichlet, neumann, ...); mask bool; values float32
    /scalars                   @field_names; fixed family parameters (float32, sample_varying
                               False) and sampled scalar parameters (float32 (N,), True);
                               float64 where float32 would overflow a value to inf
    /t0_fields, /t1_fields, /t2_fields
                               always all three (empty, field_names=[], when a family
                               has no such field); @field_names; float32 (N, *grid[, D[, D]]) with
                               @sample_varying=True @time_varying=False @dim_varying @role
    /parameters/<key>          every sampled parameter at full precision, (N, ...), in
                               sample order: ``family.assemble`` rebuilds system i from them
    /ordering                  permutation (solve position -> sample), position, chunk,
                               features; @method @chunk_size
    /solver_stats              iterations, relative_residual (fp64, true residual),
                               converged, reason, wall_time, residual_history (vlen);
                               @solver (JSON), @rtol, @atol
    /solution_vectors/x        the unknown vector of each system, float32 (N, n)

Fields are steady (``time_varying=False``), so they carry no time axis, as The Well's
readers expect for time-invariant fields. Samples are stored in sample order (the order
``family.sample`` produced them), whatever order they were solved in.

The Well's reader: each sample is a trajectory of one time step (``/dimensions/time`` is
``[0.0]``, so ``n_steps_per_trajectory`` is 1) whose fields and scalars are time-invariant.
``the_well.data.WellDataset(path=..., n_steps_input=1, n_steps_output=0)`` therefore gives
one item per sample: every field in ``constant_fields`` (H, W[, D], C; t0 fields, then t1
components, then t2, in ``field_names`` order), every scalar in ``constant_scalars``, the
grid in ``space_grid`` and ``input_time_grid == [0.]``; which channels are inputs and
which solutions is in the root ``@input_fields``/``@output_fields`` and each field's
``@role``. docs/hdf5_format.md gives the whole mapping.

Validation and fp32: the solver's fp64 relative residual is stored, and ``x`` is kept in
fp32 like the fields. ``validate_file`` recomputes ||b - A x32|| in fp64 and allows the
worst-case effect of rounding x to fp32, ||A||_F * 2^-24 * ||x32||, on top of the
tolerance (see ``rounding_slack`` below), so it checks the data actually stored.

``datagen.storage.writer`` writes this layout, ``datagen.storage.reader`` reads its parts
and ``datagen.storage.dataset`` loads a whole file.
"""
from __future__ import annotations

import json
import re

import h5py
import numpy as np

from .errors import StoreError

__all__ = [
    "FORMAT", "FORMAT_VERSION", "AXES", "FP32_UNIT_ROUNDOFF", "MAX_STORED_FEATURES", "STAT_COLUMNS",
    "REQUIRED_ROOT_ATTRS", "REQUIRED_GROUPS", "WELL_BC_TYPES", "STRING_DTYPE", "vlen_f64", "as_text",
    "field_group", "well_bc_type", "check_boundary_conditions", "check_schema", "well_layout_problems",
    "is_trajectory_file", "rounding_slack",
]

FORMAT = "datagen-well"
FORMAT_VERSION = 1
AXES = ("x", "y", "z")
FP32_UNIT_ROUNDOFF = 2.0 ** -24
MAX_STORED_FEATURES = 1024
STAT_COLUMNS = ("iterations", "relative_residual", "converged", "wall_time")
REQUIRED_ROOT_ATTRS = ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories",
                       "simulation_parameters", "format", "config", "command", "input_fields",
                       "output_fields")
REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "parameters",
                   "ordering", "solver_stats", "solution_vectors")

#: variable-length UTF-8 strings (reasons, field names)
STRING_DTYPE = h5py.string_dtype()


def vlen_f64():
    """Variable-length float64 rows (residual histories)."""
    return h5py.vlen_dtype(np.dtype("float64"))


def as_text(v) -> str:
    """An attribute or dataset value as ``str`` (h5py gives bytes for some strings)."""
    return v.decode() if isinstance(v, bytes) else str(v)


def field_group(order: int) -> str:
    """The group of the fields of tensor order ``order`` (0 scalar, 1 vector, 2 tensor)."""
    return f"t{order}_fields"


#: The Well's boundary-condition vocabulary (``the_well.data.datasets.BoundaryCondition``)
WELL_BC_TYPES = ("WALL", "OPEN", "PERIODIC")
#: words of a family's boundary kind and the Well type they stand for: the domain repeats
#: (PERIODIC); waves or flow leave it (OPEN); a condition prescribes the value, flux or a
#: mix of them on a closed edge (WALL, as The Well files Dirichlet walls)
_WELL_BC_WORDS = {
    "periodic": "PERIODIC",
    "open": "OPEN", "absorbing": "OPEN", "radiation": "OPEN", "sommerfeld": "OPEN", "outflow": "OPEN",
    "impedance": "OPEN", "pml": "OPEN", "far-field": "OPEN",
    "wall": "WALL", "dirichlet": "WALL", "neumann": "WALL", "robin": "WALL", "no-slip": "WALL",
    "noslip": "WALL", "symmetry": "WALL", "reflecting": "WALL", "insulated": "WALL",
}


def well_bc_type(kind: str, name: str = "boundary") -> str:
    """The Well's boundary type (``WALL``, ``OPEN`` or ``PERIODIC``) for a family's kind.

    Parameters
    ----------
    kind : str
        The family's description of the condition, e.g. ``"dirichlet"``, ``"periodic"``,
        ``"wall (Neumann dp/dn = 0)"``. Its first word that names a kind decides (case
        is ignored); one of The Well's own names is kept as it is.
    name : str
        The boundary's name, used in the error message.

    Returns
    -------
    str
        One of ``WELL_BC_TYPES``.

    Raises
    ------
    StoreError
        If no word of ``kind`` names a known kind (give the spec a ``well_bc_type``).

    Examples
    --------
    >>> well_bc_type("dirichlet"), well_bc_type("air (Dirichlet p = 0)"), well_bc_type("periodic")
    ('WALL', 'WALL', 'PERIODIC')
    """
    for word in re.findall(r"[a-z]+(?:-[a-z]+)*", str(kind).lower()):
        if word.upper() in WELL_BC_TYPES:
            return word.upper()
        if word in _WELL_BC_WORDS:
            return _WELL_BC_WORDS[word]
    raise StoreError(f"boundary condition {name!r} has type {kind!r}, which names none of the kinds that map onto "
                     f"The Well's {', '.join(WELL_BC_TYPES)} ({', '.join(sorted(_WELL_BC_WORDS))}); "
                     "give its spec a 'well_bc_type'")


def _well_type_of(name: str, spec) -> str:
    """The Well type of one family boundary spec (a kind string or a dict)."""
    if isinstance(spec, dict) and "well_bc_type" in spec:
        t = str(spec["well_bc_type"]).upper()
        if t not in WELL_BC_TYPES:
            raise StoreError(f"boundary condition {name!r} has well_bc_type {spec['well_bc_type']!r}; "
                             f"The Well knows {', '.join(WELL_BC_TYPES)}")
        return t
    kind = spec.get("bc_type", spec.get("type", "unspecified")) if isinstance(spec, dict) else spec
    return well_bc_type(kind, name)


def check_boundary_conditions(bcs: dict) -> dict[str, str]:
    """The Well type of each of a family's boundary conditions ``{name: spec}``; raises
    ``StoreError`` naming the first that maps onto none (so a run fails before solving,
    not when its file is written)."""
    return {name: _well_type_of(name, spec) for name, spec in bcs.items()}


def well_layout_problems(f: h5py.File) -> list[str]:
    """What The Well's reader (``the_well.data.WellDataset``) would trip over in ``f``.

    Parameters
    ----------
    f : h5py.File
        An open datagen file (steady samples or channel trajectories).

    Returns
    -------
    list of str
        One line per problem; empty when The Well's reader loads the file.

    Notes
    -----
    Files written before The Well's rules were adopted lack the t1/t2 groups and use the
    family's kinds as ``@bc_type``; ``open_dataset`` still reads them.
    """
    problems = []
    for k in ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories"):
        if k not in f.attrs:
            problems.append(f"root attribute {k!r} missing")
    for g in ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields"):
        if g not in f:
            problems.append(f"group /{g} missing")
        elif g.endswith("_fields") or g == "scalars":
            if "field_names" not in f[g].attrs:
                problems.append(f"/{g}@field_names missing")
    if "dimensions" in f:
        if "time" not in f["dimensions"]:
            problems.append("/dimensions/time missing")
        for ax in ["time", *[as_text(a) for a in f["dimensions"].attrs.get("spatial_dims", [])]]:
            if ax in f["dimensions"] and "sample_varying" not in f["dimensions"][ax].attrs:
                problems.append(f"/dimensions/{ax}@sample_varying missing")
    for name, g in f.get("boundary_conditions", {}).items():
        t = as_text(g.attrs.get("bc_type", ""))
        if t.upper() not in WELL_BC_TYPES:
            problems.append(f"/boundary_conditions/{name}@bc_type {t!r} is not one of {', '.join(WELL_BC_TYPES)}")
        if "mask" not in g or "associated_dims" not in g.attrs:
            problems.append(f"/boundary_conditions/{name} lacks mask or @associated_dims")
    return problems


def is_trajectory_file(f: h5py.File) -> bool:
    """A time-dependent dataset (the channel family): trajectories, no solved systems. Judged
    by every per-system group being absent, so a damaged sample file is not mistaken for one."""
    return not any(g in f for g in ("solver_stats", "parameters", "ordering", "solution_vectors"))


def check_schema(f: h5py.File) -> list[str]:
    """Every way a file of a steady family departs from the layout in this module's docstring.

    Parameters
    ----------
    f : h5py.File
        An open datagen file of solved systems (not a trajectory file).

    Returns
    -------
    list of str
        One line per problem, naming the group, attribute or dataset; empty when the file
        conforms.

    Examples
    --------
    >>> with open_file("p.h5") as f:                  # doctest: +SKIP
    ...     check_schema(f)
    []
    """
    problems = []
    for k in REQUIRED_ROOT_ATTRS:
        if k not in f.attrs:
            problems.append(f"root attribute {k!r} missing")
    for g in REQUIRED_GROUPS:
        if g not in f:
            problems.append(f"group /{g} missing")
    try:
        if not isinstance(json.loads(f.attrs["config"]), dict):
            problems.append("root attribute 'config' is not a JSON mapping")
    except (KeyError, TypeError, ValueError):
        problems.append("root attribute 'config' is not valid JSON")
    if problems:
        return problems
    n = int(f.attrs["n_trajectories"])
    dim = int(f.attrs["n_spatial_dims"])
    spatial = [str(s) for s in f["dimensions"].attrs.get("spatial_dims", [])]
    if len(spatial) != dim:
        problems.append(f"/dimensions@spatial_dims has {len(spatial)} names, n_spatial_dims is {dim}")
    sizes = []
    for ax in spatial:
        if ax not in f["dimensions"]:
            problems.append(f"/dimensions/{ax} missing")
        else:
            sizes.append(f["dimensions"][ax].shape[0])
    names_in = [str(s) for s in f.attrs["input_fields"]]
    names_out = [str(s) for s in f.attrs["output_fields"]]
    listed = []
    for order in (0, 1, 2):
        g = f.get(field_group(order))
        if g is None:
            continue
        fn = [str(s) for s in g.attrs.get("field_names", [])]
        if sorted(fn) != sorted(g.keys()):
            problems.append(f"/{g.name.strip('/')}@field_names {fn} does not match its datasets {sorted(g)}")
        for name in g:
            ds = g[name]
            listed.append(name)
            for attr in ("sample_varying", "time_varying", "dim_varying"):
                if attr not in ds.attrs:
                    problems.append(f"{ds.name}@{attr} missing")
            if ds.dtype != np.float32:
                problems.append(f"{ds.name} is {ds.dtype}, expected float32")
            expect = (n, *sizes)
            if ds.shape[:1 + dim] != expect or ds.ndim != 1 + dim + order:
                problems.append(f"{ds.name} has shape {ds.shape}, expected {expect} + {order} component axes")
    missing = set(names_in + names_out) - set(listed)
    if missing:
        problems.append(f"fields {sorted(missing)} are listed in input/output_fields but not stored")
    for c in (*STAT_COLUMNS, "reason", "residual_history"):
        if c not in f["solver_stats"]:
            problems.append(f"/solver_stats/{c} missing")
        elif f["solver_stats"][c].shape[0] != n:
            problems.append(f"/solver_stats/{c} has {f['solver_stats'][c].shape[0]} rows, expected {n}")
    for k in f["parameters"].attrs.get("names", []):
        if k not in f["parameters"] or f["parameters"][k].shape[:1] != (n,):
            problems.append(f"/parameters/{k} missing or not one row per sample")
    perm = f["ordering"].get("permutation")
    if perm is None or not np.array_equal(np.sort(perm[()]), np.arange(n)):
        problems.append("/ordering/permutation is not a permutation of the samples")
    x = f["solution_vectors"].get("x")
    if x is None or x.shape[0] != n:
        problems.append("/solution_vectors/x missing or not one row per sample")
    return problems


def rounding_slack(A, x32: np.ndarray) -> float:
    """Upper bound on ||A (x32 - x)|| when x32 is x rounded to fp32: ||A||_F u ||x||."""
    import scipy.sparse as sp

    if sp.issparse(A):
        fro = float(np.sqrt(np.sum(np.asarray(A.data, dtype=np.float64) ** 2)))
    else:
        from linsolve import Operator

        fro = float(np.linalg.norm(Operator(A).csr().data))
    xn = float(np.linalg.norm(np.asarray(x32, dtype=np.float64)))
    return fro * FP32_UNIT_ROUNDOFF * xn / (1 - FP32_UNIT_ROUNDOFF) * 1.001
