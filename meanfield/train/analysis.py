"""Statistics of a finished (or partly finished) sweep, from its ``results.csv`` alone.

A sweep trains every cell (alpha, variances, depth) at each learning rate of a fixed set with several
seeds. A *protocol* turns that into one accuracy per cell:

* ``best``: the learning rate of the cell is the one with the best mean validation accuracy over the
  seeds among those at which no seed diverged (if every learning rate had a divergence, the best mean
  validation accuracy over all of them); the test accuracy is read at that learning rate. Test accuracy
  never enters the choice.
* ``lr=X``: every cell at the one learning rate X (the fixed-learning-rate heatmap of the paper's kind).

Within a protocol a cell's accuracy is the mean test accuracy over its seeds that did not diverge; a
cell where at least half of the seeds diverged is *diverged*, a class of its own (accuracy NaN here,
hatched in the figures, never drawn as accuracy 0).

Statistics, each with a 95% bootstrap interval over seeds (seeds resampled with replacement within every
cell, learning-rate selection included in each replicate):

* Spearman's rank correlation of accuracy with the theory's predictor (log R for tanh, log s^(L) for ReLU
  and alpha-ReLU), next to the baselines rank(accuracy, L) and rank(accuracy, x) (x: sw2, or alpha for
  an alpha sweep), and the partial rank correlation with the predictor at fixed depth (Spearman ranks,
  depth partialled out linearly): a predictor that only restates depth scores 0 there;
* over (x, L): the accuracy ridge and its edge, fitted as log x = a + b log L (for tanh over sw2 the
  theory says b = -1, sw2 L = const), with their constants, per depth with intervals, and the theory's
  predictor and log p^(L) along the edge (for ReLU the paper puts the edge at the float32 overflow
  line);
* where divergence occurs, against the float32 overflow line log p^(L) = 88.72;
* for a sweep over further axes (facets, e.g. sv2 and sa2 paired), every statistic per facet as well as
  pooled, and how far the facets' theory predictor differs at the same (x, L).

:func:`analyze` returns all of it as one JSON-ready dict (the ``summary.json`` of a sweep directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings

import numpy as np
from scipy import stats

from ..spec import NEUTRAL
from .config import BOOTSTRAP, GATE_COLUMNS, SweepConfig
from .predictors import LOG_F32_MAX, PREDICTORS, THEORY_AXES, theory_at
from .sweep import read_results

CHANCE = 0.1
#: Minimal fraction of a cell's seeds that diverged for the cell to count as diverged.
DIVERGED_FRACTION = 0.5


class Runs:
    """The networks of a sweep as arrays over (cell, learning rate, seed); missing networks are NaN."""

    def __init__(self, res: dict):
        self.cell_keys = sorted(set(zip(*(res[a] for a in THEORY_AXES), res["depth"])))
        self.lrs = np.unique(res["lr"])
        self.seeds = np.unique(res["seed"])
        index = {k: i for i, k in enumerate(self.cell_keys)}
        ci = np.array([index[k] for k in zip(*(res[a] for a in THEORY_AXES), res["depth"])], np.int64)
        li = np.searchsorted(self.lrs, res["lr"])
        si = np.searchsorted(self.seeds, res["seed"])
        shape = (len(self.cell_keys), len(self.lrs), len(self.seeds))
        self.val, self.test, self.diverged = (np.full(shape, np.nan) for _ in range(3))
        self.val[ci, li, si] = res["val_acc"]
        self.test[ci, li, si] = res["test_acc"]
        self.diverged[ci, li, si] = res["diverged"] > 0
        self.axes = {a: np.array([k[j] for k in self.cell_keys]) for j, a in enumerate(THEORY_AXES)}
        self.axes["depth"] = np.array([k[-1] for k in self.cell_keys], np.int64)

    def subset(self, mask: np.ndarray) -> "Runs":
        """The cells where ``mask`` (over cells) is true."""
        out = object.__new__(Runs)
        out.cell_keys = [k for k, m in zip(self.cell_keys, mask) if m]
        out.lrs, out.seeds = self.lrs, self.seeds
        out.val, out.test, out.diverged = self.val[mask], self.test[mask], self.diverged[mask]
        out.axes = {a: v[mask] for a, v in self.axes.items()}
        return out

    @property
    def n_cells(self) -> int:
        return len(self.cell_keys)

    def protocols(self) -> list[str]:
        return ["best"] + [f"lr={lr:.4g}" for lr in self.lrs]

    def outcome(self, protocol: str, seed_idx: np.ndarray | None = None) -> dict:
        """Per-cell test accuracy (NaN for diverged or untrained cells), diverged flag, learning rate, and
        the mean validation accuracy at that learning rate (what a selection among cells may use).

        ``seed_idx`` (cells, seeds) picks which seeds each cell uses (a bootstrap replicate); default
        all seeds once.
        """
        n = self.n_cells
        if seed_idx is None:
            seed_idx = np.broadcast_to(np.arange(len(self.seeds)), (n, len(self.seeds)))
        rows = np.arange(n)[:, None, None]
        cols = np.arange(len(self.lrs))[None, :, None]
        val = self.val[rows, cols, seed_idx[:, None, :]]
        test = self.test[rows, cols, seed_idx[:, None, :]]
        div = self.diverged[rows, cols, seed_idx[:, None, :]]
        if protocol == "best":
            with _quiet():
                mean_val = np.nanmean(val, -1)
                any_div = np.nanmax(div, -1) > 0
            score = np.where(np.isnan(mean_val), -np.inf, mean_val)
            eligible = ~any_div & np.isfinite(score)
            score = np.where(eligible.any(1, keepdims=True), np.where(eligible, score, -np.inf), score)
            chosen = np.argmax(score, 1)
        else:
            lr = float(protocol.split("=", 1)[1])
            j = int(np.argmin(np.abs(np.log(self.lrs) - np.log(lr))))
            if not np.isclose(self.lrs[j], lr, rtol=1e-3):
                raise ValueError(f"protocol {protocol!r}: no networks at that learning rate "
                                 f"(the sweep has {', '.join(f'{v:.4g}' for v in self.lrs)})")
            chosen = np.full(n, j)
        t = test[np.arange(n), chosen]
        v = val[np.arange(n), chosen]
        d = div[np.arange(n), chosen]
        with _quiet():
            frac_div = np.nanmean(d, -1)
            acc = np.nanmean(np.where(d > 0, np.nan, t), -1)
            val_acc = np.nanmean(np.where(d > 0, np.nan, v), -1)
        diverged = frac_div >= DIVERGED_FRACTION
        acc = np.where(diverged, np.nan, acc)
        val_acc = np.where(diverged, np.nan, val_acc)
        return {"acc": acc, "val_acc": val_acc, "diverged": diverged, "diverged_fraction": frac_div,
                "lr": self.lrs[chosen]}


@contextlib.contextmanager
def _quiet():
    """Silence numpy's 'mean of empty slice' warnings (all-NaN cells are expected: diverged, missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ------------------------------------------------------------------------------------- statistics
def _spearman(x, y) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 4 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def partial_spearman(x, y, z) -> float | None:
    """Rank correlation of x and y with z partialled out (Pearson partial correlation of the ranks)."""
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if ok.sum() < 5:
        return None
    rx, ry, rz = (stats.rankdata(v[ok]) for v in (x, y, z))
    if min(np.ptp(rx), np.ptp(ry), np.ptp(rz)) == 0:
        return None
    r = np.corrcoef([rx, ry, rz])
    rxy, rxz, ryz = r[0, 1], r[0, 2], r[1, 2]
    denom = np.sqrt((1 - rxz**2) * (1 - ryz**2))
    if not np.isfinite(denom) or denom < 1e-12:
        return None
    return float((rxy - rxz * ryz) / denom)


def fit_loglog(points: list[dict], key: str):
    """log x = a + b log L by least squares over points with x > 0 at two or more depths.

    Returns (b, standard error of b or None with fewer than three points, a, C = geometric mean of x L).
    """
    pts = [p for p in points if p[key] is not None and p[key] > 0]
    if len({p["depth"] for p in pts}) < 2:
        return None, None, None, None
    logL = np.log([p["depth"] for p in pts])
    logx = np.log([p[key] for p in pts])
    (b, a), res = np.polyfit(logL, logx, 1, full=True)[:2]
    se = None
    if len(pts) > 2:
        sigma2 = float(res[0]) / (len(pts) - 2) if len(res) else 0.0
        se = float(np.sqrt(sigma2 / np.sum((logL - logL.mean()) ** 2)))
    return float(b), se, float(a), float(np.exp(np.mean(logx + logL)))


def fit_ridge(xs, depths, acc, *, band: float = 0.05, contrast: float = 0.05, chance: float = CHANCE) -> dict:
    """Ridge of accuracy over (sw2, L) and the edge where accuracy falls off above it.

    For each depth (one row of the heatmap), over the cells with an accuracy (diverged cells count as
    chance here: they did not train):

    * ``sw2``: the ridge location, the accuracy-weighted centre (in log sw2) of the cells within
      ``band`` of the row's best accuracy, weights acc - (best - band); None where no network of the
      row trained (best accuracy below chance + 0.2): a row of failures has no centre;
    * ``resolved``: the row's best accuracy exceeds both ends of the row by at least ``contrast``,
      i.e. the peak lies inside the grid (a flat row says nothing about where the ridge is), and
      chance by at least 0.2 (a row where every network failed has no ridge);
    * ``edge``: the first sw2 above the best cell where accuracy falls below the midpoint between the
      best accuracy and chance, log-interpolated between grid cells (None if it does not fall inside
      the grid).

    The ridge fit log sw2 = a + b log L uses the resolved rows; the edge fit, the rows with an edge.
    ``C_sw2_L`` is the geometric mean of sw2 * L over the fitted points (the constant of sw2 L = C).
    """
    acc = np.where(np.isnan(acc), chance, acc)
    points = []
    for L in np.unique(depths):
        sel = (depths == L) & (xs > 0)
        if sel.sum() == 0:
            continue
        order = np.argsort(xs[sel])
        x, a = xs[sel][order], acc[sel][order]
        best = int(np.argmax(a))
        peak = a[best]
        w = np.maximum(a - (peak - band), 0.0)
        trained = peak >= chance + 0.2
        centre = float(np.exp(np.sum(w * np.log(x)) / np.sum(w))) if trained else None
        resolved = trained and len(x) >= 3 and peak - a[0] >= contrast and peak - a[-1] >= contrast
        level = 0.5 * (peak + chance)
        edge = None
        for j in range(best + 1, len(x) if trained else 0):
            if a[j] < level:
                t = (a[j - 1] - level) / (a[j - 1] - a[j])
                edge = float(np.exp(np.log(x[j - 1]) + t * (np.log(x[j]) - np.log(x[j - 1]))))
                break
        points.append({"depth": int(L), "sw2": centre, "argmax": float(x[best]), "acc": float(peak),
                       "resolved": bool(resolved), "edge": edge})
    b, b_se, a, c = fit_loglog([p for p in points if p["resolved"]], "sw2")
    eb, eb_se, ea, ec = fit_loglog(points, "edge")
    return {"points": points, "n_fit": sum(p["resolved"] for p in points),
            "slope_b": b, "slope_se": b_se, "intercept_a": a, "C_sw2_L": c,
            "n_edge": sum(p["edge"] is not None for p in points),
            "edge_slope_b": eb, "edge_slope_se": eb_se, "edge_intercept_a": ea, "edge_C_sw2_L": ec}


def _interval(values) -> list | None:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) < 0.5 * len(values):  # undefined in most replicates: no interval
        return None
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


# ---------------------------------------------------------------------------------------- analysis
def load(out_dir: str) -> tuple[dict, Runs]:
    """(config.json, the runs of results.csv) of a sweep directory."""
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    res = read_results(os.path.join(out_dir, "results.csv"))
    if len(res["test_acc"]) == 0:
        raise ValueError(f"{out_dir}/results.csv has no finished networks yet")
    return config, Runs(res)


def branch_scale(config: dict):
    """The sweep's branch scale (a number, ``1/sqrt(L)`` or ``1/L``; 1 for a config.json written before
    the field existed)."""
    return SweepConfig.from_json(config["effective"]).branch_scale


def variants(config: dict) -> dict:
    """The sweep's block variant (width, normalization, variance decays; :meth:`SweepConfig.variants`),
    the plain block's for a config.json written before those fields existed."""
    return SweepConfig.from_json(config["effective"]).variants()


def cell_predictors(config: dict, runs: Runs) -> dict:
    """The theory's log R, log s, log p at every cell of the sweep (arrays over cells)."""
    eff = config["effective"]
    stats_in = config["input_stats"]
    depth = runs.axes["depth"]
    th = theory_at(eff["arch"], eff["act"], {a: runs.axes[a] for a in THEORY_AXES}, int(depth.max()),
                   stats_in["p0"], stats_in["gamma0"], branch_scale(config), variants(config))
    at = np.arange(runs.n_cells)
    return {k: v[at, depth] for k, v in th.items()}


def swept_axis(config: dict, runs: Runs) -> str:
    """The variance-like axis of the heatmap against depth: alpha for an alpha sweep, else sw2."""
    if config["effective"]["act"] == "alpha_relu" and len(np.unique(runs.axes["alpha"])) > 1:
        return "alpha"
    return "sw2"


def _statistics(out: dict, runs: Runs, pred: dict, name: str, x_axis: str, ridge: bool) -> dict:
    acc, depth = out["acc"], runs.axes["depth"].astype(float)
    x = runs.axes[x_axis]
    s = {"rho_predictor": _spearman(pred[name], acc), "rho_depth": _spearman(depth, acc),
         f"rho_{x_axis}": _spearman(x, acc), "partial_rho_predictor_given_depth": partial_spearman(
             pred[name], acc, depth), "mean_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else None,
         "best_acc": float(np.nanmax(acc)) if np.isfinite(acc).any() else None}
    if ridge:
        r = fit_ridge(x, runs.axes["depth"], acc)
        s.update({"ridge_b": r["slope_b"], "ridge_a": r["intercept_a"], "ridge_C": r["C_sw2_L"],
                  "edge_b": r["edge_slope_b"], "edge_a": r["edge_intercept_a"],
                  "edge_C": r["edge_C_sw2_L"], "_ridge": r})
    return s


def facets(runs: Runs, x_axis: str) -> list[dict]:
    """The distinct values of the theory axes other than ``x_axis`` (one heatmap panel each). The gate's
    axes are named only where some cell is not at their neutral value (a sweep of a block without a
    gate: its facets, and summary, as before those axes existed)."""
    others = [a for a in THEORY_AXES if a != x_axis
              and not (a in GATE_COLUMNS and np.all(runs.axes[a] == NEUTRAL[a]))]
    combos = sorted(set(zip(*(runs.axes[a] for a in others))))
    return [dict(zip(others, map(float, c))) for c in combos]


def predictor_spread(runs: Runs, values: np.ndarray, x_axis: str) -> dict:
    """How far the facets' theory predictor ``values`` (one per cell) differ at the same (x, depth):
    the largest spread (max - min over the facets) over the cells every facet has, next to the range the
    predictor spans over the grid. A sweep whose facets share the theory (the variant sweep) should have
    a spread small against the range."""
    groups: dict = {}
    for key, v in zip(zip(runs.axes[x_axis].tolist(), runs.axes["depth"].tolist()), values):
        groups.setdefault(key, []).append(float(v))
    n = max(len(g) for g in groups.values())
    spreads = [max(g) - min(g) for g in groups.values() if len(g) == n]
    return {"max_spread": max(spreads), "n_cells_compared": len(spreads),
            "range": [float(np.min(values)), float(np.max(values))]}


def facet_labels(parts: list[dict]) -> list[str]:
    """A label per facet naming the axes whose value differs among ``parts`` (``"sv2 1.5, sa2 0.5"``);
    the axes every facet shares are left out. The report and the heatmap panels both use these."""
    varying = [a for a in (parts[0] if parts else {}) if len({f[a] for f in parts}) > 1]
    return [", ".join(f"{a} {f[a]:.4g}" for a in varying) for f in parts]


def facet_mask(runs: Runs, facet: dict) -> np.ndarray:
    mask = np.ones(runs.n_cells, bool)
    for a, v in facet.items():
        mask &= runs.axes[a] == v
    return mask


def analyze(out_dir: str, *, bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict:
    """Every number of a sweep's summary (see the module docstring), per protocol. A sweep over more
    than the swept axis and depth (e.g. sv2 and sa2 paired) gets them per facet as well as pooled."""
    config, runs = load(out_dir)
    eff = config["effective"]
    pred = cell_predictors(config, runs)
    x_axis = swept_axis(config, runs)
    summary = {
        "sweep": os.path.basename(os.path.normpath(out_dir)), "arch": eff["arch"], "act": eff["act"],
        "readout": eff.get("readout", "linear"), "predictor": PREDICTORS[eff["act"]], "x_axis": x_axis,
        "n_networks": int(np.isfinite(runs.test).sum()), "n_cells": runs.n_cells,
        "lrs": [float(v) for v in runs.lrs], "seeds": int(len(runs.seeds)), "bootstrap": bootstrap,
        "chance": CHANCE, "input_stats": config["input_stats"],
    }
    if branch_scale(config) != 1.0:  # recorded where it is not the plain block's
        summary["branch_scale"] = branch_scale(config)
    parts = facets(runs, x_axis)
    summary["facets"] = []
    for facet in parts:
        mask = facet_mask(runs, facet)
        summary["facets"].append({"facet": facet, "protocols": _protocols(
            config, runs.subset(mask), {k: v[mask] for k, v in pred.items()}, x_axis, bootstrap, seed)})
    summary["protocols"] = (summary["facets"][0]["protocols"] if len(parts) == 1 else
                            _protocols(config, runs, pred, x_axis, bootstrap, seed, ridge=False))
    if len(parts) > 1:
        summary["predictor_across_facets"] = predictor_spread(runs, pred[summary["predictor"]], x_axis)
    summary["divergence"] = divergence_summary(runs, pred)
    from .schemes import compare

    schemes = compare(out_dir, config, runs, pred, bootstrap=bootstrap, seed=seed)
    if schemes is not None:
        summary["schemes"] = schemes
    return summary


def _protocols(config: dict, runs: Runs, pred: dict, x_axis: str, bootstrap: int, seed: int,
               ridge: bool = True) -> dict:
    """Statistics per protocol of one set of cells (with the ridge and edge fits over (x, L) when x
    takes three or more values at two or more depths)."""
    eff = config["effective"]
    name = PREDICTORS[eff["act"]]
    ridge = ridge and len(np.unique(runs.axes["depth"])) > 1 and len(np.unique(runs.axes[x_axis])) >= 3
    rng = np.random.default_rng(seed)
    n_seeds = len(runs.seeds)
    replicates = [rng.integers(0, n_seeds, (runs.n_cells, n_seeds)) for _ in range(bootstrap)]
    protocols = {}
    for protocol in runs.protocols():
        out = runs.outcome(protocol)
        point = _statistics(out, runs, pred, name, x_axis, ridge)
        boot = [_statistics(runs.outcome(protocol, idx), runs, pred, name, x_axis, ridge) for idx in replicates]
        entry = {k: {"value": v, "ci95": _interval([b[k] for b in boot])} for k, v in point.items()
                 if not k.startswith("_")}
        entry["n_cells_diverged"] = int(out["diverged"].sum())
        entry["n_cells_with_accuracy"] = int(np.isfinite(out["acc"]).sum())
        entry["cells"] = {x_axis: runs.axes[x_axis].tolist(), "depth": runs.axes["depth"].tolist(),
                          "acc": _json_list(out["acc"]), "diverged": out["diverged"].astype(int).tolist(),
                          "diverged_fraction": _json_list(out["diverged_fraction"]), "lr": out["lr"].tolist()}
        if ridge:
            entry["ridge"] = _with_depth_intervals(point["_ridge"], [b["_ridge"] for b in boot])
            entry["ridge_b_of_exact_ridge_on_this_grid"] = _grid_calibration(runs, entry["ridge"], x_axis)
            entry["ridge_band"] = _ridge_band(boot, runs.axes["depth"])
            entry["edge_band"] = _ridge_band(boot, runs.axes["depth"], "edge")
            entry["edge_predictor"] = _along_edge(config, runs, entry["ridge"], name, x_axis)
        if protocol == "best":
            entry["lr_counts"] = {f"{lr:.4g}": int(np.sum(out["lr"] == lr)) for lr in runs.lrs}
        protocols[protocol] = entry
    return protocols


def _grid_calibration(runs: Runs, ridge: dict, x_axis: str) -> float | None:
    """The slope b that the ridge estimator returns, on this sweep's grid, for a surface whose ridge is
    exactly x L = C (C: the fitted constant): accuracy 0.1 + 0.85 exp(-log(x L / C)^2). Its distance
    from -1 is the estimator's bias from the grid alone (cells at the ends of a row, coarse spacing)."""
    if ridge["C_sw2_L"] is None:
        return None
    x, depth = runs.axes[x_axis], runs.axes["depth"]
    with np.errstate(divide="ignore"):
        acc = CHANCE + 0.85 * np.exp(-np.log(x * depth / ridge["C_sw2_L"]) ** 2)
    return fit_ridge(x, depth, acc)["slope_b"]


def _json_list(a: np.ndarray) -> list:
    """Floats for JSON: NaN becomes None."""
    return [None if not np.isfinite(v) else float(v) for v in a]


def _ridge_band(boot: list[dict], depths, which: str = "ridge") -> dict | None:
    """95% band of the fitted ridge (or edge) x(L) over the bootstrap replicates, at 40 depths."""
    fits = [(b[which + "_a"], b[which + "_b"]) for b in boot if b[which + "_b"] is not None]
    if len(fits) < 0.5 * len(boot):
        return None
    L = np.geomspace(depths.min(), depths.max(), 40)
    log_sw2 = np.array([a + b * np.log(L) for a, b in fits])
    lo, hi = np.percentile(log_sw2, [2.5, 97.5], axis=0)
    return {"depth": L.tolist(), "sw2_lo": np.exp(lo).tolist(), "sw2_hi": np.exp(hi).tolist()}


def _single_facet(runs: Runs, x_axis: str) -> bool:
    """True when the cells differ only in x_axis and depth (one heatmap panel)."""
    return all(len(np.unique(runs.axes[a])) == 1 for a in THEORY_AXES if a != x_axis)


def _with_depth_intervals(ridge: dict, boot: list[dict]) -> dict:
    """``ridge`` (a :func:`fit_ridge` result) with a 95% bootstrap interval on each depth's ridge centre
    (``sw2_ci95``) and edge (``edge_ci95``: None where the edge falls outside the grid in most replicates)."""
    by_depth = [{q["depth"]: q for q in b["points"]} for b in boot]
    for p in ridge["points"]:
        for key in ("sw2", "edge"):
            p[key + "_ci95"] = _interval([b[p["depth"]][key] if p["depth"] in b else None for b in by_depth])
    return ridge


def _along_edge(config: dict, runs: Runs, ridge: dict, name: str, x_axis: str, n: int = 9) -> float | None:
    """The theory's predictor ``name`` and log p^(L) at each depth's edge, with their ranges over the
    edge's interval (``edge_<name>``, ``edge_<name>_ci95``, ``edge_log_p``, ``edge_log_p_ci95`` in each
    point; the range is the min and max over ``n`` points of the interval, which is the interval of the
    value itself wherever the value is monotone in x, and contains it otherwise). Returns the median
    predictor at the edges: the level of the contour the fall-off follows."""
    pts = [p for p in ridge["points"] if p["edge"] is not None]
    if not pts:
        return None
    xs = []
    for p in pts:
        lo, hi = p["edge_ci95"] or (p["edge"], p["edge"])
        xs.append(np.concatenate([[p["edge"]], np.geomspace(lo, hi, n)]))
    xs = np.array(xs)  # (edges, 1 + n)
    eff, st = config["effective"], config["input_stats"]
    points = {a: np.full(xs.size, runs.axes[a][0]) for a in THEORY_AXES}
    points[x_axis] = xs.ravel()
    th = theory_at(eff["arch"], eff["act"], points, max(p["depth"] for p in pts), st["p0"], st["gamma0"],
                   branch_scale(config), variants(config))
    depth = np.repeat([p["depth"] for p in pts], xs.shape[1])
    for key in (name, "log_p"):
        vals = th[key][np.arange(xs.size), depth].reshape(xs.shape)
        for p, v in zip(pts, vals):
            p["edge_" + key] = float(v[0])
            p["edge_" + key + "_ci95"] = ([float(v[1:].min()), float(v[1:].max())]
                                          if p["edge_ci95"] is not None and np.isfinite(v[1:]).all() else None)
    vals = np.array([p["edge_" + name] for p in pts])
    vals = vals[np.isfinite(vals)]
    return float(np.median(vals)) if len(vals) else None


def divergence_summary(runs: Runs, pred: dict) -> dict:
    """Where networks diverged, against the theory's log p^(L) and the float32 overflow line.

    Per learning rate: the number of diverged networks, the largest log p^(L) of a cell where no
    seed diverged and the smallest log p^(L) of a cell where every seed diverged (the divergence
    threshold in log p^(L) lies between them when they are ordered), and how many diverged networks lie
    below the overflow line log p^(L) = 88.72.
    """
    log_p = pred["log_p"]
    out = {"overflow_log_p": LOG_F32_MAX, "n_cells_beyond_overflow": int(np.sum(log_p > LOG_F32_MAX)),
           "per_lr": {}}
    for j, lr in enumerate(runs.lrs):
        d = runs.diverged[:, j, :]
        have = np.isfinite(d)
        none = have.any(1) & (np.nansum(d, 1) == 0)
        every = have.any(1) & (np.nansum(d, 1) == have.sum(1))
        div_nets = np.nansum(d, 1)
        out["per_lr"][f"{lr:.4g}"] = {
            "n_networks": int(have.sum()), "n_diverged": int(np.nansum(d)),
            "n_diverged_below_overflow": int(np.sum(div_nets[log_p <= LOG_F32_MAX])),
            "max_log_p_none_diverged": float(log_p[none].max()) if none.any() else None,
            "min_log_p_all_diverged": float(log_p[every].min()) if every.any() else None,
        }
    return out


def write_summary(out_dir: str, **kwargs) -> dict:
    """:func:`analyze` the sweep in ``out_dir`` and write its ``summary.json`` there; returns it."""
    summary = analyze(out_dir, **kwargs)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return summary


def summary_lines(summary: dict) -> list[str]:
    """Human-readable lines of a summary (what ``meanfield train`` and ``--analyze`` print)."""
    fmt = format_estimate
    kappa = f" (branch scale {summary['branch_scale']})" if "branch_scale" in summary else ""
    lines = [f"{summary['sweep']}: {summary['arch']}{kappa} {summary['act']}, {summary['readout']} readout, "
             f"{summary['n_networks']} networks in {summary['n_cells']} cells x {len(summary['lrs'])} "
             f"learning rates x {summary['seeds']} seeds; 95% bootstrap intervals over seeds"]
    if len(summary["facets"]) == 1:
        lines += _protocol_lines(summary["protocols"], summary, fmt, "  ")
    else:  # the facets' theory, the pooled statistics, then each facet's own (its ridge and edge fits)
        spread = summary["predictor_across_facets"]
        lines.append(f"  theory: {summary['predictor']} at the same ({summary['x_axis']}, L) differs "
                     f"between the facets by at most {spread['max_spread']:.2f} over "
                     f"{spread['n_cells_compared']} cells; over the grid it spans {spread['range'][0]:.2f} "
                     f"to {spread['range'][1]:.2f}")
        lines.append(f"  pooled over the {len(summary['facets'])} facets:")
        lines += _protocol_lines(summary["protocols"], summary, fmt, "    ")
        labels = facet_labels([f["facet"] for f in summary["facets"]])
        for f, label in zip(summary["facets"], labels):
            lines.append(f"  facet {label}:")
            lines += _protocol_lines(f["protocols"], summary, fmt, "    ")
    if "schemes" in summary:
        lines += _scheme_lines(summary["schemes"], fmt)
    d = summary["divergence"]
    for lr, v in d["per_lr"].items():
        lines.append(f"  divergence at lr {lr}: {v['n_diverged']}/{v['n_networks']} networks "
                     f"({v['n_diverged_below_overflow']} below the float32 overflow line log p^(L) = "
                     f"{d['overflow_log_p']:.2f}); largest log p^(L) of a cell where no seed diverged: "
                     f"{_num(v['max_log_p_none_diverged'])}, smallest where every seed diverged: "
                     f"{_num(v['min_log_p_all_diverged'])}")
    return lines


def product_law(summary: dict) -> bool:
    """Whether the theory's ridge is x L = const (tanh over sw2, b = -1), so that the fitted constant C,
    the geometric mean of x L, is the theory's quantity."""
    return summary["predictor"] == "log_R" and summary["x_axis"] == "sw2"


def fit_constant(summary: dict, entry: dict, kind: str, fmt) -> str:
    """The constant of the ``kind`` (``ridge`` or ``edge``) fit of a protocol's ``entry``, formatted by
    ``fmt(value_and_ci95, digits)``: ``sw2 L = C`` under the product law, else the intercept ``a`` of
    log x = a + b log L (a geometric mean of x L means nothing where the law is not x L = const)."""
    if product_law(summary):
        return f"{summary['x_axis']} L = {fmt(entry[kind + '_C'], 0)}"
    return f"a = {fmt(entry[kind + '_a'], 2)}"


def _protocol_lines(protocols: dict, summary: dict, fmt, indent: str) -> list[str]:
    """The statistics of each protocol of ``protocols`` (a summary's, or one facet's), as lines."""
    x, predictor = summary["x_axis"], summary["predictor"]
    lines = []
    for protocol, e in protocols.items():
        lines.append(f"[{protocol}] best accuracy {fmt(e['best_acc'])}, mean {fmt(e['mean_acc'])} over the cells "
                     f"that did not diverge; {e['n_cells_diverged']} cells diverged")
        lines.append(f"  Spearman rho(acc, {predictor}) = {fmt(e['rho_predictor'])}; partial at fixed "
                     f"depth = {fmt(e['partial_rho_predictor_given_depth'])}; baselines rho(acc, L) = "
                     f"{fmt(e['rho_depth'])}, rho(acc, {x}) = {fmt(e['rho_' + x])}")
        if "ridge" in e:
            lines.append(f"  ridge log {x} = a + b log L: b = {fmt(e['ridge_b'], 2)} on {e['ridge']['n_fit']} "
                         f"depths, {fit_constant(summary, e, 'ridge', fmt)}; edge: b = {fmt(e['edge_b'], 2)}, "
                         f"{fit_constant(summary, e, 'edge', fmt)}"
                         + ("" if e["edge_predictor"] is None else
                            f", theory {predictor} along the edge {e['edge_predictor']:.2f}"))
            lines += _depth_lines(e["ridge"], x, predictor)
        if "lr_counts" in e:
            lines.append("  learning rates chosen: " + ", ".join(f"{k}: {v} cells" for k, v in e["lr_counts"].items()))
    return [indent + line for line in lines]


def _num(v, digits: int = 1) -> str:
    return "none" if v is None else f"{v:.{digits}f}"


def format_estimate(entry: dict, digits: int = 3, missing: str = "undefined") -> str:
    """``value [lo, hi]`` of a summary entry (its 95% interval when it has one), or ``missing``."""
    return missing if entry["value"] is None else _span(entry["value"], entry["ci95"], digits)


def _span(v, ci, digits: int) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" + ("" if ci is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]")


def _depth_lines(ridge: dict, x: str, predictor: str) -> list[str]:
    """One line per depth: the ridge centre, the edge, and the theory's predictor and log p^(L) at the
    edge, each with its 95% interval ('-': the edge is not inside the grid; 'none trained': no network
    of the row trained, so it has neither)."""
    lines = [f"    {'L':>4}  {'ridge ' + x:<30}{'edge ' + x:<22}{predictor + ' at edge':<22}log p^(L) at edge"]
    for p in ridge["points"]:
        if p["sw2"] is None:
            ridge_x = "none trained"
        else:
            ridge_x = _span(p["sw2"], p.get("sw2_ci95"), 3) + ("" if p["resolved"] else " (end)")
        lines.append(f"    {p['depth']:>4}  {ridge_x:<30}{_span(p['edge'], p.get('edge_ci95'), 3):<22}"
                     f"{_span(p.get('edge_' + predictor), p.get('edge_' + predictor + '_ci95'), 1):<22}"
                     f"{_span(p.get('edge_log_p'), p.get('edge_log_p_ci95'), 1)}")
    return lines


def _scheme_lines(table: dict, fmt) -> list[str]:
    def cell(e):
        return "diverged" if e["value"] is None else fmt(e)

    lines = [f"  initialization schemes per depth (best protocol; theory: {table['rule']}):"]
    for r in table["rows"]:
        sw2 = "none" if r["theory_sw2"] is None else f"{r['theory_sw2']:.3g}"
        best = "none" if r["grid_best_sw2"] is None else f"{r['grid_best_sw2']:.3g}"
        parts = [f"theory (sw2 {sw2}) {cell(r['theory'])}", f"grid best (sw2 {best}) {cell(r['grid_best'])}"]
        parts += [f"{k} {cell(r[k])}" for k in table["presets"]]
        lines.append(f"    L = {r['depth']}: " + "; ".join(parts))
    for who in ("theory", "grid_best"):
        for k, c in table[f"n_{who}_beats"].items():
            lines.append(f"    {who.replace('_', ' ')} - {k}: interval above 0 at {c['above_0']} depths, below 0 at "
                         f"{c['below_0']}, neither or undefined at {c['neither']}")
    return lines
