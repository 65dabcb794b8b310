"""Figures of a sweep: accuracy heatmaps with the theory overlaid, the chosen learning rates, and
accuracy against the theory's predictor. Every number drawn comes from :mod:`meanfield.train.analysis`.

Written into the sweep directory (and copied into a figures directory when asked):

* ``heatmap.png``: test accuracy over (x, L), x = sw2 (alpha for an alpha sweep), one panel per
  protocol (per facet for a sweep over several sv2/sa2 pairs, under the ``best`` protocol). Colour
  runs from chance (0.1) to 1; diverged cells are their own class (grey, hatched), partly diverged
  cells carry a red x, cells not yet trained are blank. White contours: the theory's predictor
  (log R or log s^(L)); red dashed: the float32 overflow line log p^(L) = 88.72; magenta: He (sw2 = 2)
  and Xavier (sw2 = 1). The ridge (best-accuracy centre per depth, white circles), its fit
  log x = a + b log L with the 95% bootstrap band, and the edge with its 95% bootstrap bar (orange).
* ``lr_map.png``: the learning rate the ``best`` protocol chose in each cell (on validation accuracy).
* ``scatter.png``: accuracy against the predictor (``best`` protocol), coloured by depth, with the rank
  correlations.
* ``schemes.png`` (when the sweep has He/Xavier siblings, :mod:`meanfield.train.schemes`): test
  accuracy against depth of the theory's depth-aware pick, the grid's best cell (chosen on
  validation), He and Xavier, with 95% bootstrap intervals; diverged entries are marked on the
  chance line.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
from matplotlib import colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..spec import NEUTRAL
from .analysis import (CHANCE, Runs, analyze, branch_scale, facet_labels, facet_mask, facets, fit_constant,
                       format_estimate, load, product_law, swept_axis, variants)
from .predictors import LOG_F32_MAX, THEORY_AXES, theory_at

LABELS = {"log_R": "log R = log chi^(0)/chi^(L)", "log_s": "log s^(L)", "log_p": "log p^(L)"}
AXIS_LABELS = {"sw2": "sigma_w^2", "alpha": "alpha", "depth": "depth L"}
HE_SW2, XAVIER_SW2 = 2.0, 1.0
_FINE = 60
_NORM = colors.PowerNorm(gamma=4.0, vmin=CHANCE, vmax=1.0)


def _log_axis(values: np.ndarray) -> bool:
    v = np.unique(values)
    return bool(v.min() > 0 and v.max() / v.min() > 4)


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted grid values (midpoints, geometric on a log axis)."""
    v = np.log(values) if log else np.asarray(values, np.float64)
    if len(v) == 1:
        e = np.array([v[0] - 0.5, v[0] + 0.5]) if log else np.array([v[0] - 0.5 * (abs(v[0]) or 1), v[0] + 0.5 * (abs(v[0]) or 1)])
    else:
        mid = 0.5 * (v[1:] + v[:-1])
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _levels(values: np.ndarray) -> np.ndarray:
    """Contour levels at spread-out quantiles of the predictor over the panel, two significant digits."""
    q = np.nanpercentile(values, [5, 20, 35, 50, 65, 80, 95])
    digits = 1 - np.floor(np.log10(np.maximum(np.abs(q), 1e-12))).astype(int)
    levels = np.unique([round(float(v), int(d)) for v, d in zip(q, digits)])
    inside = levels[(levels > values.min()) & (levels < values.max())]
    return inside if len(inside) else np.linspace(values.min(), values.max(), 5)[1:-1]


def _theory_overlay(ax, config, facet, x_axis, xe, ye, predictor, handles):
    """Predictor contours and the float32 overflow line on a fine grid of the panel."""
    eff, st = config["effective"], config["input_stats"]
    lo, hi = xe[0], xe[-1]
    if x_axis == "alpha":
        lo, hi = max(lo, 0.501), min(hi, 1.0)
    xf = np.geomspace(lo, hi, _FINE) if lo > 0 and _log_axis(np.array([lo, hi])) else np.linspace(max(lo, 0.0), hi, _FINE)
    pts = {a: np.full(_FINE, facet[a] if a in facet else NEUTRAL[a]) for a in THEORY_AXES if a != x_axis}
    pts[x_axis] = xf
    depth_max = int(np.ceil(ye[-1]))
    th = theory_at(eff["arch"], eff["act"], pts, depth_max, st["p0"], st["gamma0"], branch_scale(config),
                   variants(config))
    yf = np.arange(max(1, int(np.floor(ye[0]))), depth_max + 1)
    pred = np.ma.masked_invalid(th[predictor][:, yf].T)
    if pred.count() >= 4 and np.ptp(pred.compressed()) > 0:
        cs = ax.contour(xf, yf, pred, levels=_levels(pred.compressed()), colors="white", linewidths=0.9)
        ax.clabel(cs, fmt="%.3g", fontsize=7)
        handles["contours"] = ax.plot([], [], "-", color="0.4", label=f"theory (white contours): {LABELS[predictor]}")[0]
    log_p = np.ma.masked_invalid(th["log_p"][:, yf].T)
    if log_p.count() and log_p.min() < LOG_F32_MAX < log_p.max():
        ax.contour(xf, yf, log_p, levels=[LOG_F32_MAX], colors="red", linewidths=1.8, linestyles="--")
        handles["overflow"] = ax.plot([], [], "--", color="red", label="float32 overflow: log p^(L) = 88.72")[0]


def _ridge_overlay(ax, entry, handles, x_axis):
    pts = entry["ridge"]["points"]
    for resolved, style in ((True, dict(mfc="white", mec="black")), (False, dict(mfc="none", mec="white"))):
        sel = [p for p in pts if p["resolved"] == resolved and p["sw2"] is not None]
        if sel:
            ax.plot([p["sw2"] for p in sel], [p["depth"] for p in sel], "o", ms=6, **style)
    handles["ridge"] = ax.plot([], [], "o", mfc="white", mec="black",
                               label="ridge: best-accuracy centre per depth (hollow: peak not inside grid)")[0]
    edges = [p for p in pts if p["edge"] is not None]
    if edges:
        x = np.array([p["edge"] for p in edges])
        ci = np.array([p.get("edge_ci95") or (p["edge"], p["edge"]) for p in edges]).T
        ax.errorbar(x, [p["depth"] for p in edges], xerr=np.abs(ci - x), fmt="v", color="orange", ms=6,
                    elinewidth=1.2, capsize=2)
        handles["edge"] = ax.plot([], [], "v", color="orange",
                                  label="edge: accuracy falls halfway to chance (bar: 95% bootstrap)")[0]
    r = entry["ridge"]
    if r["edge_slope_b"] is not None:  # drawn over the depths that have an edge, not extrapolated
        _fit_line(ax, r["edge_intercept_a"], r["edge_slope_b"], entry.get("edge_band"),
                  [p["depth"] for p in edges], "orange", 1.2, 0.2)
        handles["edge_fit"] = ax.plot([], [], "--", color="orange",
                                      label=f"edge fit log {x_axis} = a + b log L (band: 95% bootstrap)")[0]
    if r["slope_b"] is not None:
        _fit_line(ax, r["intercept_a"], r["slope_b"], entry.get("ridge_band"), [p["depth"] for p in pts],
                  "white", 1.5, 0.25)
        handles["fit"] = ax.plot([], [], "--", color="0.3", label=f"ridge fit log {x_axis} = a + b log L (band: 95% bootstrap)")[0]


def _fit_line(ax, a, b, band, depths, color, lw, alpha):
    """The fit log x = a + b log L as a dashed line with its bootstrap band (when it has one), over the
    range of ``depths``."""
    lo, hi = min(depths), max(depths)
    L = np.asarray(band["depth"]) if band else np.geomspace(lo, hi, 40)
    inside = (L >= lo * (1 - 1e-9)) & (L <= hi * (1 + 1e-9))
    ax.plot(np.exp(a) * L[inside] ** b, L[inside], "--", color=color, lw=lw)
    if band:
        ax.fill_betweenx(L[inside], np.asarray(band["sw2_lo"])[inside], np.asarray(band["sw2_hi"])[inside],
                         color=color, alpha=alpha, lw=0)


def _panel(ax, fig, config, runs: Runs, out: dict, entry: dict | None, facet: dict, x_axis: str,
           predictor: str, title: str, handles: dict):
    x, depth = runs.axes[x_axis], runs.axes["depth"]
    xv, yv = np.unique(x), np.unique(depth)
    logx = _log_axis(xv)
    xe, ye = _edges(xv, logx), _edges(yv, True)
    acc = np.full((len(yv), len(xv)), np.nan)
    div = np.zeros_like(acc, bool)
    part = np.zeros_like(acc, bool)
    for xi, di, a, d, f in zip(x, depth, out["acc"], out["diverged"], out["diverged_fraction"]):
        i, j = np.searchsorted(yv, di), np.searchsorted(xv, xi)
        acc[i, j], div[i, j], part[i, j] = a, d, (not d) and f > 0
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(acc), cmap="viridis", norm=_NORM, shading="flat")
    if div.any():
        ax.pcolor(xe, ye, np.ma.masked_where(~div, np.ones_like(acc)), cmap=colors.ListedColormap(["0.6"]),
                  hatch="////", edgecolor="0.3", lw=0)
        handles["diverged"] = Patch(facecolor="0.6", hatch="////", edgecolor="0.3",
                                    label="diverged (at least half of the seeds: NaN/inf loss)")
    if part.any():
        i, j = np.nonzero(part)
        ax.scatter(xv[j], yv[i], marker="x", color="red", s=30, linewidths=1.2)
        handles["partial"] = ax.scatter([], [], marker="x", color="red", label="some seeds diverged (mean of the others)")
    _theory_overlay(ax, config, facet, x_axis, xe, ye, predictor, handles)
    if entry is not None and "ridge" in entry:
        _ridge_overlay(ax, entry, handles, x_axis)
    if x_axis == "sw2":
        for value, name, style in ((HE_SW2, "He", "-."), (XAVIER_SW2, "Xavier", ":")):
            if xe[0] <= value <= xe[-1]:
                ax.axvline(value, color="magenta", ls=style, lw=1.4)
                handles[name] = ax.plot([], [], style, color="magenta", label=f"{name}: sw2 = {value:g}")[0]
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_yticks(yv, [str(int(v)) for v in yv])
    ax.minorticks_off()
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(AXIS_LABELS[x_axis])
    ax.set_ylabel(AXIS_LABELS["depth"])
    ax.set_title(title, fontsize=9)
    return mesh


def _fmt_ci(e: dict, digits: int = 2) -> str:
    return format_estimate(e, digits, missing="n/a")


def _panel_title(protocol: str, entry: dict, summary: dict, facet_note: str) -> str:
    x = summary["x_axis"]
    # a facet's name gets a line of its own: with it the correlations run wider than a panel
    head = f"{protocol}{facet_note}:" + ("\n" if facet_note else " ")
    lines = [f"{head}rho(acc, {summary['predictor']}) = {_fmt_ci(entry['rho_predictor'])}, "
             f"at fixed L {_fmt_ci(entry['partial_rho_predictor_given_depth'])}",
             f"baselines: rho(acc, L) = {_fmt_ci(entry['rho_depth'])}, rho(acc, {x}) = {_fmt_ci(entry['rho_' + x])}"]
    if "ridge_b" in entry and entry["ridge_b"]["value"] is not None:
        lines.append(f"ridge b = {_fmt_ci(entry['ridge_b'])}" + (" (theory -1)" if product_law(summary) else "")
                     + f", {fit_constant(summary, entry, 'ridge', _fmt_ci)}")
    if "edge_b" in entry and entry["edge_b"]["value"] is not None:
        lines.append(f"edge b = {_fmt_ci(entry['edge_b'])}, {fit_constant(summary, entry, 'edge', _fmt_ci)}")
    return "\n".join(lines)


def _save(fig, path: str) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _grid_figure(n: int):
    ncol = min(2, n)
    nrow = -(-n // ncol)
    fig = Figure(figsize=(6.6 * ncol, 5.4 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def write_figures(out_dir: str, summary: dict | None = None, figures_dir: str | None = None,
                  prefix: str | None = None) -> list[str]:
    """Draw the figures of a sweep directory (analysing it first unless ``summary`` is given); return
    their paths. ``figures_dir``: also copy them there as ``<prefix><name>.png`` (default prefix:
    ``mnist_<name of the sweep directory>_``)."""
    config, runs = load(out_dir)
    summary = summary or analyze(out_dir)
    x_axis = swept_axis(config, runs)
    predictor = summary["predictor"]
    eff = config["effective"]
    parts = facets(runs, x_axis)
    labels = facet_labels(parts)
    if len(parts) == 1:
        panels = [(p, parts[0], "") for p in runs.protocols()]
    else:
        panels = [("best", f, f" [{label}]") for f, label in zip(parts, labels)]
    kappa = f" (branch scale {summary['branch_scale']})" if "branch_scale" in summary else ""
    head = (f"MNIST, {eff['arch'].upper()}{kappa} {eff['act']}, {summary['readout']} readout, "
            f"width {eff['train']['width']}, "
            f"{eff['train']['epochs']} epochs, {config['n_train']} training examples, {summary['seeds']} seeds; "
            f"{summary['n_networks']} networks")
    written = []

    fig, axes = _grid_figure(len(panels))
    handles = {}
    mesh = None
    for ax, (protocol, facet, note) in zip(axes, panels):
        k = parts.index(facet)
        mask = facet_mask(runs, facet)
        sub = runs.subset(mask)
        entry = summary["facets"][k]["protocols"][protocol]
        mesh = _panel(ax, fig, config, sub, sub.outcome(protocol), entry, facet, x_axis, predictor,
                      _panel_title(protocol, entry, summary, note), handles)
    cb = fig.colorbar(mesh, ax=list(axes[:len(panels)]), shrink=0.8)
    cb.set_label("test accuracy, mean over seeds (bottom of the scale: chance 0.1)")
    cb.set_ticks([0.1, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
    fig.legend(handles=list(handles.values()), loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(head + "\nbest: learning rate per cell chosen on validation accuracy; lr=X: that rate everywhere",
                 fontsize=10)
    written.append(os.path.join(out_dir, "heatmap.png"))
    _save(fig, written[-1])

    # the learning rates the best protocol chose
    fig, axes = _grid_figure(len(parts))
    lr_norm = colors.LogNorm(vmin=runs.lrs.min(), vmax=max(runs.lrs.max(), runs.lrs.min() * 1.01))
    for ax, facet, label in zip(axes, parts, labels):
        sub = runs.subset(facet_mask(runs, facet))
        out = sub.outcome("best")
        x, depth = sub.axes[x_axis], sub.axes["depth"]
        xv, yv = np.unique(x), np.unique(depth)
        logx = _log_axis(xv)
        grid = np.full((len(yv), len(xv)), np.nan)
        for xi, di, lr in zip(x, depth, out["lr"]):
            grid[np.searchsorted(yv, di), np.searchsorted(xv, xi)] = lr
        m = ax.pcolormesh(_edges(xv, logx), _edges(yv, True), grid, cmap="coolwarm", norm=lr_norm)
        if logx:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_yticks(yv, [str(int(v)) for v in yv])
        ax.minorticks_off()
        ax.set_xlabel(AXIS_LABELS[x_axis])
        ax.set_ylabel(AXIS_LABELS["depth"])
        ax.set_title(label, fontsize=9)
    cb = fig.colorbar(m, ax=list(axes[:len(parts)]))
    cb.set_ticks(runs.lrs, labels=[f"{v:.2g}" for v in runs.lrs])
    cb.set_label("learning rate chosen (best mean validation accuracy)")
    fig.suptitle(head, fontsize=10)
    written.append(os.path.join(out_dir, "lr_map.png"))
    _save(fig, written[-1])

    # accuracy against the predictor, best protocol
    from .analysis import cell_predictors

    pred = cell_predictors(config, runs)[predictor]
    out = runs.outcome("best")
    fig = Figure(figsize=(6.6, 5.0), layout="constrained")
    ax = fig.subplots()
    ok = np.isfinite(out["acc"]) & np.isfinite(pred)
    sc = ax.scatter(pred[ok], out["acc"][ok], c=runs.axes["depth"][ok], cmap="plasma", s=22,
                    norm=colors.LogNorm())
    fig.colorbar(sc, ax=ax, label="depth L")
    ax.axhline(CHANCE, color="0.5", ls=":", lw=1)
    ax.text(ax.get_xlim()[0], CHANCE, " chance", va="bottom", fontsize=8, color="0.4")
    e = summary["protocols"]["best"]
    n_div = int(out["diverged"].sum())
    ax.set_title(f"rho(acc, {predictor}) = {_fmt_ci(e['rho_predictor'])}, partial at fixed L "
                 f"{_fmt_ci(e['partial_rho_predictor_given_depth'])}\n{int(ok.sum())} cells; {n_div} diverged cells "
                 f"not drawn; {int((~np.isfinite(pred)).sum())} with a non-finite predictor", fontsize=9)
    ax.set_xlabel(f"theory predictor: {LABELS[predictor]}")
    ax.set_ylabel("test accuracy (best protocol)")
    written.append(os.path.join(out_dir, "scatter.png"))
    _save(fig, written[-1])

    if "schemes" in summary:
        written.append(os.path.join(out_dir, "schemes.png"))
        _save(_schemes_figure(summary["schemes"], head), written[-1])

    if figures_dir:
        os.makedirs(figures_dir, exist_ok=True)
        prefix = prefix if prefix is not None else "mnist_" + os.path.basename(os.path.normpath(out_dir)) + "_"
        for p in written:
            shutil.copyfile(p, os.path.join(figures_dir, prefix + os.path.basename(p)))
    return written


_SCHEME_STYLE = {"grid_best": ("grid best (chosen on validation)", "black", "s"),
                 "theory": ("theory's depth-aware pick", "tab:green", "o"),
                 "he": ("He (sw2 = sv2 = 2, no biases)", "magenta", "^"),
                 "xavier": ("Xavier (sw2 = sv2 = 1, no biases)", "tab:blue", "v")}


def _schemes_figure(table: dict, head: str):
    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.subplots()
    depths = np.array([r["depth"] for r in table["rows"]], np.float64)
    names = ["grid_best", "theory", *table["presets"]]
    shift = np.exp(np.linspace(-0.04, 0.04, len(names)))  # side by side at each depth
    lows, any_diverged = [], False
    for k, name in enumerate(names):
        label, color, marker = _SCHEME_STYLE[name]
        vals = np.array([np.nan if r[name]["value"] is None else r[name]["value"] for r in table["rows"]])
        lo = np.array([np.nan if r[name]["ci95"] is None else r[name]["ci95"][0] for r in table["rows"]])
        hi = np.array([np.nan if r[name]["ci95"] is None else r[name]["ci95"][1] for r in table["rows"]])
        x = depths * shift[k]
        ok = np.isfinite(vals)
        ax.errorbar(x[ok], vals[ok], yerr=[np.nan_to_num(vals[ok] - lo[ok]), np.nan_to_num(hi[ok] - vals[ok])],
                    color=color, marker=marker, ms=5, lw=1.2, capsize=3, label=label)
        lows.append(np.nanmin(np.where(np.isfinite(lo), lo, vals)) if ok.any() else np.nan)
        if (~ok).any():
            any_diverged = True
            ax.plot(x[~ok], np.full((~ok).sum(), CHANCE), marker="x", ls="none", color=color, ms=8, mew=2)
    if any_diverged or not np.isfinite(lows).any():
        ax.axhline(CHANCE, color="0.5", ls=":", lw=1)
        ax.text(depths.min(), CHANCE, " chance; x: diverged (at least half of the seeds)", va="bottom",
                fontsize=8, color="0.4")
    else:  # zoom on the accuracies; chance (0.1) is below the axis
        ax.set_ylim(max(CHANCE, np.nanmin(lows) - 0.02), 1.0)
    ax.set_xscale("log")
    ax.set_xticks(depths, [str(int(v)) for v in depths])
    ax.minorticks_off()
    ax.set_xlabel(AXIS_LABELS["depth"])
    ax.set_ylabel("test accuracy, best protocol (95% bootstrap interval over seeds)"
                  + ("" if any_diverged else "\nchance 0.1 lies below the axis; no entry diverged"), fontsize=9)
    ax.legend(fontsize=8, loc="center left" if any_diverged else "lower left")  # clear of the chance line's label
    ax.set_title(head + f"\ntheory's pick: {table['rule']}", fontsize=8)
    return fig
