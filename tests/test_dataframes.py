"""Results as tables (the ``tables`` extra): Trajectory.to_xarray / to_dataframe and the sweep directory
as a DataFrame (meanfield.train.sweep.results_frame). The on-disk format stays CSV."""

import json
import os
import sys

import numpy as np
import pytest

import meanfield as mf
from meanfield._extras import MissingExtra
from meanfield.train.config import COLUMNS
from meanfield.train.sweep import read_results, results_frame

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")

SW2, SV2 = np.array([0.5, 1.5]), np.array([0.5, 1.0, 2.0])
TINY_SWEEP = os.path.join(os.path.dirname(__file__), "data", "tiny_sweep")


@pytest.fixture(scope="module")
def grid():
    spec = mf.Spec("frn", "relu", depth=5, sw2=SW2[:, None], sv2=SV2[None, :], sb2=0.1, sa2=0.2)
    return spec, mf.theory.trajectory(spec)


def test_dataset_dims_coords_and_values_are_the_trajectory(grid):
    spec, traj = grid
    ds = traj.to_xarray(spec)
    assert dict(ds.sizes) == {"sw2": 2, "sv2": 3, "layer": 6}
    np.testing.assert_array_equal(ds["sw2"], SW2)
    np.testing.assert_array_equal(ds["sv2"], SV2)
    np.testing.assert_array_equal(ds["layer"], np.arange(6))
    assert set(ds.data_vars) == set(traj.as_dict())
    for name, value in traj.as_dict().items():
        assert ds[name].dims == (("sw2", "sv2") if name == "log_R" else ("sw2", "sv2", "layer"))
        np.testing.assert_array_equal(ds[name].values, value)  # exactly, NaN where the trajectory has NaN
    assert ds.attrs == {"arch": "frn", "act": "relu", "depth": 5, "sb2": 0.1, "sa2": 0.2, "alpha": 1.0,
                        "p0": 1.0, "gamma0": 0.5, "branch_scale": 1.0, "decay_w": 0.0, "decay_v": 0.0,
                        "decay_b": 0.0, "decay_a": 0.0, "survival": 1.0}
    ds = mf.theory.trajectory(spec.replace(norm="layer")).to_xarray(spec.replace(norm="layer"))
    assert ds.attrs["norm"] == "layer" and "bottleneck" not in ds.attrs


def test_meshgrid_spec_gives_the_same_dataset(grid):
    spec, traj = grid
    mesh = spec.replace(sw2=np.broadcast_to(SW2[:, None], (2, 3)), sv2=np.broadcast_to(SV2[None, :], (2, 3)))
    xr.testing.assert_identical(traj.to_xarray(mesh), traj.to_xarray(spec))


def test_grid_without_spec_and_single_network(grid):
    spec, traj = grid
    ds = traj.to_xarray()
    assert ds["p"].dims == ("axis0", "axis1", "layer") and ds.attrs == {"depth": 5}
    one = spec.replace(sw2=1.5, sv2=0.5)
    single = mf.theory.trajectory(one).to_xarray(one)
    assert single["p"].dims == ("layer",) and single["log_R"].dims == ()
    assert single.attrs["sw2"] == 1.5
    with pytest.raises(ValueError, match=r"grid shape \(2, 3\) is not the spec's \(\)"):
        traj.to_xarray(one)


def test_dataframe_round_trip(grid):
    spec, traj = grid
    ds = traj.to_xarray(spec)
    df = traj.to_dataframe(spec)
    assert len(df) == 2 * 3 * 6
    assert list(df.columns[:3]) == ["sw2", "sv2", "layer"] and df.attrs == ds.attrs
    back = df.set_index(["sw2", "sv2", "layer"]).to_xarray()
    back["log_R"] = back["log_R"].isel(layer=0, drop=True)  # the long table repeats it over the layers
    back.attrs = df.attrs
    xr.testing.assert_identical(back, ds)


@pytest.mark.parametrize("missing", ["pandas", "xarray"])
def test_missing_extra_names_the_pip_line(grid, monkeypatch, missing):
    spec, traj = grid
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail as if not installed
    with pytest.raises(MissingExtra, match=rf'needs {missing}.*pip install "meanfield\[tables\]"'):
        traj.to_dataframe(spec)
    if missing == "pandas":
        with pytest.raises(MissingExtra, match=r'pip install "meanfield\[tables\]"'):
            results_frame(TINY_SWEEP)


def test_results_frame_is_read_results_with_the_config():
    frame = results_frame(TINY_SWEEP)
    columns = read_results(os.path.join(TINY_SWEEP, "results.csv"))
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(columns["test_acc"]) > 0
    for name, values in columns.items():
        np.testing.assert_array_equal(frame[name].to_numpy(), values)
        if values.dtype.kind in "if":
            assert frame[name].dtype == values.dtype
    with open(os.path.join(TINY_SWEEP, "config.json")) as f:
        assert frame.attrs == json.load(f)
