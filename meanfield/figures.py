"""Figure builders for the paper's dynamics figures (docs/theory.md, sections 5 and 6), shared by experiments/.

Every figure draws three things in fixed styles, so that a reader tells them apart at a glance:

* theory (the mean-field recursion of :mod:`meanfield.theory`): solid coloured line;
* simulation (finite-width networks of :mod:`meanfield.simulate`): markers with standard-error bars;
* asymptotic law (:mod:`meanfield.asymptotics`): dashed black line.

Values that are not finite or not positive on a log axis are masked and each panel says how many points
were left out. matplotlib is imported lazily with the Agg backend: the engines never need it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from . import asymptotics as asy
from .blocks import get_block
from .spec import Spec

RESNET = dict(sw2=1.0, sv2=1.0, sb2=0.5, sa2=0.5)
#: docs/theory.md, section 6: the tanh FRN of the gradient figure (sb2 from the reference values of section 7).
TANH_FRN = dict(sw2=1.69, sv2=1.5, sb2=0.49, sa2=0.5)


@dataclasses.dataclass(frozen=True)
class Net:
    """One network of the dynamics figures: ``name`` is the file stem, ``title`` the reader's name."""

    name: str
    title: str
    arch: str
    act: str
    params: dict
    alpha: float = 1.0

    def spec(self, depth: int) -> Spec:
        return Spec(self.arch, self.act, depth, alpha=self.alpha, **self.params)

    def laws(self) -> asy.Laws:
        return asy.predict(self.arch, self.act, alpha=self.alpha, **self.params)

    @property
    def fields(self) -> frozenset:
        """The hyperparameter fields of the network's block (:attr:`meanfield.blocks.Block.fields`)."""
        return get_block(self.arch).fields

    @property
    def family(self) -> str:
        return "relu" if self.act == "relu" else ("alpha" if self.act == "alpha_relu" else "tanh")


NETWORKS = (
    Net("tanh_rrn", "tanh RRN", "rrn", "tanh", dict(sw2=1.0, sb2=0.5)),
    Net("tanh_frn", "tanh FRN", "frn", "tanh", TANH_FRN),
    Net("relu_frn", "ReLU FRN", "frn", "relu", RESNET),
    Net("alpha060_frn", "α-ReLU FRN, α = 0.6", "frn", "alpha_relu", RESNET, 0.6),
    Net("alpha075_frn", "α-ReLU FRN, α = 0.75", "frn", "alpha_relu", RESNET, 0.75),
    Net("alpha090_frn", "α-ReLU FRN, α = 0.9", "frn", "alpha_relu", RESNET, 0.9),
)

#: The gated blocks of the dynamics figures (docs/blocks.md, highway). tanh: a chaotic setting (no bias,
#: sw2 = 4), where p settles, e -> 0 and R grows; ReLU: an ordered one, where p settles and 1 - e and R
#: fall exponentially in l (the setting of tests/test_highway.py).
HIGHWAY_TANH = dict(sw2=4.0, sb2=0.0, sg2=2.0, gate_bias=0.0)
HIGHWAY_RELU = dict(sw2=1.5, sb2=0.2, sg2=2.0, gate_bias=-1.0)

#: The further blocks (docs/blocks.md), with tanh and ReLU: the residual blocks' laws are read off each
#: block's own mean-field map (:func:`meanfield.asymptotics.block_limits`); the highway block has no law
#: (theory and simulation only).
BLOCK_NETWORKS = (
    Net("tanh_preact", "tanh pre-activation block", "preact", "tanh", TANH_FRN),
    Net("relu_preact", "ReLU pre-activation block", "preact", "relu", RESNET),
    Net("tanh_basic", "tanh two-layer branch (basic)", "basic", "tanh", TANH_FRN),
    Net("relu_basic", "ReLU two-layer branch (basic)", "basic", "relu", RESNET),
    Net("tanh_highway", "tanh highway block", "highway", "tanh", HIGHWAY_TANH),
    Net("relu_highway", "ReLU highway block", "highway", "relu", HIGHWAY_RELU),
)

#: Growing streams (docs/blocks.md, densenet, growth k = 1/4): their laws are powers of the depth
#: (:func:`meanfield.asymptotics.growth_limits`; ReLU exact, :func:`~meanfield.asymptotics.relu_growth_closed_form`).
#: Not in the exponent table: ``meanfield laws --measure`` takes residual blocks.
GROWTH_NETWORKS = (
    Net("tanh_densenet", "tanh densenet (k = 1/4)", "densenet", "tanh", dict(sw2=1.5, sb2=0.3)),
    Net("relu_densenet", "ReLU densenet (k = 1/4)", "densenet", "relu", dict(sw2=2.5, sb2=0.3)),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Depths and simulation sizes. ``QUICK`` rebuilds everything in minutes on 2 CPU cores."""

    depth_tanh: int
    depth_relu: int
    depth_alpha: int
    sim_depth: int
    width: int
    samples: int
    grad_depth: int = 10_000
    phase_grid: int = 60
    seed: int = 0

    def depth(self, net: Net) -> int:
        return {"tanh": self.depth_tanh, "relu": self.depth_relu, "alpha": self.depth_alpha}[net.family]


QUICK = Settings(depth_tanh=10_000, depth_relu=10_000, depth_alpha=100_000, sim_depth=200, width=1024, samples=8)
FULL = Settings(depth_tanh=100_000, depth_relu=10_000, depth_alpha=1_000_000, sim_depth=300, width=2048,
                samples=32, phase_grid=120)
#: For smoke tests only: seconds, not minutes.
TINY = Settings(depth_tanh=64, depth_relu=64, depth_alpha=64, sim_depth=16, width=32, samples=2, grad_depth=64,
                phase_grid=6)

THEORY_STYLE = dict(lw=2.4, alpha=0.85)
SIM_STYLE = dict(fmt="o", ms=4, mfc="none", mew=1.2, capsize=2, elinewidth=1.0)
LAW_STYLE = dict(color="black", ls="--", lw=1.2)
ALT_LAW_STYLE = dict(color="0.15", ls=":", lw=1.8, zorder=5)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: The variances of a block, in the order figures name them, with their symbols.
_VARIANCES = (("sw2", "σw²"), ("sv2", "σv²"), ("sb2", "σb²"), ("sa2", "σa²"), ("sg2", "S"), ("gate_bias", "c"))


def _fmt_params(net: Net) -> str:
    return ", ".join(f"{sym}={net.params[k]:g}" for k, sym in _VARIANCES if k in net.fields)


def _save(fig, title: str, top: float, out_dir: str, name: str) -> str:
    """Title ``fig`` (the top ``1 - top`` of the page), write it to ``out_dir/name`` and close it."""
    plt = _pyplot()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, top))
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------- masking
class _Masker:
    """Masks values a log axis cannot show (or that overflowed) and counts them for the panel's note."""

    def __init__(self):
        self.dropped = 0

    def __call__(self, y, log=True):
        y = np.asarray(y, np.float64)
        bad = ~np.isfinite(y) | ((y <= 0) if log else False)
        self.dropped += int(np.sum(bad))
        return np.where(bad, np.nan, y)

    def note(self, ax):
        """Append the count of masked points to the x label (where no legend can hide it)."""
        if self.dropped:
            ax.set_xlabel(ax.get_xlabel() + f"\n[{self.dropped} non-finite or non-positive values not drawn]",
                          color="firebrick")


def _sim_layers(sim_depth: int, log: bool, n: int = 14) -> np.ndarray:
    if log:
        return np.unique(np.geomspace(1, sim_depth, n).astype(int))
    return np.unique(np.linspace(1, sim_depth, n).astype(int))


def _errorbar(ax, mask, l, y, se, color, label):
    """Simulation points; lower bars clipped at 0.1% of the value so that a log axis can draw them."""
    y = mask(y)
    se = np.where(np.isfinite(se), se, 0.0)
    lower = np.minimum(se, 0.999 * np.abs(np.nan_to_num(y)))
    return ax.errorbar(l, y, yerr=[lower, se], color=color, label=label, **SIM_STYLE)


def _log_errorbar(ax, mask, l, log_y, log_se, color, label):
    """Points given as log y +- log_se: multiplicative bars, finite even where y itself overflows."""
    log_y = np.asarray(log_y, np.float64)
    ok = np.isfinite(log_y) & (log_y < 700)
    mask.dropped += int(np.sum(~ok))
    y = np.where(ok, np.exp(np.where(ok, log_y, 0.0)), np.nan)
    se = np.where(np.isfinite(log_se), log_se, 0.0)
    return ax.errorbar(l, y, yerr=[y * (1 - np.exp(-se)), y * np.expm1(se)], color=color, label=label,
                       **SIM_STYLE)


# ---------------------------------------------------------------------------------- dynamics
def _simulate(net: Net, settings: Settings, depth: int, dtype: str):
    """Finite-width (mean, stderr) of ``net`` at depth ``depth`` with the settings' width, samples and seed."""
    import jax

    from .simulate import simulate

    mean, se = simulate(net.spec(depth), settings.width, settings.samples, jax.random.key(settings.seed),
                        "fast", dtype)
    return mean.to_numpy(), se.to_numpy()


def _law_curves(net: Net, laws: asy.Laws, l, th):
    """(p, gap, s, R) law curves on layers ``l`` with labels; None where the figure shows no law.

    Laws fixed up to a constant (exponents only) are anchored to the theory at the last layer, and the
    label says so.
    """
    L = int(l[-1])
    out = {}
    anchored = f"(anchored at l = {L:g})"
    if get_block(net.arch).grows:
        return _growth_law_curves(net, laws, l, th)
    if all(getattr(laws, k) is None for k in asy.LAW_KEYS):  # no law derived for the block (highway)
        return out
    if net.family == "tanh" and laws.e_star is None:  # a block without closed forms: p and R only
        out["p"] = (laws.p_prefactor * l, f"law p = {laws.p_prefactor:.4g} l (the block's increment at large p)")
        out["R"] = (np.exp(laws.A * (np.sqrt(l) - math.sqrt(L)) + th.log_R_of[L]),
                    f"law ∝ exp({laws.A:.3f} √l) {anchored}")
    elif net.family == "tanh":
        kappa = laws.p_prefactor
        s_coef = 2 * (1 - laws.e_star) * kappa
        delta = f"l^-{laws.delta_star:.3f}"
        if "sv2" not in net.fields:  # x <- phi(Wx + b) + x: no V and no a, so p grows by Vphi(q) -> 1 a layer
            p_label = "law p = l (each layer adds Vφ(q) → 1)"
            s_label = f"law s = 2(1−e*) l = {s_coef:g} l, e* = 0"
            delta, R_law = f"l^(2/π − 1) = {delta}", f"exp(A √l), A = (4/3)√(2/π) σw = {laws.A:.3f}"
        else:
            p_label = f"law p = (σv²+σa²) l = {kappa:g} l"
            s_label = f"law s = 2(1−e*)(σv²+σa²) l = {s_coef:g} l"
            R_law = f"exp({laws.A:.3f} √l)"
        out["p"] = (kappa * l, p_label)
        out["s"] = (s_coef * l, s_label)
        gap_L = abs(th.e[L] - laws.e_star)
        out["gap"] = (gap_L * (l / L) ** -laws.delta_star, f"law ∝ {delta} {anchored}")
        out["R"] = (np.exp(laws.A * (np.sqrt(l) - math.sqrt(L)) + th.log_R_of[L]), f"law ∝ {R_law} {anchored}")
    elif net.family == "alpha":
        k = laws.p_exponent
        out["p"] = (laws.p_prefactor * l**k, f"law p = {laws.p_prefactor:.3g} l^{k:g}")
        s_L = th.t.s[L]
        out["s"] = (s_L * (l / L) ** k, f"law ∝ l^{k:g} {anchored}")
        gap_L = abs(th.e[L] - laws.e_star)
        out["gap"] = (gap_L * (l / L) ** -laws.delta_star, f"law ∝ l^-{laws.delta_star:.3f} {anchored}")
        out["R"] = (np.exp(laws.R_exponent * np.log(l / L) + th.log_R_of[L]),
                    f"law ∝ L^{laws.R_exponent:.3g} {anchored}")
    else:  # p, s and R are shown divided by B^l (see dynamics_figure)
        lim = asy.block_limits(net.spec(1))
        B, K = lim["B"], lim["K"]
        p_law = (1.0 + K / (B - 1)) - K / (B - 1) * np.exp(-l * math.log(B))  # p0 = 1
        out["p"] = (p_law, f"exact law p = B^l (p0 + K/(B-1)) − K/(B-1), K = {K:.4g}")
        if laws.one_minus_e_coef is not None:
            out["gap"] = (laws.one_minus_e_coef * l**-2.0, f"law 1−e = {laws.one_minus_e_coef:.4g} l^-2")
            out["s"] = (2 * p_law * laws.one_minus_e_coef * l**-2.0, "law s = 2 p (1−e)_law")
        out["R"] = (np.ones_like(l), f"exact law R = B^l, B = {math.exp(laws.log_B):.4g}")
    return out


def _growth_law_curves(net: Net, laws: asy.Laws, l, th) -> dict:
    """(p, R) law curves of a growing stream: ReLU's exact closed forms; otherwise p -> p* with its power
    approach and R ~ L^chi_1 (:func:`meanfield.asymptotics.growth_limits`), anchored at the last layer."""
    spec = net.spec(1)
    h = spec.hyper()
    L = int(l[-1])
    anchored = f"(anchored at l = {L:g})"
    if net.act == "relu":
        a = float(h.sw2) / 2
        exact = asy.relu_growth_closed_form(float(h.sw2), float(h.sb2), float(h.p0), float(spec.growth), l)
        return {"p": (exact["p"], f"exact law p = p* + (p0 − p*) Π_l ~ l^{a - 1:g}, p* = σb²/(2 − σw²) = "
                                  f"{exact['p_star']:.3g}\n(Π_l = Γ(l+c+a)Γ(c+1)/(Γ(c+a)Γ(l+c+1)), c = 1/k, a = σw²/2)"),
                "R": (np.exp(exact["log_R"]), f"exact law R = Γ(l+c+a)Γ(c)/(Γ(c+a)Γ(l+c)) ~ l^{a:g}")}
    out = {}
    if laws.R_exponent is not None:
        out["R"] = (np.exp(laws.R_exponent * np.log(l / L) + th.log_R_of[L]),
                    f"law ∝ l^χ₁, χ₁ = σw² V'(q*) = {laws.R_exponent:.4g} {anchored}")
    lim = asy.growth_limits(spec)
    if np.isfinite(lim["p_star"]) and lim["s_q"] < 1:
        p_star, decay = lim["p_star"], 1 - lim["s_q"]
        out["p"] = (p_star + (th.t.p[L] - p_star) * (l / L) ** -decay,
                    f"law p = p* + C l^-{decay:.3f}, p* = V(q*) = {p_star:.4g} {anchored}")
    return out


class _TheoryView:
    """A theory trajectory with R(l) = chi^(0) / chi^(l) of a depth-l network for every l."""

    def __init__(self, traj):
        self.t = traj.to_numpy()
        self.e = self.t.e
        self.log_R_of = self.t.log_chi[0] - self.t.log_chi


def dynamics_figure(net: Net, settings: Settings = QUICK, out_dir: str = "figures") -> str:
    """p, the gap of e to its limit, s and R(l) of one network against depth (docs/theory.md, section 5).

    Theory to ``settings.depth(net)`` layers; simulation (fast sampler, float64 for the ReLU family) to
    ``settings.sim_depth`` layers at ``settings.width`` and ``settings.samples`` networks. Returns the path.
    """
    from .theory import trajectory

    plt = _pyplot()
    laws = net.laws()
    L = settings.depth(net)
    th = _TheoryView(trajectory(net.spec(L)))
    t = th.t
    dtype = "float32" if net.family == "tanh" else "float64"
    sim_depth = min(settings.sim_depth, L)
    mean, se = _simulate(net, settings, sim_depth, dtype)

    relu = net.family == "relu"
    # ReLU: p, s and R grow like B^l (overflowing float64 near l = 1700 for B = 1.5) and the exact law
    # would hide the theory; dividing by B^l (in the log domain) shows what is left on log-log axes.
    # a growing stream's ReLU laws are powers, and a block without a law (highway) is shown as it is:
    # nothing to divide
    log_B = (laws.log_B or 0.0) if relu else 0.0
    one_minus_e = relu or laws.e_star is None  # no e* known: the gap panel shows 1 - e
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 8.0))
    color = "C0" if net.family == "tanh" else ("C3" if relu else "C2")
    gap_name = "1 − e" if one_minus_e else ("e (e* = 0)" if laws.e_star == 0 else f"|e − e*|, e* = {laws.e_star:.6g}")
    per_B = f" · B^−l, B = {math.exp(log_B):g}" if relu and laws.log_B is not None else ""
    panels = [("p", f"p = ⟨x²⟩ (squared length){per_B}"),
              ("gap", gap_name),
              ("s", f"s = ⟨(x − x')²⟩ (squared distance){per_B}"),
              ("R", f"R(l) = χ⁽⁰⁾/χ⁽ˡ⁾ (gradient growth){per_B}")]
    l_th = np.arange(1, L + 1, dtype=np.float64)
    li = l_th.astype(int)
    sl = _sim_layers(sim_depth, log=True)
    for ax, (key, ylabel) in zip(axes.ravel(), panels):
        mask = _Masker()
        with np.errstate(over="ignore"):
            if key == "p":
                y_th = np.exp(t.log_p[li] - log_B * l_th)
                log_sim, log_se = mean.log_p[sl] - log_B * sl, se.log_p[sl]
            elif key == "s":
                y_th = np.exp(t.log_s[li] - log_B * l_th)
                log_sim, log_se = mean.log_s[sl] - log_B * sl, se.log_s[sl]
            elif key == "R":
                y_th = np.exp(th.log_R_of[li] - log_B * l_th)
                log_sim = mean.log_chi[0] - mean.log_chi[sl] - log_B * sl
                log_se = np.hypot(se.log_chi[0], se.log_chi[sl])
            else:  # 1 - e of the theory from log s - log p = log 2 (1 - e): every digit, down to 1e-300
                y_th = np.exp(t.log_s[li] - t.log_p[li]) / 2 if one_minus_e else np.abs(t.e[li] - laws.e_star)
                y_sim = (1 - mean.e[sl]) if one_minus_e else np.abs(mean.e[sl] - laws.e_star)
        ax.plot(l_th, mask(y_th), color=color, label="theory (mean field)", **THEORY_STYLE)
        shown = [y_th[np.isfinite(y_th) & (y_th > 0)]]
        if key == "gap":
            _errorbar(ax, mask, sl, y_sim, se.e[sl], color, f"simulation N={settings.width}")
            shown.append(np.asarray(y_sim)[np.asarray(y_sim) > 0])
        else:
            _log_errorbar(ax, mask, sl, log_sim, log_se, color, f"simulation N={settings.width}")
            ok = np.isfinite(log_sim) & (np.asarray(log_sim) < 700)
            shown.append(np.exp(np.asarray(log_sim)[ok]))
        law_curves = _law_curves(net, laws, l_th, th)
        if key in law_curves:
            y_law, law_label = law_curves[key]
            ax.plot(l_th, mask(y_law), label=law_label, **LAW_STYLE)
        if key == "gap" and net.name == "tanh_frn":
            d_coef = asy.saturating_gap_correction(laws)
            gap_L = th.e[L] - laws.e_star
            c_coef = (gap_L - d_coef / math.sqrt(L)) * L**laws.delta_star
            two = np.abs(c_coef * l_th**-laws.delta_star + d_coef / np.sqrt(l_th))
            ax.plot(l_th, mask(two), label=f"C l^-δ* + D l^-1/2, D = {d_coef:.3g} (predicted)", **ALT_LAW_STYLE)
        if key == "gap" and net.family == "alpha" and L > 200:
            l0 = 100
            lr = l_th[l0 - 1:]
            path = asy.reduced_e_path(laws, l0, t.e[l0], lr)
            ax.plot(lr, mask(np.abs(path - laws.e_star)), label="leading-order e dynamics from l = 100 (dotted)",
                    **ALT_LAW_STYLE)
        ax.set_yscale("log")
        ax.set_xscale("log")
        # the view is set by theory and simulation; a law drawn over all depths would stretch it
        both = np.concatenate(shown)
        lo, hi = (np.min(both), np.max(both)) if both.size else (1e-3, 1e3)
        if relu and key == "R":
            lo, hi = min(lo, 0.5), max(hi, 2.0)
        ax.set_ylim(lo / 3, hi * 3)
        ax.set_xlabel("layer l")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        mask.note(ax)
    lawless = all(getattr(laws, k) is None for k in asy.LAW_KEYS)
    return _save(fig, f"{net.title} ({_fmt_params(net)}, p0 = 1, γ0 = 0.5)\n"
                 f"line: theory to l = {L:,}; markers: simulation, width {settings.width}, "
                 f"{settings.samples} networks, ±1 s.e.; "
                 + ("no asymptotic law is derived for this block" if lawless else "dashed: asymptotic law"),
                 0.94, out_dir, f"dynamics_{net.name}.png")


# --------------------------------------------------------------------------------- tanh gradients
#: (field, symbol, colour, coefficient c_log of log l in the law A sqrt(l) + c_log log l + c): chi_b = sv2 chi
#: Vphi'(q) with Vphi'(q) ~ q^(-1/2) and q ~ l gives +1/2; chi_w = chi_b p^(l-1) with p ~ l gives -1/2.
GRADIENT_FIELDS = (("chi", "χ", "C0", 0.0), ("chi_b", "χ_b", "C1", 0.5), ("chi_w", "χ_w", "C2", -0.5))
#: The bottom layer of each gradient quantity: chi is defined at the input (layer 0), chi_b and chi_w at
#: the parameters of layers 1..L.
_BOTTOM = {"chi": 0, "chi_b": 1, "chi_w": 1}


def _log_gradients(log_chi, log_p, sv2: float, sw2: float) -> dict:
    """log chi, log chi_b, log chi_w of one theory trajectory at layers 0..L (chi_b, chi_w NaN at 0).

    Computed in the log domain only: chi_b = sv2 chi Vphi'(q) overflows wherever chi does (float32 beyond
    log chi = 88), so Vphi'(q^(l)) is read off the backward recursion chi^(l-1) = chi^(l) (1 + sv2 sw2
    Vphi'(q^(l))) (docs/theory.md, section 3) instead of from the engine's chi_b.
    """
    log_chi = np.asarray(log_chi, np.float64)
    log_vp = np.log(np.expm1(log_chi[:-1] - log_chi[1:]) / (sv2 * sw2))
    log_b = np.concatenate([[np.nan], math.log(sv2) + log_chi[1:] + log_vp])
    log_w = np.concatenate([[np.nan], log_b[1:] + np.asarray(log_p, np.float64)[:-1]])
    return {"chi": log_chi, "chi_b": log_b, "chi_w": log_w}


def tanh_gradient_curves(traj, laws: asy.Laws) -> dict:
    """The theory and law curves of :func:`tanh_gradients_figure`: one tanh FRN trajectory of depth L and
    the :class:`~meanfield.asymptotics.Laws` of the same network (its variances are read from ``laws.params``).

    Layers are counted from the top, as the gradient is backpropagated. Returns a dict of float64 arrays:

    * ``l``: 1..L; for each gradient quantity (``chi``, ``chi_b``, ``chi_w``), ``growth[field]``: log of its
      value at the bottom layer over its value at the top layer of a network of depth l, i.e. after
      backpropagating through all l layers: log chi^(0)/chi^(l) (= log R(l)) and log chi_b^(1)/chi_b^(l),
      log chi_w^(1)/chi_w^(l) (NaN at l = 1, where bottom and top coincide). These grow like
      exp(A sqrt l), so ``law[field]`` is A sqrt(l) + c_log log l + c (c_log from :data:`GRADIENT_FIELDS`, c
      fitted at l = L) with A = ``laws.A``, stored as ``law_A``.
    * ``from_top``: log chi^(L-l)/chi^(L), the gradient of the one network of depth L, l layers below its
      top, and ``from_top_law`` = A (sqrt L - sqrt(L - l)), the same law in this indexing; it equals
      ``growth['chi']`` at l = L only: for l << L it grows like A l / (2 sqrt L), not like A sqrt l.
    """
    t = traj
    L = int(np.shape(t.log_chi)[-1]) - 1
    l = np.arange(1, L + 1, dtype=np.float64)
    logs = _log_gradients(t.log_chi, t.log_p, laws.params["sv2"], laws.params["sw2"])
    A = float(laws.A)
    growth, law = {}, {}
    for field, _, _, c_log in GRADIENT_FIELDS:
        y = logs[field][_BOTTOM[field]] - logs[field][1:]
        if _BOTTOM[field]:
            y[0] = np.nan  # l = 1: the bottom layer is the top layer
        shape = A * np.sqrt(l) + c_log * np.log(l)
        growth[field], law[field] = y, shape + (y[-1] - shape[-1])
    from_top = logs["chi"][L - l.astype(int)] - logs["chi"][L]
    return dict(l=l, L=L, growth=growth, law=law, law_A=A, from_top=from_top,
                from_top_law=A * (math.sqrt(L) - np.sqrt(L - l)))


def _log_log_panel(ax, mask: _Masker, xlabel: str, ylabel: str, title: str, legend_loc: str):
    """Log-log axes with labels, title, grid and legend; the masked-point count goes under the x label."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc=legend_loc)
    mask.note(ax)


def tanh_gradients_figure(settings: Settings = QUICK, out_dir: str = "figures") -> str:
    """chi, chi_b, chi_w of the tanh FRN against exp(A sqrt l), l counted from the top (docs/theory.md, section 6).

    (a) The paper's form: log of each gradient quantity at the bottom of a depth-l network over its value
    at the top (l layers backpropagated), l = 1..``grad_depth`` on log-log axes, with the dashed law
    A sqrt(l) + const (:func:`tanh_gradient_curves`); theory lines, simulation markers (float32, depth
    ``sim_depth``). (b) The same backpropagation inside one network of depth L: log chi^(L-l)/chi^(L)
    against A (sqrt L - sqrt(L - l)), for L = ``grad_depth`` (theory) and L = ``sim_depth`` (theory and
    simulation). (c) The local slope d log R / d sqrt(L) approaching A. Returns the path.
    """
    from .theory import trajectory

    plt = _pyplot()
    net = Net("tanh_frn", "tanh FRN", "frn", "tanh", TANH_FRN)
    laws = net.laws()
    p = TANH_FRN
    L = settings.grad_depth
    t = trajectory(net.spec(L)).to_numpy()
    cur = tanh_gradient_curves(t, laws)
    l, A = cur["l"], cur["law_A"]
    Ls = min(settings.sim_depth, L)
    mean, se = _simulate(net, settings, Ls, "float32")
    sim_logs = {"chi": mean.log_chi, "chi_b": np.log(mean.chi_b), "chi_w": np.log(mean.chi_w)}
    sim_rel = {"chi": se.log_chi, "chi_b": se.chi_b / mean.chi_b, "chi_w": se.chi_w / mean.chi_w}
    sl = _sim_layers(Ls, log=True)
    fig, (ax, axt, ax2) = plt.subplots(1, 3, figsize=(18, 5.6), gridspec_kw=dict(width_ratios=(1.3, 1.1, 1)))

    mask = _Masker()
    for field, name, color, _ in GRADIENT_FIELDS:
        b = _BOTTOM[field]  # chi_b, chi_w: from l = 2, where the bottom layer 1 is below the top one
        ratio = f"{name}⁽{'⁰' if b == 0 else '¹'}⁾/{name}⁽ˡ⁾"
        ax.plot(l[b:], mask(cur["growth"][field][b:]), color=color, label=f"log {ratio} theory", **THEORY_STYLE)
        layers = sl[sl > b]
        y = sim_logs[field][b] - sim_logs[field][layers]
        y_se = np.hypot(sim_rel[field][b], sim_rel[field][layers])
        _errorbar(ax, mask, layers, y, y_se, color, f"log {ratio} simulation N={settings.width}")
        ax.plot(l[b:], mask(cur["law"][field][b:]), **LAW_STYLE)
    ax.plot([], [], **LAW_STYLE, label=f"law A√l + c (χ), A√l ± ½ log l + c (χ_b, χ_w), c fitted at "
                                       f"l = {L:,};\nA = (4/3)√(2/π) σv² σw / √(σv²+σa²) = {A:.4f}")
    _log_log_panel(ax, mask, "l (layers from the top: backpropagated through a network of depth l to its bottom)",
                   "log(gradient at the bottom / gradient at the top)",
                   "(a) log χ, log χ_b, log χ_w ∝ A√l: gradients grow like exp(A√l)", "lower right")

    mt = _Masker()
    axt.plot(l, mt(cur["from_top"]), color="C0", label=f"theory, L = {L:,}", **THEORY_STYLE)
    axt.plot(l, mt(cur["from_top_law"]), **LAW_STYLE, label="law A(√L − √(L−l))")
    # the depth-Ls network has the same layers 1..Ls (the forward pass does not see the layers above)
    ls = np.arange(1, Ls + 1)
    log_chi = np.asarray(t.log_chi, np.float64)
    axt.plot(ls, mt(log_chi[Ls - ls] - log_chi[Ls]), color="C9", label=f"theory, L = {Ls}", **THEORY_STYLE)
    layers = sl[sl <= Ls]
    _errorbar(axt, mt, layers, sim_logs["chi"][Ls - layers] - sim_logs["chi"][Ls],
              np.hypot(sim_rel["chi"][Ls - layers], sim_rel["chi"][Ls]), "C9",
              f"simulation N={settings.width}, L = {Ls}")
    axt.plot(ls, mt(A * (math.sqrt(Ls) - np.sqrt(Ls - ls))), **LAW_STYLE)
    _log_log_panel(axt, mt, "l (layers from the top of one network of depth L)", "log χ⁽ᴸ⁻ˡ⁾/χ⁽ᴸ⁾",
                   "(b) one network of depth L: ≈ A(√L − √(L−l)), ∝ l for l ≪ L", "upper left")

    log_R = cur["growth"]["chi"]
    lm, slope = asy.local_slope(l, log_y=log_R, scale="sqrt")
    ok = lm >= 2
    ax2.plot(lm[ok], slope[ok], color="C0", label="theory: d log R / d√L over [L/2, L]", **THEORY_STYLE)
    ax2.plot(l[1:], log_R[1:] / np.sqrt(l[1:]), color="C4", lw=1.2, label="theory: log R / √L")
    ax2.axhline(A, label=f"law A = {A:.4f}", **LAW_STYLE)
    value, drift = asy.tail_slope(l, log_R, scale="sqrt", depth=L)
    ax2.set_xscale("log")
    ax2.set_xlabel("depth L")
    ax2.set_ylabel("growth rate of log R = log χ⁽⁰⁾/χ⁽ᴸ⁾ in √L")
    ax2.set_title(f"(c) local slope at L = {L:,}: {value:.4f} ± {drift:.1e} ({100 * (value / A - 1):+.2f}%)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7, loc="lower right")
    return _save(fig, f"tanh FRN gradients (σw²={p['sw2']:g}, σv²={p['sv2']:g}, σb²={p['sb2']:g}, "
                 f"σa²={p['sa2']:g}, p0 = 1): lines theory (mean field), markers simulation (width "
                 f"{settings.width}, {settings.samples} networks, depth {Ls}, ±1 s.e.), dashed laws",
                 0.95, out_dir, "tanh_gradients.png")


# ---------------------------------------------------------------------------------- phase diagram
def phase_diagram_figure(settings: Settings = QUICK, out_dir: str = "figures") -> str:
    """Feedforward order-to-chaos transition of tanh next to the tanh FRN's polynomial laws.

    (a) chi_1 over (sw2, sb2) with the critical line chi_1 = 1 (Poole et al. 2016). (b) Feedforward
    correlations approach c* exponentially with depth scale xi_c (Schoenholz et al. 2017). (c) The
    residual net at the same (sw2, sb2) approaches e* polynomially with one exponent delta* for every
    sw2: no phase transition (docs/theory.md, section 5).
    """
    from .theory import trajectory

    plt = _pyplot()
    n = settings.phase_grid
    sw2 = np.linspace(0.25, 4.0, n)
    sb2 = np.linspace(0.0, 0.5, max(n // 2, 3))
    W2, B2 = np.meshgrid(sw2, sb2)
    chi1 = asy.ff_chi_1("tanh", W2, B2)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.0))
    ax = axes[0]
    im = ax.pcolormesh(W2, B2, np.log2(chi1), cmap="RdBu_r", vmin=-2, vmax=2, shading="auto")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("log₂ χ₁   (χ₁ = σw² E[φ'(√q* z)²])")
    ax.contour(W2, B2, chi1, levels=[1.0], colors="k", linewidths=2)
    ax.plot([], [], "k-", lw=2, label="critical line χ₁ = 1")
    ax.text(0.6, 0.4, "ordered\nχ₁ < 1", fontsize=10, ha="left")
    ax.text(3.3, 0.15, "chaotic\nχ₁ > 1", fontsize=10, ha="center")
    sb_demo = 0.05
    demo = (0.8, asy.ff_critical_sw2("tanh", sb_demo), 3.0)
    colors = ("C0", "C1", "C3")
    for s, c in zip(demo, colors):
        ax.plot([s], [sb_demo], "o", color=c, ms=8, mec="k")
    ax.set_xlabel("σw²")
    ax.set_ylabel("σb²")
    ax.set_title("(a) tanh feedforward net: order / chaos")
    ax.legend(loc="upper right", fontsize=8)

    L_ff = 150
    L_res = max(min(settings.depth_tanh, 10_000), 64)
    axb, axc = axes[1], axes[2]
    mb, mc = _Masker(), _Masker()
    shown_b = []
    for s, c in zip(demo, colors):
        d = asy.ff_depth_scales("tanh", s, sb_demo)
        t = trajectory(Spec("ff", "tanh", L_ff, sw2=s, sb2=sb_demo, p0=1.0, gamma0=0.5)).to_numpy()
        l = np.arange(1, L_ff + 1)
        if d["c_star"] == 1.0:
            # 1 - c^(l) = sw2 s^(l-1) / (2 q^(l)): no cancellation, unlike 1 - lambda / q
            gap = s * t.s[:-1] / (2.0 * t.q[1:])
        else:
            gap = np.abs(t.lam[1:] / t.q[1:] - d["c_star"])
        axb.plot(l, mb(gap), color=c, label=f"σw² = {s:.3g}: χ₁ = {d['chi_1']:.3f}, c* = {d['c_star']:.3g}",
                 **THEORY_STYLE)
        shown_b.append(gap[np.isfinite(gap) & (gap > 0)])
        if math.isfinite(d["xi_c"]):
            k0 = 20 if d["xi_c"] > 5 else 3
            axb.plot(l, mb(gap[k0 - 1] * np.exp(-(l - k0) / d["xi_c"])), **LAW_STYLE)
            axb.text(l[-1] * 0.62, max(gap[-1], 1e-15) * 3, f"ξ_c = {d['xi_c']:.3g}", color=c, fontsize=8)
        res = Net("x", "tanh FRN", "frn", "tanh", dict(TANH_FRN, sw2=float(s), sb2=sb_demo))
        laws = res.laws()
        tr = trajectory(res.spec(L_res)).to_numpy()
        lr = np.arange(1, L_res + 1, dtype=np.float64)
        g = np.abs(tr.e[1:] - laws.e_star)
        axc.plot(lr, mc(g), color=c, label=f"σw² = {s:.3g}", **THEORY_STYLE)
        axc.plot(lr, mc(g[-1] * (lr / L_res) ** -laws.delta_star), **LAW_STYLE)
        d_coef = asy.saturating_gap_correction(laws)
        c_coef = (tr.e[L_res] - laws.e_star - d_coef / math.sqrt(L_res)) * L_res**laws.delta_star
        axc.plot(lr, mc(np.abs(c_coef * lr**-laws.delta_star + d_coef / np.sqrt(lr))), **ALT_LAW_STYLE)
    axb.plot([], [], **LAW_STYLE, label="law ∝ exp(−l/ξ_c)")
    axb.set_yscale("log")
    both = np.concatenate(shown_b)
    axb.set_ylim(both.min() / 10, both.max() * 10)
    axb.set_xlabel("layer l (linear axis)")
    axb.set_ylabel("|c⁽ˡ⁾ − c*|,  c = λ/q (pre-activation correlation)")
    axb.set_title(f"(b) feedforward, σb² = {sb_demo:g}: exponential in l")
    axb.grid(True, alpha=0.3)
    axb.legend(fontsize=7, loc="lower left")
    mb.note(axb)
    axc.plot([], [], **LAW_STYLE, label=f"law ∝ l^-δ*, δ* = {res.laws().delta_star:.3f} for every σw² "
                                         "(anchored at the last layer)")
    axc.plot([], [], **ALT_LAW_STYLE, label="C l^-δ* + D l^-1/2, D predicted (docs/theory.md omits this term)")
    axc.set_xscale("log")
    axc.set_yscale("log")
    axc.set_xlabel("layer l")
    axc.set_ylabel(f"|e⁽ˡ⁾ − e*|,  e* = {res.laws().e_star:.3g}")
    axc.set_title(f"(c) tanh FRN (σv²={TANH_FRN['sv2']:g}, σa²={TANH_FRN['sa2']:g}), same σw², σb²: "
                  "polynomial", fontsize=10)
    axc.grid(True, alpha=0.3)
    lo, hi = axc.get_ylim()
    axc.set_ylim(lo, hi * 30)  # headroom for the legend above the curves
    axc.legend(fontsize=7, loc="upper right")
    mc.note(axc)
    return _save(fig, "Feedforward phase diagram vs residual laws: lines theory (mean field), dashed laws; "
                 "inputs p0 = 1, γ0 = 0.5", 0.95, out_dir, "phase_diagram.png")


# ------------------------------------------------------------------------------------ exponent table
_ROWS = {
    "tanh": (("p_exponent", "p ~ l^k"), ("e_star", "e -> e*"), ("delta_star", "\\|e−e*\\| ~ l^-δ*"),
             ("A", "R = exp(A √L)")),
    "relu": (("e_star", "e -> e*"), ("delta_star", "1-e ~ l^-δ*"), ("one_minus_e_coef", "(1-e) l² ->"),
             ("log_B", "R = B^L")),
    "alpha": (("p_exponent", "p ~ l^k"), ("e_star", "e -> e*"), ("delta_star", "\\|e−e*\\| ~ l^-δ*"),
              ("R_exponent", "R ~ L^k")),
}


def _cli_flags(net: Net) -> str:
    p = net.params
    flags = f"--arch {net.arch} --act {net.act}" + (f" --alpha {net.alpha:g}" if net.act == "alpha_relu" else "")
    flags += f" --sw2 {p['sw2']:g} --sb2 {p['sb2']:g}"
    if {"sv2", "sa2"} <= net.fields:
        flags += f" --sv2 {p['sv2']:g} --sa2 {p['sa2']:g}"
    if {"sg2", "gate_bias"} <= net.fields:
        flags += f" --sg2 {p['sg2']:g} --gate-bias {p['gate_bias']:g}"
    return flags


def exponent_table(settings: Settings = QUICK, out_dir: str = "figures") -> str:
    """figures/exponents.md: predicted against measured exponents for every network of :data:`NETWORKS`."""
    from .theory import trajectory

    lines = ["# Predicted against measured asymptotic laws", "",
             "Measured on the mean-field (theory) trajectory of depth L, over its last octave [L/2, L]; "
             "*drift* is the change of that estimate from the octave [L/4, L/2] before (the uncertainty of a "
             "slowly converging local slope). Rebuild: `python experiments/table_exponents.py` "
             "(or `meanfield figures --only exponents`). Each row's command reproduces it: "
             "`meanfield laws <flags> --measure --depth L`.", "",
             "| network | law | predicted | measured | drift | measured / predicted − 1 | L |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for net in NETWORKS + BLOCK_NETWORKS:
        L = settings.depth(net)
        laws = net.laws()
        if all(getattr(laws, k) is None for k in asy.LAW_KEYS):  # no law to measure (highway)
            continue
        m = asy.measure(trajectory(net.spec(L)), laws)
        for key, what in _ROWS[net.family]:
            pred = getattr(laws, key)
            if pred is None:  # a block whose laws are read off its map: p and R only
                continue
            got = m.get(key, {"value": None, "drift": None})
            rel = (f"{got['value'] / pred - 1:+.2%}" if pred and got["value"] is not None else "—")
            if key == "e_star" and got["value"] is not None:
                rel = f"{got['value'] - pred:+.2g} (abs.)"
            lines.append(f"| {net.title} | {what} | {pred:.6g} | {got['value']:.6g} | {got['drift']:.2g} | "
                         f"{rel} | {L:,} |")
        for key, what in (("delta_star_corrected", "slope of abs(e − e* − D l^-1/2), D predicted"),
                          ("delta_reduced", "δ predicted by the leading-order e dynamics at e(L)")):
            if key in m and m[key]["value"] is not None:
                drift = m[key]["drift"]
                lines.append(f"| {net.title} | {what} | {laws.delta_star:.6g} | {m[key]['value']:.6g} | "
                             f"{'—' if drift is None else f'{drift:.2g}'} | "
                             f"{m[key]['value'] / laws.delta_star - 1:+.2%} | {L:,} |")
        notes.append(f"- {net.title}: `meanfield laws {_cli_flags(net)} --measure --depth {L}`")
    lines += ["", "Commands:", ""] + notes + ["", _FINDINGS]
    path = os.path.join(out_dir, "exponents.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


_FINDINGS = """## Where the [D] laws and the trajectories disagree at finite depth

(Numbers quoted here come from the quick and the `--full` builds; the table above is from this build.)

All growth laws (p, A, log B, the alpha-ReLU gradient exponent) and the ReLU 1 − e law agree within
their tolerances. The convergence exponent δ* of e does not, for two different reasons; in both cases the
law is right as l → ∞ and the trajectory is right at finite l:

1. **tanh FRN with σa² > 0 (e* > 0).** V(q) = 1 − √(2/π) q^(−1/2) + … adds a forcing term of order
   l^(−3/2) to the difference equation of e, so e − e* = C l^(−δ*) + D l^(−1/2) with
   D = G / (δ* − 1/2), G = σv² e* √(2/π) / (κ √(σw² κ)), κ = σv² + σa². Since δ* < 1/2 for every
   variance (δ* → 1/2 as σa²/σv² grows), the l^(−1/2) term is of the same size over any feasible depth and
   of opposite sign: for the tanh FRN above the plain local slope is 0.377 at L = 10⁴ and 0.396 at
   L = 10⁵, against δ* = 0.449. Subtracting the predicted D l^(−1/2) gives 0.4456 (−0.7%) at L = 10⁴ and
   0.4474 (−0.3%) at L = 10⁵. A two-term least-squares fit over l ∈ [10⁴, 10⁵] finds D = −3.39 against
   the leading-order −3.17. docs/theory.md's table gives only the l^(−δ*) term; the tanh RRN is not affected
   (e* = 0, so G = 0).
2. **α-ReLU FRN.** J_α is strongly curved next to e* (J_(α−1) is singular at c = 1 and e* is close to
   1), so the linearization that gives δ* = (1 − J_α'(e*))/(1 − α) holds only once |e − e*| ≪ 1 − e*.
   At L = 10⁵, |e − e*| is 0.3–10 times 1 − e*, and the local slope (≈ 0.21–0.23 for all three α;
   0.18–0.22 at L = 10⁶)
   matches the slope of the leading-order nonlinear dynamics de/d log l = (J_α(e) − e)/(1 − α) at the
   same e (row "δ predicted by the leading-order e dynamics"), not δ*. Integrating that equation further
   brings its local slope within 2% of δ* only beyond l ≈ 10²⁰ (α = 0.6, 0.75) and l ≈ 10⁴⁰ (α = 0.9):
   e* and δ* are right but unobservable at any practical depth, where e^(L) is still 0.003–0.006 below e*.
"""


# ----------------------------------------------------------------------------- depth-scaled branches
#: The networks of :func:`branch_scale_figure`: (net, colour).
SCALED = ((NETWORKS[1], "C0"), (NETWORKS[2], "C3"))


def branch_scale_figure(settings: Settings = QUICK, out_dir: str = "figures") -> str:
    """p^(L) and log R(L) of FRNs whose branches are scaled by kappa = L^-1/2, against depth L.

    Each depth L is its own network (its kappa depends on L). Theory: lines to L = ``grad_depth``;
    simulation: markers at depths up to ``sim_depth``; the L -> infinity limit of
    :func:`meanfield.asymptotics.depth_scaled_limit` (dashed), and the same networks with kappa = 1 (thin
    grey), which grow without bound. Returns the path.
    """
    import jax

    from .simulate import simulate
    from .theory import trajectory

    plt = _pyplot()
    L_max = settings.grad_depth
    Ls = np.unique(np.geomspace(1, L_max, 40).astype(int))
    L_sim = np.unique(np.geomspace(2, min(settings.sim_depth, L_max), 3).astype(int))
    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(12, 5.0))
    masks = (_Masker(), _Masker())
    for net, color in SCALED:
        # one compiled trajectory of depth L_max over a grid of kappa: network i is its prefix of depth Ls[i]
        grid = trajectory(Spec(net.arch, net.act, L_max, **net.params, branch_scale=Ls.astype(float) ** -0.5))
        rows = np.arange(len(Ls))
        p_L = grid.p[rows, Ls]
        log_R = grid.log_chi[rows, 0] - grid.log_chi[rows, Ls]
        plain = _TheoryView(trajectory(net.spec(L_max)))
        limit = asy.depth_scaled_limit(net.spec(1), t=[0.0, 1.0])
        ax_p.plot(Ls, masks[0](p_L), color=color, label=f"{net.title}: theory, κ = L^-1/2", **THEORY_STYLE)
        ax_r.plot(Ls, masks[1](np.exp(log_R)), color=color, label=f"{net.title}: theory, κ = L^-1/2", **THEORY_STYLE)
        ax_p.plot(Ls, masks[0](plain.t.p[Ls]), color="0.55", lw=1.0,
                  label=f"{net.title}: κ = 1 (unscaled)")
        with np.errstate(over="ignore"):  # the unscaled ReLU R overflows: masked and counted
            ax_r.plot(Ls, masks[1](np.exp(plain.log_R_of[Ls])), color="0.55", lw=1.0,
                      label=f"{net.title}: κ = 1 (unscaled)")
        dashed = {**LAW_STYLE, "color": color}
        ax_p.axhline(limit["p"][-1], label=f"limit L → ∞: {limit['p'][-1]:.4g}", **dashed)
        ax_r.axhline(math.exp(limit["log_R"][-1]), label=f"limit L → ∞: R = {math.exp(limit['log_R'][-1]):.4g}",
                     **dashed)
        dtype = "float32" if net.family == "tanh" else "float64"
        for L in L_sim:
            mean, se = simulate(Spec(net.arch, net.act, int(L), **net.params, branch_scale="1/sqrt(L)"),
                                settings.width, settings.samples, jax.random.key(settings.seed), "fast", dtype)
            mean, se = mean.to_numpy(), se.to_numpy()
            first = L == L_sim[0]
            _log_errorbar(ax_p, masks[0], [L], [mean.log_p[-1]], [se.log_p[-1]], color,
                          f"{net.title}: simulation N={settings.width}" if first else None)
            _log_errorbar(ax_r, masks[1], [L], [mean.log_chi[0] - mean.log_chi[-1]],
                          [math.hypot(se.log_chi[0], se.log_chi[-1])], color, None)
    for ax, mask, ylabel in ((ax_p, masks[0], "p⁽ᴸ⁾ (squared length at the output)"),
                             (ax_r, masks[1], "R(L) = χ⁽⁰⁾/χ⁽ᴸ⁾ (gradient growth)")):
        ax.set_ylim(0.5, 1e3)
        _log_log_panel(ax, mask, "depth L (each L its own network)", ylabel, "", "upper left")
    return _save(fig, "Branches scaled by κ = L^-1/2 (x ← x + κ (V φ(W x + b) + a)): p⁽ᴸ⁾ and R(L) stay "
                 f"finite as L grows\nFRNs as in the dynamics figures, p0 = 1; markers: width {settings.width}, "
                 f"{settings.samples} networks, ±1 s.e.; grey: the same networks without the scale (off the "
                 "top for ReLU)", 0.92, out_dir, "branch_scale.png")


# -------------------------------------------------------------------------------------- all figures
FIGURES = ("dynamics", "blocks", "branch_scale", "tanh_gradients", "phase_diagram", "exponents")


def build_all(out_dir: str = "figures", settings: Settings = QUICK, only=None, log=print) -> list:
    """Rebuild the figures (``only``: a subset of :data:`FIGURES`); returns [(path, seconds)]."""
    os.makedirs(out_dir, exist_ok=True)
    only = tuple(only or FIGURES)
    bad = [o for o in only if o not in FIGURES]
    if bad:
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}; got {bad[0]!r}")
    jobs = []
    if "dynamics" in only:
        jobs += [(lambda net=net: dynamics_figure(net, settings, out_dir)) for net in NETWORKS]
    if "blocks" in only:
        jobs += [(lambda net=net: dynamics_figure(net, settings, out_dir)) for net in BLOCK_NETWORKS + GROWTH_NETWORKS]
    if "branch_scale" in only:
        jobs.append(lambda: branch_scale_figure(settings, out_dir))
    if "tanh_gradients" in only:
        jobs.append(lambda: tanh_gradients_figure(settings, out_dir))
    if "phase_diagram" in only:
        jobs.append(lambda: phase_diagram_figure(settings, out_dir))
    if "exponents" in only:
        jobs.append(lambda: exponent_table(settings, out_dir))
    done = []
    for job in jobs:
        t0 = time.perf_counter()
        path = job()
        done.append((path, time.perf_counter() - t0))
        if log:
            log(f"{path}  ({done[-1][1]:.1f} s)")
    return done
