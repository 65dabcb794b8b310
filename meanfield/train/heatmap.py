"""Theory against accuracy: heatmaps, predictors, ridge fits and rank correlations of a sweep.

Reads ``config.json`` and ``results.csv`` of a sweep directory and writes, into the same directory:

* ``heatmap_<x>_<y>.png`` for every pair of swept axes (sw2 against depth first): mean test accuracy
  over seeds, with the theory's predictor as labelled contours (from a fine grid of the same theory),
  diverged networks marked, He (sw2 = 2) and Xavier (sw2 = 1) marked on a sw2 axis; for tanh the
  accuracy ridge (the sw2 of best accuracy at each depth) and its fit log sw2 = a + b log L; the
  float32 overflow line (depth where log p^(L) = log(float32 max) = 88.72) wherever a panel crosses it;
* ``scatter_<predictor>.png``: accuracy against the predictor, with Spearman's rank correlation;
* ``summary.json``: the predictor, rank correlation and ridge fit in numbers.

Predictors (THEORY.md sections 5-6), from :func:`meanfield.theory.trajectory` with the data's own input
statistics p0, gamma0: tanh: log R = log(chi^(0) / chi^(L)); ReLU and alpha-ReLU: log s^(L). One theory
call at the largest depth gives every depth (the chi factors and s^(l) of layer l do not depend on the
layers above it). A NaN or infinite predictor is masked, hatched and counted, never plotted as a value.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import stats

from ..spec import Spec
from .sweep import VALUE_AXES, read_results

#: log of the largest float32: beyond it p^(L) = <x^2> (and the squared activations) overflow.
LOG_F32_MAX = float(np.log(np.finfo(np.float32).max))
PREDICTORS = {"tanh": "log_R", "relu": "log_s", "alpha_relu": "log_s"}
LABELS = {"log_R": "log R = log chi^(0)/chi^(L)", "log_s": "log s^(L)", "log_p": "log p^(L)"}
AXIS_LABELS = {"sw2": "sigma_w^2", "sv2": "sigma_v^2", "sb2": "sigma_b^2", "sa2": "sigma_a^2",
               "alpha": "alpha", "depth": "depth L"}
HE_SW2, XAVIER_SW2 = 2.0, 1.0
MAX_PANELS = 6
_FINE = 60


# ------------------------------------------------------------------------------------------ theory
def theory_at(arch: str, act: str, points: dict, max_depth: int, p0: float, gamma0: float) -> dict:
    """Predictors for every depth 1..max_depth at each point.

    Args:
      points: arrays (n,) of ``alpha, sw2, sv2, sb2, sa2``.
    Returns:
      dict of arrays (n, max_depth + 1), index L = the value for a depth-L network: ``log_R``,
      ``log_s``, ``log_p``.
    """
    from ..theory import trajectory

    spec = Spec(arch=arch, act=act, depth=int(max_depth), p0=p0, gamma0=gamma0,
                **{a: np.asarray(points[a], np.float64) for a in VALUE_AXES})
    traj = trajectory(spec)
    log_chi = np.asarray(traj.log_chi)
    return {"log_R": log_chi[..., :1] - log_chi, "log_s": np.asarray(traj.log_s), "log_p": np.asarray(traj.log_p)}


# --------------------------------------------------------------------------------------- the table
def cells(res: dict) -> dict:
    """Mean over seeds of each (alpha, sw2, sv2, sb2, sa2, depth): accuracy, count, diverged count."""
    keys = list(zip(*(res[a] for a in VALUE_AXES), res["depth"]))
    uniq = sorted(set(keys))
    index = {k: i for i, k in enumerate(uniq)}
    idx = np.array([index[k] for k in keys])
    n = np.bincount(idx, minlength=len(uniq))
    out = {a: np.array([k[j] for k in uniq], np.float64) for j, a in enumerate(VALUE_AXES)}
    out["depth"] = np.array([k[-1] for k in uniq], np.int64)
    out["test_acc"] = np.bincount(idx, weights=res["test_acc"], minlength=len(uniq)) / n
    out["n"] = n
    out["n_diverged"] = np.bincount(idx, weights=res["diverged"] > 0, minlength=len(uniq)).astype(int)
    return out


def _fit_loglog(points, key):
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


def fit_ridge(xs, depths, acc, *, band: float = 0.05, contrast: float = 0.05, chance: float = 0.1) -> dict:
    """Ridge of accuracy over (sw2, L) and the edge where accuracy falls off above it.

    For each depth (one row of the heatmap):

    * ``sw2``: the ridge location, the accuracy-weighted centre (in log sw2) of the cells within
      ``band`` of the row's best accuracy, weights acc - (best - band);
    * ``resolved``: the row's best accuracy exceeds both ends of the row by at least ``contrast``,
      i.e. the peak lies inside the grid (a flat row says nothing about where the ridge is), and
      chance by at least 0.2 (a row where every network failed has no ridge);
    * ``edge``: the first sw2 above the best cell where accuracy falls below the midpoint between the
      best accuracy and chance (``chance``), log-interpolated between grid cells (None if it does not
      fall inside the grid).

    The ridge fit log sw2 = a + b log L uses the resolved rows; the edge fit, the rows with an edge.
    ``C_sw2_L`` is the geometric mean of sw2 * L over the fitted points (the constant of sw2 L = C).
    """
    points = []
    for L in np.unique(depths):
        sel = (depths == L) & np.isfinite(acc) & (xs > 0)
        if sel.sum() == 0:
            continue
        order = np.argsort(xs[sel])
        x, a = xs[sel][order], acc[sel][order]
        best = int(np.argmax(a))
        peak = a[best]
        w = np.maximum(a - (peak - band), 0.0)
        centre = float(np.exp(np.sum(w * np.log(x)) / np.sum(w)))
        trained = peak >= chance + 0.2
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
    b, b_se, a, c = _fit_loglog([p for p in points if p["resolved"]], "sw2")
    eb, eb_se, ea, ec = _fit_loglog(points, "edge")
    return {"points": points, "n_fit": sum(p["resolved"] for p in points),
            "slope_b": b, "slope_se": b_se, "intercept_a": a, "C_sw2_L": c,
            "n_edge": sum(p["edge"] is not None for p in points),
            "edge_slope_b": eb, "edge_slope_se": eb_se, "edge_intercept_a": ea, "edge_C_sw2_L": ec}


def _edges(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if len(v) == 1:
        half = 0.5 * (abs(v[0]) or 1.0)
        return np.array([v[0] - half, v[0] + half])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _fmt_value(v: float) -> str:
    return f"{v:.4g}"


# ---------------------------------------------------------------------------------------- figures
def _swept_groups(table: dict, zipped: tuple) -> list[tuple[str, ...]]:
    """Swept axes as groups: a zipped set of axes moves together and counts as one group."""
    groups = []
    for a in VALUE_AXES + ("depth",):
        if len(np.unique(table[a])) < 2:
            continue
        if a in zipped:
            group = tuple(z for z in zipped if len(np.unique(table[z])) > 1)
            if group not in groups:
                groups.append(group)
        else:
            groups.append((a,))
    return groups


def _panel(ax, fig, table, mask, x_axis, y_axis, ctx, facet_values, note):
    """One heatmap panel; returns its ridge fit (tanh, sw2 against depth) or None, and legend handles."""
    t = {k: v[mask] for k, v in table.items()}
    xv, yv = np.unique(t[x_axis]), np.unique(t[y_axis])
    grid = np.full((len(yv), len(xv)), np.nan)
    div = np.zeros_like(grid)
    for x, y, acc, nd in zip(t[x_axis], t[y_axis], t["test_acc"], t["n_diverged"]):
        i, j = np.searchsorted(yv, y), np.searchsorted(xv, x)
        grid[i, j] = acc
        div[i, j] += nd
    xe, ye = _edges(xv), _edges(yv)
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grid), cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax, label="test accuracy" + (" (mean over seeds)" if table["n"].max() > 1 else ""))
    handles = []
    di, dj = np.nonzero(div > 0)
    if len(di):
        ax.scatter(xv[dj], yv[di], marker="x", color="red", s=30, linewidths=1.2)
        handles.append(ax.scatter([], [], marker="x", color="red", label="diverged (NaN/inf loss)"))

    if facet_values is not None:
        _predictor_overlay(ax, ctx, x_axis, y_axis, xe, ye, facet_values, handles)
    ridge = None
    if ctx["act"] == "tanh" and x_axis == "sw2" and y_axis == "depth":
        ridge = fit_ridge(t["sw2"], t["depth"], t["test_acc"])
        pts = ridge["points"]
        for resolved, style in ((True, dict(mfc="white", mec="black")), (False, dict(mfc="none", mec="white"))):
            sel = [p for p in pts if p["resolved"] == resolved]
            if sel:
                ax.plot([p["sw2"] for p in sel], [p["depth"] for p in sel], "o", ms=6, **style)
        handles.append(ax.plot([], [], "o", mfc="white", mec="black",
                               label="ridge: best-accuracy centre per depth (hollow: peak not inside grid)")[0])
        edges = [p for p in pts if p["edge"] is not None]
        if edges:
            ax.plot([p["edge"] for p in edges], [p["depth"] for p in edges], "v", color="orange", ms=6)
            handles.append(ax.plot([], [], "v", color="orange", label="edge: accuracy falls halfway to chance")[0])
        L = np.linspace(max(ye[0], 1.0), ye[-1], 200)
        fits = []
        for key, color, what in (("", "white", "ridge"), ("edge_", "orange", "edge")):
            if ridge[key + "slope_b"] is None:
                continue
            x_fit = np.exp(ridge[key + "intercept_a"]) * L ** ridge[key + "slope_b"]
            keep = (x_fit >= xe[0]) & (x_fit <= xe[-1])
            ax.plot(x_fit[keep], L[keep], "--", color=color, lw=1.5)
            handles.append(ax.plot([], [], "--", color=color, label=f"{what} fit log sw2 = a + b log L")[0])
            se = ridge[key + "slope_se"]
            fits.append(f"{what}: b = {ridge[key + 'slope_b']:.2f}" + ("" if se is None else f" +- {se:.2f}")
                        + f", sw2 L ~ {ridge[key + 'C_sw2_L']:.0f}")
        if fits:
            note = note + "\n" + "; ".join(fits)
    if x_axis == "sw2":
        for value, name, style in ((HE_SW2, "He", "-."), (XAVIER_SW2, "Xavier", "--")):
            if xe[0] <= value <= xe[-1]:
                ax.axvline(value, color="magenta", ls=style, lw=1.2)
                handles.append(ax.plot([], [], style, color="magenta", label=f"{name} (sw2 = {value:g})")[0])
            else:
                handles.append(Patch(fill=False, edgecolor="none", label=f"{name} sw2 = {value:g}: off grid"))
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(AXIS_LABELS[x_axis])
    ax.set_ylabel(AXIS_LABELS[y_axis])
    ax.set_title(note, fontsize=9)
    return ridge, handles


def _levels(values: np.ndarray) -> np.ndarray:
    """Contour levels at spread-out quantiles of the predictor over the panel, rounded to two significant
    digits (predictors such as log s^(L) of a ReLU grid span orders of magnitude unevenly)."""
    q = np.nanpercentile(values, [5, 20, 35, 50, 65, 80, 95])
    digits = 1 - np.floor(np.log10(np.maximum(np.abs(q), 1e-12))).astype(int)
    levels = np.unique([round(float(v), int(d)) for v, d in zip(q, digits)])
    inside = levels[(levels > values.min()) & (levels < values.max())]
    return inside if len(inside) else np.linspace(values.min(), values.max(), 5)[1:-1]


def _predictor_overlay(ax, ctx, x_axis, y_axis, xe, ye, facet_values, handles):
    """Contours of the predictor (and the float32 overflow line) on a fine grid of the panel."""
    name = ctx["predictor"]
    xf = np.linspace(max(xe[0], 0.0) if x_axis != "alpha" else max(xe[0], 0.501), xe[-1], _FINE)
    if x_axis == "alpha":
        xf = np.clip(xf, 0.501, 1.0)
    base = {a: np.full(1, facet_values.get(a, np.nan)) for a in VALUE_AXES}
    if y_axis == "depth":
        pts = {a: np.broadcast_to(base[a], xf.shape) for a in VALUE_AXES}
        pts[x_axis] = xf
        depth_max = int(np.ceil(ye[-1]))
        th = theory_at(ctx["arch"], ctx["act"], pts, depth_max, ctx["p0"], ctx["gamma0"])
        yf = np.arange(max(1, int(np.floor(ye[0]))), depth_max + 1)
        pred = {k: v[:, yf].T for k, v in th.items()}  # (n_y, n_x)
    else:
        yf = np.linspace(max(ye[0], 0.0), ye[-1], _FINE)
        X, Y = np.meshgrid(xf, yf)
        pts = {a: np.broadcast_to(base[a], X.shape).ravel() for a in VALUE_AXES}
        pts[x_axis], pts[y_axis] = X.ravel(), Y.ravel()
        depth = int(facet_values["depth"])
        th = theory_at(ctx["arch"], ctx["act"], pts, depth, ctx["p0"], ctx["gamma0"])
        pred = {k: v[:, depth].reshape(X.shape) for k, v in th.items()}
    values = np.ma.masked_invalid(pred[name])
    if values.count() >= 4 and np.ptp(values.compressed()) > 0:
        cs = ax.contour(xf, yf, values, levels=_levels(values.compressed()), colors="white", linewidths=0.9)
        ax.clabel(cs, fmt="%.3g", fontsize=7)
        handles.append(ax.plot([], [], "-", color="0.4", label=f"theory (white contours): {LABELS[name]}")[0])
    if np.ma.count_masked(values):
        ax.contourf(xf, yf, np.ma.getmaskarray(values).astype(float), levels=[0.5, 1.5], colors="none",
                    hatches=["////"])
        handles.append(Patch(fill=False, hatch="////", label="predictor NaN/inf (masked)"))
    log_p = np.ma.masked_invalid(pred["log_p"])
    if log_p.count() and log_p.min() < LOG_F32_MAX < log_p.max():
        ax.contour(xf, yf, log_p, levels=[LOG_F32_MAX], colors="red", linewidths=1.8, linestyles="--")
        handles.append(ax.plot([], [], "--", color="red", label="float32 overflow: log p^(L) = 88.72")[0])


def _edge_predictor(ridge: dict, ctx: dict, facet: dict | None):
    """Median theory predictor at the edge points (where accuracy falls halfway to chance): the level
    of the theory's contour that the fall-off follows. None without edge points or a facet."""
    pts = [p for p in ridge["points"] if p["edge"] is not None]
    if not pts or facet is None:
        return None
    points = {a: np.full(len(pts), facet.get(a, np.nan)) for a in VALUE_AXES}
    points["sw2"] = np.array([p["edge"] for p in pts])
    th = theory_at(ctx["arch"], ctx["act"], points, max(p["depth"] for p in pts), ctx["p0"], ctx["gamma0"])
    vals = th[ctx["predictor"]][np.arange(len(pts)), [p["depth"] for p in pts]]
    for p, v in zip(pts, vals):
        p["edge_" + ctx["predictor"]] = float(v)
    vals = vals[np.isfinite(vals)]
    return float(np.median(vals)) if len(vals) else None


def _save(fig, path: str) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def analyze_sweep(out_dir: str, figures_dir: str | None = None, prefix: str | None = None) -> dict:
    """Write the heatmaps, scatter and summary of a sweep directory; returns the summary.

    Args:
      out_dir: the sweep directory (``config.json`` and ``results.csv``).
      figures_dir: also copy the figures there, named ``<prefix><name>.png``.
      prefix: file-name prefix in ``figures_dir`` (default: the sweep directory's name and ``_``).
    """
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    eff = config["effective"]
    res = read_results(os.path.join(out_dir, "results.csv"))
    if len(res["test_acc"]) == 0:
        raise ValueError(f"{out_dir}/results.csv has no finished networks yet")
    table = cells(res)
    ctx = {"arch": eff["arch"], "act": eff["act"], "predictor": PREDICTORS[eff["act"]],
           "p0": config["input_stats"]["p0"], "gamma0": config["input_stats"]["gamma0"]}
    name = ctx["predictor"]
    written = []

    # predictor at every cell: one theory call at the largest depth
    th = theory_at(ctx["arch"], ctx["act"], {a: table[a] for a in VALUE_AXES}, int(table["depth"].max()),
                   ctx["p0"], ctx["gamma0"])
    at = np.arange(len(table["depth"]))
    pred = th[name][at, table["depth"]]
    overflow = th["log_p"][at, table["depth"]] > LOG_F32_MAX
    finite = np.isfinite(pred)

    groups = _swept_groups(table, tuple(eff.get("zip", ())))
    pairs = [(g2, g1) if g1 == ("depth",) else (g1, g2) for g1, g2 in itertools.combinations(groups, 2)]
    pairs.sort(key=lambda p: (p != (("sw2",), ("depth",)), p[1] != ("depth",)))
    ridges = []
    for x_group, y_group in pairs:
        x_axis, y_axis = x_group[0], y_group[0]
        paired = [a for a in x_group[1:] + y_group[1:]]
        others = [g for g in groups if g not in (x_group, y_group)]
        other_axes = [a for g in others for a in g]
        combos = sorted(set(zip(*(table[a] for a in other_axes)))) if other_axes else [()]
        averaged = len(combos) > MAX_PANELS
        panels = [None] if averaged else combos
        ncol = min(3, len(panels))
        nrow = -(-len(panels) // ncol)
        fig = Figure(figsize=(6.2 * ncol, 5.0 * nrow), layout="constrained")
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        handles = {}
        for ax, combo in zip(axes, panels):
            if combo is None:
                mask = np.ones(len(table["depth"]), bool)
                facet = None
                note = f"mean over {', '.join(other_axes)} (predictor contours omitted: it varies with them)"
            elif paired:
                mask = np.ones(len(table["depth"]), bool)
                for a, v in zip(other_axes, combo):
                    mask &= table[a] == v
                facet = None
                note = (f"{', '.join(paired)} paired with the axes (predictor contours omitted)"
                        + "".join(f", {a} = {_fmt_value(v)}" for a, v in zip(other_axes, combo)))
            else:
                mask = np.ones(len(table["depth"]), bool)
                for a, v in zip(other_axes, combo):
                    mask &= table[a] == v
                facet = {a: float(np.unique(table[a][mask])[0]) for a in VALUE_AXES + ("depth",)
                         if a not in (x_axis, y_axis)}
                note = ", ".join(f"{a} = {_fmt_value(v)}" for a, v in zip(other_axes, combo))
                fixed = [f"{a} = {_fmt_value(facet[a])}" for a in VALUE_AXES + ("depth",)
                         if a in facet and a not in other_axes and not (a == "alpha" and ctx["act"] != "alpha_relu")
                         and not (ctx["arch"] == "rrn" and a in ("sv2", "sa2"))]
                note = "; ".join(s for s in (note, ", ".join(fixed)) if s)
            # averaged panels: the mean over the other axes of each (x, y) cell
            if combo is None:
                sub = _average(table, mask, x_axis, y_axis)
            else:
                sub = table
            ridge, hs = _panel(ax, fig, sub, mask if combo is not None else np.ones(len(sub["depth"]), bool),
                               x_axis, y_axis, ctx, facet, note)
            for h in hs:
                handles.setdefault(h.get_label(), h)
            if ridge is not None:
                ridge["facet"] = note
                ridge["edge_predictor"] = _edge_predictor(ridge, ctx, facet)
                ridges.append(ridge)
        if paired:
            for ax in axes[:len(panels)]:
                for a, group in ((x_axis, x_group), (y_axis, y_group)):
                    if len(group) > 1:
                        label = f"{AXIS_LABELS[a]} (paired with {', '.join(group[1:])})"
                        (ax.set_xlabel if a == x_axis else ax.set_ylabel)(label)
        fig.legend(handles=list(handles.values()), loc="upper center", ncol=min(3, len(handles)) or 1,
                   fontsize=8, frameon=True, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle(f"MNIST, {ctx['arch'].upper()} {ctx['act']}, width {eff['train']['width']}, "
                     f"{eff['train']['epochs']} epochs, {config['n_train']} training examples")
        path = os.path.join(out_dir, f"heatmap_{x_axis}_{y_axis}.png")
        _save(fig, path)
        written.append(path)

    # accuracy against the predictor
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    acc = table["test_acc"]
    use = finite
    rho = p_value = None
    if use.sum() >= 3 and np.ptp(pred[use]) > 0 and np.ptp(acc[use]) > 0:
        r = stats.spearmanr(pred[use], acc[use])
        rho, p_value = float(r.statistic), float(r.pvalue)
    ok = use & (table["n_diverged"] == 0)
    rho_trained = None
    if (table["n_diverged"] > 0).any() and ok.sum() >= 3 and np.ptp(pred[ok]) > 0 and np.ptp(acc[ok]) > 0:
        rho_trained = float(stats.spearmanr(pred[ok], acc[ok]).statistic)
    below = use & ~overflow
    rho_below = None
    if overflow.any() and below.sum() >= 3 and np.ptp(pred[below]) > 0 and np.ptp(acc[below]) > 0:
        rho_below = float(stats.spearmanr(pred[below], acc[below]).statistic)
    sc = ax.scatter(pred[use], acc[use], c=table["depth"][use], cmap="plasma", s=22)
    fig.colorbar(sc, ax=ax, label="depth L")
    if overflow.any():
        ax.scatter(pred[use & overflow], acc[use & overflow], facecolors="none", edgecolors="red", s=60,
                   label="beyond float32 overflow (log p^(L) > 88.72)")
    dv = use & (table["n_diverged"] > 0)
    if dv.any():
        ax.scatter(pred[dv], acc[dv], marker="x", color="red", s=30, label="diverged")
    if overflow.any() or dv.any():
        ax.legend(fontsize=8)
    ax.set_xlabel(f"theory predictor: {LABELS[name]}")
    ax.set_ylabel("test accuracy")
    title = f"Spearman rho = {rho:.3f} (p = {p_value:.2g}), {int(use.sum())} cells" if rho is not None else \
        f"Spearman rho undefined ({int(use.sum())} usable cells)"
    if rho_below is not None:
        title += f"\nrho below the overflow line = {rho_below:.3f}"
    if rho_trained is not None:
        title += f"\nrho over cells without diverged networks = {rho_trained:.3f}"
    if (~finite).any():
        title += f"\n{int((~finite).sum())} cells with NaN/inf predictor left out"
    ax.set_title(title, fontsize=9)
    path = os.path.join(out_dir, f"scatter_{name}.png")
    _save(fig, path)
    written.append(path)

    summary = {
        "arch": ctx["arch"], "act": ctx["act"], "predictor": name, "n_cells": int(len(acc)),
        "n_predictor_nonfinite": int((~finite).sum()),
        "spearman_rho": rho, "spearman_p": p_value, "spearman_rho_below_overflow": rho_below,
        "spearman_rho_not_diverged": rho_trained, "n_cells_diverged": int((table["n_diverged"] > 0).sum()),
        "n_overflow_cells": int(overflow.sum()), "ridges": ridges,
        "input_stats": config["input_stats"], "figures": [os.path.basename(p) for p in written],
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    if figures_dir:
        os.makedirs(figures_dir, exist_ok=True)
        prefix = prefix if prefix is not None else os.path.basename(os.path.normpath(out_dir)) + "_"
        for p in written:
            shutil.copyfile(p, os.path.join(figures_dir, prefix + os.path.basename(p)))
    return summary


def _average(table: dict, mask: np.ndarray, x_axis: str, y_axis: str) -> dict:
    """Cells averaged over every axis but (x, y)."""
    keys = list(zip(table[x_axis][mask], table[y_axis][mask]))
    uniq = sorted(set(keys))
    index = {k: i for i, k in enumerate(uniq)}
    idx = np.array([index[k] for k in keys])
    n = np.bincount(idx, minlength=len(uniq))
    out = {a: np.full(len(uniq), np.nan) for a in VALUE_AXES}
    out["depth"] = np.zeros(len(uniq), np.int64)
    out[x_axis] = np.array([k[0] for k in uniq])
    out[y_axis] = np.array([k[1] for k in uniq])
    out["test_acc"] = np.bincount(idx, weights=table["test_acc"][mask], minlength=len(uniq)) / n
    out["n"] = np.bincount(idx, weights=table["n"][mask], minlength=len(uniq)).astype(int)
    out["n_diverged"] = np.bincount(idx, weights=table["n_diverged"][mask], minlength=len(uniq)).astype(int)
    return out


def summary_lines(summary: dict) -> list[str]:
    """Human-readable lines of a summary (what ``meanfield train`` prints at the end)."""
    lines = []
    label = LABELS[summary["predictor"]]
    if summary["spearman_rho"] is not None:
        lines.append(f"Spearman rank correlation of test accuracy with {label}: rho = "
                     f"{summary['spearman_rho']:.3f} (p = {summary['spearman_p']:.2g}, "
                     f"{summary['n_cells'] - summary['n_predictor_nonfinite']} cells)")
    else:
        lines.append(f"Spearman rank correlation with {label}: undefined (too few distinct cells)")
    if summary.get("spearman_rho_not_diverged") is not None:
        lines.append(f"  over the {summary['n_cells'] - summary['n_cells_diverged']} cells without a diverged "
                     f"network: rho = {summary['spearman_rho_not_diverged']:.3f}")
    if summary["spearman_rho_below_overflow"] is not None:
        lines.append(f"  below the float32 overflow line: rho = {summary['spearman_rho_below_overflow']:.3f}")
    if summary["n_predictor_nonfinite"]:
        lines.append(f"  {summary['n_predictor_nonfinite']} cells have a NaN/inf predictor (left out)")
    for r in summary["ridges"]:
        where = f" [{r['facet']}]" if r.get("facet") else ""
        pm = lambda se: "" if se is None else f" +- {se:.2f}"  # noqa: E731
        if r["slope_b"] is None:
            lines.append(f"ridge{where}: fewer than two depths with a peak inside the grid; no fit")
        else:
            lines.append(f"ridge{where}: log sw2 = a + b log L with b = {r['slope_b']:.3f}{pm(r['slope_se'])} "
                         f"(theory: -1), on {r['n_fit']} depths with a peak inside the grid; "
                         f"sw2 * L ~ {r['C_sw2_L']:.0f}")
        if r["edge_slope_b"] is not None:
            lines.append(f"edge{where}: accuracy falls off above log sw2 = a + b log L with "
                         f"b = {r['edge_slope_b']:.3f}{pm(r['edge_slope_se'])}, on {r['n_edge']} depths; "
                         f"sw2 * L ~ {r['edge_C_sw2_L']:.0f}")
        if r.get("edge_predictor") is not None:
            lines.append(f"edge{where}: median theory {LABELS[summary['predictor']]} along it = "
                         f"{r['edge_predictor']:.2f}")
    return lines
