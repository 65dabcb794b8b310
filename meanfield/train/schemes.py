"""Initialization schemes against depth: He, Xavier and the theory's depth-aware choice.

The paper's third MNIST claim is that the best initialization variances depend on depth, so a fixed
scheme (He, Xavier) loses to a depth-aware one. A heatmap sweep in ``DIR`` is compared, depth by depth,
with its sibling sweeps ``DIR_he`` and ``DIR_xavier``: the same protocol and depths, with the preset's
variances (:data:`~meanfield.train.config.INIT_PRESETS`; the sweep scripts' ``--init he|xavier``).
Each entry is the ``best``-protocol test accuracy (learning rate chosen per cell on validation) with
a 95% bootstrap interval over seeds:

* ``theory``: the grid cell the theory picks at that depth, before any training (:func:`theory_cells`);
* ``grid_best``: the grid cell with the best mean validation accuracy at that depth, scored on test:
  the depth-aware optimum of the grid, the yardstick for the theory's pick;
* ``he``, ``xavier``: the presets;
* the differences theory - he, theory - xavier, grid_best - he, grid_best - xavier and
  grid_best - theory (undefined where a side diverged), and the sw2 of the grid's best cell per depth
  (the depth dependence of the optimum).

The theory's rules, fixed before the preset sweeps were run:

* tanh: the grid sw2 nearest in log to 150 / L, the paper's theory curve sigma_w^2 L ~ 145-150
  (:data:`TANH_SW2_L`), whose constant comes from the paper and not from our data;
* ReLU: the largest grid sw2 whose log p^(L) stays below the float32 overflow line, the paper's
  "largest variance that does not overflow".

An alpha-ReLU sweep varies alpha at fixed variances and has no such table.
"""

from __future__ import annotations

import os

import numpy as np

from .analysis import Runs, _interval, facets, load, swept_axis
from .config import SweepConfig
from .predictors import LOG_F32_MAX

PRESETS = ("he", "xavier")
#: sigma_w^2 L along the paper's tanh theory curve.
TANH_SW2_L = 150.0
#: Fields of config.json["effective"] that must agree between a sweep and its preset siblings.
_SAME = ("arch", "act", "readout", "lr", "seeds", "train", "train_subset", "test_subset", "val_subset", "data",
         "branch_scale")


def preset_dirs(out_dir: str) -> dict:
    """The preset sibling sweeps of ``out_dir`` that have results: {preset: directory}."""
    base = os.path.normpath(out_dir)
    found = {k: f"{base}_{k}" for k in PRESETS}
    return {k: d for k, d in found.items() if os.path.isfile(os.path.join(d, "results.csv"))}


def theory_cells(act: str, runs: Runs, log_p: np.ndarray) -> dict:
    """{depth: index of the grid cell the theory picks} (depths without a pick are left out).

    ``log_p``: the theory's log p^(L) at every cell of ``runs``.
    """
    sw2, depth = runs.axes["sw2"], runs.axes["depth"]
    out = {}
    for L in np.unique(depth):
        at = np.flatnonzero(depth == L)
        if act == "tanh":
            ok = at[sw2[at] > 0]
            if len(ok):
                out[int(L)] = int(ok[np.argmin(np.abs(np.log(sw2[ok]) - np.log(TANH_SW2_L / L)))])
        elif act == "relu":
            ok = at[log_p[at] < LOG_F32_MAX]
            if len(ok):
                out[int(L)] = int(ok[np.argmax(sw2[ok])])
    return out


def _check_same(config: dict, other: dict, name: str) -> None:
    a, b = (SweepConfig.from_json(c["effective"]).to_json() for c in (config, other))  # defaults filled in
    diff = [k for k in _SAME if a.get(k) != b.get(k)]
    if diff:
        raise ValueError(f"the {name} sweep was not run at the protocol of the grid it is compared with: "
                         f"{', '.join(diff)} differ")


def _per_depth(runs: Runs, presets: dict, picks: dict, depths, idx_main, idx_presets) -> dict:
    """Accuracies per depth (arrays over ``depths``) for one draw of seeds."""
    main = runs.outcome("best", idx_main)
    out = {"theory": np.full(len(depths), np.nan), "grid_best": np.full(len(depths), np.nan),
           "grid_best_sw2": np.full(len(depths), np.nan)}
    for i, L in enumerate(depths):
        if L in picks:
            out["theory"][i] = main["acc"][picks[L]]
        at = np.flatnonzero((runs.axes["depth"] == L) & np.isfinite(main["val_acc"]))
        if len(at):
            best = at[np.argmax(main["val_acc"][at])]
            out["grid_best"][i] = main["acc"][best]
            out["grid_best_sw2"][i] = runs.axes["sw2"][best]
    for name, pr in presets.items():
        res = pr.outcome("best", None if idx_presets is None else idx_presets[name])
        acc = np.full(len(depths), np.nan)
        for i, L in enumerate(depths):
            at = np.flatnonzero(pr.axes["depth"] == L)
            if len(at):
                acc[i] = res["acc"][at[0]]
        out[name] = acc
    return out


def compare(out_dir: str, config: dict, runs: Runs, pred: dict, *, bootstrap: int, seed: int) -> dict | None:
    """The table of the module docstring, or None when ``out_dir`` has no preset siblings or its grid
    has no theory rule (alpha-ReLU, or several facets)."""
    dirs = preset_dirs(out_dir)
    act = config["effective"]["act"]
    if not dirs or act not in ("tanh", "relu") or swept_axis(config, runs) != "sw2" or len(facets(runs, "sw2")) != 1:
        return None
    presets = {}
    for name, d in dirs.items():
        other, pr = load(d)
        _check_same(config, other, name)
        presets[name] = pr
    picks = theory_cells(act, runs, pred["log_p"])
    depths = [int(L) for L in np.unique(runs.axes["depth"])]
    point = _per_depth(runs, presets, picks, depths, None, None)
    rng = np.random.default_rng(seed)
    n_seeds = len(runs.seeds)
    boot = []
    for _ in range(bootstrap):
        idx_main = rng.integers(0, n_seeds, (runs.n_cells, n_seeds))
        idx_presets = {k: rng.integers(0, len(pr.seeds), (pr.n_cells, len(pr.seeds))) for k, pr in presets.items()}
        boot.append(_per_depth(runs, presets, picks, depths, idx_main, idx_presets))
    pairs = [(a, name) for a in ("theory", "grid_best") for name in presets] + [("grid_best", "theory")]
    rows = []
    for i, L in enumerate(depths):
        g = point["grid_best_sw2"][i]
        row = {"depth": L, "theory_sw2": float(runs.axes["sw2"][picks[L]]) if L in picks else None,
               "grid_best_sw2": None if np.isnan(g) else float(g)}
        for name in ("theory", "grid_best", *presets):
            v = point[name][i]
            row[name] = {"value": None if np.isnan(v) else float(v),
                         "ci95": _interval([b[name][i] for b in boot]) if np.isfinite(v) else None}
        for a, b in pairs:
            v = point[a][i] - point[b][i]
            reps = [r[a][i] - r[b][i] for r in boot]
            row[f"{a}_minus_{b}"] = {"value": None if np.isnan(v) else float(v),
                                     "ci95": _interval(reps) if np.isfinite(v) else None}
        rows.append(row)
    rule = {"tanh": f"grid sw2 nearest in log to {TANH_SW2_L:g} / L",
            "relu": "largest grid sw2 with log p^(L) below float32 overflow"}[act]
    return {"rule": rule, "presets": sorted(presets), "rows": rows,
            "n_theory_beats": {name: _count(rows, f"theory_minus_{name}") for name in presets},
            "n_grid_best_beats": {name: _count(rows, f"grid_best_minus_{name}") for name in presets}}


def _count(rows: list, key: str) -> dict:
    """Depths where the difference's interval lies above 0, below 0, or straddles it (or is undefined)."""
    out = {"above_0": 0, "below_0": 0, "neither": 0}
    for r in rows:
        ci = r[key]["ci95"]
        out["above_0" if ci is not None and ci[0] > 0 else "below_0" if ci is not None and ci[1] < 0
            else "neither"] += 1
    return out
