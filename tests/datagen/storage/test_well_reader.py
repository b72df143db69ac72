"""Files written by datagen load in The Well's own reader (``the_well.data.WellDataset``)
and it returns the arrays we stored: every registered family through the real pipeline,
and the channel trajectories through the channel generator, at tiny sizes."""
from __future__ import annotations

import contextlib
import os
import shutil

import datagen_toy  # noqa: F401  (registers the 'toy' family)
import h5py
import numpy as np
import pytest

import datagen
from datagen import storage
from datagen.family import available_families
from datagen.pipeline import GenerateConfig, generate, parts_dir

try:
    from the_well.data import WellDataset
except ImportError as exc:  # pragma: no cover
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("LINSOLVE_REQUIRE_PETSC") == "1":
        raise ImportError(f"the-well (dev extra) is required here (CI or make test) but missing: {exc}") from exc
    pytest.skip("the-well is not installed (pip install -e .[dev])", allow_module_level=True)

WALL, OPEN, PERIODIC = 0, 1, 2  # the_well.data.datasets.BoundaryCondition
N = 3

#: every registered family at a tiny size, and the Well boundary codes of its axes' (low, high) ends
FAMILIES = {
    "darcy": (dict(grid=8, solver="cg"), [[WALL, WALL]] * 2),
    "helmholtz": (dict(grid=12, solver="gmres", param={"k": 5.0}), [[WALL, WALL]] * 2),
    "poisson": (dict(grid=8, solver="cg"), [[WALL, WALL]] * 2),
    "thermal": (dict(grid=(20, 32), solver="cg"), [[WALL, WALL]] * 2),
    "heat": (dict(grid=8, solver="cg"), [[WALL, WALL]] * 2),
    "poisson_obstacles": (dict(grid=8, solver="cg"), [[WALL, WALL]] * 2),
    "channel-pressure": (dict(grid=(8, 8, 4), solver="cg", param={"spinup": 2}),
                         [[PERIODIC, PERIODIC], [WALL, WALL], [PERIODIC, PERIODIC]]),
    "toy": (dict(grid=(6, 5), solver="cg", param={"vector": True}), [[WALL, WALL]] * 2),
}


def test_every_registered_family_is_tested():
    assert set(available_families()) <= set(FAMILIES)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_file(request, tmp_path_factory):
    name = request.param
    kw, codes = FAMILIES[name]
    root = tmp_path_factory.mktemp(f"well-{name}")
    out = root / "data" / "train" / f"{name}.h5"
    out.parent.mkdir(parents=True)
    generate(GenerateConfig(problem=name, n=N, chunk=2, seed=4, **kw), out)
    assert not parts_dir(out).exists()
    return name, root, out, codes


def _stored_fields(f, i):
    """Sample i's fields as The Well stacks them: t0, t1 components, t2 components, in each
    group's field_names order, on the last axis."""
    dim = int(f.attrs["n_spatial_dims"])
    cols = []
    for order in (0, 1, 2):
        g = f[f"t{order}_fields"]
        for name in g.attrs["field_names"]:
            arr = g[name][i]
            cols.append(arr.reshape(*arr.shape[:dim], -1))
    return np.concatenate(cols, axis=-1)


def test_well_reader_returns_the_stored_steady_arrays(family_file):
    name, root, out, codes = family_file
    ds = WellDataset(path=str(root), well_split_name="train", n_steps_input=1, n_steps_output=0)
    with h5py.File(out, "r") as f:
        assert storage.well_layout_problems(f) == []
        assert storage.check_schema(f) == []
        dim = int(f.attrs["n_spatial_dims"])
        coords = [f["dimensions"][ax][()] for ax in f["dimensions"].attrs["spatial_dims"]]
        scalar_names = [str(s) for s in f["scalars"].attrs["field_names"]]
        # one trajectory of one step per sample
        assert ds.metadata.n_trajectories_per_file == [N] and ds.metadata.n_steps_per_trajectory == [1]
        assert len(ds) == N
        assert ds.metadata.dataset_name == name and ds.metadata.n_spatial_dims == dim
        assert ds.metadata.scalar_names == [] and ds.metadata.constant_scalar_names == scalar_names
        assert all(v == [] for v in ds.metadata.field_names.values())  # nothing time-varying
        # an interior boundary (the obstacles) is not axis-aligned: The Well says it leaves it out
        interior = any(len(g.attrs["associated_dims"]) > 1 for g in f["boundary_conditions"].values())
        with pytest.warns(RuntimeWarning, match="axis-aligned") if interior else contextlib.nullcontext():
            ds[0]
        assert interior == (name == "poisson_obstacles")
        for i in range(N):
            item = ds[i]
            assert "input_fields" not in item and "output_fields" not in item
            np.testing.assert_array_equal(item["constant_fields"].numpy(), _stored_fields(f, i))
            want = [f["scalars"][s][i] if f["scalars"][s].attrs["sample_varying"] else f["scalars"][s][()]
                    for s in scalar_names]
            if want:
                np.testing.assert_array_equal(item["constant_scalars"].numpy().astype(np.float64),
                                              np.asarray(want, dtype=np.float64))
            grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1)
            np.testing.assert_array_equal(item["space_grid"].numpy(), grid)
            np.testing.assert_array_equal(item["input_time_grid"].numpy(), [0.0])
            assert "output_time_grid" not in item
            np.testing.assert_array_equal(item["boundary_conditions"].numpy(), codes)
        # our own reader sees the same numbers under the names The Well gives the channels
        d = datagen.open_dataset(out)
        spatial = [str(a) for a in f["dimensions"].attrs["spatial_dims"]]
        well_names = [n for order in (0, 1, 2) for n in ds.metadata.constant_field_names[order]]
        item = ds[N - 1]["constant_fields"].numpy()
        for fname, arr in d.fields.items():
            comps = arr.shape[1 + dim:]
            for idx in np.ndindex(*comps):
                suffix = "".join(spatial[c] for c in idx)
                ch = well_names.index(f"{fname}_{suffix}" if suffix else fname)
                np.testing.assert_array_equal(item[..., ch], arr[(N - 1, ..., *idx)])
        # our kinds survive next to The Well's types
        bcs = storage.read_boundary_conditions(f)
        assert bcs and all(b["bc_type"] in storage.WELL_BC_TYPES for b in bcs.values())
        assert {k: b["kind"] for k, b in bcs.items()} == {k: b["kind"] for k, b in d.boundary_conditions.items()}
        fam = GenerateConfig(problem=name, n=1, **FAMILIES[name][0]).build_family()
        for bc_name, spec in fam.boundary_conditions().items():
            kind = spec.get("bc_type") if isinstance(spec, dict) else spec
            assert bcs[bc_name]["kind"] == kind


def test_default_windows_need_two_steps_so_steady_files_take_n_steps_output_0(family_file):
    """The Well's defaults (one input and one output step) need two time steps; a steady file
    has one, and The Well's reader says so rather than returning something else."""
    _, root, _, _ = family_file
    with pytest.raises(AssertionError, match="not enough steps"):
        WellDataset(path=str(root), well_split_name="train")


def test_channel_trajectories_load_with_the_stored_time_axis(tmp_path):
    from datagen.channel.trajectories import generate as channel_generate

    out = tmp_path / "data" / "valid" / "channel.h5"
    out.parent.mkdir(parents=True)
    K, S = 2, 3
    channel_generate(out, trajectories=K, snapshots=S, every=2, spinup=4, grid=(8, 12, 4), coarse_grid=(4, 5, 2),
                     seed=1, pressure=True)
    shutil.rmtree(out.with_name(out.name + ".parts"))
    ds = WellDataset(path=str(tmp_path), well_split_name="valid", n_steps_input=1, n_steps_output=1)
    with h5py.File(out, "r") as f:
        assert storage.well_layout_problems(f) == []
        vel, prs = f["t1_fields/velocity"][()], f["t0_fields/pressure"][()]
        time = f["dimensions/time"][()]
        coords = [f["dimensions"][ax][()] for ax in ("x", "y", "z")]
        scalars = np.array([f["scalars"][s][()] for s in f["scalars"].attrs["field_names"]], dtype=np.float32)
    assert ds.metadata.n_steps_per_trajectory == [S] and len(ds) == K * (S - 1)
    assert ds.metadata.field_names[0] == ["pressure"]
    assert ds.metadata.field_names[1] == ["velocity_x", "velocity_y", "velocity_z"]
    grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1)
    for j in range(len(ds)):
        k, t = divmod(j, S - 1)
        item = ds[j]
        for key, step in (("input_fields", t), ("output_fields", t + 1)):
            want = np.concatenate([prs[k, step][..., None], vel[k, step]], axis=-1)[None]
            np.testing.assert_array_equal(item[key].numpy(), want)
        # The Well makes times relative to the window's first step
        np.testing.assert_allclose(item["input_time_grid"].numpy(), [0.0])
        np.testing.assert_allclose(item["output_time_grid"].numpy(), [time[t + 1] - time[t]], rtol=1e-6)
        np.testing.assert_array_equal(item["constant_scalars"].numpy(), scalars)
        np.testing.assert_array_equal(item["space_grid"].numpy(), grid)
        np.testing.assert_array_equal(item["boundary_conditions"].numpy(),
                                      [[PERIODIC, PERIODIC], [WALL, WALL], [PERIODIC, PERIODIC]])


@pytest.mark.parametrize("kind,want", [
    ("dirichlet", "WALL"), ("Neumann", "WALL"), ("periodic", "PERIODIC"), ("wall (Neumann dp/dn = 0)", "WALL"),
    ("air (Dirichlet p = 0)", "WALL"), ("absorbing (first-order Sommerfeld)", "OPEN"), ("OPEN", "OPEN"),
    ("no-slip", "WALL")])
def test_bc_kinds_map_onto_the_wells_vocabulary(kind, want):
    assert storage.well_bc_type(kind) == want


def test_a_bc_kind_the_well_cannot_name_stops_the_run_before_solving(tmp_path, monkeypatch):
    monkeypatch.setattr(datagen_toy.ToyPoisson, "boundary_conditions",
                        lambda self: {"x_lo": "slippery", "x_hi": "dirichlet"})
    out = tmp_path / "toy.h5"
    with pytest.raises(storage.StoreError, match="'x_lo'.*slippery.*WALL, OPEN, PERIODIC"):
        generate(GenerateConfig(problem="toy", n=2, grid=4, solver="cg"), out)
    assert not out.exists() and not parts_dir(out).exists()
    # an explicit Well type is taken as it is
    monkeypatch.setattr(datagen_toy.ToyPoisson, "boundary_conditions",
                        lambda self: {"x_lo": {"bc_type": "slippery", "well_bc_type": "open"}})
    generate(GenerateConfig(problem="toy", n=2, grid=4, solver="cg"), out)
    with h5py.File(out, "r") as f:
        g = f["boundary_conditions/x_lo"]
        assert g.attrs["bc_type"] == "OPEN" and g.attrs["datagen_bc_type"] == "slippery"
        assert "well_bc_type" not in g.attrs


def test_open_dataset_reads_files_of_the_earlier_layout(tmp_path):
    """Before The Well's rules: no empty t1/t2 groups, the family's kind in @bc_type."""
    out = tmp_path / "toy.h5"
    generate(GenerateConfig(problem="toy", n=3, grid=5, solver="cg", seed=1), out)
    new = datagen.open_dataset(out)
    old = tmp_path / "old.h5"
    shutil.copy(out, old)
    with h5py.File(old, "r+") as f:
        assert list(f["t1_fields"].attrs["field_names"]) == [] and list(f["t2_fields"].attrs["field_names"]) == []
        del f["t1_fields"], f["t2_fields"]
        for g in f["boundary_conditions"].values():
            g.attrs["bc_type"] = g.attrs["datagen_bc_type"]
            del g.attrs["datagen_bc_type"]
    with h5py.File(old, "r") as f:
        problems = " ".join(storage.well_layout_problems(f))
        assert "t1_fields" in problems and "'dirichlet' is not one of" in problems
    d = datagen.open_dataset(old)
    np.testing.assert_array_equal(d.x, new.x)
    np.testing.assert_array_equal(d.y, new.y)
    assert d.parameters[2]["a"] == new.parameters[2]["a"]
    assert {k: (b["kind"], b["bc_type"]) for k, b in d.boundary_conditions.items()} == \
        {k: (b["kind"], b["bc_type"]) for k, b in new.boundary_conditions.items()} == \
        {f"{ax}_{end}": ("dirichlet", "WALL") for ax in "xy" for end in ("lo", "hi")}
