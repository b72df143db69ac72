"""The HDF5 store: The Well's layout, sample order, exact parameters, atomic commits,
open_dataset (arrays and the PyTorch Dataset) and validation of stored solutions."""
from __future__ import annotations

import shutil

import datagen_toy  # noqa: F401  (registers the 'toy' family)
import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla
from datagen_run import CHANNEL, run_datagen

import datagen
from datagen import storage
from datagen.family import get_family
from datagen.pipeline import GenerateConfig, generate, validate_file

N, G = 7, 8


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "toy.h5"
    cfg = GenerateConfig(problem="toy", n=N, grid=G, solver="cg", solver_opt={"rtol": 1e-10}, chunk=3,
                         seed=5, param={"vector": True})
    generate(cfg, out)
    return out, cfg


def test_well_layout(toy_file):
    out, _ = toy_file
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["dataset_name"] == "toy" and a["grid_type"] == "cartesian"
        assert a["n_spatial_dims"] == 2 and a["n_trajectories"] == N
        assert set(a["simulation_parameters"]) == {"amplitude", "delay", "vector", "holes"}
        assert a["amplitude"] == 1.0
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        for ax in ("x", "y"):
            d = f["dimensions"][ax]
            assert d.dtype == np.float32 and d.shape == (G,)
            assert not d.attrs["sample_varying"] and not d.attrs["time_varying"]
        np.testing.assert_allclose(f["dimensions"]["x"][()], (np.arange(G) + 0.5) / G, rtol=1e-6)
        assert sorted(f["t0_fields"].attrs["field_names"]) == ["permeability", "pressure", "source"]
        assert list(f["t1_fields"].attrs["field_names"]) == ["gradient"]
        for name in ("permeability", "pressure", "source"):
            ds = f["t0_fields"][name]
            assert ds.dtype == np.float32 and ds.shape == (N, G, G)
            assert ds.attrs["sample_varying"] and not ds.attrs["time_varying"]
            assert list(ds.attrs["dim_varying"]) == [True, True]
        assert f["t1_fields"]["gradient"].shape == (N, G, G, 2)
        assert list(a["input_fields"]) == ["permeability", "source"]
        assert list(a["output_fields"]) == ["pressure", "gradient"]
        bc = f["boundary_conditions"]["x_lo"]
        assert bc.attrs["bc_type"] == "WALL" and bc.attrs["datagen_bc_type"] == "dirichlet"
        assert list(bc.attrs["associated_dims"]) == ["x"]
        assert list(f["t2_fields"].attrs["field_names"]) == [] and len(f["t2_fields"]) == 0
        assert bc["mask"][()].tolist() == [True] + [False] * (G - 1)
        assert list(f["boundary_conditions"]["y_hi"]["mask"][()]) == [False] * (G - 1) + [True]
        sc = f["scalars"]
        assert sc["a"].shape == (N,) and sc["a"].attrs["sample_varying"]
        assert sc["amplitude"].shape == () and not sc["amplitude"].attrs["sample_varying"]
        assert set(sc.attrs["field_names"]) == set(sc.keys())
        for c in ("iterations", "relative_residual", "converged", "wall_time", "reason", "residual_history"):
            assert f["solver_stats"][c].shape == (N,)
        assert f["solution_vectors"]["x"].shape == (N, G * G)
        assert storage.check_schema(f) == []


def test_samples_in_sample_order_with_exact_parameters(toy_file):
    out, cfg = toy_file
    family = cfg.build_family()
    expected = family.sample(N, np.random.default_rng(cfg.seed))
    with h5py.File(out, "r") as f:
        params = storage.read_parameters(f)
        perm = f["ordering"]["permutation"][()]
        pos = f["ordering"]["position"][()]
        for i in range(N):
            assert params[i]["a"] == expected[i]["a"] and isinstance(params[i]["a"], float)
            np.testing.assert_array_equal(params[i]["source"], expected[i]["source"])
            assert storage.read_parameters(f, i)["b"] == expected[i]["b"]
            # the stored solution is that of sample i's own system (dense-free direct reference)
            sys_i = family.assemble(expected[i])
            ref = spla.spsolve(sys_i.A.tocsc(), sys_i.b)
            np.testing.assert_allclose(f["t0_fields"]["pressure"][i].reshape(-1), ref,
                                       rtol=1e-5, atol=1e-6 * np.abs(ref).max())
            np.testing.assert_array_equal(f["t0_fields"]["permeability"][i],
                                          family.input_fields(expected[i])["permeability"].astype(np.float32))
        assert np.array_equal(pos[perm], np.arange(N))
        assert np.array_equal(f["ordering"]["chunk"][()], pos // 3)
        assert f["solver_stats"].attrs["rtol"] == 1e-10
        assert np.all(f["solver_stats"]["relative_residual"][()] <= 1e-10)


def test_schema_check_reports_departures(toy_file, tmp_path):
    out, _ = toy_file
    bad = tmp_path / "bad.h5"
    shutil.copy(out, bad)
    with h5py.File(bad, "r+") as f:
        del f["t0_fields"]["source"]
        del f["solver_stats"]["iterations"]
        f["ordering"]["permutation"][0] = f["ordering"]["permutation"][1]
    with h5py.File(bad, "r") as f:
        problems = storage.check_schema(f)
    text = " ".join(problems)
    assert "source" in text and "iterations" in text and "permutation" in text


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.h5"
    with pytest.raises(RuntimeError):
        with storage.atomic_h5(target) as f:
            f["a"] = np.arange(3)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with storage.atomic_h5(target) as f:
        f["a"] = np.arange(3)
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def test_atomic_text_and_path_leave_nothing_on_failure_and_replace_on_success(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"] and target.read_text() == "old"
    storage.atomic_write_text(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"] and target.read_text() == "new"


def test_shard_roundtrip_and_validity(tmp_path):
    recs = [storage.SampleRecord(i, {"u": np.full((2, 2), i, float)}, np.arange(4.0) * i, i + 1, 1e-9 * i,
                               bool(i % 2), f"r{i}", 0.1, np.linspace(1, 0.1, i + 1)) for i in (4, 2)]
    p = tmp_path / "chunk-00000.h5"
    storage.write_shard(p, 0, recs)
    sh = storage.read_shard(p)
    assert sh["sample_index"].tolist() == [4, 2] and sh["reason"] == ["r4", "r2"]
    assert sh["fields"]["u"].dtype == np.float32 and sh["fields"]["u"][1, 0, 0] == 2
    np.testing.assert_array_equal(sh["residual_history"][0], np.linspace(1, 0.1, 5))
    assert storage.shard_is_valid(p, np.array([4, 2]))
    assert not storage.shard_is_valid(p, np.array([2, 4]))
    trunc = tmp_path / "chunk-00001.h5"
    trunc.write_bytes(p.read_bytes()[:200])
    assert not storage.shard_is_valid(trunc, np.array([4, 2]))


def test_open_dataset_arrays_and_torch(toy_file):
    torch = pytest.importorskip("torch")
    out, _ = toy_file
    d = datagen.open_dataset(out)
    assert d.x.shape == (N, 2, G, G) and d.y.shape == (N, 3, G, G)
    assert d.x.dtype == np.float32
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(d.x[:, 0], f["t0_fields"]["permeability"][()])
        np.testing.assert_array_equal(d.y[:, 0], f["t0_fields"]["pressure"][()])
        np.testing.assert_array_equal(d.y[:, 2], f["t1_fields"]["gradient"][..., 1])
    assert len(d) == N and d.parameters[0].keys() == {"a", "b", "source"}
    ds = d.torch()
    item = ds[3]
    assert set(item) == {"x", "y"} and isinstance(item["x"], torch.Tensor)
    assert torch.equal(item["y"], torch.from_numpy(d.y[3]))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["x"].shape == (4, 2, G, G)
    # DataLoader workers started with 'spawn' (macOS/Windows default) pickle the dataset
    import pickle

    back = pickle.loads(pickle.dumps(ds))
    assert type(back) is type(ds) and torch.equal(back[3]["x"], ds[3]["x"])


def test_validate_accepts_good_and_catches_corruption(toy_file, tmp_path):
    out, _ = toy_file
    rep = validate_file(out, samples=N)
    assert rep.ok and len(rep.checked) == N, rep.lines()
    bad = tmp_path / "bad.h5"
    shutil.copy(out, bad)
    with h5py.File(bad, "r+") as f:
        f["solution_vectors"]["x"][2] *= np.float32(1.001)
        f["solver_stats"]["relative_residual"][4] = 0.5
    rep = validate_file(bad, samples=N)
    assert not rep.ok
    text = " ".join(rep.failures)
    assert "sample 2" in text and "sample 4" in text


def test_rounding_slack_bounds_fp32_rounding(rng):
    fam = get_family("toy")(grid=12)
    system = fam.assemble(fam.sample(1, rng)[0])
    x = spla.spsolve(system.A.tocsc(), system.b)
    x32 = x.astype(np.float32)
    moved = np.linalg.norm(system.A @ (x32.astype(np.float64) - x))
    slack = storage.rounding_slack(system.A, x32)
    assert moved <= slack < 1e3 * moved


def test_three_dimensional_layout(tmp_path):
    out = tmp_path / "t3.h5"
    cfg = GenerateConfig(problem="toy", n=3, grid=(4, 5, 6), solver="cg", chunk=2)
    generate(cfg, out)
    with h5py.File(out, "r") as f:
        assert f.attrs["n_spatial_dims"] == 3
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y", "z"]
        assert f["t0_fields"]["pressure"].shape == (3, 4, 5, 6)
        assert storage.check_schema(f) == []
    assert validate_file(out, samples=3).ok


def test_unknown_count_varying_per_sample(tmp_path):
    """Systems of different sizes (cells cut out per sample): x is stored variable-length
    and still validates; fields stay on the full grid."""
    out = tmp_path / "holes.h5"
    generate(GenerateConfig(problem="toy", n=5, grid=9, solver="cg", chunk=2, seed=2,
                            param={"holes": True}), out)
    with h5py.File(out, "r") as f:
        x = f["solution_vectors"]["x"]
        assert x.shape == (5,) and h5py.check_vlen_dtype(x.dtype) == np.float32
        sizes = {f["solution_vectors"]["x"][i].size for i in range(5)}
        assert len(sizes) > 1
        assert f["parameters"]["hole"].shape == (5, 2, 2)
        assert storage.check_schema(f) == []
    rep = validate_file(out, samples=5)
    assert rep.ok, rep.lines()
    assert datagen.open_dataset(out).y.shape == (5, 1, 9, 9)


def test_boundary_masks_from_edge_names():
    dims, sizes = ["x", "y"], [4, 3]
    m = {name: storage.writer._bc_entry(name, spec, dims, sizes) for name, spec in {
        "x_low": "wall", "y_top": {"bc_type": "dirichlet", "associated_fields": ["u"]},
        "x_periodic": "periodic", "obstacles": "wall"}.items()}
    assert m["x_low"][0] == ["x"] and m["x_low"][1].tolist() == [True, False, False, False]
    assert m["y_top"][1].tolist() == [False, False, True] and m["y_top"][2] == "dirichlet"
    assert m["y_top"][4] == {"associated_fields": ["u"]}
    assert m["x_periodic"][1].tolist() == [True, False, False, True]
    assert m["obstacles"][0] == ["x", "y"] and not m["obstacles"][1].any()


@pytest.mark.parametrize("chunks", [(1, 5, 3), None, (2, 5, 3)], ids=["row-chunks", "contiguous", "other-chunks"])
def test_write_rows_puts_each_row_at_its_index_in_any_order(tmp_path, chunks):
    """Scattered rows (a chunk's samples in solve order) land where NumPy's fancy
    assignment puts them, by raw chunk writes or by hyperslabs."""
    rng = np.random.default_rng(1)
    n = 11
    index = rng.permutation(n)[:7]
    rows = rng.standard_normal((7, 5, 3))
    ref = np.zeros((n, 5, 3), np.float32)
    ref[index] = rows
    with h5py.File(tmp_path / "w.h5", "w") as f:
        ds = f.create_dataset("a", (n, 5, 3), np.float32, chunks=chunks)
        storage.write_rows(ds, index, rows)
        np.testing.assert_array_equal(ds[()], ref)  # rows cast to the dataset's float32 as h5py would
        with pytest.raises(storage.StoreError, match="rows of shape"):
            storage.write_rows(ds, index, rows[:, :4])
        with pytest.raises(storage.StoreError, match="out of range"):
            storage.write_rows(ds, [n], rows[:1])


def _rec(i, width=4):
    return storage.SampleRecord(i, {"u": np.full((2, 2), i, float)}, np.arange(float(width)) + i, i + 1, 1e-9, True,
                              f"r{i}", 0.1, np.linspace(1, 0.1, i + 1))


def _meta(n):
    return storage.RunMeta(problem="t", description="", config={}, command="", family_params={},
                         coordinates={"x": np.arange(2.0), "y": np.arange(2.0)}, boundary_conditions={},
                         input_fields=[], output_fields=None, parameters=[{"a": float(i)} for i in range(n)],
                         permutation=np.arange(n), chunk_size=2, order_method="none", features=np.zeros((n, 1)),
                         solver={}, rtol=1e-8, atol=0.0)


@pytest.mark.parametrize("widths", [(4, 4, 4), (4, 3, 4)], ids=["fixed-length-x", "variable-length-x"])
def test_final_file_does_not_depend_on_the_order_the_shards_arrive(tmp_path, widths):
    """The join takes shards as their chunks finish; x turns variable-length when a later
    shard's vectors are shorter, giving the file the shards in chunk order give."""
    from datagen_run import assert_same_data

    shards = []
    for k, (idx, w) in enumerate(zip(([4, 1], [0, 5], [3, 2]), widths, strict=True)):
        shards.append(tmp_path / f"chunk-{k}.h5")
        storage.write_shard(shards[-1], k, [_rec(i, w) for i in idx])
    storage.write_final(tmp_path / "in_order.h5", _meta(6), shards)
    storage.write_final(tmp_path / "reversed.h5", _meta(6), shards[::-1])
    assert_same_data(tmp_path / "in_order.h5", tmp_path / "reversed.h5")
    with h5py.File(tmp_path / "reversed.h5", "r") as f:
        x = f["solution_vectors"]["x"]
        assert (x.ndim == 2) == (len(set(widths)) == 1)
        width = {i: w for idx, w in zip(([4, 1], [0, 5], [3, 2]), widths, strict=True) for i in idx}
        for i in range(6):
            np.testing.assert_array_equal(x[i], np.arange(float(width[i])) + i)
            assert f["t0_fields"]["u"][i, 0, 0] == i and f["solver_stats"]["iterations"][i] == i + 1
            np.testing.assert_array_equal(f["solver_stats"]["residual_history"][i], np.linspace(1, 0.1, i + 1))
        assert list(f.attrs["output_fields"]) == ["u"]


def test_join_rejects_a_shard_that_repeats_a_sample_or_leaves_one_out(tmp_path):
    shards = [tmp_path / "chunk-0.h5", tmp_path / "chunk-1.h5"]
    storage.write_shard(shards[0], 0, [_rec(1), _rec(0)])
    storage.write_shard(shards[1], 1, [_rec(1), _rec(2)])
    with pytest.raises(storage.StoreError, match="repeats samples"):
        storage.write_final(tmp_path / "out.h5", _meta(3), shards)
    with pytest.raises(storage.StoreError, match="cover 2 of 3 samples"):
        storage.write_final(tmp_path / "out.h5", _meta(3), shards[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk-0.h5", "chunk-1.h5"]  # no (temporary) file


def test_open_dataset_on_a_channel_file_says_what_it_holds(tmp_path):
    # a channel file loaded as generated data is refused with what it holds, not with a
    # missing-attribute message
    import datagen
    from datagen.storage import StoreError

    p = run_datagen(*CHANNEL, "--coarse-grid", "4,5,4", "--out", "c.h5", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    from datagen.storage import GeneratedData

    with pytest.raises(StoreError, match="holds trajectories") as exc:
        GeneratedData.load(tmp_path / "c.h5")
    assert "missing" not in str(exc.value)
    d = datagen.open_dataset(tmp_path / "c.h5")  # the trajectories, as stored
    with h5py.File(tmp_path / "c.h5", "r") as f:
        np.testing.assert_array_equal(d.velocity, f["t1_fields/velocity"][()])
        assert d.velocity.shape == (1, 2, 4, 5, 4, 3)
        np.testing.assert_array_equal(d.coordinates["y"], f["dimensions/y"][()])
        assert d.scalars["Re_tau"] == pytest.approx(180.0) and d.n_trajectories == 1
